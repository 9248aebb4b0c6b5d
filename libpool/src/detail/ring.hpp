// A lock-free single-producer single-consumer byte ring in shared memory, and the frames that
// travel through it.
//
// Layout: a ring_control (two 64-bit counters, each on its own cache line) and `capacity`
// bytes of data, capacity a power of two. `head` counts bytes ever published by the producer,
// `tail` bytes ever released by the consumer; both only grow (2^64 bytes do not wrap in the
// life of a pool), so used = head - tail and no byte is wasted to tell full from empty.
//
// A frame is a u64 length and that many bytes. A frame larger than the free space, or than the
// whole ring, is written in fragments as space frees up (frame_writer) and reassembled by the
// reader (frame_reader): there is no size limit but memory. A frame whose end is to be read
// apart (frame_writer::start's bulk_apart) has the top bit of its length set, and a second u64,
// the length of that end, before its bytes.
//
// Memory ordering. Producer: copy bytes into data, then head.store(release)  [SYNC POINT WRITE
// data]; consumer: head.load(acquire) [SYNC POINT READ data], then read the bytes. Consumer:
// read bytes, then tail.store(release) [SYNC POINT WRITE free space]; producer:
// tail.load(acquire) [SYNC POINT READ free space] before overwriting them. Each side caches
// the other's counter (rigtorp's SPSCQueue) and reloads it only when the cache says "no room"
// or "nothing to read", which keeps the other side's cache line out of the hot loop.
//
// Backing. A ring's memory may be backed only in part when the ring is made; its producer then
// reserves the rest (ring_backing) before it first writes past that part, and stops, reporting
// unbacked(), when it cannot. The consumer only reads bytes the producer wrote.
//
// What a crash leaves behind. A producer killed mid-frame leaves head at the last fragment it
// published; a consumer killed mid-frame leaves tail at the last fragment it released. The
// surviving side sees a ring that never fills or never drains, not corrupt data. Only the
// parent resets a ring (reset_after_crash), after it has reaped the worker that used it and
// read every complete frame it had published, so no process touches the ring during a reset.
//
// Untrusted counters. The other side's counter lives in memory that side can write, and a
// worker's task may scribble over it. Each view keeps its own counter to itself and checks the
// other's on every load: one that claims more used bytes than the ring holds (head - tail over
// the capacity, or a tail past the head) can come from no honest peer. The view then sees an
// empty ring (consumer) or a full one (producer), never touches a byte outside the ring, and
// says so (overrun()), so the parent can condemn that worker.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace procpool::detail {

/// Both processes must agree on this, so it is fixed rather than
/// std::hardware_destructive_interference_size (which GCC 12 warns may differ between builds).
inline constexpr std::size_t cache_line = 64;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the rings share 64-bit atomics between processes: they must be lock-free, "
              "a lock-based atomic would put a process-local lock in shared memory");

/// The shared part of a ring: lives in the segment, addressed only through offsets.
///
///   +0   head  (producer writes, consumer reads)   cache line 0
///   +64  tail  (consumer writes, producer reads)   cache line 1
struct ring_control {
    alignas(cache_line) std::atomic<std::uint64_t> head{0};
    alignas(cache_line) std::atomic<std::uint64_t> tail{0};
};
static_assert(sizeof(ring_control) == 2 * cache_line, "ring_control is shared: keep it fixed");

/// How a producer gets the memory of its ring backed before it first writes there. A segment
/// backs only the start of each ring when it is made (see segment.hpp), so that a pool that
/// moves little does not pay for its rings' pages; the producer reserves the rest, once, when
/// it first needs it.
struct ring_backing {
    /// Reserves the ring's data (`bytes` at `offset` of the shared object); false when there is
    /// no room for it.
    bool (*reserve)(void* owner, std::uint64_t offset, std::uint64_t bytes) noexcept = nullptr;
    void* owner = nullptr;
    std::uint64_t offset = 0; ///< where the ring's data starts in the shared object
    std::uint64_t backed = 0; ///< bytes at the start of the ring's data already backed
};

