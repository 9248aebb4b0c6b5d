// See detail/imap_channel.hpp.
#include "imap_channel.hpp"
#include <procpool/errors.hpp>

#include <algorithm>
#include <limits>
#include <utility>

namespace procpool::detail {

namespace {
/// read_rest() submits this many chunks at a time.
constexpr std::size_t rest_batch = 64;
} // namespace

imap_channel::imap_channel(std::weak_ptr<engine> core, std::unique_ptr<imap_source> source,
                           bool ordered, std::size_t processes, chunk_limits limits)
    : engine_(std::move(core))
    , limits_(limits)
    , ordered_(ordered)
    , processes_(processes == 0 ? 1 : processes)
    , source_(std::move(source)) {}

std::size_t imap_channel::read_ahead() const noexcept {
    constexpr std::size_t lo = flow::min_chunks_per_worker;
    constexpr std::size_t hi = flow::max_chunks_per_worker;
    std::size_t per_worker = flow::chunks_per_worker(exec_ns_, lo, hi);
    if (exec_ns_.known()) {
        // The payload bounds it too: the larger of a frame and a result, per chunk.
        const double bytes = std::max({result_bytes_.value(), frame_bytes_.value(), 1.0});
        per_worker =
            std::min(per_worker, flow::clamped_count(flow::bytes_per_worker / bytes, lo, hi));
    }
    return per_worker * processes_;
}

void imap_channel::start() {
    {
        std::lock_guard in(input_mutex_);
        auto core = engine_.lock();
        if (!core)
            throw state_error("procpool: pool not running");
        stream_id_ = core->open_stream(weak_from_this());
        stream_open_ = true;
    }
    top_up(0);
}

void imap_channel::top_up(std::size_t limit) noexcept {
    std::lock_guard in(input_mutex_);
    if (!source_)
        return; // the input is done, or the consumer is gone
    // submitted_ changes only here, under input_mutex_, so this read stays current.
    std::size_t next_index;
    std::size_t outstanding;
    {
        std::lock_guard lock(mutex_);
        next_index = submitted_;
        outstanding = submitted_ - delivered_;
        if (limit == 0)
            limit = read_ahead();
    }
    // Top up in batches, once half the read-ahead is used: one submit per several chunks.
    if (limit != std::numeric_limits<std::size_t>::max() && outstanding > limit / 2)
        return;
    bool end = false;
    std::exception_ptr error;
    const std::shared_ptr<result_sink> self = shared_from_this();
    const std::shared_ptr<engine> core = engine_.lock();
    while (!end && outstanding < limit) {
        std::vector<outgoing_chunk> batch;
        std::size_t frame_bytes = 0;
        while (outstanding + batch.size() < limit && batch.size() < rest_batch) {
            encoded_chunk chunk = source_->next_chunk(core ? core->spares() : nullptr);
            if (!chunk.frame.empty()) {
                frame_bytes += chunk.frame.size();
                batch.push_back({std::move(chunk.frame), self, next_index + batch.size(), limits_});
            }
            if (chunk.end) {
                end = true;
                error = chunk.error;
                break;
            }
        }
        if (batch.empty())
            break;
        const std::size_t count = batch.size();
        try {
            if (!core)
                throw state_error("procpool: pool not running");
            core->submit(std::move(batch), true);
        } catch (...) {
            // Nothing of this batch was queued: the error takes the place of its first item.
            end = true;
            error = std::current_exception();
            break;
        }
        {
            std::lock_guard lock(mutex_);
            submitted_ += count;
            frame_bytes_.add(static_cast<double>(frame_bytes) / static_cast<double>(count));
        }
        next_index += count;
        outstanding += count;
    }
    if (end)
        end_input(error);
}

void imap_channel::end_input(std::exception_ptr error) noexcept {
    source_.reset(); // releases the user's range now
    {
        std::lock_guard lock(mutex_);
        input_done_ = true;
        input_error_ = std::move(error);
    }
    arrived_.notify_all();
    if (stream_open_) {
        stream_open_ = false;
        if (auto core = engine_.lock())
            core->close_stream(stream_id_);
    }
}

std::optional<imap_chunk>
imap_channel::next(const std::chrono::steady_clock::time_point* deadline) {
    top_up(0);
    std::unique_lock lock(mutex_);
    for (;;) {
        if (cancelled_)
            throw cancelled_error("procpool: the imap was cancelled");
        auto it = ordered_ ? completed_.find(delivered_) : completed_.begin();
        if (it != completed_.end()) {
            imap_chunk chunk = std::move(it->second);
            completed_.erase(it);
            ++delivered_;
            return chunk;
        }
        if (input_done_ && delivered_ == submitted_) {
            if (!input_error_)
                return std::nullopt;
            imap_chunk chunk;
            chunk.error = std::exchange(input_error_, nullptr);
            return chunk;
        }
        const auto ready = [this] {
            const bool any = ordered_ ? completed_.count(delivered_) != 0 : !completed_.empty();
            return any || (input_done_ && delivered_ == submitted_) || cancelled_;
        };
        if (deadline == nullptr)
            arrived_.wait(lock, ready);
        else if (!arrived_.wait_until(lock, *deadline, ready))
            throw timeout_error("procpool: imap_result::next: no result within the timeout");
    }
}

void imap_channel::abandon() noexcept {
    {
        std::lock_guard lock(mutex_);
        abandoned_ = true;
        completed_.clear();
    }
    std::lock_guard in(input_mutex_);
    end_input(nullptr);
}

void imap_channel::cancel() noexcept {
    // The workers first: the pool kills those running its chunks as soon as it can.
    if (auto core = engine_.lock())
        core->cancel_chunks(shared_from_this());
    {
        std::lock_guard lock(mutex_);
        cancelled_ = true;
    }
    arrived_.notify_all(); // a consumer waiting in next() throws cancelled_error
    abandon();
}

void imap_channel::complete_chunk(std::size_t index, const chunk_outcome& outcome) noexcept {
    // Kept before taking the lock, which the consumer waits on: a chunk of an abandoned imap
    // is kept for nothing, a rare waste. Large results stay in the buffer they were read into
    // (kept_results::lend); small ones are copied.
    imap_chunk chunk;
    chunk.ok_count = outcome.ok_count;
    chunk.error = outcome.error;
    const std::size_t result_bytes =
        outcome.results.size() + (outcome.bulk != nullptr ? outcome.bulk->size() : 0);
    std::optional<kept_results> lent;
    if (outcome.results.size() >= frame_spares::min_bytes)
        lent = kept_results::lend(outcome);
    try {
        chunk.results = lent ? std::move(*lent) : kept_results(outcome);
    } catch (...) {
        chunk.ok_count = 0;
        chunk.error = std::current_exception(); // std::bad_alloc, at this chunk's place
    }
    {
        std::lock_guard lock(mutex_);
        if (abandoned_)
            return;
        if (outcome.exec_ns != 0) {
            exec_ns_.add(static_cast<double>(outcome.exec_ns));
            result_bytes_.add(static_cast<double>(result_bytes));
        }
        const std::size_t key = ordered_ ? index : arrivals_;
        ++arrivals_;
        completed_.insert_or_assign(key, std::move(chunk));
    }
    arrived_.notify_all();
}

void imap_channel::read_rest() noexcept {
    top_up(std::numeric_limits<std::size_t>::max());
}

} // namespace procpool::detail
