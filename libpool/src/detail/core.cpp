// The pool engine behind procpool::pool. See detail/core.hpp.
//
// Threads of the parent:
//   callers     encode task frames in their own thread and queue them (submit_mutex_).
//   io thread   the "result thread": moves queued chunks to workers' inboxes, reads result
//               frames from outboxes, completes results (callbacks run here), handles worker
//               exits and starts replacements. It never blocks on one ring: frames larger than
//               the free space are written and read in fragments, so a worker that is busy
//               writing a large result cannot stall the tasks of the others.
//   supervisor  sleeps in poll() on a pidfd per worker, reaps each worker that exits and hands
//               the wait status to the io thread.
//
// What a crash does:
//   a worker dies   the io thread first reads every complete result frame it published, then
//                   fails the one task it was running (slot.running_task) with
//                   worker_lost_error, puts the tasks it had not started back at the head of the
//                   queue, resets its rings and starts a replacement. Workers that keep dying
//                   before they are ready fail the pool instead of respawning forever.
//   the parent dies each worker's watchdog (a pidfd on the parent) removes the segment name and
//                   ends the worker at once; the next pool also sweeps names of dead owners.
#include <procpool/detail/core.hpp>
#include <procpool/detail/event.hpp>
#include <procpool/detail/launch.hpp>
#include <procpool/detail/segment.hpp>
#include <procpool/detail/throw_error.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/worker.hpp>
#include <procpool/errors.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace procpool::detail {

namespace {

constexpr std::uint64_t ring_bytes = std::uint64_t{1} << 20;
constexpr auto io_spin = std::chrono::microseconds(50);
/// Chunks queued per worker: enough to cover about this much work, so a worker never waits
/// for the parent, while the imbalance at the end of a job stays near this much.
constexpr double window_target_ns = 1e6;
constexpr std::size_t min_window = 2;
constexpr std::size_t max_window = 1024;
/// Workers that die before they are ready this many times in a row fail the pool.
constexpr int max_start_failures = 3;

static_assert(offsetof(task_header, task_id) == 0, "the core patches task_id at offset 0");

struct exit_report {
    std::uint32_t index;
    int pid;
    int status;
};

/// Owns the worker processes: starts them, watches them, reaps them.
class supervisor {
public:
    explicit supervisor(std::function<void(const exit_report&)> on_exit)
        : on_exit_(std::move(on_exit)) {
        wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd_ < 0)
            throw_system_error("eventfd");
    }

    ~supervisor() {
        shutdown();
        ::close(wake_fd_);
    }

    /// Workers are forked by the forkserver rather than started afresh.
    void use_forkserver(bool on) noexcept { forkserver_ = on; }

    /// Starts worker `index` and watches it. Thread-safe. Throws procpool::error.
    int spawn(std::uint32_t index, const std::vector<std::string>& args) {
        child_process child = forkserver_ ? fork_worker(args) : launch_worker(args);
        const int pid = child.pid();
        if (child.pidfd() < 0) {
            child.kill();
            throw error("procpool: pidfd_open failed for worker " + std::to_string(pid) +
                        " (ProcPool needs Linux 5.3 or later)");
        }
        {
            std::lock_guard lock(mutex_);
            children_.emplace(pid, entry{index, std::move(child)});
        }
        wake();
        return pid;
    }

    void start() {
        thread_ = std::thread([this] { loop(); });
    }

    /// SIGKILL to every worker still running. Thread-safe, never throws.
    void kill_all() noexcept {
        std::lock_guard lock(mutex_);
        for (auto& [pid, e] : children_)
            e.child.kill();
    }

