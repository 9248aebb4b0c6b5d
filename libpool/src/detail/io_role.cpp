// See io_role.hpp.
#include "io_role.hpp"

#include "event.hpp"

#include <thread>

namespace procpool::detail {

bool io_role::try_take_for_io() noexcept {
    int expected = free;
    // SYNC POINT TAKE: acquire, the last holder's changes happen before this thread's.
    if (role_.compare_exchange_strong(expected, io_thread, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        rejected_.store(false, std::memory_order_relaxed);
        return true;
    }
    // A caller holds it. seq_cst: the Dekker pair with release_for_caller (it sees rejected_,
    // or this thread's wait condition, is_free(), sees the role free).
    rejected_.store(true, std::memory_order_seq_cst);
    return false;
}

bool io_role::try_look() noexcept {
    int expected = free;
    // SYNC POINT TAKE: acquire, as in try_take_for_io.
    return role_.compare_exchange_strong(expected, io_look, std::memory_order_acquire,
                                         std::memory_order_relaxed);
}

void io_role::release_for_io() noexcept {
    // SYNC POINT RELEASE: this thread's changes to the io state happen before the next holder's.
    role_.store(free, std::memory_order_release);
}

bool io_role::take_for_caller() noexcept {
    if (!drivable_)
        return false;
    // The io thread holds it only a moment when it looks (io_look), unless it lost its core
    // meanwhile: then yield it back. When it works, or another caller drives, give up.
    for (int i = 0; i < 256; ++i) {
        int expected = free;
        // SYNC POINT TAKE: acquire, as in try_take_for_io.
        if (role_.compare_exchange_weak(expected, caller, std::memory_order_acquire,
                                        std::memory_order_relaxed))
            return true;
        if (expected != free && expected != io_look)
            return false;
        if (i < 64)
            cpu_relax();
        else
            std::this_thread::yield();
    }
    return false;
}

bool io_role::release_for_caller(bool leftovers) noexcept {
    // SYNC POINT RELEASE, and seq_cst for the Dekker pair with try_take_for_io.
    role_.store(free, std::memory_order_seq_cst);
    return leftovers || rejected_.load(std::memory_order_seq_cst);
}

} // namespace procpool::detail
