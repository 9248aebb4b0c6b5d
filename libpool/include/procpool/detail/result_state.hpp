// The parent's side of a submitted task: where the result thread delivers what a worker sent
// back, and where callers wait for it.
#pragma once

#include <procpool/detail/codec.hpp>
#include <procpool/detail/frame_spares.hpp>
#include <procpool/errors.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <variant>
#include <vector>

namespace procpool::detail {

/// What came back for one chunk (one task frame).
struct chunk_outcome {
    std::span<const char> results; ///< the ok_count results, encoded (codec.hpp)
    std::uint64_t ok_count = 0;    ///< items 0..ok_count-1 of the chunk succeeded
    std::exception_ptr error;      ///< set when item ok_count failed, or the chunk was lost
    std::uint64_t exec_ns = 0;     ///< the worker's time on the chunk (0 when lost)
    /// The pool's spare buffers, when a sink may keep `results` to decode them later on another
    /// thread (see vector_result); null otherwise.
    frame_spares* spares = nullptr;
    /// With `spares`: the buffer holding `results`, when a sink may take it by swapping in a
    /// spare (frame_reader::storage); null when it must copy them out instead.
    std::vector<char>* storage = nullptr;
    /// The last result's bytes, when they came apart from `results` (frame_reader::tail): the
    /// decoder reads them from here (codec.hpp's plain_reader), and a sink that keeps the
    /// results moves them along. Null when `results` hold everything.
    std::vector<char>* tail = nullptr;
};

/// A chunk's results kept past complete_chunk, for another thread to decode: in the buffer the
/// transport read them into, or a copy, and the tail that came apart, moved along. A buffer
/// lent by the pool's spares goes back to them when this is dropped. Move-only.
class kept_results {
public:
    kept_results() = default;
    /// Copies `outcome.results` into a buffer of its own (not a spare), and moves its tail
    /// along. May throw std::bad_alloc (the tail is then left where it was).
    explicit kept_results(const chunk_outcome& outcome)
        : buffer_(outcome.results.begin(), outcome.results.end())
        , size_(outcome.results.size()) {
        take_tail(outcome);
    }
    kept_results(kept_results&&) noexcept = default;
    kept_results& operator=(kept_results&& other) noexcept {
        give_back();
        buffer_ = std::move(other.buffer_);
        offset_ = other.offset_;
        size_ = other.size_;
        spares_ = std::move(other.spares_);
        tail_ = std::move(other.tail_);
        return *this;
    }
    ~kept_results() { give_back(); }

    /// Keeps `outcome.results` in a spare buffer: without a copy when the outcome offers its
    /// storage (the storage is swapped for a spare of the same room, which the transport reads
    /// on into), else copied into a spare. Called by the io thread, in complete_chunk. Nothing
    /// (and `outcome` untouched) when there are no spares or none large enough.
    static std::optional<kept_results> lend(const chunk_outcome& outcome) noexcept {
        if (outcome.spares == nullptr)
            return std::nullopt;
        kept_results kept;
        kept.size_ = outcome.results.size();
        if (std::vector<char>* storage = outcome.storage) {
            kept.offset_ = static_cast<std::size_t>(outcome.results.data() - storage->data());
            kept.buffer_ = outcome.spares->take_room(kept.offset_ + kept.size_);
            if (kept.buffer_.empty())
                return std::nullopt;
            storage->swap(kept.buffer_); // outcome.results now lies in kept.buffer_
        } else {
            kept.buffer_ = outcome.spares->take(kept.size_);
            if (kept.buffer_.capacity() < kept.size_)
                return std::nullopt;
            kept.buffer_.assign(outcome.results.begin(), outcome.results.end()); // no allocation
        }
        kept.spares_ = outcome.spares->shared_from_this();
        kept.take_tail(outcome);
        return kept;
    }

    std::span<const char> bytes() const noexcept {
        return std::span<const char>(buffer_).subspan(offset_, size_);
    }

