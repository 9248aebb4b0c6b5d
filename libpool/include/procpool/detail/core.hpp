// The untyped engine under procpool::pool: workers, segment, rings, result thread, supervisor.
// The templates in pool.ipp encode task frames and decode results; everything between lives in
// src/core.cpp, out of the users' compile times.
#pragma once

#include <procpool/detail/result_state.hpp>
#include <procpool/pool_options.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace procpool::detail {

/// One task frame on its way to a worker, and where its outcome goes.
struct outgoing_chunk {
    std::vector<char> frame;           ///< task_header and archive (task_id patched on dispatch)
    std::shared_ptr<result_sink> sink; ///< gets complete_chunk(index, ...) exactly once
    std::size_t index = 0;
};

/// The input of an imap, which its consumer reads lazily. join() calls read_rest() on every
/// stream still open, so that `imap; close(); join()` completes as in Python.
class stream_input {
public:
    virtual ~stream_input() = default;
    /// Reads and submits all the input left. Never throws: failures become the stream's.
    virtual void read_rest() noexcept = 0;
};

class pool_core final : public result_driver {
public:
    /// Starts the workers. Throws state_error in a worker process that skipped procpool::init,
    /// procpool::error when a worker cannot be started, std::invalid_argument for bad options.
    explicit pool_core(const pool_options& options);
    ~pool_core();
    pool_core(const pool_core&) = delete;
    pool_core& operator=(const pool_core&) = delete;

    /// Queues chunks, in order. Does not block on workers. Throws state_error when the pool no
    /// longer accepts work (closed, terminated, or failed). Thread-safe.
    /// `from_stream`: the chunks continue an open stream, which a closed pool still accepts.
    void submit(std::vector<outgoing_chunk> chunks, bool from_stream = false);

    /// Queues one chunk as submit() does; when the io thread is idle, writes it to a worker
    /// itself rather than waking it (for a task whose caller is likely to wait for it).
    void submit_one(outgoing_chunk chunk);

    /// See result_driver. Thread-safe; does nothing on a transport that does not allow it.
    bool drive(const result_sink& mine, const std::atomic<bool>& done,
               std::chrono::steady_clock::time_point deadline) noexcept override;

    /// Registers a lazily read input (imap). While one is open, a closed pool keeps its workers.
    /// Throws state_error when the pool is not running. Thread-safe.
    std::uint64_t open_stream(std::weak_ptr<stream_input> stream);
    /// The stream's input is exhausted (or abandoned). Thread-safe, idempotent.
    void close_stream(std::uint64_t id) noexcept;

    void close();
    void terminate();
    void join();

    std::size_t processes() const noexcept;

    /// An empty buffer with room for a large frame, from a chunk this pool completed, or an
    /// empty vector. Encoding into it fills pages already in memory, where a fresh buffer
    /// costs a page fault per 4 KiB (docs/performance.md: fresh vs warm memory). Thread-safe.
    std::vector<char> take_frame_buffer() noexcept;

    /// The pids of the workers now running (for tests and diagnostics). Thread-safe.
    std::vector<int> worker_pids() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace procpool::detail
