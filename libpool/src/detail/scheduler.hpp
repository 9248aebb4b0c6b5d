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
//
// Timeouts: a chunk whose limits carry a timeout is watched while a worker holds it
// (check_deadlines, called by the engine with the time, since the scheduler has no clock). Its
// start is the earlier of what the worker says (transport::running) and when the scheduler
// first saw it running: a worker's garbage can only time out its own task early. At its
// deadline the chunk fails with task_timeout_error at once (it is "settled": whatever else
// comes for it is dropped), and the worker is doomed: sent SIGTERM, no new work, SIGKILL after
// kill_grace; its unstarted chunks go back to the queue when its exit comes.
//
// Cancellation (cancel): a sink's chunks that no worker has are completed with
// cancelled_error and dropped; one a worker holds unsent is dropped too; one sent is settled
// and the worker is asked to skip it (transport::skip). If the worker is already running it,
// it is doomed as for a timeout; if it may still go either way (running, not confirmed), the
// scheduler looks again (check_deadlines) until it knows.
#pragma once

#include "transport.hpp"

#include "flow_control.hpp"
#include <procpool/detail/result_sink.hpp>

#include <chrono>
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
    chunk_limits limits = {};
    std::size_t tries = 0; ///< how many workers died running it (max_retries)
};

class scheduler {
public:
    /// Workers that die before they are ready this many times in a row fail the pool.
    static constexpr int max_start_failures = 3;
    /// A restart storm: this many workers (at least, or 4 per worker of the pool) die in a row
    /// while running tasks, with no task finishing in between. Then the rest of the jobs whose
    /// tasks killed them (their sinks) fails, chunks yet to come included, rather than
    /// respawning at full speed (see on_exit); other work goes on.
    static constexpr std::size_t min_storm_deaths = 16;
    /// How long a worker killed for a timeout has between SIGTERM and SIGKILL.
    static constexpr std::chrono::milliseconds kill_grace{200};
    /// How often workers with work have their memory read (memory_limit_per_child).
    static constexpr std::chrono::milliseconds memory_look{5};

    using clock = std::chrono::steady_clock;

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

    /// Fails the chunks that ran past their timeout and kills their workers (see the file
    /// comment); escalates to SIGKILL past the grace. Returns when to call it again:
    /// clock::time_point::max() when nothing is watched.
    clock::time_point check_deadlines(clock::time_point now);
    /// Some chunk held has a timeout, a doomed worker's SIGKILL is due, or a cancelled chunk
    /// may have started: check_deadlines has something to do, and returns a time before max()
    /// when so.
    bool watching() const noexcept {
        return timed_held_ != 0 || doomed_ != 0 || skip_watched_ != 0 ||
               (memory_limit_ != 0 && in_flight());
    }

    /// memory_limit_per_child: a worker with work whose resident memory is above `bytes` at
    /// a look (check_deadlines, every memory_look) is killed at once; its running chunk is lost
    /// with memory_limit_error (or retried). 0: no limit.
    void limit_memory(std::size_t bytes) noexcept { memory_limit_ = bytes; }

    /// Cancels every chunk of `sink` not yet answered (see the file comment): each completes
    /// once, with cancelled_error, now.
    void cancel(const result_sink& sink, clock::time_point now);

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
        bool settled = false;  // completed already (timed out, cancelled): its answer is dropped
        std::uint64_t seq = 0; // the worker's how-manieth task frame (set when sent)
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
        std::size_t timed = 0;        // chunks in queue with a timeout (none once doomed)
        bool doomed = false;          // killed for a timeout (SIGTERM), its exit awaited
        bool hard_killed = false;     // ... and sent SIGKILL
        clock::time_point kill_at{};  // when SIGKILL follows
        std::uint64_t seen_task = 0;  // the task check_deadlines last saw it run, and when
        clock::time_point seen_at{};
        std::uint64_t next_seq = 0;        // seq of the next task frame sent to it
        std::uint64_t skip_watch = 0;      // a cancelled task it may have started; 0: none
        std::size_t memory_killed_rss = 0; // killed past the memory limit, at this RSS
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
    /// Empties w's queue (its chunks are completed or moved elsewhere by the caller).
    void clear_queue(worker_state& w) noexcept;
    /// Chunk `d` of `w` ran past its timeout: see the file comment.
    void time_out(worker_state& w, dispatched& d, clock::time_point now);
    /// Kills `w` (SIGTERM now, SIGKILL after kill_grace): it runs a task it must not finish.
    void doom(worker_state& w, clock::time_point now);
    /// A worker's `skipped` answer (to a cancelled chunk).
    void on_skipped(worker_state& w, std::uint64_t task_id);
    /// Clears what is watched of `w`, which is gone or being killed.
    void unwatch(worker_state& w) noexcept;
    /// Looks whether `w` started the cancelled task it may have (skip_watch); dooms it if so.
    /// Returns when to look again, or max().
    clock::time_point check_skip(worker_state& w, clock::time_point now);

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
    std::size_t timed_held_ = 0;           // the workers' `timed`, summed
    std::size_t doomed_ = 0;               // workers doomed, alive, and not yet sent SIGKILL
    std::size_t skip_watched_ = 0;         // workers with a skip_watch
    std::size_t memory_limit_ = 0;         // memory_limit_per_child, 0: none
    clock::time_point next_memory_look_{}; // when check_deadlines reads memory again
    std::size_t deaths_in_a_row_ = 0;      // workers lost mid-task since a task last finished
    std::vector<std::weak_ptr<result_sink>> dying_sinks_; // whose tasks those were
    std::vector<std::weak_ptr<result_sink>> stormed_;     // jobs failed by a storm, and why:
    std::exception_ptr storm_error_;                      //   their later chunks fail at once
    /// `sink` is in `sinks` (weak_ptrs compared by owner, expired ones never match).
    static bool among(const std::vector<std::weak_ptr<result_sink>>& sinks,
                      const std::shared_ptr<result_sink>& sink) noexcept;
};

} // namespace procpool::detail