    /// The tail that came apart, for the decoder (which may take it), or null.
    std::vector<char>* tail() noexcept { return tail_.empty() ? nullptr : &tail_; }

private:
    void take_tail(const chunk_outcome& outcome) noexcept {
        if (outcome.tail != nullptr)
            tail_ = std::move(*outcome.tail);
    }

    void give_back() noexcept {
        if (spares_)
            spares_->give(std::move(buffer_));
        spares_.reset();
    }

    std::vector<char> buffer_; // holds the results at [offset_, offset_ + size_)
    std::size_t offset_ = 0;
    std::size_t size_ = 0;
    std::shared_ptr<frame_spares> spares_; // where buffer_ goes back, or null
    std::vector<char> tail_;               // see chunk_outcome::tail
};

/// Receives the outcome of chunks. The pool core calls complete_chunk exactly once per chunk,
/// from one thread at a time (the result thread, or the thread ending the pool).
class result_sink {
public:
    virtual ~result_sink() = default;
    virtual void complete_chunk(std::size_t chunk, const chunk_outcome& outcome) noexcept = 0;
};

/// What a thread waiting for a result can ask of the pool that will complete it: to move its
/// frames itself while it waits, instead of sleeping until the io thread wakes it (pool_core).
class result_driver {
public:
    /// Moves frames until `done` is true, `deadline` passes, or a short spin ends, when `mine`
    /// is the only sink with work in the pool and nothing else needs the io thread. Returns
    /// `done`, false also when it did nothing: the caller then waits as usual.
    virtual bool drive(const result_sink& mine, const std::atomic<bool>& done,
                       std::chrono::steady_clock::time_point deadline) noexcept = 0;

protected:
    ~result_driver() = default;
};

/// Throws serialization_error for a result that could not be decoded.
[[noreturn]] void throw_decode_error(const char* what);

/// Reads one result value; a failure is rethrown by throw_decode_error.
template <class T, class Decoder>
T decode_value(Decoder& decoder) {
    T value; // through a local: std::vector<bool> has no element to load into
    try {
        decoder.read(value);
    } catch (const std::exception& e) {
        throw_decode_error(e.what());
    }
    return value;
}

/// A placeholder for "no callback".
struct no_callback {
    template <class... Ts>
    void operator()(const Ts&...) const noexcept {}
};

/// Waitable state holding a T (std::monostate for void) or an exception.
/// Thread-safe: any thread may wait; one thread completes it, once.
template <class T>
class result_state : public result_sink {
public:
    using stored_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

    template <class Callback, class ErrorCallback>
    void set_callbacks(Callback callback, ErrorCallback error_callback) {
        if constexpr (!std::is_same_v<Callback, no_callback>)
            callback_ = std::move(callback);
        if constexpr (!std::is_same_v<ErrorCallback, no_callback>)
            error_callback_ = std::move(error_callback);
    }

    bool ready() const noexcept {
        // acquire: pairs with the release in finish(); a true ready() makes value_/error_
        // visible without the mutex.
        return ready_.load(std::memory_order_acquire);
    }

    void wait() const {
        if (!ready())
            wait_until(std::chrono::steady_clock::time_point::max());
    }

    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
        if (ready())
            return true;
        using clock = std::chrono::steady_clock;
        // Beyond some 30 years: no deadline (and no overflow converting it).
        if (std::chrono::duration<double>(timeout).count() > 1e9)
            return wait_until(clock::time_point::max());
        return wait_until(clock::now() + std::chrono::duration_cast<clock::duration>(timeout));
    }

    bool successful() const {
        if (!ready())
            throw state_error("successful() called before the result is ready");
        return !error_;
    }

    /// The value (a copy), or the task's exception rethrown. Blocks until ready.
    stored_type get() const {
        wait();
        if (error_)
            std::rethrow_exception(error_);
        return *value_;
    }

    /// As get(), but moves the value out; for the pool's own one-shot calls.
    stored_type take() {
        wait();
        if (error_)
            std::rethrow_exception(error_);
        return std::move(*value_);
    }

protected:
    /// Blocks until ready() or `deadline` (time_point::max(): no deadline); returns ready().
    /// A result that can use a waiting thread overrides it.
    virtual bool wait_until(std::chrono::steady_clock::time_point deadline) const {
        std::unique_lock lock(mutex_);
        if (deadline == std::chrono::steady_clock::time_point::max()) {
            done_.wait(lock, [this] { return ready(); });
            return true;
        }
        return done_.wait_until(lock, deadline, [this] { return ready(); });
    }

