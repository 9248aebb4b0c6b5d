// Futex calls behind detail/event.hpp. The futex is shared (no FUTEX_PRIVATE_FLAG): the word
// lives in memory mapped by several processes.
#include "event.hpp"

#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace procpool::detail {

namespace {
long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value,
           const timespec* timeout) noexcept {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr,
                     0);
}
} // namespace

void notify(event_word& event) noexcept {
    // seq_cst fence: the publish half of the Dekker pair in event.hpp. The caller's data stores
    // come before it; the sleepers load after it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // relaxed: ordered by the fence above.
    if (event.sleepers.load(std::memory_order_relaxed) == 0)
        return;
    // release: a waiter that sees the new sequence also sees the data published before it.
    event.sequence.fetch_add(1, std::memory_order_release);
    futex(&event.sequence, FUTEX_WAKE, INT_MAX, nullptr);
}

void reset_event(event_word& event) noexcept {
    // relaxed: nobody uses the event now (see event.hpp).
    event.sleepers.store(0, std::memory_order_relaxed);
}

void futex_sleep(event_word& event, std::uint32_t ticket,
                 std::chrono::nanoseconds timeout) noexcept {
    timespec ts{};
    const timespec* limit = nullptr;
    if (timeout.count() > 0) {
        ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
        limit = &ts;
    }
    // EAGAIN (the ticket moved on), EINTR and ETIMEDOUT all mean "look again": the caller loops.
    futex(&event.sequence, FUTEX_WAIT, ticket, limit);
}

} // namespace procpool::detail
