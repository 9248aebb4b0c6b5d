// The engine behind procpool::pool. See engine.hpp.
//
// Threads of the parent:
//   callers     encode task frames in their own thread and queue them (mutex_).
//   io thread   the "result thread": moves queued chunks to workers, reads their result
//               frames, completes results (callbacks run here), handles worker exits and starts
//               replacements.
//   transport   how frames reach the workers (transport.hpp): shared-memory rings and child
//               processes watched by a supervisor thread, or the ranks of an MPI job.
//
// The io role (io_role.hpp: its states and handshake). Whoever holds it owns the io thread's
// state (the scheduler: scheduler.hpp) and makes the transport's calls: the io thread while it
// works, or a caller. The io thread lets it go while it waits (its wait condition takes it for a
// moment to look). A caller that waits for its one task (apply, apply_async(...).get()) takes it
// when it is free, writes the task into the worker's inbox itself and spins on the outbox until its
// result is there, decoding it too; the io thread sleeps meanwhile, and the workers, seeing the
// segment's parent_polling flag, wake nobody (docs/performance.md: latency). A caller drives
// only while every chunk in the pool is its own (callbacks of other results run on the io
// thread) and nothing waits for the io thread (wakeup_: a submit, a worker's exit, close or
// terminate); it stops when that changes or after a short spin, lets the role go, and wakes the
// io thread when it came for the role meanwhile or has work it may not know of. Only transports
// that allow it (callers_may_drive).
//
// What a crash does:
//   a worker dies   the io thread (scheduler::on_exit) first reads every complete result frame
//                   it published, then fails the one task it was running with
//                   worker_lost_error, puts the tasks it had not started back at the head of the
//                   queue, and starts a replacement. Workers that keep dying before they are
//                   ready fail the pool instead of respawning forever.
//   the parent dies each worker's watchdog (a pidfd on the parent) removes the segment name and
//                   ends the worker at once; the next pool also sweeps names of dead owners.
#include "engine.hpp"
#include "event.hpp"
#include "launch.hpp"

#include <procpool/errors.hpp>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <string>
#include <thread>
#include <unistd.h>

