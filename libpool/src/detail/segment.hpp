// The shared-memory segment of one pool: an ABI between the parent and its workers.
//
//   offset 0                 segment_header   magic, layout version, sizes, the parent's flags
//                                             (a page or more; workers map it read-only)
//   block_offset(0)          worker 0's block: worker_slot (one page) | inbox | outbox
//   block_offset(1)          worker 1's block
//   ...                      each block is page-aligned, page + 2 * ring_bytes long
//
// Least privilege: the parent maps the whole object read-write. Worker i maps two regions and
// nothing more: the header read-only, and its own block read-write (segment::attach). So a
// native task with a stale pointer can scribble over its own slot and rings, which costs at
// worst its own tasks (the parent validates every frame and condemns a worker that sends a
// corrupt one), but it cannot reach another worker's block, and a write to the header is a
// SIGSEGV in that worker, which the supervisor reports as a lost worker. The parent's doorbell
// is not in the segment at all: it is an eventfd (doorbell.hpp), so no memory a worker can
// write decides whether the parent wakes.
//
// Memory: the object is sized at once, but only the header, the slots and the first
// ring_backed_bytes of each ring are backed (posix_fallocate) when it is made; each ring's
// producer reserves the rest of its ring before it first writes there (ring_backing), so a
// full /dev/shm is an error from the pool, never a SIGBUS.
//
// Everything is addressed by offsets computed from the header's sizes (segment_layout), never
// by pointers, so every process may map the segment anywhere. A worker checks magic, version,
// and every size against what its own build computes (segment_header_problem) before it maps
// or touches anything else.
//
// Name and lifetime: "/procpool-<parent pid>-<64 random bits>", created exclusively with mode
// 0600. The parent removes the name when the pool ends; a worker whose parent died removes it
// (its watchdog); a new pool removes names whose parent pid no longer runs. So a segment
// outlives neither a normal exit nor a kill -9 of its parent.
#pragma once

#include "event.hpp"
#include "ring.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace procpool::detail {

inline constexpr std::uint64_t segment_magic = 0x4c4f4f5050434f52ULL; // "ROCPPOOL" little-endian
inline constexpr std::uint32_t segment_layout_version = 4;

/// Lifecycle of a worker slot, written by the worker (attached, ready, exiting) and reset by
/// the parent for each new worker.
enum class slot_state : std::uint32_t { empty = 0, spawned, attached, ready, exiting };

struct segment_header {
    std::uint64_t magic = 0;
    std::uint32_t layout_version = 0;
    std::uint32_t worker_count = 0;
    std::uint64_t header_bytes = 0;
    std::uint64_t slot_bytes = 0;
    std::uint64_t ring_bytes = 0;
    std::uint64_t segment_bytes = 0;
    std::uint64_t module_key = 0; ///< the parent's main module: a worker must match it
    std::int64_t owner_pid = 0;
    std::uint64_t max_tasks_per_child = 0; ///< 0: no limit
    std::uint32_t has_initializer = 0;     ///< 1: each worker's first frame is the initializer
    std::uint32_t reserved = 0;
    std::uint64_t max_rss_per_child = 0; ///< max_memory_per_child in bytes; 0: no limit
    /// Written by the parent only, read by workers (who map the header read-only).
    ///
    /// parent_sleepers: nonzero while the parent's io thread sleeps on its doorbell, or is about
    /// to; a worker that publishes then rings the doorbell (doorbell.hpp: the Dekker pair).
    alignas(cache_line) std::atomic<std::uint32_t> parent_sleepers{0};
    /// 1 while a thread of the parent spins on the outboxes (a caller waiting for its result,
    /// see engine.cpp): a worker then publishes results without ringing the doorbell. The
    /// parent clears it, then looks at the outboxes once more (a Dekker pair with the worker's
    /// publish, fence, load).
    std::atomic<std::uint32_t> parent_polling{0};
};

/// One worker's control block, at the start of its block (a page of its own). Everything in it
/// may be garbage written by a buggy task in that worker: the parent never trusts it past that
/// worker (a pid here is never signalled, a running_task is matched against that worker's own
/// tasks only, the rings' indices are bounded by the ring's size).
///
///   line 0   generation, pid, state, stop, running_task, task_started_ns
///            (worker writes, parent reads)
///   line 1   event: the worker sleeps here; space_wanted
///   line 2-3 inbox ring_control   (parent produces, worker consumes)
///   line 4-5 outbox ring_control  (worker produces, parent consumes)
///   line 6-7 skip bits            (parent writes, worker reads)
struct worker_slot {
    alignas(cache_line) std::atomic<std::uint32_t> generation{0};
    std::atomic<std::int32_t> pid{0};
    std::atomic<slot_state> state{slot_state::empty};
    std::atomic<std::uint32_t> stop{0};         ///< 1: leave once the inbox is empty
    std::atomic<std::uint64_t> running_task{0}; ///< task id being run, 0 between tasks
    /// When running_task began, steady_clock nanoseconds (CLOCK_MONOTONIC, one clock for all
    /// processes); written before running_task.
    std::atomic<std::int64_t> task_started_ns{0};
    alignas(cache_line) event_word event;
    /// 1 while the parent has more of a frame to write into the inbox than fitted: a worker
    /// that frees inbox space rings the parent's doorbell only then (the parent sets it, then looks
    /// at the space once more before it sleeps: a Dekker pair with the worker's read, fence,
    /// load).
    std::atomic<std::uint32_t> space_wanted{0};
    ring_control inbox;
    ring_control outbox;
    /// Tasks cancelled after they were sent (parent writes, worker reads): bit s % skip_bits
    /// stands for the worker's s-th task frame (counted from 0 in each worker). The parent
    /// holds fewer than skip_bits frames in one worker (flow::max_window), so no two of them
    /// share a bit. A worker about to run task X marks running_task as X | running_tentative,
    /// fences, and reads X's bit; the parent sets the bit, fences, and reads running_task
    /// (Dekker): either the worker skips X, or the parent sees it running.
    alignas(cache_line) std::atomic<std::uint64_t> skip[16];
};
inline constexpr std::uint64_t skip_bits = 16 * 64;
/// running_task's top bit: the worker has the task but has not yet read its skip bit.
inline constexpr std::uint64_t running_tentative = std::uint64_t{1} << 63;
static_assert(sizeof(worker_slot) == 8 * cache_line, "worker_slot is shared: keep it fixed");
static_assert(std::atomic<slot_state>::is_always_lock_free,
              "slot state is shared between processes: it must be lock-free");