/// The producer's view of a ring. One per process side; never shared between threads.
class ring_producer {
public:
    ring_producer() = default;
    /// `backing`: how to back the rest of the ring (none: all of it is backed).
    ring_producer(ring_control* control, std::byte* data, std::uint64_t capacity,
                  const ring_backing& backing = {}) noexcept
        // relaxed loads: the view is made while the ring is idle (attach or reset), ordered by
        // the segment handshake or by waitpid.
        : control_(control)
        , data_(data)
        , capacity_(capacity)
        , head_(control->head.load(std::memory_order_relaxed))
        , tail_cache_(control->tail.load(std::memory_order_relaxed))
        , backing_(backing) {
        // Until it is reserved, only positions [0, backed) may be written: they are the
        // backed bytes as long as the ring has not wrapped (a fresh ring starts at 0).
        backed_end_ = backing.reserve == nullptr ? ~std::uint64_t{0}
                      : head_ == 0               ? backing.backed
                                                 : 0;
    }

    /// Bytes that can be written now. Wait-free.
    std::uint64_t writable() noexcept {
        // SYNC POINT READ free space: pairs with the consumer's tail.store(release).
        tail_cache_ = control_->tail.load(std::memory_order_acquire);
        if (head_ - tail_cache_ > capacity_) { // see "Untrusted counters" above
            overrun_ = true;
            tail_cache_ = head_ - capacity_; // full: no room
        }
        return capacity_ - (head_ - tail_cache_);
    }

    /// Copies up to `n` bytes of `src` into the ring; returns how many. Wait-free.
    std::size_t write_some(const void* src, std::size_t n) noexcept {
        std::uint64_t room = capacity_ - (head_ - tail_cache_);
        if (room < n)
            room = writable();
        const std::size_t count = n < room ? n : static_cast<std::size_t>(room);
        if (count == 0 || (head_ + count > backed_end_ && !reserve()))
            return 0;
        copy_in(head_, static_cast<const std::byte*>(src), count);
        head_ += count;
        // SYNC POINT WRITE data: pairs with the consumer's head.load(acquire).
        control_->head.store(head_, std::memory_order_release);
        return count;
    }

    std::uint64_t capacity() const noexcept { return capacity_; }
    /// Bytes ever written through this view's ring (its head).
    std::uint64_t position() const noexcept { return head_; }
    /// The ring's memory could not be backed: nothing more can be written past its start.
    bool unbacked() const noexcept { return unbacked_; }
    /// The consumer's tail was seen impossible (see "Untrusted counters"): the ring stays full.
    bool overrun() const noexcept { return overrun_; }

private:
    bool reserve() noexcept {
        if (unbacked_ || !backing_.reserve(backing_.owner, backing_.offset, capacity_)) {
            unbacked_ = true;
            return false;
        }
        backed_end_ = ~std::uint64_t{0};
        return true;
    }

    void copy_in(std::uint64_t position, const std::byte* src, std::size_t n) noexcept {
        const std::size_t at = static_cast<std::size_t>(position & (capacity_ - 1));
        const std::size_t first = n < capacity_ - at ? n : static_cast<std::size_t>(capacity_ - at);
        std::memcpy(data_ + at, src, first);
        std::memcpy(data_, src + first, n - first);
    }

    ring_control* control_ = nullptr;
    std::byte* data_ = nullptr;
    std::uint64_t capacity_ = 0;
    std::uint64_t head_ = 0; // our own counter: only we write head
    // The last tail seen: free space is at least capacity - (head - tail_cache).
    std::uint64_t tail_cache_ = 0;
    ring_backing backing_;
    std::uint64_t backed_end_ = ~std::uint64_t{0}; // positions below it are backed
    bool unbacked_ = false;
    bool overrun_ = false;
};

/// The consumer's view of a ring. One per process side; never shared between threads.
class ring_consumer {
public:
    ring_consumer() = default;
    ring_consumer(ring_control* control, std::byte* data, std::uint64_t capacity) noexcept
        // relaxed loads: as in ring_producer's constructor.
        : control_(control)
        , data_(data)
        , capacity_(capacity)
        , tail_(control->tail.load(std::memory_order_relaxed))
        , head_cache_(control->head.load(std::memory_order_relaxed)) {}