    /// True once the result is complete (what ready() reads).
    const std::atomic<bool>& ready_flag() const noexcept { return ready_; }

    /// True when no callback is set: completing it may then happen on any thread.
    bool has_callbacks() const noexcept {
        return static_cast<bool>(callback_) || static_cast<bool>(error_callback_);
    }

    /// Completes with a value: runs the callback, then marks ready. A callback that throws
    /// turns the result into a failure carrying what it threw.
    void finish_value(stored_type value) noexcept {
        value_.emplace(std::move(value));
        if (callback_) {
            try {
                if constexpr (std::is_void_v<T>)
                    callback_();
                else
                    callback_(*value_);
            } catch (...) {
                error_ = std::current_exception();
            }
        }
        publish();
    }

    void finish_error(std::exception_ptr error) noexcept {
        error_ = std::move(error);
        if (error_callback_) {
            try {
                error_callback_(error_);
            } catch (...) {
                error_ = std::current_exception();
            }
        }
        publish();
    }

private:
    void publish() noexcept {
        {
            std::lock_guard lock(mutex_);
            // release: pairs with the acquire in ready().
            ready_.store(true, std::memory_order_release);
        }
        done_.notify_all();
    }

    template <class U>
    struct callback_of {
        using type = std::function<void(const U&)>;
    };
    template <class U>
    requires std::is_void_v<U>
    struct callback_of<U> {
        using type = std::function<void()>;
    };
    using callback_type = typename callback_of<T>::type;

    mutable std::mutex mutex_;
    mutable std::condition_variable done_;
    std::atomic<bool> ready_{false};
    std::optional<stored_type> value_;
    std::exception_ptr error_;
    callback_type callback_;
    std::function<void(std::exception_ptr)> error_callback_;
};

/// One task, one result (apply, apply_async). Without callbacks, a thread waiting for it may
/// move its frames itself (drive_with).
template <class R>
class single_result final : public result_state<R> {
public:
    /// Waiters ask `driver` to move frames while they wait. Only for a result without
    /// callbacks: those run on the io thread, whoever else waits.
    void drive_with(std::weak_ptr<result_driver> driver) noexcept { driver_ = std::move(driver); }

    void complete_chunk(std::size_t, const chunk_outcome& outcome) noexcept override {
        if (outcome.ok_count == 0) {
            this->finish_error(outcome.error ? outcome.error
                                             : std::make_exception_ptr(error("empty result")));
            return;
        }
        if constexpr (std::is_void_v<R>) {
            this->finish_value(std::monostate{});
        } else {
            try {
                value_decoder<R> decoder(outcome.results, outcome.tail);
                this->finish_value(decode_value<R>(decoder));
            } catch (...) {
                this->finish_error(std::current_exception());
            }
        }
    }

protected:
    bool wait_until(std::chrono::steady_clock::time_point deadline) const override {
        if (const std::shared_ptr<result_driver> driver = driver_.lock()) {
            if (driver->drive(*this, this->ready_flag(), deadline))
                return true;
            if (std::chrono::steady_clock::now() >= deadline)
                return this->ready();
        }
        return result_state<R>::wait_until(deadline);
    }

private:
    std::weak_ptr<result_driver> driver_;
};

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
/// (chunk_outcome::tail), which leaves nothing to decode, but its pages to fault in. So a
/// waiter with no deadline readies buffers of that size for the next ones meanwhile
/// (frame_spares::ready_tail), woken for it at each such result, at most one per chunk still
/// to come.
template <class R>
class vector_result final : public result_state<std::vector<R>> {
public:
    vector_result(std::size_t items, std::size_t chunksize)
        : values_(items)
        , chunksize_(chunksize)
        , chunks_(chunksize == 0 ? 0 : (items + chunksize - 1) / chunksize)
        , remaining_(chunks_) {}

