// The result of a job of many chunks (map, map_async, starmap...), decoded with the help of
// the threads waiting for it.
#pragma once

#include <procpool/detail/codec.hpp>
#include <procpool/detail/decode_value.hpp>
#include <procpool/detail/kept_results.hpp>
#include <procpool/detail/result_sink.hpp>
#include <procpool/detail/result_state.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace procpool::detail {

/// Many chunks, one vector of results in input order (map, map_async, starmap...). Completes
/// with the first error to arrive, as Python's map does; later chunks are then ignored.
///
/// A thread waiting for it helps decode. Decoding large results fills fresh memory, the
/// costliest step of moving them (a page fault per 4 KiB: docs/performance.md, fresh vs warm
/// memory). So while a waiter (a blocking map, or get()) sleeps, the io thread hands it a large
/// chunk's results and goes on moving frames; when the waiter is busy, the io thread decodes
/// the next chunk itself. The fresh memory is then filled by two threads. The results are
/// handed in the buffer the transport read them into, which the io thread swaps for one of the
/// pool's spare buffers; where the transport does not allow that, they are copied into the
/// spare (warm memory, cheap beside decoding). With a callback set, every chunk is decoded on
/// the io thread, where callbacks run, as in Python.
///
/// A large std::vector<char> result is read straight into the vector that becomes it
/// (chunk_outcome::bulk), which leaves nothing to decode, but its pages to fault in. So a
/// waiter with no deadline readies buffers of that size for the next ones meanwhile
/// (spare_buffers::ready_bulk), woken for it at each such result, at most one per chunk still
/// to come.
template <class R>
class vector_result final : public result_state<std::vector<R>> {
public:
    vector_result(std::size_t items, std::size_t chunksize)
        : values_(items)
        , chunksize_(chunksize)
        , chunks_(chunksize == 0 ? 0 : (items + chunksize - 1) / chunksize)
        , remaining_(chunks_) {}

    /// Completes an empty job at once (callbacks set first; no chunk will ever arrive). Reads
    /// only what the constructor set: remaining_ belongs to the io thread once chunks are
    /// submitted (ThreadSanitizer's finding: two threads could both finish the job).
    void finish_if_empty() noexcept {
        if (chunks_ == 0 && !this->ready())
            this->finish_value(std::move(values_));
    }

    /// Chunks completed so far, failed or not, including those that came after the result was
    /// decided.
    std::size_t completed() const noexcept { return completed_.load(); }

    /// Blocks until at least `n` chunks have completed, helping decode. Every submitted chunk
    /// completes (the pool fails the chunks it cannot run), so this returns once n were
    /// submitted.
    void wait_completed(std::size_t n) {
        help_until([&] { return completed_.load() >= n; }, true,
                   std::chrono::steady_clock::time_point::max());
    }

    void complete_chunk(std::size_t chunk, const chunk_outcome& outcome) noexcept override {
        note_bulk(outcome);
        if (hand_over(chunk, outcome))
            return;
        deliver(chunk, outcome.ok_count, outcome.results, outcome.bulk, outcome.error);
        count_completed();
    }

protected:
    /// Its waiters sleep on progress_: a cancel() from another thread must wake them too.
    void published() noexcept override { finished(); }

    bool wait_until(std::chrono::steady_clock::time_point deadline) const override {
        // Waiting is const to callers; helping completes the state, which is synchronised.
        auto* self = const_cast<vector_result*>(this);
        return self->help_until([self] { return self->ready(); }, false, deadline);
    }

private:
    /// Results of this size or more are worth handing to a waiter: decoding them takes far
    /// longer than waking it (docs/performance.md: waking a thread).
    static constexpr std::size_t hand_over_bytes = std::size_t{256} << 10;

    /// A chunk's results, kept for a waiter to decode.
    struct handed {
        std::size_t chunk;
        std::uint64_t ok_count;
        kept_results results;
    };