namespace procpool::detail {

namespace {

/// How long a caller waiting for its task spins on the outboxes before it sleeps, as the io
/// thread does (shm_transport's io_spin).
constexpr auto caller_spin = std::chrono::microseconds(50);

} // namespace

/// Counts the forks this process came out of (a pthread_atfork child handler), so that telling
/// a forked child from the pool's owner costs a load instead of a getpid() system call on
/// every submit. vfork and posix_spawn, which start workers, run no fork handler.
namespace {
std::atomic<unsigned> forks{0};
} // namespace

unsigned fork_generation() noexcept {
    static const bool registered = [] {
        ::pthread_atfork(nullptr, nullptr, [] { forks.fetch_add(1, std::memory_order_relaxed); });
        return true;
    }();
    (void)registered;
    // relaxed: only this process's own count; a fork handler runs in the child before any
    // other code there.
    return forks.load(std::memory_order_relaxed);
}

engine::engine(const pool_options& options, transport_factory make, bool start_io_thread)
    : owner_pid_(::getpid())
    , owner_fork_generation_(fork_generation()) {
    if (std::getenv(worker_environment_variable) != nullptr)
        throw state_error("procpool: this process was started as a pool worker but reached a "
                          "pool constructor; call procpool::init(argc, argv) first in main()");
    if (options.processes && *options.processes == 0)
        throw std::invalid_argument("procpool::pool: processes must be at least 1");
    if (options.maxtasksperchild && *options.maxtasksperchild == 0)
        throw std::invalid_argument("procpool::pool: maxtasksperchild must be at least 1");
    if (options.task_timeout && options.task_timeout->count() <= 0)
        throw std::invalid_argument("procpool::pool: task_timeout must be positive");
    if (options.max_memory_per_child && *options.max_memory_per_child == 0)
        throw std::invalid_argument("procpool::pool: max_memory_per_child must be at least 1");
    if (options.memory_limit_per_child && *options.memory_limit_per_child == 0)
        throw std::invalid_argument("procpool::pool: memory_limit_per_child must be at least 1");

    transport_options how;
    how.processes = options.processes;
    how.max_tasks = options.maxtasksperchild.value_or(0);
    how.max_rss = options.max_memory_per_child.value_or(0);
    how.initializer_frame = options.initializer.frame();
    how.method = options.context ? options.context->method() : start_method::spawn;
    how.on_exit = [this](const worker_exit& e) {
        std::lock_guard lock(mutex_);
        exits_.push_back(e);
        wakeup_.store(true, std::memory_order_release);
    };
    const auto initializer_frame = how.initializer_frame;
    const auto max_tasks = how.max_tasks;
    transport_ = make(std::move(how));
    processes_ = transport_->size();
    if (options.task_timeout) {
        if (!transport_->kills_one_worker())
            throw std::invalid_argument(
                "procpool::pool: task_timeout needs workers that can be killed one at a time "
                "(the \"spawn\" and \"forkserver\" contexts); this context cannot");
        default_limits_.timeout = *options.task_timeout;
    }
    if (options.memory_limit_per_child && !transport_->kills_one_worker())
        throw std::invalid_argument(
            "procpool::pool: memory_limit_per_child needs workers that can be killed one at a "
            "time (the \"spawn\" and \"forkserver\" contexts); this context cannot");
    default_limits_.max_retries = options.max_retries;
    role_.emplace(transport_->callers_may_drive());

    spares_ = std::make_shared<frame_spares>(4 * std::size_t{processes_}, std::size_t{64} << 20,
                                             2 * std::size_t{processes_});
    transport_->take_bulk_buffers_from(spares_.get());
    sched_.emplace(*transport_, initializer_frame, max_tasks, spares_,
                   [this](std::exception_ptr e) { fail_pool(std::move(e)); });
    sched_->limit_memory(options.memory_limit_per_child.value_or(0));
    sched_->start_all(); // on failure, ~transport reaps what started
    has_io_thread_ = start_io_thread;
    if (start_io_thread)
        io_thread_ = std::thread([this] { io_loop(); });
}

engine::~engine() {
    if (!forked()) // see pool::~pool
        terminate();
}

bool engine::forked() const noexcept {
    return fork_generation() != owner_fork_generation_;
}

void engine::require_owner() const {
    if (forked())
        throw state_error("procpool: this pool belongs to process " + std::to_string(owner_pid_) +
                          ", which this one was forked from: a forked child cannot use it "
                          "(make a pool of its own)");
}

void engine::require_accepting(bool from_stream) const {
    if (state_ == run_state::failed)
        std::rethrow_exception(failure_);
    const bool accepting =
        state_ == run_state::running || (from_stream && state_ == run_state::closed);
    if (!accepting)
        throw state_error("procpool: pool not running");
}

chunk_limits engine::limits_of(const task_options& options) const {
    chunk_limits limits = default_limits_;
    if (options.timeout) {
        if (options.timeout->count() <= 0)
            throw std::invalid_argument("procpool: task_options::timeout must be positive");
        if (!transport_->kills_one_worker())
            throw std::invalid_argument(
                "procpool: task_options::timeout needs workers that can be killed one at a time "
                "(the \"spawn\" and \"forkserver\" contexts); this pool's context cannot");
        limits.timeout = *options.timeout;
    }
    if (options.max_retries)
        limits.max_retries = *options.max_retries;
    return limits;
}

void engine::submit(std::vector<outgoing_chunk> chunks, bool from_stream) {
    require_owner();
    {
        std::lock_guard lock(mutex_);
        require_accepting(from_stream);
        if (chunks.empty())
            return;
        for (auto& c : chunks)
            submitted_.push_back(std::move(c));
        // release: with the mutex, publishes the chunks to the io thread's collect().
        wakeup_.store(true, std::memory_order_release);
    }
    transport_->wake();
}

void engine::submit_one(outgoing_chunk chunk) {
    require_owner();
    if (role_->take_for_caller()) {
        bool queued = false;
        try {
            std::lock_guard lock(mutex_);
            require_accepting(false);
            // Only when nothing waits for the io thread: a chunk submitted before goes first.
            if (!wakeup_.load(std::memory_order_relaxed)) {
                sched_->enqueue(std::move(chunk)); // on failure, nothing moved
                queued = true;
            }
        } catch (...) {
            release_role_for_caller();
            throw;
        }
        if (queued) {
            sched_->dispatch();
            sched_->feed_all();
        }
        release_role_for_caller();
        if (queued)
            return;
    }
    std::vector<outgoing_chunk> chunks;
    chunks.push_back(std::move(chunk));
    submit(std::move(chunks), false);
}

bool engine::drive(const result_sink& mine, const std::atomic<bool>& done,
                   std::chrono::steady_clock::time_point deadline) noexcept {
    // acquire, here and below: pairs with the release that completes the result.
    if (done.load(std::memory_order_acquire))
        return true;
    if (forked() || !role_->take_for_caller())
        return false;
    // acquire: as in collect().
    if (wakeup_.load(std::memory_order_acquire) || !sched_->only_chunks_of(mine)) {
        release_role_for_caller();
        return done.load(std::memory_order_acquire);
    }
    transport_->set_polling(true);
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 1;; ++i) {
        sched_->dispatch();
        for (std::uint32_t w = 0; w < processes_; ++w) {
            sched_->feed(w);
            sched_->drain(w);
        }
        if (done.load(std::memory_order_acquire) || wakeup_.load(std::memory_order_acquire))
            break;
        if (i % 16 == 0) {
            const auto now = std::chrono::steady_clock::now();
            if (now - start >= caller_spin || now >= deadline)
                break;
        }
        cpu_relax();
    }
    transport_->set_polling(false);
    // What a worker published since the last look woke nobody: take it now.
    sched_->drain_all();
    release_role_for_caller();
    return done.load(std::memory_order_acquire);
}

