// The io role: who may touch the io thread's state (the scheduler's workers and queue) and make
// the transport's io calls. The io thread holds it while it works; a caller waiting for its own
// task may hold it instead and move its frames itself (engine: drive), so that a round trip
// costs no context switch (docs/performance.md: latency).
//
// States, and who moves between them (one atomic int; every transition is one CAS or store):
//
//   from        to          by                        how
//   free        io_thread   the io thread             try_take_for_io: CAS, acquire
//   io_thread   free        the io thread             release_for_io: store, release
//   free        io_look     the io thread, waiting    try_look: CAS, acquire (a moment, to
//                                                     see whether work is ready)
//   io_look     free        the io thread             release_for_io
//   free        caller      a caller                  take_for_caller: CAS, acquire (spins a
//                                                     little while io_look is held)
//   caller      free        that caller               release_for_caller: store, seq_cst
//
// SYNC POINT TAKE (acquire CAS in try_take_for_io, try_look, take_for_caller) pairs with
// SYNC POINT RELEASE (release_for_io, release_for_caller): the last holder's changes to the io
// state happen before the next holder's.
//
// The hand-back (a Dekker pair, both sides seq_cst): the io thread that finds a caller holding
// the role sets `rejected` and then sleeps until the role is free; a caller that lets the role
// go stores free and then reads `rejected`. Either the caller sees `rejected` and wakes the io
// thread, or the io thread's wait condition sees the role free: no wake-up is lost.
//
// What a crash does: nothing here is shared with workers; the role lives in the parent only.
#pragma once

#include <atomic>

namespace procpool::detail {

class io_role {
public:
    enum holder : int { free = 0, io_thread, io_look, caller };

    /// `callers_may_drive`: the transport allows callers to make the io calls; without it,
    /// take_for_caller() always fails.
    explicit io_role(bool callers_may_drive) noexcept
        : drivable_(callers_may_drive) {}

    /// The io thread takes the role for work. When a caller holds it, marks the io thread as
    /// rejected (the caller wakes it on release) and returns false: the io thread then sleeps
    /// until is_free() and tries again.
    bool try_take_for_io() noexcept;
    /// The io thread takes the role for a moment, to look for work while it waits. False when
    /// anyone holds it.
    bool try_look() noexcept;
    /// The io thread lets go of the role (after try_take_for_io or try_look).
    void release_for_io() noexcept;

    /// A caller takes the role, spinning (and yielding) a little while the io thread only
    /// looks; false when the io thread works, another caller drives, or callers may not drive.
    bool take_for_caller() noexcept;
    /// The caller lets go. Returns true when the io thread must be woken: it came for the role
    /// meanwhile, or `leftovers` (work the io thread may not know of).
    bool release_for_caller(bool leftovers) noexcept;

    /// For the io thread's wait condition after try_take_for_io failed.
    bool is_free() const noexcept { return role_.load(std::memory_order_seq_cst) == free; }
    holder state() const noexcept { return holder(role_.load(std::memory_order_relaxed)); }
    bool rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }

private:
    std::atomic<int> role_{free};
    /// The io thread found a caller holding the role and sleeps until it is free. Written by
    /// the io thread only.
    std::atomic<bool> rejected_{false};
    const bool drivable_;
};

} // namespace procpool::detail
