// How much work the parent keeps ahead of the workers: the measured means that pace it and the
// bounds they are held to, in one place for the scheduler's dispatch window and imap's read-ahead.
//
// Both aim at about 1 ms of work per worker: enough that a worker never waits for the parent
// to hand it the next chunk (a wake-up costs microseconds), few enough that the imbalance left
// at the end of a job, when some workers still have queued chunks and others none, stays near
// 1 ms. What a chunk costs is not known before it runs, so each side measures its chunks with
// a moving_mean and derives its count from that; until the first chunk is measured, it keeps
// the least it allows.
#pragma once

#include <algorithm>
#include <cstddef>

namespace procpool::detail {

/// An exponential moving average of a measure (chunk times, frame sizes): each new sample
/// weighs `weight`, all those before it together 1 - `weight`. The first sample is the mean, so
/// the first estimate is not pulled towards zero. Not thread-safe: its owner guards it.
class moving_mean {
public:
    /// 0.1: one odd chunk (a worker preempted, a cold cache) moves the mean by a tenth of its
    /// deviation, while a lasting change is followed within tens of chunks (a sample's weight
    /// halves every 6.6 samples later; 10 samples on, a step is 65% followed, 30 on, 96%).
    static constexpr double weight = 0.1;

    /// Adds one sample. Never blocks, never throws.
    constexpr void add(double sample) noexcept {
        value_ = known_ ? (1 - weight) * value_ + weight * sample : sample;
        known_ = true;
    }
    /// The mean of the samples so far; 0 before the first.
    constexpr double value() const noexcept { return value_; }
    /// Whether a sample has been added.
    constexpr bool known() const noexcept { return known_; }

private:
    double value_ = 0;
    bool known_ = false;
};

namespace flow {

/// The work the parent keeps queued or read ahead per worker (see the file comment).
constexpr double work_per_worker_ns = 1e6;

/// The core's dispatch window, in chunks sent to one worker and not yet answered. At least 2:
/// the worker has its next chunk in its inbox while it runs one, whatever chunks cost. At most
/// 1024: a bound on one worker's queue when chunks measure at almost nothing.
constexpr std::size_t min_window = 2;
constexpr std::size_t max_window = 1024;

/// imap's read-ahead, in chunks per worker outstanding (submitted and not yet delivered to the
/// consumer), so that memory stays bounded whatever the input's length. At least 4: the
/// consumer tops up once half the read-ahead is used, so 2 per worker, the least window, are
/// still outstanding then. At most 64: finished results wait in memory for the consumer.
constexpr std::size_t min_chunks_per_worker = 4;
constexpr std::size_t max_chunks_per_worker = 64;
/// The payload imap's read-ahead may hold per worker, of input frames or of results: quick
/// chunks of large items are bounded by their memory, not by their time.
constexpr double bytes_per_worker = 1 << 20;

/// `chunks`, rounded down and held within [lo, hi]. Clamps before converting, so that a huge
/// or infinite count cannot overflow std::size_t.
constexpr std::size_t clamped_count(double chunks, std::size_t lo, std::size_t hi) noexcept {
    return static_cast<std::size_t>(std::clamp(chunks, double(lo), double(hi)));
}

/// Chunks per worker covering work_per_worker_ns when one chunk takes `exec_ns` on average,
/// within [lo, hi]; `lo` until a chunk has been measured. Never blocks, never throws.
constexpr std::size_t chunks_per_worker(const moving_mean& exec_ns, std::size_t lo,
                                        std::size_t hi) noexcept {
    if (!exec_ns.known())
        return lo;
    return clamped_count(work_per_worker_ns / exec_ns.value(), lo, hi);
}

} // namespace flow

} // namespace procpool::detail