void engine::cancel_chunks(std::shared_ptr<result_sink> sink) noexcept {
    if (forked() || !sink)
        return;
    try {
        std::lock_guard lock(mutex_);
        cancels_.push_back(std::move(sink));
        wakeup_.store(true, std::memory_order_release);
    } catch (...) {
        return; // no memory to queue it: the chunks run, their results are dropped
    }
    transport_->wake();
}

std::uint64_t engine::open_stream(std::weak_ptr<stream_input> stream) {
    require_owner();
    std::lock_guard lock(mutex_);
    require_accepting(false);
    const std::uint64_t id = next_stream_id_++;
    streams_.emplace(id, std::move(stream));
    return id;
}

void engine::close_stream(std::uint64_t id) noexcept {
    if (forked())
        return;
    {
        std::lock_guard lock(mutex_);
        if (streams_.erase(id) == 0)
            return;
        wakeup_.store(true, std::memory_order_release);
    }
    transport_->wake();
}

void engine::close() {
    require_owner();
    {
        std::lock_guard lock(mutex_);
        if (state_ == run_state::running)
            state_ = run_state::closed;
        wakeup_.store(true, std::memory_order_release);
    }
    transport_->wake();
    spares_->stop();
}

void engine::terminate() {
    require_owner();
    std::lock_guard lifecycle(lifecycle_mutex_);
    {
        std::lock_guard lock(mutex_);
        if (state_ == run_state::running || state_ == run_state::closed)
            state_ = run_state::terminating;
        wakeup_.store(true, std::memory_order_release);
    }
    transport_->wake();
    end_threads();
}

void engine::join() {
    require_owner();
    std::vector<std::weak_ptr<stream_input>> streams;
    {
        std::lock_guard lock(mutex_);
        if (state_ == run_state::running)
            throw state_error("procpool: join() called before close() or terminate()");
        for (auto& [id, stream] : streams_)
            streams.push_back(stream);
    }
    // As Python's join waits for its task handler to queue every imap input: read what is left
    // of each open stream here (its results wait in the stream for its consumer).
    for (auto& weak : streams)
        if (auto stream = weak.lock())
            stream->read_rest();
    std::lock_guard lifecycle(lifecycle_mutex_);
    end_threads();
}

void engine::end_threads() {
    if (io_thread_.joinable())
        io_thread_.join();
    else if (!has_io_thread_)
        while (turn_io()) { // a test's engine: its turns, until one moves nothing
        }
    {
        // worker_pids() asks the transport under mutex_: none is in flight past this point.
        std::lock_guard lock(mutex_);
        workers_ended_ = true;
    }
    transport_->shutdown();
    spares_->stop();
}

std::vector<int> engine::worker_pids() const {
    require_owner();
    std::lock_guard lock(mutex_);
    if (workers_ended_ || state_ == run_state::terminating || state_ == run_state::failed)
        return {};
    return transport_->pids(); // under the lock: end_threads() shuts the transport down after
}

// ---- the io role ----

void engine::take_role_for_io() noexcept {
    while (!role_->try_take_for_io())
        transport_->wait([this] { return role_->is_free(); }, {});
}

void engine::release_role_for_caller() noexcept {
    // Work the io thread may not know of: chunks no worker could take yet, what set wakeup_
    // without waking it (fail_pool, called on the io thread's paths), or deadlines to watch
    // (a timed task this caller sent: the io thread sleeps with none).
    const bool watched = sched_->watching();
    if (watched) // release: the io thread's ready() takes it, then looks at the io state
        deadlines_changed_.store(true, std::memory_order_release);
    const bool leftovers =
        sched_->has_pending() || wakeup_.load(std::memory_order_relaxed) || watched;
    if (role_->release_for_caller(leftovers))
        transport_->wake();
}

