// The shared-memory transport: workers are child processes ("spawn" or "forkserver"), frames
// cross a pair of ring buffers per worker in one segment. See transport.hpp.
//
// Threads: the io thread makes every call but wake() (or a caller holding the engine's io role,
// one thread at a time: callers_may_drive); the supervisor sleeps in poll() on a pidfd per
// worker, reaps each worker that exits and reports it through on_exit.
//
// Neither side ever blocks on one ring: frames larger than the free space are written and read
// in fragments (frame_writer, frame_reader), so a worker busy writing a large result cannot
// stall the others.
#include "transport.hpp"

#include "doorbell.hpp"
#include "event.hpp"
#include "launch.hpp"
#include "segment.hpp"
#include "statm.hpp"
#include "throw_error.hpp"
#include "worker.hpp"
#include <procpool/errors.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <sched.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

namespace procpool::detail {

namespace {

constexpr std::uint64_t ring_bytes = std::uint64_t{1} << 20;
/// How long the io thread spins before it sleeps: long while it waits for results, barely while a
/// frame is half sent or half received (see worker_stream_spin in worker.cpp).
constexpr auto io_spin = std::chrono::microseconds(50);
constexpr auto io_stream_spin = std::chrono::microseconds(5);
/// With nothing in flight, how long the io thread looks for a caller's next task before it
/// sleeps, yielding the core between looks; see shm_transport::wait.
constexpr auto io_idle_spin = std::chrono::microseconds(5);

/// Owns the worker processes: starts them, watches them, reaps them.
class supervisor {
public:
    explicit supervisor(std::function<void(const worker_exit&)> on_exit)
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