    /// Bytes that can be read now. Wait-free.
    std::uint64_t readable() noexcept {
        // SYNC POINT READ data: pairs with the producer's head.store(release).
        head_cache_ = control_->head.load(std::memory_order_acquire);
        if (head_cache_ - tail_ > capacity_) { // see "Untrusted counters" above
            overrun_ = true;
            head_cache_ = tail_; // empty: nothing to read
        }
        return head_cache_ - tail_;
    }

    /// Copies up to `n` bytes out of the ring; returns how many. Wait-free.
    std::size_t read_some(void* dst, std::size_t n) noexcept {
        auto* out = static_cast<std::byte*>(dst);
        return consume(n, [&](const std::byte* p, std::size_t k) {
            std::memcpy(out, p, k);
            out += k;
        });
    }

    /// Copies up to `n` bytes out of the ring to the end of `out`, which must have the capacity
    /// for them (nothing is zeroed first, nothing reallocated); returns how many. Wait-free.
    std::size_t read_append(std::vector<char>& out, std::size_t n) {
        return consume(n, [&](const std::byte* p, std::size_t k) {
            const auto* c = reinterpret_cast<const char*>(p);
            out.insert(out.end(), c, c + k);
        });
    }

    std::uint64_t capacity() const noexcept { return capacity_; }
    /// Bytes ever read through this view's ring (its tail).
    std::uint64_t position() const noexcept { return tail_; }
    /// The producer's head was seen impossible (see "Untrusted counters"): the ring stays
    /// empty.
    bool overrun() const noexcept { return overrun_; }

private:
    /// Passes up to `n` readable bytes to `take(pointer, count)`, in one or two pieces (where
    /// the ring wraps), then releases them; returns how many.
    template <class Take>
    std::size_t consume(std::size_t n, Take take) {
        std::uint64_t have = head_cache_ - tail_;
        if (have < n)
            have = readable();
        const std::size_t count = n < have ? n : static_cast<std::size_t>(have);
        if (count == 0)
            return 0;
        pieces(tail_, count, take);
        tail_ += count;
        // SYNC POINT WRITE free space: pairs with the producer's tail.load(acquire).
        control_->tail.store(tail_, std::memory_order_release);
        return count;
    }

    /// Passes the `n` bytes at `position` to `take(pointer, count)`: up to the ring's end, then
    /// from its start.
    template <class Take>
    void pieces(std::uint64_t position, std::size_t n, Take& take) const {
        const std::size_t at = static_cast<std::size_t>(position & (capacity_ - 1));
        const std::size_t first = n < capacity_ - at ? n : static_cast<std::size_t>(capacity_ - at);
        take(data_ + at, first);
        if (first < n)
            take(data_, n - first);
    }

    ring_control* control_ = nullptr;
    std::byte* data_ = nullptr;
    std::uint64_t capacity_ = 0;
    std::uint64_t tail_ = 0;       // our own counter: only we write tail
    std::uint64_t head_cache_ = 0; // last head seen; readable is at least head_cache - tail
    bool overrun_ = false;
};

/// The top bit of a frame's length: a u64 follows, the length of the frame's end that the
/// reader keeps apart (see frame_reader::bulk).
inline constexpr std::uint64_t bulk_apart_flag = std::uint64_t{1} << 63;

/// Where a frame_reader gets the buffer for a bulk read apart, instead of allocating one.
class bulk_source {
public:
    /// A buffer with room for `size` bytes (its capacity; whatever it holds is dropped) whose
    /// pages are already in memory, or an empty vector. Thread-safe.
    virtual std::vector<char> bulk_buffer(std::size_t size) noexcept = 0;

protected:
    ~bulk_source() = default;
};

