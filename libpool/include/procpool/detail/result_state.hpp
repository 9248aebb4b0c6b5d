// The parent's side of a submitted task: where the result thread delivers what a worker sent
// back, and where callers wait for it.
#pragma once

#include <procpool/detail/codec.hpp>
#include <procpool/errors.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
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
};

/// Receives the outcome of chunks. The pool core calls complete_chunk exactly once per chunk,
/// from one thread at a time (the result thread, or the thread ending the pool).
class result_sink {
public:
    virtual ~result_sink() = default;
    virtual void complete_chunk(std::size_t chunk, const chunk_outcome& outcome) noexcept = 0;
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
        std::unique_lock lock(mutex_);
        done_.wait(lock, [this] { return ready(); });
    }

    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
        std::unique_lock lock(mutex_);
        return done_.wait_for(lock, timeout, [this] { return ready(); });
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

/// One task, one result (apply, apply_async).
template <class R>
class single_result final : public result_state<R> {
public:
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
                value_decoder<R> decoder(outcome.results);
                this->finish_value(decode_value<R>(decoder));
            } catch (...) {
                this->finish_error(std::current_exception());
            }
        }
    }
};

/// Many chunks, one vector of results in input order (map, map_async, starmap...). Completes
/// with the first error to arrive, as Python's map does; later chunks are then ignored.
template <class R>
class vector_result final : public result_state<std::vector<R>> {
public:
    vector_result(std::size_t items, std::size_t chunksize)
        : values_(items)
        , chunksize_(chunksize)
        , remaining_(chunksize == 0 ? 0 : (items + chunksize - 1) / chunksize) {}

    /// Completes an empty job at once (callbacks set first; no chunk will ever arrive).
    void finish_if_empty() noexcept {
        if (remaining_ == 0 && !this->ready())
            this->finish_value(std::move(values_));
    }

    /// Chunks completed so far, failed or not, including those that came after the result was
    /// decided.
    std::size_t completed() const noexcept { return completed_.load(); }

    /// Blocks until at least `n` chunks have completed. Every submitted chunk completes (the
    /// pool fails the chunks it cannot run), so this returns once n were submitted.
    void wait_completed(std::size_t n) {
        std::unique_lock lock(progress_mutex_);
        // seq_cst, with the one in complete_chunk: either this sees the count, or the
        // completing thread sees the waiter and notifies under the mutex.
        waiting_.store(true);
        progress_.wait(lock, [&] { return completed_.load() >= n; });
        waiting_.store(false);
    }

    void complete_chunk(std::size_t chunk, const chunk_outcome& outcome) noexcept override {
        deliver(chunk, outcome);
        completed_.fetch_add(1);
        if (waiting_.load()) {
            std::lock_guard lock(progress_mutex_);
            progress_.notify_all();
        }
    }

private:
    void deliver(std::size_t chunk, const chunk_outcome& outcome) noexcept {
        if (this->ready())
            return;
        if (outcome.ok_count > 0) {
            try {
                value_decoder<R> decoder(outcome.results);
                const std::size_t first = chunk * chunksize_;
                for (std::uint64_t i = 0; i < outcome.ok_count; ++i)
                    values_.at(first + i) = decode_value<R>(decoder);
            } catch (...) {
                this->finish_error(std::current_exception());
                return;
            }
        }
        if (outcome.error) {
            this->finish_error(outcome.error);
            return;
        }
        if (--remaining_ == 0)
            this->finish_value(std::move(values_));
    }

    std::vector<R> values_;
    std::size_t chunksize_;
    std::size_t remaining_;
    std::atomic<std::size_t> completed_{0};
    std::atomic<bool> waiting_{false};
    std::mutex progress_mutex_;
    std::condition_variable progress_;
};

} // namespace procpool::detail
