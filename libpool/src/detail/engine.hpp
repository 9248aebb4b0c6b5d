// The engine behind procpool::pool: its lifecycle (submit, close, join, terminate), its imap
// streams, and the io thread, which runs the scheduler (scheduler.hpp) over a transport
// (transport.hpp) under the io role (io_role.hpp). procpool::pool's non-template members
// (pool.cpp) call it directly; the templates in pool.ipp encode task frames and decode results,
// and reach it only through those members. See engine.cpp for the threads and the crash
// semantics, docs/design.md for the path of one task.
#pragma once

#include "frame_spares.hpp"
#include "io_role.hpp"
#include "scheduler.hpp"
#include "transport.hpp"

#include <procpool/detail/result_sink.hpp>
#include <procpool/pool_options.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace procpool::detail {

/// The input of an imap, which its consumer reads lazily. join() calls read_rest() on every
/// stream still open, so that `imap; close(); join()` completes as in Python.
class stream_input {
public:
    virtual ~stream_input() = default;
    /// Reads and submits all the input left. Never throws: failures become the stream's.
    virtual void read_rest() noexcept = 0;
};

class engine final : public result_driver, public chunk_canceller {
public:
    /// Starts the workers over the transport `options` ask for. Throws state_error in a worker
    /// process that skipped procpool::init, procpool::error when a worker cannot be started,
    /// std::invalid_argument for bad options.
    /// `make`: how the transport is made (a test's fake transport, say).
    using transport_factory = std::function<std::unique_ptr<transport>(transport_options)>;
    /// `start_io_thread` false (tests): no io thread; turn_io() runs its loop a turn at a time,
    /// and join() or terminate() runs the turns left until none moves anything.
    explicit engine(const pool_options& options, transport_factory make = make_transport,
                    bool start_io_thread = true);
    /// terminate().
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

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

    /// See chunk_canceller. Thread-safe.
    void cancel_chunks(std::shared_ptr<result_sink> sink) noexcept override;

    /// Registers a lazily read input (imap). While one is open, a closed pool keeps its workers.
    /// Throws state_error when the pool is not running. Thread-safe.
    std::uint64_t open_stream(std::weak_ptr<stream_input> stream);
    /// The stream's input is exhausted (or abandoned). Thread-safe, idempotent.
    void close_stream(std::uint64_t id) noexcept;

    void close();
    void terminate();
    void join();

    std::size_t processes() const noexcept { return processes_; }

    /// A call's options resolved against the pool's (pool_options::task_timeout). Throws
    /// std::invalid_argument for a timeout that is not positive, or that the transport cannot
    /// enforce (it cannot kill one worker alone: "mpi").
    chunk_limits limits_of(const task_options& options) const;

    /// The pool's spare frame buffers: encoding into one fills pages already in memory, where a
    /// fresh buffer costs a page fault per 4 KiB (docs/performance.md: fresh vs warm memory).
    spare_buffers* spares() const noexcept { return spares_.get(); }

    /// The pids of the workers now running (for tests and diagnostics). Thread-safe.
    std::vector<int> worker_pids() const;

    /// True in a process forked from the one that made this engine: nothing of it may be used
    /// there. Its threads are not in the child, and its workers and segment are the parent's:
    /// every call but this one throws state_error there (drive and close_stream do nothing),
    /// and the child's copy must be left undestroyed (pool::~pool leaks it). A relaxed load.
    bool forked() const noexcept;

    /// Without an io thread (tests): one turn of its loop, under the io role. True when the
    /// turn moved something and the loop goes on; false when it moved nothing or has ended.
    bool turn_io() noexcept;
    /// The io loop has ended (turn_io).
    bool io_ended() const noexcept { return io_ended_; }

private:
    enum class run_state { running, closed, terminating, failed };

    /// Throws the pool's failure, or state_error unless it takes new work (or, `from_stream`,
    /// the rest of an open stream). Callers hold mutex_.
    void require_accepting(bool from_stream) const;
    /// Throws state_error in a forked child (see forked()).
    void require_owner() const;
    enum class io_turn { progress, idle, ended };
    void io_loop() noexcept;
    /// One turn of the io loop: collect, drain, dispatch, feed, and the wind-down.
    io_turn io_once() noexcept;
    io_turn io_turn_once(); // io_once's work, which may throw
    bool collect();
    void wait_for_work();
    void fail_pool(std::exception_ptr error);
    void fail_everything(const std::exception_ptr& error);
    void end_threads();

    // The io role (see engine.cpp and io_role.hpp).
    void take_role_for_io() noexcept;
    void release_role_for_caller() noexcept;

    std::uint32_t processes_ = 0;
    chunk_limits default_limits_;          // from pool_options
    const int owner_pid_;                  // the process that made the engine
    const unsigned owner_fork_generation_; // fork_generation() then

    // Shared with callers and the supervisor, guarded by mutex_.
    mutable std::mutex mutex_;
    run_state state_ = run_state::running;
    std::exception_ptr failure_;
    std::deque<outgoing_chunk> submitted_;
    std::vector<worker_exit> exits_;
    std::vector<std::shared_ptr<result_sink>> cancels_; // cancel_chunks, for the io thread
    std::map<std::uint64_t, std::weak_ptr<stream_input>> streams_; // open imap inputs
    std::uint64_t next_stream_id_ = 1;
    bool workers_ended_ = false; // end_threads() reached the transport's shutdown
    /// Set (under mutex_) whenever something above changed; the io thread clears it.
    std::atomic<bool> wakeup_{false};
    /// A caller holding the io role left timed work: the io thread's deadline is stale.
    std::atomic<bool> deadlines_changed_{false};

    // Frame buffers of completed chunks, for callers to encode into (spares()) and for
    // handing results to waiting callers (chunk_outcome::spares). At most 4 per worker (a paced
    // map keeps 2 to 8 per worker outstanding) and 64 MiB in all, about what glibc's malloc may
    // itself keep of freed memory; close(), terminate() and join() let them go. They are not let
    // go when the pool merely runs out of work: a map of 16 MiB items often does, between
    // chunks, while the caller encodes the next one. Also the buffers waiting callers ready for
    // large results (the transport reads bulks into them): at most 2 per worker, 64 MiB.
    // Made here, passed to the transport, the scheduler and the results; the one owner.
    std::shared_ptr<frame_spares> spares_;

    std::optional<io_role> role_; // made with the transport, which says whether callers drive

    std::mutex lifecycle_mutex_;           // one terminate() or join() at a time
    std::unique_ptr<transport> transport_; // after what its on_exit callback touches
    std::optional<scheduler> sched_;       // the io state, under the io role; after transport_
    std::thread io_thread_;
    bool has_io_thread_ = true;
    bool stopping_ = false; // the io loop told the workers to leave (io state)
    /// When the scheduler wants its deadlines checked again (io state).
    std::chrono::steady_clock::time_point next_check_ =
        std::chrono::steady_clock::time_point::max();
    bool io_ended_ = false; // turn_io() saw the loop end
};

} // namespace procpool::detail