/// Streams one frame at a time into a ring, in as many fragments as space allows.
/// The frame's bytes must stay alive while busy().
class frame_writer {
public:
    /// Starts a frame made of `front` and then `bulk` (two pieces of memory, one frame on the
    /// ring); the previous one must no longer be busy(). The reader gets their bytes side by
    /// side, or, with `bulk_apart` and a bulk, the bulk in a buffer of its own
    /// (frame_reader::bulk).
    void start(std::span<const std::byte> front, std::span<const std::byte> bulk = {},
               bool bulk_apart = false) noexcept {
        pieces_[0] = front;
        pieces_[1] = bulk;
        const std::uint64_t size = front.size() + bulk.size();
        const bool apart = bulk_apart && !bulk.empty();
        prefix_[0] = apart ? size | bulk_apart_flag : size;
        prefix_[1] = bulk.size();
        prefix_size_ = apart ? sizeof prefix_ : sizeof prefix_[0];
        written_ = 0;
        active_ = true;
    }

    /// Writes what fits now; returns the bytes written. Wait-free.
    std::size_t pump(ring_producer& ring) noexcept {
        if (!active_)
            return 0;
        std::size_t total = 0;
        const std::size_t prefix = prefix_size_;
        if (written_ < prefix) {
            const auto* bytes = reinterpret_cast<const std::byte*>(prefix_);
            const std::size_t n = ring.write_some(bytes + written_, prefix - written_);
            written_ += n;
            total += n;
            if (written_ < prefix)
                return total;
        }
        for (std::size_t i = 0; i < 2; ++i) {
            const std::span<const std::byte> piece = pieces_[i];
            // Where this piece starts in the frame's body, and how much of it is written.
            const std::uint64_t start = i == 0 ? 0 : pieces_[0].size();
            const std::uint64_t body = written_ - prefix;
            if (body >= start + piece.size())
                continue;
            const std::uint64_t done = body - start;
            const std::size_t n = ring.write_some(piece.data() + done, piece.size() - done);
            written_ += n;
            total += n;
            if (n < piece.size() - done)
                return total; // the ring is full
        }
        if (written_ == prefix + pieces_[0].size() + pieces_[1].size())
            active_ = false;
        return total;
    }

    /// True while a frame is started and not fully written.
    bool busy() const noexcept { return active_; }

private:
    std::span<const std::byte> pieces_[2];            // the frame: front, then bulk
    std::uint64_t prefix_[2] = {};                    // the length (and flag), the bulk's length
    std::size_t prefix_size_ = sizeof(std::uint64_t); // 16 when the bulk goes apart
    std::uint64_t written_ = 0;                       // counting the prefix
    bool active_ = false;
};

/// Reassembles frames from a ring, however they were fragmented.
///
/// The frame is read into a std::vector<char> whose size is the room it has (its bytes past the
/// frame are left over from earlier frames), so that whoever handles a frame may take that
/// storage instead of copying the frame out of it: see storage(). The end of a frame written
/// with its bulk apart is read into a vector of its own, of exactly its size, which the handler
/// may take as it is: see bulk().
class frame_reader {
public:
    /// Frames announced longer than `bytes` are refused: the length comes from the other
    /// process, and the buffer for it is allocated before a byte of it is read.
    void limit(std::uint64_t bytes) noexcept { max_length_ = bytes; }

    /// Reads what is there; true when a whole frame is ready in frame() (and bulk()). Call
    /// reset() after using it. Allocates the frame's buffers, so it may throw std::bad_alloc;
    /// throws std::length_error for a frame over limit() (the reader must then be reset
    /// before another use, with the ring). A bulk read apart goes into a buffer from
    /// `bulk_buffers` when it has one.
    bool pump(ring_consumer& ring, bulk_source* bulk_buffers = nullptr) {
        constexpr std::size_t word = sizeof(std::uint64_t);
        if (got_ < prefix_size_) {
            auto* bytes = reinterpret_cast<std::byte*>(prefix_);
            got_ += ring.read_some(bytes + got_, prefix_size_ - got_);
            if (got_ == word && prefix_size_ == word && (prefix_[0] & bulk_apart_flag) != 0) {
                prefix_size_ = 2 * word;
                got_ += ring.read_some(bytes + got_, word);
            }
            if (got_ < prefix_size_)
                return false;
            length_ = prefix_[0] & ~bulk_apart_flag;
            if (length_ > max_length_)
                throw std::length_error("a frame of " + std::to_string(length_) +
                                        " bytes was announced, over the limit of " +
                                        std::to_string(max_length_));
            apart_ = prefix_size_ == word ? 0 : std::min(prefix_[1], length_);
            reserve(static_cast<std::size_t>(length_ - apart_));
            if (apart_ != 0) {
                // Read onto its end, within its capacity, so that no byte is zeroed first.
                if (bulk_buffers != nullptr)
                    bulk_ = bulk_buffers->bulk_buffer(static_cast<std::size_t>(apart_));
                bulk_.clear();
                bulk_.reserve(static_cast<std::size_t>(apart_));
            }
        }
        const std::uint64_t head = length_ - apart_;
        std::uint64_t body = got_ - prefix_size_;
        if (body < head) {
            got_ += ring.read_some(buffer_.data() + body, static_cast<std::size_t>(head - body));
            body = got_ - prefix_size_;
        }
        if (body >= head && body < length_)
            got_ += ring.read_append(bulk_, static_cast<std::size_t>(length_ - body));
        return got_ == prefix_size_ + length_;
    }

