// The untyped engine under procpool::pool: workers, segment, rings, result thread, supervisor.
// The templates in pool.ipp encode task frames and decode results; everything between lives in
// src/core.cpp, out of the users' compile times.
#pragma once

#include <procpool/detail/result_state.hpp>
#include <procpool/pool_options.hpp>

#include <cstddef>
#include <memory>
#include <vector>

namespace procpool::detail {

/// One task frame on its way to a worker, and where its outcome goes.
struct outgoing_chunk {
    std::vector<char> frame;           ///< task_header and archive (task_id patched on dispatch)
    std::shared_ptr<result_sink> sink; ///< gets complete_chunk(index, ...) exactly once
    std::size_t index = 0;
};

class pool_core {
public:
    /// Starts the workers. Throws state_error in a worker process that skipped procpool::init,
    /// procpool::error when a worker cannot be started, std::invalid_argument for bad options.
    explicit pool_core(const pool_options& options);
    ~pool_core();
    pool_core(const pool_core&) = delete;
    pool_core& operator=(const pool_core&) = delete;

    /// Queues chunks, in order. Does not block on workers. Throws state_error when the pool no
    /// longer accepts work (closed, terminated, or failed). Thread-safe.
    void submit(std::vector<outgoing_chunk> chunks);

    void close();
    void terminate();
    void join();

    std::size_t processes() const noexcept;

    /// The pids of the workers now running (for tests and diagnostics). Thread-safe.
    std::vector<int> worker_pids() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace procpool::detail
