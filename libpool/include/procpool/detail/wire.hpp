// The frames that cross the rings. Both ends are the same binary, so headers are plain structs
// copied as bytes; every field is fixed-width.
//
//   task frame (parent -> worker):   task_header | archive: [function object] item...
//   result frame (worker -> parent): result_header | archive: result... | [error record]
#pragma once

#include <procpool/detail/task_identity.hpp>

#include <cstdint>
#include <type_traits>

namespace procpool::detail {

enum class frame_kind : std::uint32_t {
    task = 1,        ///< run the items, send a result frame
    initializer = 2, ///< run once at worker start, send an initializer_done frame
    result = 3,
    initializer_done = 4,
    skipped = 5, ///< the answer to a task the parent cancelled before it started: not run
};

struct task_header {
    std::uint64_t task_id = 0; ///< assigned by the parent when it dispatches the frame
    frame_kind kind = frame_kind::task;
    std::uint32_t reserved = 0;
    code_address trampoline;
    code_address function; ///< module 0 unless the task function is a function pointer
    std::uint64_t item_count = 0;
};

struct result_header {
    std::uint64_t task_id = 0;
    frame_kind kind = frame_kind::result;
    std::uint32_t failed = 0;       ///< 1: an error record follows at error_offset
    std::uint64_t ok_count = 0;     ///< results in the archive, for items 0..ok_count-1
    std::uint64_t error_offset = 0; ///< from the end of the header
    std::uint64_t exec_ns = 0;      ///< time the worker spent on the frame
};

static_assert(std::is_trivially_copyable_v<task_header> && sizeof(task_header) == 56,
              "task_header is copied between processes as bytes: keep it fixed");
static_assert(std::is_trivially_copyable_v<result_header> && sizeof(result_header) == 40,
              "result_header is copied between processes as bytes: keep it fixed");

} // namespace procpool::detail