    /// Called by the io thread: hands the chunk to an idle waiter if there is one and a spare
    /// buffer can hold it. True when it did. Never for bool results: std::vector<bool> packs
    /// them, so two chunks decoded on two threads could write the same word.
    bool hand_over(std::size_t chunk, const chunk_outcome& outcome) noexcept {
        if constexpr (std::is_same_v<R, bool>)
            return false;
        if (outcome.spares == nullptr || outcome.error || outcome.ok_count == 0 ||
            outcome.results.size() < hand_over_bytes || this->has_callbacks())
            return false;
        // relaxed: a hint, checked again under the mutex.
        if (idle_helpers_.load(std::memory_order_relaxed) == 0)
            return false;
        {
            // Chosen and handed under the mutex, so no waiter leaves between the two; the
            // waiters are idle meanwhile anyway.
            std::lock_guard lock(progress_mutex_);
            if (idle_helpers_.load(std::memory_order_relaxed) <= handed_.size())
                return false;
            try {
                handed_.emplace_back(); // its place first: lend() may take the results' storage
            } catch (...) {
                return false; // decoded here, from outcome.results
            }
            std::optional<kept_results> kept = kept_results::lend(outcome);
            if (!kept) {
                handed_.pop_back();
                return false; // no spare large enough: decoded here
            }
            handed_.back() = {chunk, outcome.ok_count, std::move(*kept)};
            handed_any_.store(true, std::memory_order_relaxed);
        }
        progress_.notify_one();
        return true;
    }

    /// Called by the io thread: a chunk whose last result came apart, large (chunk_outcome::bulk),
    /// asks an idle waiter to ready a buffer for the next (see the class comment).
    void note_bulk(const chunk_outcome& outcome) noexcept {
        if (outcome.bulk == nullptr || outcome.spares == nullptr ||
            outcome.bulk->size() < spare_buffers::min_bulk_bytes)
            return;
        // relaxed: a hint for the size of the next buffers, read under the mutex below.
        bulk_bytes_.store(outcome.bulk->size(), std::memory_order_relaxed);
        {
            std::lock_guard lock(progress_mutex_);
            if (!bulk_buffers_)
                bulk_buffers_ = outcome.spares;
            if (idle_helpers_.load(std::memory_order_relaxed) == 0)
                return;
        }
        progress_.notify_one();
    }

    /// Blocks until `done()` or `deadline`, decoding what the io thread hands over meanwhile;
    /// never leaves work handed to it. Returns done(). `counting`: done() is about the count of
    /// completed chunks, so every completion must wake this thread; otherwise it is about the
    /// whole result, and only its end (finished()), a hand-over or a large bulk does.
    template <class Done>
    bool help_until(Done done, bool counting, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(progress_mutex_);
        // seq_cst, with the one in count_completed: either this thread sees the count, or the
        // completing thread sees the waiter and notifies under the mutex.
        if (counting)
            count_waiters_.fetch_add(1);
        bool timed_out = false;
        for (;;) {
            if (!handed_.empty()) {
                handed work = std::move(handed_.front());
                handed_.pop_front();
                lock.unlock();
                deliver(work.chunk, work.ok_count, work.results.bytes(), work.results.bulk(),
                        nullptr);
                work = {}; // its buffer back to the spares
                count_completed();
                lock.lock();
                continue;
            }
            if (timed_out || done())
                break;
            if (bulk_buffers_ && deadline == std::chrono::steady_clock::time_point::max()) {
                // Readies one buffer for a bulk to come, at most one per chunk not yet
                // completed; the mutex is not held meanwhile (the io thread may hand over).
                const std::shared_ptr<spare_buffers> bulk_buffers = bulk_buffers_;
                const std::size_t bytes = bulk_bytes_.load(std::memory_order_relaxed);
                const std::size_t left = chunks_ - std::min(chunks_, completed_.load());
                lock.unlock();
                const bool readied = bulk_buffers->ready_bulk(bytes, left);
                lock.lock();
                // Look again before sleeping: what came while the mutex was not held (the end
                // of the result, a count) notified nobody. Sleeping on it lost that wake-up: a
                // payload run of 1 MiB results hung about once in 80 (procpool-perf).
                if (readied || done())
                    continue;
            }
            idle_helpers_.fetch_add(1, std::memory_order_relaxed);
            if (deadline == std::chrono::steady_clock::time_point::max())
                progress_.wait(lock);
            else
                timed_out = progress_.wait_until(lock, deadline) == std::cv_status::timeout;
            idle_helpers_.fetch_sub(1, std::memory_order_relaxed);
        }
        if (counting)
            count_waiters_.fetch_sub(1);
        return done();
    }

