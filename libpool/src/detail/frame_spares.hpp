// Large buffers a pool keeps for reuse, so that encoding a task frame or handing a result to a
// waiting caller fills memory already in use instead of fresh pages, which cost a page fault
// per 4 KiB (docs/performance.md: fresh vs warm memory).
//
// And buffers readied for large results: a std::vector<char> result of 1 MiB or more is read
// from its worker's ring straight into a vector that becomes the result (frame_reader::bulk).
// Its fresh pages would then all fault in on the io thread, which also moves every other
// frame; a caller waiting for such results readies the next buffers meanwhile (ready_bulk), so
// the two threads share that work, as they share decoding (vector_result). Those left unused
// when the results stop coming are kept for the next ones, like the spares, until stop().
#pragma once

#include "ring.hpp"

#include <procpool/detail/spare_buffers.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <sys/mman.h>
#include <utility>
#include <vector>

namespace procpool::detail {

/// Thread-safe. Made by the engine and shared (std::shared_ptr) with the results a buffer was
/// lent to, which may outlive the pool.
class frame_spares final : public spare_buffers, public bulk_source {
public:
    /// At most `max_count` spares and `max_bytes` in all; at most `max_ready` buffers readied
    /// for bulks, and `max_bytes` in all.
    frame_spares(std::size_t max_count, std::size_t max_bytes, std::size_t max_ready) noexcept
        : max_count_(max_count)
        , max_bytes_(max_bytes)
        , max_ready_(max_ready) {}

    /// See bulk_source: a readied buffer (ready_bulk) with room for `size` bytes, or at most an
    /// eighth more; else an empty vector.
    std::vector<char> bulk_buffer(std::size_t size) noexcept override {
        // relaxed: a hint; the mutex orders the buffers themselves.
        if (ready_count_.load(std::memory_order_relaxed) == 0)
            return {};
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < ready_.size(); ++i) {
            const std::size_t room = ready_[i].capacity();
            if (room >= size && room - size <= size / 8) {
                std::vector<char> buffer = std::move(ready_[i]);
                ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(i));
                ready_bytes_ -= room;
                ready_count_.store(ready_.size(), std::memory_order_relaxed);
                return buffer;
            }
        }
        return {};
    }

    /// Readies a buffer of `size` bytes, its pages in memory, for a bulk to come, unless
    /// `enough` buffers (or max_ready) are readied already, or it would pass max_bytes. For a
    /// thread with nothing better to do while it waits for such bulks. Returns true when it
    /// readied one.
    bool ready_bulk(std::size_t size, std::size_t enough) noexcept override {
        if (size < min_bulk_bytes || !keep_.load(std::memory_order_relaxed))
            return false;
        {
            std::lock_guard lock(mutex_);
            const std::size_t count = ready_.size() + readying_;
            if (count >= std::min(enough, max_ready_) || ready_bytes_ + size > max_bytes_)
                return false;
            ready_bytes_ += size; // its room, taken before the allocation, outside the lock
            ++readying_;
        }
        std::vector<char> buffer;
        try {
            buffer.reserve(size);
            if (!populate(buffer.data(), buffer.capacity()))
                buffer.resize(size); // faulted in by zeroing it
        } catch (...) {
            buffer = {};
        }
        std::lock_guard lock(mutex_);
        --readying_;
        if (buffer.capacity() < size || !keep_.load(std::memory_order_relaxed)) {
            ready_bytes_ -= size;
            return false;
        }
        ready_bytes_ += buffer.capacity() - size; // bulk_buffer takes back its capacity
        ready_.push_back(std::move(buffer));
        ready_count_.store(ready_.size(), std::memory_order_relaxed);
        return true;
    }

    /// Lets go of the buffers readied for bulks.
    void drop_ready() noexcept { let_go(ready_, ready_bytes_, ready_count_); }

    /// A kept buffer (emptied) with a capacity of at least `min_capacity`, or an empty vector.
    std::vector<char> take(std::size_t min_capacity = 0) noexcept override {
        // relaxed: a hint; the mutex orders the buffers themselves.
        if (count_.load(std::memory_order_relaxed) == 0)
            return {};
        std::lock_guard lock(mutex_);
        for (std::size_t i = spares_.size(); i-- > 0;) {
            if (spares_[i].capacity() >= min_capacity) {
                std::vector<char> buffer = take_at(i);
                buffer.clear();
                return buffer;
            }
        }
        return {};
    }

    /// A kept buffer of at least `min_size` bytes (its size, not only its capacity), holding
    /// whatever it held, or an empty vector: room for a frame reader to read into (see
    /// frame_reader::storage). The smallest one already that large is preferred, as it needs no
    /// zeroing and leaves the larger ones for larger frames; else the smallest that can grow to
    /// it within its capacity.
    std::vector<char> take_room(std::size_t min_size) noexcept override {
        // relaxed: as in take().
        if (count_.load(std::memory_order_relaxed) == 0)
            return {};
        std::lock_guard lock(mutex_);
        const std::size_t none = spares_.size();
        std::size_t sized = none, growable = none;
        for (std::size_t i = 0; i < spares_.size(); ++i) {
            const std::vector<char>& b = spares_[i];
            if (b.size() >= min_size) {
                if (sized == none || b.size() < spares_[sized].size())
                    sized = i;
            } else if (b.capacity() >= min_size) {
                if (growable == none || b.capacity() < spares_[growable].capacity())
                    growable = i;
            }
        }
        const std::size_t best = sized != none ? sized : growable;
        if (best == none)
            return {};
        std::vector<char> buffer = take_at(best);
        if (buffer.size() < min_size)
            buffer.resize(min_size); // within its capacity: no allocation
        return buffer;
    }

    /// Keeps `buffer` if it is large enough and there is room; otherwise lets it go.
    void give(std::vector<char>&& buffer) noexcept override {
        const std::size_t bytes = buffer.capacity();
        // relaxed: a hint; a buffer kept after stop() is let go by the next drop().
        if (bytes < min_bytes || !keep_.load(std::memory_order_relaxed))
            return;
        std::lock_guard lock(mutex_);
        if (spares_.size() >= max_count_ || bytes_ + bytes > max_bytes_)
            return;
        spares_.push_back(std::move(buffer));
        bytes_ += bytes;
        count_.store(spares_.size(), std::memory_order_relaxed);
    }

    /// Keeps nothing from now on, and lets go of what it kept.
    void stop() noexcept {
        keep_.store(false, std::memory_order_relaxed);
        drop();
        drop_ready();
    }

    /// Lets go of every buffer kept.
    void drop() noexcept { let_go(spares_, bytes_, count_); }