/// Offsets of everything in a segment of `workers` workers with rings of `ring_bytes` (a power
/// of two, at least a page).
struct segment_layout {
    std::uint32_t workers = 0;
    std::uint64_t ring_bytes = 0;

    static constexpr std::uint64_t page = 4096;
    /// Bounds a header is checked against (a pool refuses more than 4096 processes).
    static constexpr std::uint32_t max_workers = 4096;
    static constexpr std::uint64_t max_ring_bytes = std::uint64_t{1} << 40;
    /// Bytes at the start of each ring backed when the segment is made; a ring's producer
    /// reserves the rest when it first writes past them (ring_backing).
    static constexpr std::uint64_t ring_backed_bytes = std::uint64_t{64} << 10;
    static constexpr std::uint64_t round_to_page(std::uint64_t n) {
        return (n + page - 1) / page * page;
    }
    /// The header's own size, as segment_header::header_bytes records it.
    static constexpr std::uint64_t header_bytes() {
        return (sizeof(segment_header) + cache_line - 1) / cache_line * cache_line;
    }
    /// The header's region: what a worker maps read-only.
    static constexpr std::uint64_t header_region_bytes() { return round_to_page(header_bytes()); }
    static constexpr std::uint64_t slot_region_bytes() { return page; }
    /// One worker's block: what that worker maps read-write.
    std::uint64_t block_bytes() const { return slot_region_bytes() + 2 * ring_bytes; }
    std::uint64_t block_offset(std::uint32_t i) const {
        return header_region_bytes() + std::uint64_t{i} * block_bytes();
    }
    std::uint64_t slot_offset(std::uint32_t i) const { return block_offset(i); }
    std::uint64_t inbox_offset(std::uint32_t i) const {
        return block_offset(i) + slot_region_bytes();
    }
    std::uint64_t outbox_offset(std::uint32_t i) const { return inbox_offset(i) + ring_bytes; }
    std::uint64_t total_bytes() const { return block_offset(workers); }
    /// Bytes at the start of each ring backed when the segment is made.
    std::uint64_t ring_start_bytes() const { return std::min(ring_backed_bytes, ring_bytes); }
};
static_assert(sizeof(worker_slot) <= segment_layout::page,
              "a worker's slot is the first page of its block, mapped only by that worker");

/// A mapped segment. The parent creates it, workers attach to it. Not thread-safe itself; the
/// shared data inside is synchronised by the atomics above.
class segment {
public:
    /// Creates a new segment (see the file comment for name and mode). Throws procpool::error
    /// naming the call that failed.
    static segment create(std::uint32_t workers, std::uint64_t ring_bytes);

    /// Creates a segment with exactly this name, exclusively: throws procpool::error saying
    /// it "already exists" rather than opening an existing object.
    static segment create(std::uint32_t workers, std::uint64_t ring_bytes, const std::string& name);

    /// Maps what worker `index` of an existing segment may see: the header read-only (checked
    /// against this build first) and the worker's own block read-write. Only slot(index) and
    /// that worker's rings may be used on the result. Throws procpool::error saying what did not
    /// match, or std::invalid_argument for an index the segment has no block for.
    static segment attach(const std::string& name, std::uint32_t index);

    /// No segment; assign one from create() or attach().
    segment() noexcept;
    segment(segment&&) noexcept;
    segment& operator=(segment&&) noexcept;
    ~segment();

    /// The header. Read-only memory in a worker: a store there is a SIGSEGV.
    segment_header& header() const noexcept;
    /// Worker i's slot and rings. In a worker, i must be its own index (anything else aborts:
    /// that memory is not mapped there).
    worker_slot& slot(std::uint32_t i) const noexcept;
    ring_producer inbox_producer(std::uint32_t i) const noexcept;
    ring_consumer inbox_consumer(std::uint32_t i) const noexcept;
    ring_producer outbox_producer(std::uint32_t i) const noexcept;
    ring_consumer outbox_consumer(std::uint32_t i) const noexcept;
    const std::string& name() const noexcept;

    /// Removes the name (the mapping stays valid). Idempotent, never throws.
    void remove_name() noexcept;

private:
    struct impl;
    explicit segment(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

/// What is wrong with a segment header read from `mapped_bytes` bytes of shared memory, or an
/// empty string when a worker of this build may use it. Every field is checked before any is
/// used to compute an offset. Never reads past `h`; the bytes are untrusted.
std::string segment_header_problem(const segment_header& h, std::uint64_t mapped_bytes);

/// Removes the names of segments whose parent process no longer runs. Never throws.
void sweep_orphaned_segments() noexcept;

/// Removes a segment name. For a worker whose parent died. Async-signal-safe.
void remove_segment_name(const char* name) noexcept;

} // namespace procpool::detail