    /// Stops watching; kills and reaps every worker left. Idempotent.
    void shutdown() noexcept {
        // relaxed: the eventfd write/read orders it for the loop.
        quit_.store(true, std::memory_order_relaxed);
        wake();
        if (thread_.joinable())
            thread_.join();
        std::map<int, entry> left;
        {
            std::lock_guard lock(mutex_);
            left.swap(children_);
        }
        for (auto& [pid, e] : left)
            e.child.kill();
        for (auto& [pid, e] : left) {
            try {
                e.child.wait();
            } catch (...) {
            }
        }
    }

private:
    struct entry {
        std::uint32_t index;
        child_process child;
    };

    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
    }

    void loop() {
        std::vector<pollfd> fds;
        std::vector<int> pids;
        for (;;) {
            fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
            pids.assign(1, 0);
            {
                std::lock_guard lock(mutex_);
                for (auto& [pid, e] : children_) {
                    fds.push_back({e.child.pidfd(), POLLIN, 0});
                    pids.push_back(pid);
                }
            }
            if (::poll(fds.data(), fds.size(), -1) < 0)
                continue; // EINTR
            if (quit_.load(std::memory_order_relaxed))
                return;
            if (fds[0].revents) {
                std::uint64_t count;
                [[maybe_unused]] const auto n = ::read(wake_fd_, &count, sizeof count);
            }
            for (std::size_t i = 1; i < fds.size(); ++i) {
                if (fds[i].revents == 0)
                    continue;
                std::optional<entry> e;
                {
                    std::lock_guard lock(mutex_);
                    auto it = children_.find(pids[i]);
                    if (it == children_.end())
                        continue;
                    e.emplace(std::move(it->second));
                    children_.erase(it);
                }
                const int status = e->child.wait(); // exited: does not block
                on_exit_({e->index, pids[i], status});
            }
        }
    }

    std::function<void(const exit_report&)> on_exit_;
    bool forkserver_ = false;
    int wake_fd_ = -1;
    std::atomic<bool> quit_{false};
    std::mutex mutex_;
    std::map<int, entry> children_; // by pid
    std::thread thread_;
};

enum class run_state { running, closed, terminating, failed };

} // namespace

struct pool_core::impl {
    explicit impl(const pool_options& options);
    ~impl();

    void submit(std::vector<outgoing_chunk> chunks, bool from_stream);
    std::uint64_t open_stream(std::weak_ptr<stream_input> stream);
    void close_stream(std::uint64_t id) noexcept;
    void close();
    void terminate();
    void join();
    std::vector<int> worker_pids() const;

    std::uint32_t processes_ = 0;

private:
    enum class writing { none, initializer, task };

    struct dispatched {
        std::uint64_t id;
        outgoing_chunk chunk;
    };

    /// The io thread's view of one worker slot.
    struct worker_state {
        std::uint32_t index = 0;
        int pid = 0;
        bool alive = false;
        bool ready = false;       // finished its initializer, or returned a result
        bool stop_sent = false;   // told to leave once its inbox is empty
        std::size_t assigned = 0; // tasks given to this process (maxtasksperchild)
        ring_producer inbox;
        ring_consumer outbox;
        frame_writer writer;
        frame_reader reader;
        writing current = writing::none;
        bool initializer_unsent = false;
        std::deque<dispatched> queue; // given to the worker, oldest first
        std::size_t sent = 0;         // queue[0, sent) are fully written to the inbox
    };

    /// Throws the pool's failure, or state_error unless it takes new work (or, `from_stream`,
    /// the rest of an open stream). Callers hold mutex_.
    void require_accepting(bool from_stream) const;
    void start_worker(worker_state& w);
    void io_loop() noexcept;
    bool collect();
    void take_submitted(); // callers hold mutex_
    void on_exit(const exit_report& report);
    bool drain(worker_state& w);
    void on_frame(worker_state& w, std::span<const std::byte> frame);
    void dispatch();
    bool feed(worker_state& w);
    bool idle() const noexcept;
    void stop_workers();
    void wait_for_work();
    void fail_pool(std::exception_ptr error);
    void fail_everything(const std::exception_ptr& error);
    std::size_t window() const noexcept;
    void end_threads();

    segment segment_;
    std::shared_ptr<const std::vector<char>> initializer_frame_;
    std::uint64_t max_tasks_ = 0;

    // Shared with callers and the supervisor, guarded by mutex_.
    mutable std::mutex mutex_;
    run_state state_ = run_state::running;
    std::exception_ptr failure_;
    std::deque<outgoing_chunk> submitted_;
    std::vector<exit_report> exits_;
    std::map<std::uint64_t, std::weak_ptr<stream_input>> streams_; // open imap inputs
    std::uint64_t next_stream_id_ = 1;
    /// Set (under mutex_) whenever something above changed; the io thread clears it.
    std::atomic<bool> wakeup_{false};

    // The io thread's own.
    std::vector<worker_state> workers_;
    std::deque<outgoing_chunk> pending_;
    std::uint64_t next_task_id_ = 1;
    double mean_chunk_ns_ = 0;
    int start_failures_ = 0;

    std::mutex lifecycle_mutex_; // one terminate() or join() at a time
    supervisor supervisor_;
    std::thread io_thread_;
};