private:
    /// Empties `buffers` (spares_ or ready_) and its tallies; the buffers are freed once the
    /// mutex is let go.
    void let_go(std::vector<std::vector<char>>& buffers, std::size_t& bytes,
                std::atomic<std::size_t>& count) noexcept {
        // relaxed: a hint, as in take().
        if (count.load(std::memory_order_relaxed) == 0)
            return;
        std::vector<std::vector<char>> dropped; // destroyed after the lock below
        std::lock_guard lock(mutex_);
        dropped.swap(buffers);
        bytes = 0;
        count.store(0, std::memory_order_relaxed);
    }

    /// Faults in the pages of [p, p + n) for writing without touching them (Linux 5.14's
    /// MADV_POPULATE_WRITE); false where the kernel cannot. The pages at either end, shared
    /// with other memory, are left as they are.
    static bool populate(const char* p, std::size_t n) noexcept {
#ifdef MADV_POPULATE_WRITE
        const std::uintptr_t page = 4096;
        const auto first = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
        const auto last = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
        return last <= first ||
               ::madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE) == 0;
#else
        (void)p;
        (void)n;
        return false;
#endif
    }

    /// Removes spare `i` and returns it as it is. Callers hold mutex_.
    std::vector<char> take_at(std::size_t i) noexcept {
        std::vector<char> buffer = std::move(spares_[i]);
        spares_.erase(spares_.begin() + static_cast<std::ptrdiff_t>(i));
        bytes_ -= buffer.capacity();
        // relaxed: a hint; the mutex orders the buffers themselves.
        count_.store(spares_.size(), std::memory_order_relaxed);
        return buffer;
    }

    const std::size_t max_count_;
    const std::size_t max_bytes_;
    const std::size_t max_ready_;
    std::mutex mutex_;
    std::vector<std::vector<char>> spares_;
    std::size_t bytes_ = 0;
    std::atomic<std::size_t> count_{0};
    std::atomic<bool> keep_{true};
    // Buffers readied for bulks, under mutex_ (the count is also read without it, as a hint).
    std::vector<std::vector<char>> ready_;
    std::size_t ready_bytes_ = 0; // counting those being readied
    std::size_t readying_ = 0;
    std::atomic<std::size_t> ready_count_{0};
};

} // namespace procpool::detail
