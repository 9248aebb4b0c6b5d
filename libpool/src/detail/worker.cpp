// The worker loop. See detail/worker.hpp.
//
// What a crash here leaves: the parent's supervisor sees the exit through a pidfd, reads every
// complete result frame this worker published, fails the one task named in running_task (if
// any) with worker_lost_error, sends the tasks this worker had not started to other workers,
// resets the rings, and starts a replacement.
#include "executor.hpp"

#include "doorbell.hpp"
#include "launch.hpp"
#include "segment.hpp"
#include "statm.hpp"
#include "worker.hpp"
#include <procpool/detail/wire.hpp>
#include <procpool/errors.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace procpool::detail {

namespace {

constexpr int exit_attach_failed = 3;
constexpr int exit_initializer_failed = 4;
// How long a worker spins before it sleeps on its event (a futex round trip costs far more:
// docs/performance.md, waking a thread). Waiting for the next task it spins long, for latency.
// Waiting inside a frame (for the rest of a task, or for room for the rest of its result) it barely
// spins: the parent is copying that frame, and on a machine with fewer cores than busy threads the
// spin would take the core the parent needs (docs/performance.md: spinning inside a frame).
constexpr auto worker_spin = std::chrono::microseconds(50);
constexpr auto worker_stream_spin = std::chrono::microseconds(5);

/// This process's resident memory in bytes (/proc/self/statm), or 0 when it cannot be read.
/// A few microseconds: asked after each task only when max_memory_per_child is set.
std::uint64_t resident_bytes() noexcept {
    static const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    return resident_bytes_from(fd);
}

[[noreturn]] void leave(int status) {
    std::fflush(nullptr);
    // _exit, not exit: a worker must not run the program's static destructors (its main()
    // never ran past init) nor flush stdio twice.
    ::_exit(status);
}

/// Watches the parent; when it dies, removes the segment's name and ends this process, so
/// neither the worker nor the shared memory outlives a killed parent.
void start_watchdog(pid_t parent, std::string name) {
    std::thread([parent, name = std::move(name)] {
        const int fd = static_cast<int>(::syscall(SYS_pidfd_open, parent, 0));
        if (fd >= 0 && ::getppid() == parent) {
            pollfd p{fd, POLLIN, 0};
            while (::poll(&p, 1, -1) < 0) {
            }
        } else {
            // No pidfd (old kernel): poll the parent's pid instead.
            while (::getppid() == parent)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        remove_segment_name(name.c_str());
        ::_exit(1);
    }).detach();
}

class worker {
public:
    worker(segment seg, unsigned index)
        : seg_(std::move(seg))
        , slot_(seg_.slot(index))
        , inbox_(seg_.inbox_consumer(index))
        , outbox_(seg_.outbox_producer(index))
        , max_tasks_(seg_.header().max_tasks_per_child)
        , max_rss_(seg_.header().max_rss_per_child) {}

    [[noreturn]] void run() {
        if (seg_.header().has_initializer == 0)
            slot_.state.store(slot_state::ready, std::memory_order_release);
        for (;;) {
            if (!read_frame()) {
                slot_.state.store(slot_state::exiting, std::memory_order_release);
                leave(0);
            }
            handle(reader_.frame());
            reader_.reset();
            // After a task, not the initializer: a worker whose initializer alone is too big
            // would otherwise be replaced without end.
            const bool too_big = max_rss_ != 0 && tasks_done_ != 0 && resident_bytes() > max_rss_;
            if ((max_tasks_ != 0 && tasks_done_ >= max_tasks_) || too_big) {
                slot_.state.store(slot_state::exiting, std::memory_order_release);
                leave(0);
            }
        }
    }

private:
    /// Reads one whole frame; false when the parent asked us to stop and nothing is left.
    bool read_frame() {
        for (;;) {
            const std::uint64_t before = inbox_.position();
            const bool done = reader_.pump(inbox_);
            // The parent wants to know of the space only while it has more to write.
            if (inbox_.position() != before && set_after_publish(slot_.space_wanted))
                ring_parent();
            if (done)
                return true;
            if (!reader_.partial() && stopping())
                return false;
            wait_for(
                slot_.event,
                [&] { return inbox_.readable() > 0 || (!reader_.partial() && stopping()); },
                reader_.partial() ? worker_stream_spin : worker_spin);
        }
    }

    /// One of the parent's flags (space_wanted, parent_polling), read after a publish: the
    /// seq_cst fence pairs with the parent's, between its store of the flag and its look at the
    /// ring (segment.hpp).
    static bool set_after_publish(const std::atomic<std::uint32_t>& flag) noexcept {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        // relaxed: ordered by the fence above.
        return flag.load(std::memory_order_relaxed) != 0;
    }

    void ring_parent() noexcept {
        ring_doorbell(doorbell_descriptor, seg_.header().parent_sleepers);
    }

    bool stopping() noexcept {
        // acquire: pairs with the parent's release store of stop after its last frame.
        return slot_.stop.load(std::memory_order_acquire) != 0 && inbox_.readable() == 0;
    }

    /// True when the parent cancelled this task frame before it started (segment.hpp: skip):
    /// then it answers with a `skipped` frame instead of running it.
    bool skipped(std::span<const std::byte> frame) {
        if (frame.size() < sizeof(task_header))
            return false; // the executor reports it
        task_header task;
        std::memcpy(&task, frame.data(), sizeof task);
        if (task.kind != frame_kind::task)
            return false;
        const std::uint64_t seq = task_frames_++;
        // Its start, before its id: running() reads the id, then the stamp (segment.hpp).
        stamp_start();
        // seq_cst store, then fence: this side of the Dekker pair in segment.hpp.
        slot_.running_task.store(task.task_id | running_tentative, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        const std::uint64_t word =
            slot_.skip[(seq % skip_bits) / 64].load(std::memory_order_relaxed);
        if ((word >> (seq % 64) & 1) == 0)
            return false;
        result_header answer;
        answer.task_id = task.task_id;
        answer.kind = frame_kind::skipped;
        output_.resize(sizeof answer);
        std::memcpy(output_.data(), &answer, sizeof answer);
        bulk_ = {};
        return true;
    }

    /// When the task about to be marked in running_task began (task timeouts).
    void stamp_start() noexcept {
        const auto now = std::chrono::steady_clock::now().time_since_epoch();
        slot_.task_started_ns.store(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
            std::memory_order_relaxed);
    }

    void handle(std::span<const std::byte> frame) {
        if (skipped(frame)) {
            write_frame();
            slot_.running_task.store(0, std::memory_order_release);
            ++tasks_done_; // as the parent counts it (maxtasksperchild)
            return;
        }
        const result_header result =
            executor_.run(frame, output_, bulk_, [&](std::uint64_t task_id) {
                // release: the parent reads running_task after reaping us (see the file
                // comment).
                // Stamped already (skipped()); now confirmed: it runs.
                slot_.running_task.store(task_id, std::memory_order_release);
            });
        write_frame();
        bulk_ = {}; // the last result, sent: let it go
        // release: as above; the result is published, so this task is no longer at risk.
        slot_.running_task.store(0, std::memory_order_release);

        if (result.kind == frame_kind::initializer_done) {
            if (result.failed)
                leave(exit_initializer_failed);
            slot_.state.store(slot_state::ready, std::memory_order_release);
        } else {
            ++tasks_done_;
        }
    }

    void write_frame() {
        writer_.start(std::as_bytes(std::span(output_)), std::as_bytes(bulk_.bytes), bulk_.apart);
        for (;;) {
            // While a thread of the parent spins on the outboxes, nobody needs waking.
            if (writer_.pump(outbox_) > 0 && !set_after_publish(seg_.header().parent_polling))
                ring_parent();
            if (!writer_.busy())
                return;
            if (outbox_.unbacked()) // run_worker reports it and leaves
                throw error("/dev/shm is full: no room for the " +
                            std::to_string(outbox_.capacity()) + "-byte ring of results");
            wait_for(
                slot_.event, [&] { return outbox_.writable() > 0; }, worker_stream_spin);
        }
    }

    segment seg_;
    worker_slot& slot_;
    ring_consumer inbox_;
    ring_producer outbox_;
    frame_reader reader_;
    frame_writer writer_;
    std::vector<char> output_;
    frame_bulk bulk_; // the result frame is output_, then bulk_.bytes
    std::uint64_t max_tasks_;
    std::uint64_t max_rss_; // max_memory_per_child, 0: none
    std::uint64_t tasks_done_ = 0;
    std::uint64_t task_frames_ = 0; // task frames read, skipped ones too (segment.hpp: skip)
    frame_executor executor_;
};

[[noreturn]] void refuse(const std::string& why) {
    std::fprintf(stderr, "procpool worker %d: %s\n", static_cast<int>(::getpid()), why.c_str());
    leave(exit_attach_failed);
}

} // namespace

std::vector<std::string> worker_arguments(const std::string& segment_name, unsigned index,
                                          unsigned generation, int parent_pid) {
    return {worker_flag, segment_name, std::to_string(index), std::to_string(generation),
            std::to_string(parent_pid)};
}

void run_worker(int argc, char** argv) {
    if (argc != 6)
        refuse("bad worker arguments");
    const std::string name = argv[2];
    const unsigned index = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
    const unsigned generation = static_cast<unsigned>(std::strtoul(argv[4], nullptr, 10));
    const pid_t parent = static_cast<pid_t>(std::strtol(argv[5], nullptr, 10));
    // This process is a worker, and knows it: programs it starts are not.
    ::unsetenv(worker_environment_variable);
    if (::getppid() != parent)
        refuse("the pool's process is gone");
    // The pool's doorbell (doorbell.hpp), passed by the launcher or the forkserver.
    if (::fcntl(doorbell_descriptor, F_GETFD) < 0)
        refuse("no doorbell: descriptor " + std::to_string(doorbell_descriptor) + " is not open");
    start_watchdog(parent, name);
    try {
        // Only the header (read-only) and this worker's own block: segment.hpp.
        segment seg = segment::attach(name, index);
        worker_slot& slot = seg.slot(index);
        // acquire: pairs with the parent's release store of the generation before the spawn.
        if (slot.generation.load(std::memory_order_acquire) != generation)
            refuse("the slot belongs to another worker generation");
        slot.pid.store(static_cast<std::int32_t>(::getpid()), std::memory_order_relaxed);
        slot.state.store(slot_state::attached, std::memory_order_release);
        worker(std::move(seg), index).run();
    } catch (const std::exception& e) {
        refuse(e.what());
    }
}

} // namespace procpool::detail