    /// True when part of a frame has been read.
    bool partial() const noexcept { return got_ != 0; }

    /// The frame, but for its bulk when that was sent apart.
    std::span<const std::byte> frame() const noexcept {
        return std::as_bytes(std::span(buffer_.data(), static_cast<std::size_t>(length_ - apart_)));
    }

    /// The buffer holding frame() at its start. Once a whole frame is ready, and until reset(),
    /// a caller may swap it for another buffer (of any size: its size counts as room, its
    /// bytes are overwritten) and keep the frame's bytes; frame() is then no longer valid.
    std::vector<char>& storage() noexcept { return buffer_; }

    /// The frame's bulk, when the writer sent it apart; else empty. Once a whole frame is
    /// ready, and until reset(), a caller may move it out.
    std::vector<char>& bulk() noexcept { return bulk_; }

    /// Forgets the frame. The buffer is kept for the next one while frames keep needing it:
    /// a large buffer (over 1 MiB) goes when a frame used less than a quarter of it, so one
    /// large frame does not pin its memory for the life of the pool, while a run of large
    /// frames reuses one buffer instead of faulting in fresh pages for each. A bulk nobody took
    /// goes.
    void reset() noexcept {
        if (buffer_.size() > keep_capacity && length_ - apart_ < buffer_.size() / 4)
            std::vector<char>().swap(buffer_);
        if (bulk_.capacity() != 0)
            std::vector<char>().swap(bulk_);
        got_ = 0;
        length_ = 0;
        apart_ = 0;
        prefix_size_ = sizeof(std::uint64_t);
    }

private:
    static constexpr std::size_t keep_capacity = std::size_t{1} << 20;

    /// Room for n bytes. Growing within the capacity zeroes only the new part; a new
    /// allocation is zeroed once, which costs little beside faulting its pages in.
    void reserve(std::size_t n) {
        if (n <= buffer_.size())
            return;
        if (n > buffer_.capacity())
            std::vector<char>().swap(buffer_); // the old bytes need no copying
        buffer_.resize(n);
    }

    std::vector<char> buffer_; // its size is the room for frames: see the class comment
    std::vector<char> bulk_;   // the bulk read apart: see bulk()
    std::uint64_t prefix_[2] = {};
    std::size_t prefix_size_ = sizeof(std::uint64_t); // 16 when the frame has a bulk apart
    std::uint64_t length_ = 0;                        // the whole frame's, bulk included
    std::uint64_t apart_ = 0;                         // the bulk's, when read apart
    std::uint64_t got_ = 0;                           // counting the prefix
    std::uint64_t max_length_ = UINT64_MAX;           // see limit()
};

/// Puts a ring back to empty. Only for a ring no process uses: see the file comment.
inline void reset_after_crash(ring_control& control) noexcept {
    // relaxed: nobody else touches the ring now; the next user is ordered after us by the
    // release/acquire of its attach handshake (or by fork/exec).
    control.head.store(0, std::memory_order_relaxed);
    control.tail.store(0, std::memory_order_relaxed);
}

} // namespace procpool::detail
