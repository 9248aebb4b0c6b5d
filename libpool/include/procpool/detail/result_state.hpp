// The parent's side of a submitted task: where the result thread delivers what a worker sent
// back, and where callers wait for it. The shapes of result are apart: single_result.hpp
// (apply), vector_result.hpp (map); imap's is the library's imap_channel (imap_stream.hpp).
#pragma once

#include <procpool/detail/result_sink.hpp>
#include <procpool/errors.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace procpool::detail {

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

    /// Where cancel() sends its request: the pool's engine.
    void cancel_with(std::weak_ptr<chunk_canceller> canceller) noexcept {
        canceller_ = std::move(canceller);
    }

    /// Completes the result with cancelled_error, unless it is complete already (or being
    /// completed); then asks the pool to stop its chunks. `self` is this state, kept alive
    /// until the pool has done so. The error callback runs here, in the calling thread. True
    /// when the result is now cancelled.
    bool cancel(std::shared_ptr<result_sink> self) {
        // Made before the claim: once claimed, nothing may keep the result from completing.
        std::exception_ptr error = std::make_exception_ptr(
            cancelled_error("procpool: the task was cancelled before it finished"));
        if (!claim())
            return false;
        if (auto canceller = canceller_.lock())
            canceller->cancel_chunks(std::move(self));
        complete_error(std::move(error));
        return true;
    }

    bool ready() const noexcept {
        // acquire: pairs with the release in finish(); a true ready() makes value_/error_
        // visible without the mutex.
        return ready_.load(std::memory_order_acquire);
    }

    /// Throws state_error in a forked child when the result is not ready: the pool that would
    /// complete it is the parent's.
    void wait() const {
        if (!ready()) {
            require_owner();
            wait_until(std::chrono::steady_clock::time_point::max());
        }
    }

    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
        if (ready())
            return true;
        require_owner();
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

    /// Called once the result is ready, on the thread that completed it (the io thread, or
    /// one calling cancel()): a result whose waiters sleep elsewhere wakes them here.
    virtual void published() noexcept {}

    /// True once the result is complete (what ready() reads).
    const std::atomic<bool>& ready_flag() const noexcept { return ready_; }

    /// True when no callback is set: completing it may then happen on any thread.
    bool has_callbacks() const noexcept {
        return static_cast<bool>(callback_) || static_cast<bool>(error_callback_);
    }

    /// Completes with a value: runs the callback, then marks ready. A callback that throws
    /// turns the result into a failure carrying what it threw. Does nothing when the result was
    /// completed (cancelled) before.
    void finish_value(stored_type value) noexcept {
        if (!claim())
            return;
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
        if (claim())
            complete_error(std::move(error));
    }

private:
    /// True for the one caller that may complete the result (the first).
    bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

    void complete_error(std::exception_ptr error) noexcept {
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

    void require_owner() const {
        if (fork_generation() != born_)
            throw state_error("procpool: this result belongs to a pool of the process this one "
                              "was forked from: it can never complete here");
    }

    void publish() noexcept {
        {
            std::lock_guard lock(mutex_);
            // release: pairs with the acquire in ready().
            ready_.store(true, std::memory_order_release);
        }
        done_.notify_all();
        published();
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
    std::atomic<bool> claimed_{false}; // see claim()
    std::weak_ptr<chunk_canceller> canceller_;
    const unsigned born_ = fork_generation(); // see require_owner
    std::optional<stored_type> value_;
    std::exception_ptr error_;
    callback_type callback_;
    std::function<void(std::exception_ptr)> error_callback_;
};

} // namespace procpool::detail
