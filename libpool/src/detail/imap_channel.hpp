// The untyped half of imap and imap_unordered: reads the input lazily, keeps a bounded number of
// chunks outstanding, and hands finished chunks to the consumer in input or completion order.
//
// Who does what:
//   consumer   (the thread calling next()) encodes the next chunks of input in its own thread,
//              as callers of map do, whenever the outstanding chunks fall to half the
//              read-ahead, and waits for the chunk it needs.
//   io thread  calls complete_chunk(): keeps the chunk's result bytes (the ring is reused:
//              large ones stay in the buffer they were read into, which the io thread swaps
//              for a spare, as map's hand-over does; small ones are copied) and wakes the
//              consumer. Decoding happens in the consumer, off the io thread.
//   join()     calls read_rest() to read the input left, as Python's join waits for its task
//              handler to queue every imap input.
// Memory: a bounded number of chunks is outstanding (submitted and not yet handed to the
// consumer), whatever the length of the input, so an infinite input runs in constant memory.
// The bound is 4 chunks per worker; when chunks prove quick and small it grows, up to 64 per
// worker, to about 1 ms of work and 1 MiB of payload per worker, so that tiny tasks do not
// pay a thread wake-up each (detail/flow_control.hpp has the numbers and their reasons).
#pragma once

#include "engine.hpp"

#include "flow_control.hpp"
#include <procpool/detail/imap_stream.hpp>
#include <procpool/detail/kept_results.hpp>
#include <procpool/detail/result_sink.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace procpool::detail {

class imap_channel final : public imap_stream,
                           public result_sink,
                           public stream_input,
                           public std::enable_shared_from_this<imap_channel> {
public:
    /// `limits`: what each chunk of it asks (engine::limits_of).
    imap_channel(std::weak_ptr<engine> core, std::unique_ptr<imap_source> source, bool ordered,
                 std::size_t processes, chunk_limits limits);

    /// Registers with the pool and submits the first chunks. Throws state_error (or the
    /// pool's failure) when the pool does not accept work.
    void start();

    std::optional<imap_chunk> next(const std::chrono::steady_clock::time_point* deadline) override;
    void abandon() noexcept override;
    void cancel() noexcept override;

    void complete_chunk(std::size_t index, const chunk_outcome& outcome) noexcept override;
    void read_rest() noexcept override;

private:
    /// Reads and submits chunks until `limit` are outstanding (or the input ends); 0: the
    /// read-ahead bound.
    void top_up(std::size_t limit) noexcept;
    /// The read-ahead bound now. Callers hold mutex_.
    std::size_t read_ahead() const noexcept;
    /// Callers hold input_mutex_.
    void end_input(std::exception_ptr error) noexcept;

    const std::weak_ptr<engine> engine_;
    const chunk_limits limits_;
    const bool ordered_;
    const std::size_t processes_;

    // Guarded by input_mutex_ (the thread reading input).
    std::mutex input_mutex_;
    std::unique_ptr<imap_source> source_;
    std::uint64_t stream_id_ = 0;
    bool stream_open_ = false;

    // Guarded by mutex_ (shared with the io thread).
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::size_t submitted_ = 0; ///< chunks submitted; the next chunk's index
    std::size_t delivered_ = 0; ///< chunks handed to the consumer
    std::size_t arrivals_ = 0;  ///< chunks finished (the key of imap_unordered's queue)
    bool input_done_ = false;
    bool abandoned_ = false;
    bool cancelled_ = false;                      // cancel(): next() throws cancelled_error
    std::exception_ptr input_error_;              ///< delivered after every submitted chunk
    moving_mean exec_ns_;                         ///< of finished chunks' run time
    moving_mean result_bytes_;                    ///< of finished chunks' results
    moving_mean frame_bytes_;                     ///< of submitted chunks' input frames
    std::map<std::size_t, imap_chunk> completed_; ///< by index (imap) or arrival (unordered)
};

} // namespace procpool::detail
