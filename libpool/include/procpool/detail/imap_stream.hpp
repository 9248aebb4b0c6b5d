// What imap's typed half (pool.ipp's range_source, imap_result) and its untyped half (the
// library's imap_channel, src/detail/imap_channel.hpp) say to each other.
#pragma once

#include <procpool/export.hpp>

#include <procpool/detail/kept_results.hpp>
#include <procpool/detail/spare_buffers.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <vector>

namespace procpool::detail {

/// The next chunk of an imap's input, encoded as a task frame.
struct encoded_chunk {
    std::vector<char> frame;  ///< empty when no item was read
    std::exception_ptr error; ///< reading or encoding failed after the items in `frame`
    bool end = false;         ///< no more input: exhausted, or broken (`error`)
};

/// An imap's input. Called by one thread at a time; never throws (failures go in `error`).
class PROCPOOL_API imap_source {
public:
    virtual ~imap_source() = default;
    /// Encodes the next chunk, into a buffer of `spares` (when not null) that it has to reuse.
    virtual encoded_chunk next_chunk(spare_buffers* spares) noexcept = 0;
};

/// A finished chunk as the consumer receives it.
struct imap_chunk {
    kept_results results; ///< archive of ok_count results
    std::uint64_t ok_count = 0;
    std::exception_ptr error; ///< the item after the ok ones failed (or the chunk was lost)
};

/// The consumer's side of an imap: finished chunks, in delivery order.
class PROCPOOL_API imap_stream {
public:
    virtual ~imap_stream() = default;
    /// The next finished chunk in delivery order; nullopt when every chunk has been delivered.
    /// An input that failed delivers its error as a last chunk. Throws timeout_error when
    /// `deadline` (if not null) passes first (nothing is lost). One consumer at a time.
    virtual std::optional<imap_chunk>
    next(const std::chrono::steady_clock::time_point* deadline) = 0;
    /// The consumer is gone: drops the input and every result still to come. Idempotent.
    virtual void abandon() noexcept = 0;
    /// As abandon(), and the pool stops the chunks still running (their workers are killed);
    /// next() throws cancelled_error from now on. Any thread; idempotent.
    virtual void cancel() noexcept = 0;
};

} // namespace procpool::detail
