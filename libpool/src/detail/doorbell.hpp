// The parent's doorbell: how a worker (or a thread of the parent) wakes the parent's io thread.
//
// An eventfd, which every worker of the pool holds as descriptor doorbell_descriptor, watched
// by an epoll set, edge-triggered, in the parent. Who sleeps says so in a flag of the segment
// header (parent_sleepers), which only the parent writes and workers map read-only.
//
// Why not a futex in shared memory, as before: whatever word the parent sleeps on, a waker must
// be able to change it (that is how a futex loses no wake-up), so every worker could write it,
// and a buggy task that wrote the parent's ticket back over it would lose another worker's
// wake-up: the parent would sleep with a result waiting. An eventfd's count lives in the kernel:
// no memory a worker can write decides whether the parent wakes. The cost is the same: one
// syscall to wake, none while the parent is busy (docs/performance.md: least privilege).
//
// Why no lost wake-up: the waiter's "sleepers = 1; fence; check data; epoll_wait" against the
// ringer's "publish data; fence; check sleepers; write" is Dekker's pattern, as in event.hpp:
// either the waiter sees the data, or the ringer sees the flag and writes the eventfd. With
// EPOLLET every write is an edge that stays queued in the epoll set until the next epoll_wait
// takes it, so a write that comes before the waiter is in epoll_wait still ends its sleep. A
// stale edge only makes one later wait return early, and the caller looks again.
//
// What a crash leaves: nothing. A worker killed at any point has at most written the eventfd
// (an early wake); the count is never read, so it cannot be left wrong.
#pragma once

#include "event.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace procpool::detail {

/// The descriptor number a worker holds its pool's doorbell at.
inline constexpr int doorbell_descriptor = 3;

/// Rings the doorbell at `fd` if `sleepers` says the parent sleeps, or is about to. Call after
/// publishing the data. Lock-free, async-signal-safe; a syscall only when someone sleeps.
void ring_doorbell(int fd, const std::atomic<std::uint32_t>& sleepers) noexcept;

/// The parent's side: the eventfd and its epoll set. Not copyable. wait() is for one thread at
/// a time (the engine's io role); ring_doorbell(fd(), ...) for any thread or worker.
class doorbell {
public:
    /// Throws procpool::error naming the call (eventfd, epoll_create1, epoll_ctl) that failed.
    doorbell();
    ~doorbell();
    doorbell(const doorbell&) = delete;
    doorbell& operator=(const doorbell&) = delete;

    /// The eventfd, for a worker to inherit (close-on-exec: the launcher passes it on purpose).
    int fd() const noexcept { return event_fd_; }

    /// Waits until `ready()` is true or `deadline` passes: spins for `spin`, then sleeps until
    /// the doorbell rings. `sleepers` is the flag ringers read (the segment header's
    /// parent_sleepers). `ready` must be cheap and must not throw.
    template <class Ready>
    void wait(std::atomic<std::uint32_t>& sleepers, Ready&& ready, std::chrono::nanoseconds spin,
              std::chrono::steady_clock::time_point deadline =
                  std::chrono::steady_clock::time_point::max());

private:
    /// One epoll_wait; ends on a ring, a stale edge, a signal or `deadline`.
    void sleep(std::chrono::steady_clock::time_point deadline) noexcept;

    int event_fd_ = -1;
    int epoll_fd_ = -1;
};

template <class Ready>
void doorbell::wait(std::atomic<std::uint32_t>& sleepers, Ready&& ready,
                    std::chrono::nanoseconds spin, std::chrono::steady_clock::time_point deadline) {
    if (spin_until(ready, spin))
        return;
    // seq_cst store, then fence: the announce half of the Dekker pair in the file comment; a
    // ringer's fence and load of sleepers pair with it. Only this thread writes the flag, and
    // it stays set across sleeps, so every ringer after this point writes the eventfd.
    sleepers.store(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    while (!ready()) {
        if (deadline != std::chrono::steady_clock::time_point::max() &&
            std::chrono::steady_clock::now() >= deadline)
            break;
        sleep(deadline);
    }
    // relaxed: only a hint to ringers; a stale 1 costs one needless write.
    sleepers.store(0, std::memory_order_relaxed);
}

} // namespace procpool::detail
