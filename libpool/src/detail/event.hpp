// Sleeping and waking across processes: an event count on a futex word in shared memory.
//
// A waiter takes a ticket (prepare), announces itself (the sleepers count), checks its
// condition once more, and sleeps on the word only if the ticket is still current. A notifier
// publishes its data first, then wakes only when someone announced itself, so the common case
// (the other side is busy or spinning) costs a fence and a load, never a syscall.
//
// Why no lost wake-up: waiter "sleepers += 1; fence; check data" against notifier "publish
// data; fence; check sleepers" is Dekker's pattern: with both fences seq_cst, at least one side
// sees the other's store. Either the waiter sees the data and does not sleep, or the notifier
// sees the sleeper and bumps the word, so the waiter's futex_wait on its old ticket returns.
//
// What a crash leaves: a waiter killed while asleep leaves `sleepers` one too high, which only
// costs the other side some needless wake calls; the parent resets a dead worker's event with
// its rings.
#pragma once

#include <procpool/export.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace procpool::detail {

struct event_word {
    std::atomic<std::uint32_t> sequence{0}; ///< the futex word
    std::atomic<std::uint32_t> sleepers{0}; ///< waiters between announce() and the end of wait()
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && sizeof(event_word) == 8,
              "event_word is a futex shared between processes: it must be two plain 32-bit words");

/// Wakes every process sleeping on `event`. Call after publishing the data. Lock-free; a
/// syscall only when someone sleeps.
PROCPOOL_API void notify(event_word& event) noexcept;

/// Resets an event nobody uses (see the file comment).
void reset_event(event_word& event) noexcept;

/// Waits until `ready()` is true: spins for `spin`, then sleeps on the futex. `timeout` of
/// zero means no limit. Returns ready()'s last value (false only when the time ran out).
/// `ready` must be cheap and must not throw.
template <class Ready>
bool wait_for(event_word& event, Ready&& ready, std::chrono::nanoseconds spin,
              std::chrono::nanoseconds timeout = {});

/// One sleep on the futex if `ticket` is still current; ends early on a wake or a signal.
/// `timeout` zero: no limit.
PROCPOOL_API void futex_sleep(event_word& event, std::uint32_t ticket,
                              std::chrono::nanoseconds timeout) noexcept;

/// A hint to the CPU that we are spinning.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// Spins until `ready()` is true or `spin` has passed: checks only, no stores to shared lines.
/// Returns ready()'s last value.
template <class Ready>
bool spin_until(Ready& ready, std::chrono::nanoseconds spin) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (unsigned i = 0;; ++i) {
        if (ready())
            return true;
        if ((i & 63) == 63 && clock::now() - start >= spin)
            return false;
        cpu_relax();
    }
}

template <class Ready>
bool wait_for(event_word& event, Ready&& ready, std::chrono::nanoseconds spin,
              std::chrono::nanoseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    if (spin_until(ready, spin))
        return true;
    for (;;) {
        // acquire: a notifier's bump is ordered after its data, so a new ticket means new data.
        const std::uint32_t ticket = event.sequence.load(std::memory_order_acquire);
        // seq_cst: the announce half of the Dekker pair in the file comment.
        event.sleepers.fetch_add(1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (ready()) {
            // relaxed: only a count, no data hangs on it.
            event.sleepers.fetch_sub(1, std::memory_order_relaxed);
            return true;
        }
        std::chrono::nanoseconds left{};
        if (timeout.count() != 0) {
            left = timeout -
                   std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start);
            if (left.count() <= 0) {
                event.sleepers.fetch_sub(1, std::memory_order_relaxed);
                return ready();
            }
        }
        futex_sleep(event, ticket, left);
        event.sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
}

} // namespace procpool::detail
