// What a worker does with one task frame, whatever carried it there (a ring or MPI).
#pragma once

#include <procpool/export.hpp>

#include "function_ref.hpp"

#include <procpool/detail/task_identity.hpp>
#include <procpool/detail/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace procpool::detail {

/// The end of a result frame that stays where it is: the bytes of a large last result (see
/// task_call::bulk), and what keeps them alive.
struct frame_bulk {
    std::span<const char> bytes;
    std::shared_ptr<const void> owner;
    bool apart = false; ///< to be read apart (task_call::bulk_apart)
};

class PROCPOOL_API frame_executor {
public:
    /// Runs the task frame `frame` and writes the result frame (result_header first) to
    /// `output`, which it clears first, and to `bulk`: the frame is `output` followed by
    /// `bulk.bytes`, which are empty unless the last result is large. `starting(task_id)` is
    /// called once the header is read, before the task runs. Returns the result frame's header.
    /// Never throws: a task's exception, or a frame this worker cannot run, becomes an error
    /// record in the result.
    result_header run(std::span<const std::byte> frame, std::vector<char>& output, frame_bulk& bulk,
                      function_ref<void(std::uint64_t)> starting);

private:
    void execute(const task_header& task, std::span<const char> input, result_header& result,
                 std::vector<char>& output, frame_bulk& bulk);
    trampoline_fn resolve_trampoline(code_address a);
    const void* resolve_function(code_address a);

    code_address trampoline_key_;
    trampoline_fn trampoline_ = nullptr;
    code_address function_key_;
    const void* function_ = nullptr;
};

/// The result frame of a task frame that is not run (a transport cannot carry it): a
/// procpool::error with `message`, as frame_executor::run writes for a frame it cannot run.
PROCPOOL_API std::vector<char> refused_result(std::span<const std::byte> frame,
                                              const char* message);

} // namespace procpool::detail