// ---- the io thread ----

void engine::io_loop() noexcept {
    take_role_for_io(); // kept when the loop ends: no caller drives past it
    for (;;) {
        const io_turn turn = io_once();
        if (turn == io_turn::ended)
            return;
        if (turn == io_turn::idle)
            wait_for_work();
    }
}

engine::io_turn engine::io_once() noexcept {
    // No exception leaves the io thread: one that escapes a turn (an allocation that failed,
    // say) fails the pool, and the next turn fails every task and ends the loop.
    try {
        return io_turn_once();
    } catch (...) {
        fail_pool(std::current_exception());
        return io_turn::progress;
    }
}

engine::io_turn engine::io_turn_once() {
    bool progress = collect();
    run_state state;
    bool streams_open;
    bool submits_waiting;
    std::exception_ptr failure;
    {
        std::lock_guard lock(mutex_);
        state = state_;
        streams_open = !streams_.empty();
        // A stream's last batch, submitted after collect() looked and before the stream
        // closed: the stream is gone, but its chunks are not in the scheduler yet.
        submits_waiting = !submitted_.empty();
        failure = failure_;
    }
    if (state == run_state::terminating || state == run_state::failed) {
        if (state == run_state::terminating)
            failure = std::make_exception_ptr(
                state_error("procpool: the pool was terminated before this task finished"));
        fail_everything(failure);
        transport_->kill_all();
        return io_turn::ended;
    }
    progress |= sched_->drain_all();
    sched_->dispatch();
    progress |= sched_->feed_all();
    next_check_ = sched_->watching() ? sched_->check_deadlines(std::chrono::steady_clock::now())
                                     : std::chrono::steady_clock::time_point::max();
    if (state == run_state::closed && !streams_open && !submits_waiting && sched_->idle()) {
        if (!stopping_) {
            sched_->stop_workers();
            stopping_ = true;
        }
        if (sched_->all_stopped())
            return io_turn::ended;
    }
    return progress ? io_turn::progress : io_turn::idle;
}

bool engine::turn_io() noexcept {
    if (has_io_thread_ || io_ended_ || !role_->try_take_for_io())
        return false;
    const io_turn turn = io_once();
    role_->release_for_io();
    io_ended_ = turn == io_turn::ended;
    return !io_ended_ && turn == io_turn::progress;
}

bool engine::collect() {
    // acquire: pairs with the release stores in submit(), close(), terminate() and on_exit.
    if (!wakeup_.load(std::memory_order_acquire))
        return false;
    std::vector<worker_exit> exits;
    std::vector<std::shared_ptr<result_sink>> cancels;
    {
        std::lock_guard lock(mutex_);
        wakeup_.store(false, std::memory_order_relaxed); // under the mutex: no update is lost
        sched_->enqueue(submitted_);
        exits.swap(exits_);
        cancels.swap(cancels_);
    }
    for (const worker_exit& r : exits)
        sched_->on_exit(r);
    if (!cancels.empty()) {
        const auto now = std::chrono::steady_clock::now();
        for (const auto& sink : cancels)
            sched_->cancel(*sink, now);
    }
    return true;
}

void engine::wait_for_work() {
    // Learnt before the role goes: a caller may take it and change the io state meanwhile.
    transport::wait_hint hint;
    hint.in_flight = sched_->in_flight();
    hint.mid_frame = hint.in_flight && transport_->mid_frame();
    hint.deadline = next_check_;
    role_->release_for_io();
    auto ready = [this] {
        if (wakeup_.load(std::memory_order_acquire))
            return true;
        // A caller sent a timed task meanwhile (release_role_for_caller): its deadline is not
        // in this wait's hint, which may be later or none.
        if (deadlines_changed_.exchange(false, std::memory_order_acq_rel))
            return true;
        // A caller holds the role: stop waiting here, and wait for the role instead
        // (take_role_for_io).
        if (!role_->try_look())
            return true;
        const bool ready = sched_->work_ready();
        role_->release_for_io();
        return ready;
    };
    transport_->wait(ready, hint);
    take_role_for_io();
}

void engine::fail_pool(std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    if (state_ == run_state::running || state_ == run_state::closed) {
        state_ = run_state::failed;
        failure_ = std::move(error);
    }
    wakeup_.store(true, std::memory_order_release);
}

void engine::fail_everything(const std::exception_ptr& error) {
    {
        std::lock_guard lock(mutex_);
        sched_->enqueue(submitted_);
    }
    sched_->fail_everything(error);
}

} // namespace procpool::detail
