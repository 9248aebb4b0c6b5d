// Large buffers a pool keeps for reuse, so that encoding a task frame or handing a result to a
// waiting caller fills memory already in use instead of fresh pages: on the machine of the
// README's table, filling fresh memory runs at about 2 GB/s (a page fault per 4 KiB), warm
// memory at 13 GB/s and more.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace procpool::detail {

/// Thread-safe. Shared (std::shared_ptr) by the pool and by the results a buffer was lent to,
/// which may outlive the pool.
class frame_spares : public std::enable_shared_from_this<frame_spares> {
public:
    /// Only buffers of at least this capacity are kept: smaller ones come from malloc's free
    /// lists, already in memory.
    static constexpr std::size_t min_bytes = std::size_t{64} << 10;

    /// At most `max_count` buffers and `max_bytes` in all.
    frame_spares(std::size_t max_count, std::size_t max_bytes) noexcept
        : max_count_(max_count)
        , max_bytes_(max_bytes) {}

    /// A kept buffer (emptied) with a capacity of at least `min_capacity`, or an empty vector.
    std::vector<char> take(std::size_t min_capacity = 0) noexcept {
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
    std::vector<char> take_room(std::size_t min_size) noexcept {
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
    void give(std::vector<char>&& buffer) noexcept {
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
    }

    /// Lets go of every buffer kept.
    void drop() noexcept {
        if (count_.load(std::memory_order_relaxed) == 0)
            return;
        std::vector<std::vector<char>> dropped;
        std::lock_guard lock(mutex_);
        dropped.swap(spares_);
        bytes_ = 0;
        count_.store(0, std::memory_order_relaxed);
    }

private:
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
    std::mutex mutex_;
    std::vector<std::vector<char>> spares_;
    std::size_t bytes_ = 0;
    std::atomic<std::size_t> count_{0};
    std::atomic<bool> keep_{true};
};

} // namespace procpool::detail
