// The scheduler: which worker runs which chunk, and what a worker's end means for its chunks.
//
// It owns the io state of the engine: the queue of chunks no worker holds yet (pending), each
// worker's queue of chunks given to it (oldest first; the first `sent` are handed to the
// transport), task ids, the window (how many chunks a worker may hold), maxtasksperchild, the
// requeue of a lost worker's unstarted chunks, the start-failure policy, and the completion
// of every chunk exactly once. It has no thread, no lock and no clock: whoever holds the io
// role calls it (engine.cpp), and it reaches workers only through the transport seam
// (transport.hpp), so that a test drives it step by step with a fake transport
// (tests/fake_transport.hpp, tests/test_scheduler.cpp).
//
// Everything a worker writes is untrusted: a frame that is malformed, or that does not answer
// the oldest chunk the worker holds with a count of results that chunk can have, condemns the
// worker (condemn): it is killed through the transport, each chunk it held fails with
// worker_lost_error ("sent a corrupt frame"), and its exit report brings a replacement, as
// for a crash. Failures that end the pool (workers that keep dying before they are ready, a
// worker that cannot be started, an initializer that throws, a transport that cannot kill one
// worker alone) go to the failure handler, which the engine turns into the pool's failure; the
// engine then calls fail_everything().
#pragma once

#include "transport.hpp"

#include "flow_control.hpp"
#include <procpool/detail/result_sink.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace procpool::detail {

class frame_spares;

/// One task frame on its way to a worker, and where its outcome goes.
struct outgoing_chunk {
    std::vector<char> frame;           ///< task_header and archive (task_id patched on dispatch)
    std::shared_ptr<result_sink> sink; ///< gets complete_chunk(index, ...) exactly once
    std::size_t index = 0;
};

class scheduler {
public:
    /// Workers that die before they are ready this many times in a row fail the pool.
    static constexpr int max_start_failures = 3;

    using failure_handler = std::function<void(std::exception_ptr)>;

    /// Reaches the workers through `workers` (which outlives it). `initializer_frame`: sent
    /// first to every worker (null: none); `max_tasks`: chunks per process, 0: no limit;
    /// `spares` takes each answered task frame; `on_failure` gets what ends the pool.
    scheduler(transport& workers, std::shared_ptr<const std::vector<char>> initializer_frame,
              std::uint64_t max_tasks, std::shared_ptr<frame_spares> spares,
              failure_handler on_failure);

    /// Starts every worker. Throws what transport::start throws.
    void start_all();

    /// Queues chunks behind those pending.
    void enqueue(std::deque<outgoing_chunk>& chunks);
    void enqueue(outgoing_chunk chunk);

    /// Gives pending chunks to workers, each to the live one with the fewest, up to the window.
    void dispatch();
    /// Hands worker `index` its initializer and queued frames, as far as the transport takes
    /// them. Returns true when anything moved.
    bool feed(std::uint32_t index);
    /// Reads the result frames of worker `index` and completes their chunks.
    bool drain(std::uint32_t index);
    bool feed_all();
    bool drain_all();

    /// A worker ended (the transport's on_exit report). Reads what it published, fails the
    /// chunk it was running with worker_lost_error, requeues the ones it had not started at
    /// the head of the queue, and starts a replacement (unless it was told to stop). Ignores
    /// a report for a worker that is already gone or replaced.
    void on_exit(const worker_exit& report);

    /// Tells every live worker to leave once it has answered everything.
    void stop_workers();
    /// Completes every chunk, pending or held by a worker, with `error`; the frames a worker
    /// may still be reading go to the transport (adopt).
    void fail_everything(const std::exception_ptr& error);

    /// No chunk pending and none held by a worker.
    bool idle() const noexcept;
    /// Some worker holds a chunk.
    bool in_flight() const noexcept;
    bool has_pending() const noexcept { return !pending_.empty(); }
    /// No worker is alive (after stop_workers: the pool has wound down).
    bool all_stopped() const noexcept;
    /// A worker has input to read, or output the transport can take now: the io thread's
    /// wait condition.
    bool work_ready();
    /// Every chunk in the pool, pending or held, is one of `sink`'s.
    bool only_chunks_of(const result_sink& sink) const noexcept;

    /// Chunks a worker may hold: about 1 ms of work each (flow::chunks_per_worker).
    std::size_t window() const noexcept;
    std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(workers_.size()); }
    /// Chunks worker `index` holds, and whether it is alive (for tests and diagnostics).
    std::size_t queued(std::uint32_t index) const { return workers_.at(index).queue.size(); }
    bool alive(std::uint32_t index) const { return workers_.at(index).alive; }

private:
    struct dispatched {
        std::uint64_t id;
        outgoing_chunk chunk;
    };

    /// The scheduler's view of one worker slot.
    struct worker_state {
        std::uint32_t index = 0;
        int pid = 0;
        bool alive = false;
        bool ready = false;       // finished its initializer, or returned a result
        bool stop_sent = false;   // told to leave once its inbox is empty
        std::size_t assigned = 0; // tasks given to this process (maxtasksperchild)
        bool initializer_unsent = false;
        bool condemned = false;       // sent a corrupt frame: killed, its exit report awaited
        std::deque<dispatched> queue; // given to the worker, oldest first
        std::size_t sent = 0;         // queue[0, sent) are handed to the transport
    };

    void start(worker_state& w);
    void on_frame(worker_state& w, std::span<const std::byte> frame, std::vector<char>* storage,
                  std::vector<char>* bulk);
    /// Worker `w` sent something no worker of this pool sends: see the file comment.
    void condemn(worker_state& w, const std::string& why);
    /// Completes every chunk `w` holds with `outcome`; the frames handed to the transport go
    /// to `handed`, for transport::adopt.
    void fail_held(worker_state& w, const chunk_outcome& outcome,
                   std::vector<std::vector<char>>& handed);
    void fail(std::exception_ptr error) { on_failure_(std::move(error)); }

    transport& transport_;
    const std::shared_ptr<const std::vector<char>> initializer_frame_;
    const std::uint64_t max_tasks_;
    const std::shared_ptr<frame_spares> spares_;
    const failure_handler on_failure_;

    std::vector<worker_state> workers_;
    std::deque<outgoing_chunk> pending_;
    std::uint64_t next_task_id_ = 1;
    moving_mean mean_chunk_ns_; // of finished chunks' run times: the window
    int start_failures_ = 0;
};

} // namespace procpool::detail