pool_core::impl::impl(const pool_options& options)
    : supervisor_([this](const exit_report& r) {
        {
            std::lock_guard lock(mutex_);
            exits_.push_back(r);
            wakeup_.store(true, std::memory_order_release);
        }
        notify(segment_.header().parent_event);
    }) {
    if (std::getenv(worker_environment_variable) != nullptr)
        throw state_error("procpool: this process was started as a pool worker but reached a "
                          "pool constructor; call procpool::init(argc, argv) first in main()");
    const std::size_t n =
        options.processes.value_or(std::max(1u, std::thread::hardware_concurrency()));
    if (n == 0)
        throw std::invalid_argument("procpool::pool: processes must be at least 1");
    if (n > 4096)
        throw std::invalid_argument("procpool::pool: processes must be at most 4096");
    if (options.maxtasksperchild && *options.maxtasksperchild == 0)
        throw std::invalid_argument("procpool::pool: maxtasksperchild must be at least 1");
    const start_method method = options.context ? options.context->method() : start_method::spawn;
    if (method == start_method::mpi)
        throw error("procpool: start method 'mpi' is not available in this version; use "
                    "\"spawn\" or \"forkserver\"");
    supervisor_.use_forkserver(method == start_method::forkserver);
    processes_ = static_cast<std::uint32_t>(n);
    max_tasks_ = options.maxtasksperchild.value_or(0);
    initializer_frame_ = options.initializer.frame();

    sweep_orphaned_segments();
    segment_ = segment::create(processes_, ring_bytes);
    segment_.header().max_tasks_per_child = max_tasks_;
    segment_.header().has_initializer = initializer_frame_ ? 1 : 0;

    workers_.resize(processes_);
    for (std::uint32_t i = 0; i < processes_; ++i) {
        workers_[i].index = i;
        start_worker(workers_[i]); // on failure, ~supervisor reaps what started
    }
    supervisor_.start();
    io_thread_ = std::thread([this] { io_loop(); });
}

pool_core::impl::~impl() {
    terminate();
}

void pool_core::impl::start_worker(worker_state& w) {
    worker_slot& slot = segment_.slot(w.index);
    // The slot is unused now (its last worker was reaped), so plain resets are enough; the
    // new worker is ordered after them by fork and exec.
    reset_after_crash(slot.inbox);
    reset_after_crash(slot.outbox);
    reset_event(slot.event);
    slot.running_task.store(0, std::memory_order_relaxed);
    slot.stop.store(0, std::memory_order_relaxed);
    slot.state.store(slot_state::spawned, std::memory_order_relaxed);
    const std::uint32_t generation = slot.generation.load(std::memory_order_relaxed) + 1;
    // release: pairs with the worker's acquire when it checks its generation.
    slot.generation.store(generation, std::memory_order_release);

    w.inbox = segment_.inbox_producer(w.index);
    w.outbox = segment_.outbox_consumer(w.index);
    w.writer = frame_writer{};
    w.reader.reset();
    w.current = writing::none;
    w.initializer_unsent = initializer_frame_ != nullptr;
    w.queue.clear();
    w.sent = 0;
    w.assigned = 0;
    w.ready = false;
    w.stop_sent = false;
    w.pid = supervisor_.spawn(w.index,
                              worker_arguments(segment_.name(), w.index, generation, ::getpid()));
    // relaxed: informational (worker_pids); the worker stores the same value.
    slot.pid.store(w.pid, std::memory_order_relaxed);
    w.alive = true;
}

void pool_core::impl::require_accepting(bool from_stream) const {
    if (state_ == run_state::failed)
        std::rethrow_exception(failure_);
    const bool accepting =
        state_ == run_state::running || (from_stream && state_ == run_state::closed);
    if (!accepting)
        throw state_error("procpool: pool not running");
}

void pool_core::impl::submit(std::vector<outgoing_chunk> chunks, bool from_stream) {
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
    notify(segment_.header().parent_event);
}

std::uint64_t pool_core::impl::open_stream(std::weak_ptr<stream_input> stream) {
    std::lock_guard lock(mutex_);
    require_accepting(false);
    const std::uint64_t id = next_stream_id_++;
    streams_.emplace(id, std::move(stream));
    return id;
}

void pool_core::impl::close_stream(std::uint64_t id) noexcept {
    {
        std::lock_guard lock(mutex_);
        if (streams_.erase(id) == 0)
            return;
        wakeup_.store(true, std::memory_order_release);
    }
    notify(segment_.header().parent_event);
}