    /// Wakes whoever waits for a count of completed chunks. Those waiting for the whole result
    /// are woken once, by finished(), not at every chunk.
    void count_completed() noexcept {
        completed_.fetch_add(1);
        if (count_waiters_.load() > 0) {
            std::lock_guard lock(progress_mutex_);
            progress_.notify_all();
        }
    }

    /// The result is decided (published(), on whichever thread completed it): wakes every
    /// waiter.
    void finished() noexcept {
        std::lock_guard lock(progress_mutex_);
        progress_.notify_all();
    }

    /// Decodes a chunk's results (and `bulk`: chunk_outcome::bulk) into place, then completes
    /// the result when it was the last chunk or failed. Several threads may deliver different
    /// chunks at once.
    void deliver(std::size_t chunk, std::uint64_t ok_count, std::span<const char> results,
                 std::vector<char>* bulk, const std::exception_ptr& error) noexcept {
        if (this->ready())
            return;
        std::exception_ptr failure = error;
        if (ok_count > 0) {
            try {
                decode_chunk(chunk * chunksize_, ok_count, results, bulk);
            } catch (...) {
                failure = std::current_exception();
            }
        }
        // Only after a hand-over can two threads deliver at once; until then the io thread,
        // the only one, skips the lock (it set handed_any_ itself, before its first).
        std::unique_lock<std::mutex> lock;
        if (handed_any_.load(std::memory_order_relaxed)) {
            lock = std::unique_lock(decide_mutex_);
            if (this->ready())
                return;
        }
        if (failure)
            this->finish_error(failure);
        else if (--remaining_ == 0)
            this->finish_value(std::move(values_)); // published() wakes the waiters
    }

    /// Decodes `count` results into values_ from index `first`.
    void decode_chunk(std::size_t first, std::uint64_t count, std::span<const char> results,
                      std::vector<char>* bulk) {
        if (first > values_.size() || count > values_.size() - first)
            throw std::out_of_range("procpool: a chunk has more results than the map has items");
        if constexpr (is_bytes<R>::value) { // a plain value, encoded as its bytes
            // The results are the values' bytes, side by side: one copy.
            if (count > results.size() / sizeof(R))
                throw_decode_error("input stream error: the value is truncated");
            std::memcpy(values_.data() + first, results.data(), count * sizeof(R));
        } else {
            value_decoder<R> decoder(results, bulk);
            for (std::uint64_t i = 0; i < count; ++i)
                values_[first + i] = decode_value<R>(decoder);
        }
    }

    std::vector<R> values_;
    std::size_t chunksize_;
    const std::size_t chunks_;
    std::mutex decide_mutex_; // one thread at a time decides the outcome, once chunks are handed
    std::size_t remaining_;   // chunks not yet delivered, under decide_mutex_ once handed_any_
    std::atomic<bool> handed_any_{false}; // written by the io thread, under progress_mutex_
    std::atomic<std::size_t> completed_{0};

    // Waiters and the work handed to them, under progress_mutex_ (the atomics are also read
    // without it, as hints or for count_completed's handshake).
    std::mutex progress_mutex_;
    std::condition_variable progress_;
    std::atomic<int> count_waiters_{0}; // threads waiting for a count (wait_completed)
    std::atomic<std::size_t> idle_helpers_{0};
    std::deque<handed> handed_;
    // Where to ready buffers for bulks (see note_bulk), once a large one came; and its size.
    std::shared_ptr<spare_buffers> bulk_buffers_;
    std::atomic<std::size_t> bulk_bytes_{0};
};

} // namespace procpool::detail
