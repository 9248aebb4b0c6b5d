// The pool's spare frame buffers, as the result states see them: large buffers to reuse, so
// that encoding a frame or keeping a result fills pages already in memory instead of fresh ones
// (docs/performance.md: fresh vs warm memory). The library's frame_spares
// (src/detail/frame_spares.hpp) implements it; the engine owns it and passes it to the
// transport, the scheduler and, with each chunk's outcome, to the result states.
#pragma once

#include <procpool/export.hpp>

#include <cstddef>
#include <vector>

namespace procpool::detail {

/// Thread-safe; never throws.
class PROCPOOL_API spare_buffers {
public:
    /// Only buffers of at least this capacity are kept: smaller ones come from malloc's free
    /// lists, already in memory.
    static constexpr std::size_t min_bytes = std::size_t{64} << 10;
    /// Buffers are readied for bulks (a large last result read apart) of at least this size.
    static constexpr std::size_t min_bulk_bytes = std::size_t{1} << 20;

    /// A kept buffer (emptied) with a capacity of at least `min_capacity`, or an empty vector.
    virtual std::vector<char> take(std::size_t min_capacity = 0) noexcept = 0;
    /// A kept buffer of at least `min_size` bytes (its size, not only its capacity), holding
    /// whatever it held, or an empty vector: room for a frame reader to read into.
    virtual std::vector<char> take_room(std::size_t min_size) noexcept = 0;
    /// Keeps `buffer` for reuse, within the limits; else lets it go.
    virtual void give(std::vector<char>&& buffer) noexcept = 0;
    /// Readies a buffer of `size` bytes, its pages in memory, for a bulk to come, unless
    /// `enough` are readied already. For a thread with nothing better to do while it waits for
    /// such results. True when it readied one.
    virtual bool ready_bulk(std::size_t size, std::size_t enough) noexcept = 0;

protected:
    ~spare_buffers() = default;
};

} // namespace procpool::detail