void pool_core::impl::close() {
    {
        std::lock_guard lock(mutex_);
        if (state_ == run_state::running)
            state_ = run_state::closed;
        wakeup_.store(true, std::memory_order_release);
    }
    notify(segment_.header().parent_event);
}

void pool_core::impl::terminate() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    {
        std::lock_guard lock(mutex_);
        if (state_ == run_state::running || state_ == run_state::closed)
            state_ = run_state::terminating;
        wakeup_.store(true, std::memory_order_release);
    }
    notify(segment_.header().parent_event);
    end_threads();
}

void pool_core::impl::join() {
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

void pool_core::impl::end_threads() {
    if (io_thread_.joinable())
        io_thread_.join();
    supervisor_.shutdown();
    segment_.remove_name();
}

std::vector<int> pool_core::impl::worker_pids() const {
    std::vector<int> pids;
    {
        std::lock_guard lock(mutex_);
        if (state_ == run_state::terminating || state_ == run_state::failed)
            return pids;
    }
    for (std::uint32_t i = 0; i < processes_; ++i) {
        const int pid = segment_.slot(i).pid.load(std::memory_order_relaxed);
        if (pid > 0 && ::kill(pid, 0) == 0)
            pids.push_back(pid);
    }
    return pids;
}

// ---- the io thread ----

void pool_core::impl::io_loop() noexcept {
    bool stopping = false;
    for (;;) {
        bool progress = collect();
        run_state state;
        bool streams_open;
        {
            std::lock_guard lock(mutex_);
            state = state_;
            streams_open = !streams_.empty();
        }
        if (state == run_state::terminating) {
            fail_everything(std::make_exception_ptr(
                state_error("procpool: the pool was terminated before this task finished")));
            supervisor_.kill_all();
            return;
        }
        if (state == run_state::failed) {
            std::exception_ptr failure;
            {
                std::lock_guard lock(mutex_);
                failure = failure_;
            }
            fail_everything(failure);
            supervisor_.kill_all();
            return;
        }
        for (auto& w : workers_)
            progress |= drain(w);
        dispatch();
        for (auto& w : workers_)
            progress |= feed(w);
        if (state == run_state::closed && !streams_open && idle()) {
            if (!stopping) {
                stop_workers();
                stopping = true;
            }
            if (std::none_of(workers_.begin(), workers_.end(),
                             [](const worker_state& w) { return w.alive; }))
                return;
        }
        if (!progress)
            wait_for_work();
    }
}

void pool_core::impl::take_submitted() {
    std::move(submitted_.begin(), submitted_.end(), std::back_inserter(pending_));
    submitted_.clear();
}

bool pool_core::impl::collect() {
    // acquire: pairs with the release stores in submit(), close(), terminate() and on_exit.
    if (!wakeup_.load(std::memory_order_acquire))
        return false;
    std::vector<exit_report> exits;
    {
        std::lock_guard lock(mutex_);
        wakeup_.store(false, std::memory_order_relaxed); // under the mutex: no update is lost
        take_submitted();
        exits.swap(exits_);
    }
    for (const exit_report& r : exits)
        on_exit(r);
    return true;
}

void pool_core::impl::on_exit(const exit_report& report) {
    worker_state& w = workers_.at(report.index);
    if (!w.alive || w.pid != report.pid)
        return;
    drain(w); // every result it published counts
    w.alive = false;
    const worker_slot& slot = segment_.slot(w.index);
    // acquire: the worker is reaped, so its stores are complete; pairs with its releases.
    const std::uint64_t running = slot.running_task.load(std::memory_order_acquire);
    const slot_state last_state = slot.state.load(std::memory_order_acquire);
    const bool clean = WIFEXITED(report.status) && WEXITSTATUS(report.status) == 0 &&
                       last_state == slot_state::exiting;
    const bool was_ready =
        w.ready || last_state == slot_state::ready || last_state == slot_state::exiting;

    std::deque<outgoing_chunk> unstarted;
    for (dispatched& d : w.queue) {
        if (running != 0 && d.id == running) {
            const std::string how = describe_wait_status(report.status);
            std::optional<int> code, signal;
            if (WIFSIGNALED(report.status))
                signal = WTERMSIG(report.status);
            else if (WIFEXITED(report.status))
                code = WEXITSTATUS(report.status);
            chunk_outcome outcome;
            outcome.error = std::make_exception_ptr(
                worker_lost_error("procpool: worker " + std::to_string(report.pid) + " " + how +
                                      " while running a task",
                                  report.pid, code, signal));
            d.chunk.sink->complete_chunk(d.chunk.index, outcome);
        } else {
            unstarted.push_back(std::move(d.chunk));
        }
    }
    w.queue.clear();
    w.sent = 0;
    pending_.insert(pending_.begin(), std::make_move_iterator(unstarted.begin()),
                    std::make_move_iterator(unstarted.end()));

    if (!clean && !was_ready) {
        if (++start_failures_ >= max_start_failures) {
            fail_pool(std::make_exception_ptr(
                error("procpool: workers keep dying before they are ready (the last, " +
                      std::to_string(report.pid) + ", " + describe_wait_status(report.status) +
                      "); giving up. Does main() call procpool::init(argc, argv) first?")));
            return;
        }
    }
    if (w.stop_sent)
        return; // the pool is winding down: no replacement
    try {
        start_worker(w);
    } catch (...) {
        fail_pool(std::current_exception());
    }
}

bool pool_core::impl::drain(worker_state& w) {
    if (!w.alive)
        return false;
    const std::uint64_t before = w.outbox.position();
    bool frames = false;
    while (w.alive && w.reader.pump(w.outbox)) {
        on_frame(w, w.reader.frame());
        w.reader.reset();
        frames = true;
    }
    if (w.outbox.position() == before)
        return frames;
    notify(segment_.slot(w.index).event); // the worker may be waiting for outbox space
    return true;
}

void pool_core::impl::on_frame(worker_state& w, std::span<const std::byte> frame) {
    const auto bytes =
        std::span<const char>(reinterpret_cast<const char*>(frame.data()), frame.size());
    if (bytes.size() < sizeof(result_header)) {
        fail_pool(std::make_exception_ptr(error("procpool: a worker sent a malformed frame")));
        return;
    }
    const auto header = read_pod<result_header>(bytes);
    const auto payload = bytes.subspan(sizeof header);
    if (header.failed && header.error_offset > payload.size()) {
        fail_pool(std::make_exception_ptr(error("procpool: a worker sent a malformed frame")));
        return;
    }
    chunk_outcome outcome;
    outcome.ok_count = header.ok_count;
    outcome.exec_ns = header.exec_ns;
    outcome.results = header.failed ? payload.first(header.error_offset) : payload;
    if (header.failed)
        outcome.error = decode_error_record(payload.subspan(header.error_offset));

    w.ready = true;
    start_failures_ = 0;
    if (header.kind == frame_kind::initializer_done) {
        if (header.failed) {
            std::string what = "unknown error";
            try {
                std::rethrow_exception(outcome.error);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            fail_pool(std::make_exception_ptr(error("procpool: the initializer failed in worker " +
                                                    std::to_string(w.pid) + ": " + what)));
        }
        return;
    }
    if (w.queue.empty() || w.queue.front().id != header.task_id) {
        fail_pool(std::make_exception_ptr(
            error("procpool: a worker returned a result for a task it was not given")));
        return;
    }
    dispatched d = std::move(w.queue.front());
    w.queue.pop_front();
    --w.sent;
    const double ns = static_cast<double>(std::max<std::uint64_t>(header.exec_ns, 100));
    mean_chunk_ns_ = mean_chunk_ns_ == 0 ? ns : 0.9 * mean_chunk_ns_ + 0.1 * ns;
    d.chunk.sink->complete_chunk(d.chunk.index, outcome);
}

std::size_t pool_core::impl::window() const noexcept {
    if (mean_chunk_ns_ == 0)
        return min_window;
    const double chunks = window_target_ns / mean_chunk_ns_;
    return std::clamp(static_cast<std::size_t>(chunks), min_window, max_window);
}

void pool_core::impl::dispatch() {
    const std::size_t limit = window();
    while (!pending_.empty()) {
        worker_state* best = nullptr;
        for (worker_state& w : workers_) {
            if (!w.alive || w.stop_sent || w.queue.size() >= limit)
                continue;
            if (max_tasks_ != 0 && w.assigned >= max_tasks_)
                continue;
            if (best == nullptr || w.queue.size() < best->queue.size())
                best = &w;
        }
        if (best == nullptr)
            return;
        outgoing_chunk chunk = std::move(pending_.front());
        pending_.pop_front();
        const std::uint64_t id = next_task_id_++;
        std::memcpy(chunk.frame.data(), &id, sizeof id);
        best->queue.push_back({id, std::move(chunk)});
        ++best->assigned;
    }
}

bool pool_core::impl::feed(worker_state& w) {
    if (!w.alive)
        return false;
    const std::uint64_t before = w.inbox.position();
    for (;;) {
        if (w.current == writing::none) {
            if (w.initializer_unsent) {
                w.writer.start(std::as_bytes(std::span(*initializer_frame_)));
                w.initializer_unsent = false;
                w.current = writing::initializer;
            } else if (w.sent < w.queue.size()) {
                w.writer.start(std::as_bytes(std::span(w.queue[w.sent].chunk.frame)));
                w.current = writing::task;
            } else {
                break;
            }
        }
        const std::size_t n = w.writer.pump(w.inbox);
        if (!w.writer.busy()) {
            if (w.current == writing::task)
                ++w.sent;
            w.current = writing::none;
            continue;
        }
        if (n == 0)
            break; // the inbox is full
    }
    if (w.inbox.position() == before)
        return false;
    notify(segment_.slot(w.index).event);
    return true;
}

bool pool_core::impl::idle() const noexcept {
    return pending_.empty() && std::all_of(workers_.begin(), workers_.end(),
                                           [](const worker_state& w) { return w.queue.empty(); });
}

void pool_core::impl::stop_workers() {
    for (worker_state& w : workers_) {
        if (!w.alive)
            continue;
        w.stop_sent = true;
        // release: pairs with the worker's acquire in stopping(); every frame before it is
        // already in the inbox.
        segment_.slot(w.index).stop.store(1, std::memory_order_release);
        notify(segment_.slot(w.index).event);
    }
}

void pool_core::impl::wait_for_work() {
    auto ready = [this] {
        if (wakeup_.load(std::memory_order_acquire))
            return true;
        for (worker_state& w : workers_) {
            if (!w.alive)
                continue;
            if (w.outbox.readable() > 0)
                return true;
            const bool has_output =
                w.current != writing::none || w.initializer_unsent || w.sent < w.queue.size();
            if (has_output && w.inbox.writable() > 0)
                return true;
        }
        return false;
    };
    // Spin only while a worker has work: with nothing in flight, the next event is a caller's,
    // and the caller waiting for the last result needs this core more than a spin does.
    const bool in_flight = std::any_of(workers_.begin(), workers_.end(),
                                       [](const worker_state& w) { return !w.queue.empty(); });
    wait_for(segment_.header().parent_event, ready,
             in_flight ? io_spin : std::chrono::microseconds(0));
}

void pool_core::impl::fail_pool(std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    if (state_ == run_state::running || state_ == run_state::closed) {
        state_ = run_state::failed;
        failure_ = std::move(error);
    }
    wakeup_.store(true, std::memory_order_release);
}

void pool_core::impl::fail_everything(const std::exception_ptr& error) {
    {
        std::lock_guard lock(mutex_);
        take_submitted();
    }
    chunk_outcome outcome;
    outcome.error = error;
    for (worker_state& w : workers_) {
        for (dispatched& d : w.queue)
            d.chunk.sink->complete_chunk(d.chunk.index, outcome);
        w.queue.clear();
        w.sent = 0;
    }
    for (outgoing_chunk& c : pending_)
        c.sink->complete_chunk(c.index, outcome);
    pending_.clear();
}

// ---- pool_core: forwards ----

pool_core::pool_core(const pool_options& options)
    : impl_(std::make_unique<impl>(options)) {}
pool_core::~pool_core() = default;
void pool_core::submit(std::vector<outgoing_chunk> chunks, bool from_stream) {
    impl_->submit(std::move(chunks), from_stream);
}
std::uint64_t pool_core::open_stream(std::weak_ptr<stream_input> stream) {
    return impl_->open_stream(std::move(stream));
}
void pool_core::close_stream(std::uint64_t id) noexcept {
    impl_->close_stream(id);
}
void pool_core::close() {
    impl_->close();
}
void pool_core::terminate() {
    impl_->terminate();
}
void pool_core::join() {
    impl_->join();
}
std::size_t pool_core::processes() const noexcept {
    return impl_->processes_;
}
std::vector<int> pool_core::worker_pids() const {
    return impl_->worker_pids();
}

} // namespace procpool::detail