    /// Starts worker `index`, handing it `doorbell_fd`, and watches it. Thread-safe. Throws
    /// procpool::error.
    int spawn(std::uint32_t index, const std::vector<std::string>& args, int doorbell_fd) {
        child_process child =
            forkserver_ ? fork_worker(args, doorbell_fd) : launch_worker(args, doorbell_fd);
        const int pid = child.pid();
        if (child.pidfd() < 0) {
            const int err = child.pidfd_error();
            child.kill();
            child.wait();
            std::string why =
                std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
            if (err == ENOSYS)
                why += "; ProcPool needs Linux 5.3 or later";
            else if (err == EMFILE || err == ENFILE)
                why += "; each worker takes a few descriptors: raise the limit (ulimit -n)";
            throw error("procpool: pidfd_open for worker " + std::to_string(pid) +
                        " failed: " + why);
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

    /// `signal` to worker `pid`, if it is one of ours and still running. Thread-safe.
    void kill(int pid, int signal = SIGKILL) noexcept {
        std::lock_guard lock(mutex_);
        if (auto it = children_.find(pid); it != children_.end())
            it->second.child.send(signal);
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

    std::function<void(const worker_exit&)> on_exit_;
    bool forkserver_ = false;
    int wake_fd_ = -1;
    std::atomic<bool> quit_{false};
    std::mutex mutex_;
    std::map<int, entry> children_; // by pid
    std::thread thread_;
};

class shm_transport final : public transport {
public:
    explicit shm_transport(transport_options options)
        : supervisor_([this, on_exit = std::move(options.on_exit)](const worker_exit& e) {
            on_exit(e);
            wake();
        }) {
        const std::size_t n =
            options.processes.value_or(std::max(1u, std::thread::hardware_concurrency()));
        if (n > 4096)
            throw std::invalid_argument("procpool::pool: processes must be at most 4096");
        supervisor_.use_forkserver(options.method == start_method::forkserver);
        sweep_orphaned_segments();
        segment_ = segment::create(static_cast<std::uint32_t>(n), ring_bytes);
        segment_.header().max_tasks_per_child = options.max_tasks;
        segment_.header().max_rss_per_child = options.max_rss;
        segment_.header().has_initializer = options.initializer_frame ? 1 : 0;
        workers_.resize(n);
        pids_ = std::make_unique<std::atomic<int>[]>(n);
        supervisor_.start();
    }

    ~shm_transport() override { shutdown(); }

    std::uint32_t size() const noexcept override {
        return static_cast<std::uint32_t>(workers_.size());
    }

    int start(std::uint32_t index) override {
        worker& w = workers_[index];
        worker_slot& slot = segment_.slot(index);
        // The slot is unused now (its last worker was reaped), so plain resets are enough; the
        // new worker is ordered after them by fork and exec.
        reset_after_crash(slot.inbox);
        reset_after_crash(slot.outbox);
        reset_event(slot.event);
        slot.running_task.store(0, std::memory_order_relaxed);
        slot.task_started_ns.store(0, std::memory_order_relaxed);
        for (auto& word : slot.skip)
            word.store(0, std::memory_order_relaxed);
        slot.stop.store(0, std::memory_order_relaxed);
        slot.space_wanted.store(0, std::memory_order_relaxed);
        slot.state.store(slot_state::spawned, std::memory_order_relaxed);
        const std::uint32_t generation = slot.generation.load(std::memory_order_relaxed) + 1;
        // release: pairs with the worker's acquire when it checks its generation.
        slot.generation.store(generation, std::memory_order_release);

        w.inbox = segment_.inbox_producer(index);
        w.outbox = segment_.outbox_consumer(index);
        w.writer = frame_writer{};
        w.space_wanted = false;
        w.reader.reset();
        w.reader.limit(physical_memory_); // a longer frame could not be taken anyway
        w.pid = 0;
        pids_[index].store(0, std::memory_order_relaxed);
        const int pid = supervisor_.spawn(
            index, worker_arguments(segment_.name(), index, generation, ::getpid()),
            doorbell_.fd());
        w.pid = pid; // ours: the slot's copy is the worker's to write, so never trusted
        // relaxed: only for pids(), which needs no order with anything else.
        pids_[index].store(pid, std::memory_order_relaxed);
        return pid;
    }

    bool receive(std::uint32_t index, frame_handler on_frame) override {
        worker& w = workers_[index];
        // The worker's side of its rings is memory its tasks can write (ring.hpp: untrusted
        // counters); the scheduler condemns it for this.
        if (w.outbox.overrun() || w.inbox.overrun())
            throw std::length_error(std::string("its ") +
                                    (w.outbox.overrun() ? "outbox" : "inbox") +
                                    "'s counters claim more bytes than the ring holds");
        const std::uint64_t before = w.outbox.position();
        bool frames = false;
        while (w.reader.pump(w.outbox, bulk_buffers_)) {
            std::vector<char>& bulk = w.reader.bulk();
            on_frame(w.reader.frame(), &w.reader.storage(), bulk.empty() ? nullptr : &bulk);
            w.reader.reset();
            frames = true;
        }
        if (w.outbox.position() == before)
            return frames;
        notify(segment_.slot(index).event); // the worker may be waiting for outbox space
        return true;
    }

    bool send(std::uint32_t index, frame_source next) override {
        worker& w = workers_[index];
        const std::uint64_t before = w.inbox.position();
        for (;;) {
            if (!w.writer.busy()) {
                const std::span<const std::byte> frame = next();
                if (frame.empty())
                    break;
                w.writer.start(frame);
            }
            const std::size_t n = w.writer.pump(w.inbox);
            if (w.inbox.unbacked())
                throw error("procpool: /dev/shm is full: no room for the " +
                            std::to_string(w.inbox.capacity()) + "-byte ring to worker " +
                            std::to_string(index) + "; free shared memory or use fewer processes");
            if (w.writer.busy() && n == 0)
                break; // the inbox is full
        }
        if (w.writer.busy() != w.space_wanted) {
            // The worker rings the doorbell as it frees space only while we want it. seq_cst:
            // the store half of the Dekker pair in segment.hpp (the look at the space comes in
            // wait(), after its own fence, or in the next send()).
            w.space_wanted = w.writer.busy();
            segment_.slot(index).space_wanted.store(w.space_wanted ? 1 : 0,
                                                    std::memory_order_seq_cst);
        }
        if (w.inbox.position() == before)
            return false;
        notify(segment_.slot(index).event);
        return true;
    }

    void take_bulk_buffers_from(bulk_source* bulk_buffers) noexcept override {
        bulk_buffers_ = bulk_buffers;
    }

    bool has_input(std::uint32_t index) override {
        worker& w = workers_[index];
        // An overrun is input too: receive() reports it.
        return w.outbox.readable() > 0 || w.outbox.overrun() || w.inbox.overrun();
    }
    bool can_send(std::uint32_t index) override { return workers_[index].inbox.writable() > 0; }
    bool sending(std::uint32_t index) const noexcept override {
        return workers_[index].writer.busy();
    }

    bool stop(std::uint32_t index) override {
        // release: pairs with the worker's acquire in stopping(); every frame before it is
        // already in the inbox.
        segment_.slot(index).stop.store(1, std::memory_order_release);
        notify(segment_.slot(index).event);
        return false;
    }

    last_words ended(std::uint32_t index) override {
        close_statm(workers_[index]);
        const worker_slot& slot = segment_.slot(index);
        // acquire: the worker is reaped, so its stores are complete; pairs with its releases.
        const slot_state state = slot.state.load(std::memory_order_acquire);
        last_words words;
        const std::uint64_t running = slot.running_task.load(std::memory_order_acquire);
        // A tentative task was not started: it may run again elsewhere.
        words.running_task = (running & running_tentative) != 0 ? 0 : running;
        words.was_ready = state == slot_state::ready || state == slot_state::exiting;
        words.left_cleanly = state == slot_state::exiting;
        return words;
    }

    void wait(function_ref<bool()> ready, wait_hint hint) override {
        // Spin while a worker has work. Inside a frame, the worker is busy copying its part of
        // it, so spin only a little.
        //
        // With nothing in flight, the next event is a caller's, most often the next task of a
        // caller that has just got its result: look for it a few microseconds, with
        // sched_yield between looks, not pause. If the caller shares this core, it runs at once
        // (a busy spin would hold the core it needs); if this thread is alone on its core, the
        // core stays awake. Waking a thread on an idle virtual core is costly, and without this
        // look some pools sent every task through such a wake-up (docs/performance.md: waking
        // a thread).
        if (!hint.in_flight) {
            const auto start = std::chrono::steady_clock::now();
            do {
                if (ready())
                    return;
                ::sched_yield();
            } while (std::chrono::steady_clock::now() - start < io_idle_spin);
            doorbell_.wait(segment_.header().parent_sleepers, ready, std::chrono::microseconds(0),
                           hint.deadline);
            return;
        }
        doorbell_.wait(segment_.header().parent_sleepers, ready,
                       hint.mid_frame ? io_stream_spin : io_spin, hint.deadline);
    }

    bool mid_frame() const noexcept override {
        return std::any_of(workers_.begin(), workers_.end(),
                           [](const worker& w) { return w.reader.partial() || w.writer.busy(); });
    }

    bool callers_may_drive() const noexcept override { return true; }

    void set_polling(bool on) noexcept override {
        // seq_cst store and fence: the parent's half of the Dekker pair in segment.hpp; the
        // caller's next look at the outboxes (has_input, receive) comes after them.
        segment_.header().parent_polling.store(on ? 1 : 0, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }

    void wake() noexcept override {
        ring_doorbell(doorbell_.fd(), segment_.header().parent_sleepers);
    }

    bool kill(std::uint32_t index) noexcept override {
        if (workers_[index].pid > 0)
            supervisor_.kill(workers_[index].pid);
        return true;
    }

    bool kills_one_worker() const noexcept override { return true; }

    std::size_t resident_bytes(std::uint32_t index) const noexcept override {
        // Our child, not yet reaped while we ask: its pid cannot name another process. Its
        // statm stays open between looks (a pread is far cheaper than an open and a close).
        worker& w = workers_[index];
        if (w.pid <= 0)
            return 0;
        if (w.statm_pid != w.pid) {
            close_statm(w);
            char path[64];
            std::snprintf(path, sizeof path, "/proc/%d/statm", w.pid);
            w.statm_fd = ::open(path, O_RDONLY | O_CLOEXEC);
            w.statm_pid = w.pid;
        }
        return resident_bytes_from(w.statm_fd);
    }

    bool skip(std::uint32_t index, std::uint64_t seq) noexcept override {
        std::atomic<std::uint64_t>& word = segment_.slot(index).skip[(seq % skip_bits) / 64];
        // seq_cst, then fence: the parent's side of the Dekker pair in segment.hpp; the
        // caller's running() comes after it.
        word.fetch_or(std::uint64_t{1} << (seq % 64), std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return true;
    }

    void unskip(std::uint32_t index, std::uint64_t seq) noexcept override {
        std::atomic<std::uint64_t>& word = segment_.slot(index).skip[(seq % skip_bits) / 64];
        word.fetch_and(~(std::uint64_t{1} << (seq % 64)), std::memory_order_relaxed);
    }

    bool terminate(std::uint32_t index) noexcept override {
        if (workers_[index].pid > 0)
            supervisor_.kill(workers_[index].pid, SIGTERM);
        return true;
    }

    task_start running(std::uint32_t index) const noexcept override {
        const worker_slot& slot = segment_.slot(index);
        task_start start;
        // acquire: pairs with the worker's release store of running_task, made after it wrote
        // task_started_ns; a stamp read here is that task's or a later one's, never older.
        const std::uint64_t running = slot.running_task.load(std::memory_order_acquire);
        start.task = running & ~running_tentative;
        start.confirmed = (running & running_tentative) == 0;
        const std::int64_t ns = slot.task_started_ns.load(std::memory_order_relaxed);
        start.since = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
        return start;
    }

    void kill_all() noexcept override { supervisor_.kill_all(); }

    void shutdown() noexcept override {
        for (worker& w : workers_)
            close_statm(w);
        supervisor_.shutdown();
        segment_.remove_name();
    }

    std::vector<int> pids() const override {
        std::vector<int> pids;
        for (std::uint32_t i = 0; i < size(); ++i) {
            // Our own copy, not the slot's: a worker's task may have scribbled over its slot,
            // and a pid read there could name any process.
            const int pid = pids_[i].load(std::memory_order_relaxed);
            if (pid > 0 && ::kill(pid, 0) == 0)
                pids.push_back(pid);
        }
        return pids;
    }

private:
    struct worker {
        ring_producer inbox;
        ring_consumer outbox;
        frame_writer writer;
        frame_reader reader;
        bool space_wanted = false; // what the slot's space_wanted says
        int pid = 0;               // as spawned
        int statm_fd = -1;         // /proc/PID/statm of statm_pid, for resident_bytes()
        int statm_pid = 0;
    };

    static void close_statm(worker& w) noexcept {
        if (w.statm_fd >= 0)
            ::close(w.statm_fd);
        w.statm_fd = -1;
        w.statm_pid = 0;
    }

    doorbell doorbell_; // before the segment and the supervisor: workers hold it
    segment segment_;
    mutable std::vector<worker> workers_;      // mutable: resident_bytes() keeps a descriptor
    std::unique_ptr<std::atomic<int>[]> pids_; // each worker's pid as spawned, for pids()
    /// This machine's memory: the bound on a result frame's announced length.
    const std::uint64_t physical_memory_ =
        std::uint64_t(::sysconf(_SC_PHYS_PAGES)) * std::uint64_t(::sysconf(_SC_PAGESIZE));
    bulk_source* bulk_buffers_ = nullptr; // see take_bulk_buffers_from
    supervisor supervisor_;               // last: its thread and on_exit use the members above
};

} // namespace

std::unique_ptr<transport> make_shm_transport(transport_options options) {
    return std::make_unique<shm_transport>(std::move(options));
}

} // namespace procpool::detail