    /// Completes an empty job at once (callbacks set first; no chunk will ever arrive).
    void finish_if_empty() noexcept {
        if (remaining_ == 0 && !this->ready())
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
        note_tail(outcome);
        if (hand_over(chunk, outcome))
            return;
        deliver(chunk, outcome.ok_count, outcome.results, outcome.tail, outcome.error);
        count_completed();
    }

protected:
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

    /// Called by the io thread: a chunk whose last result came apart, large (chunk_outcome::tail),
    /// asks an idle waiter to ready a buffer for the next (see the class comment).
    void note_tail(const chunk_outcome& outcome) noexcept {
        if (outcome.tail == nullptr || outcome.spares == nullptr ||
            outcome.tail->size() < frame_spares::min_tail_bytes)
            return;
        // relaxed: a hint for the size of the next buffers, read under the mutex below.
        tail_bytes_.store(outcome.tail->size(), std::memory_order_relaxed);
        {
            std::lock_guard lock(progress_mutex_);
            if (!tails_)
                tails_ = outcome.spares->shared_from_this();
            if (idle_helpers_.load(std::memory_order_relaxed) == 0)
                return;
        }
        progress_.notify_one();
    }

    /// Blocks until `done()` or `deadline`, decoding what the io thread hands over meanwhile;
    /// never leaves work handed to it. Returns done(). `counting`: done() is about the count of
    /// completed chunks, so every completion must wake this thread; otherwise it is about the
    /// whole result, and only its end (finished()), a hand-over or a large tail does.
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
                deliver(work.chunk, work.ok_count, work.results.bytes(), work.results.tail(),
                        nullptr);
                work = {}; // its buffer back to the spares
                count_completed();
                lock.lock();
                continue;
            }
            if (timed_out || done())
                break;
            if (tails_ && deadline == std::chrono::steady_clock::time_point::max()) {
                // Readies one buffer for a tail to come, at most one per chunk not yet
                // completed; the mutex is not held meanwhile (the io thread may hand over).
                const std::shared_ptr<frame_spares> tails = tails_;
                const std::size_t bytes = tail_bytes_.load(std::memory_order_relaxed);
                const std::size_t left = chunks_ - std::min(chunks_, completed_.load());
                lock.unlock();
                const bool readied = tails->ready_tail(bytes, left);
                lock.lock();
                if (readied)
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

    /// The result is decided: wakes every waiter.
    void finished() noexcept {
        std::lock_guard lock(progress_mutex_);
        progress_.notify_all();
    }

    /// Decodes a chunk's results (and `tail`: chunk_outcome::tail) into place, then completes
    /// the result when it was the last chunk or failed. Several threads may deliver different
    /// chunks at once.
    void deliver(std::size_t chunk, std::uint64_t ok_count, std::span<const char> results,
                 std::vector<char>* tail, const std::exception_ptr& error) noexcept {
        if (this->ready())
            return;
        std::exception_ptr failure = error;
        if (ok_count > 0) {
            try {
                decode_chunk(chunk * chunksize_, ok_count, results, tail);
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
            this->finish_value(std::move(values_));
        else
            return;
        finished();
    }

    /// Decodes `count` results into values_ from index `first`.
    void decode_chunk(std::size_t first, std::uint64_t count, std::span<const char> results,
                      std::vector<char>* tail) {
        if (first > values_.size() || count > values_.size() - first)
            throw std::out_of_range("procpool: a chunk has more results than the map has items");
        if constexpr (is_bytes<R>::value) { // a plain value, encoded as its bytes
            // The results are the values' bytes, side by side: one copy.
            if (count > results.size() / sizeof(R))
                throw_decode_error("input stream error: the value is truncated");
            std::memcpy(values_.data() + first, results.data(), count * sizeof(R));
        } else {
            value_decoder<R> decoder(results, tail);
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
    // Where to ready buffers for tails (see note_tail), once a large one came; and its size.
    std::shared_ptr<frame_spares> tails_;
    std::atomic<std::size_t> tail_bytes_{0};
};

} // namespace procpool::detail
