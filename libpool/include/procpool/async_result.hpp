// procpool::async_result: the handle of a task submitted without waiting (Python: AsyncResult).
#pragma once

#include <procpool/detail/result_state.hpp>
#include <procpool/errors.hpp>

#include <chrono>
#include <memory>
#include <utility>

namespace procpool {

class pool;

/// The pending result of apply_async, map_async or starmap_async.
///
/// Copies share one result. Every member may be called from any thread, concurrently. A result
/// whose pool was terminated fails with state_error; one whose worker died fails with
/// worker_lost_error: no get() waits forever on a lost cause.
template <class T>
class async_result {
public:
    /// An empty handle: every call but valid() throws state_error.
    async_result() = default;

    /// The task's value. Blocks until the task is done; rethrows the task's exception (the same
    /// type for standard exceptions, remote_error otherwise) or the pool's (worker_lost_error,
    /// state_error, serialization_error). async_result<void>::get() returns nothing.
    T get() {
        if constexpr (std::is_void_v<T>)
            static_cast<void>(state().get());
        else
            return state().get();
    }

    /// As get(), but throws timeout_error when the task is not done within `timeout`; the result
    /// stays usable.
    template <class Rep, class Period>
    T get(std::chrono::duration<Rep, Period> timeout) {
        if (!wait(timeout))
            throw timeout_error("async_result::get: the task did not finish within the timeout");
        return get();
    }

    /// Blocks until the task is done. Does not throw for the task's own failure.
    void wait() const { state().wait(); }

    /// Blocks until the task is done or `timeout` passes; true when done.
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) const {
        return state().wait_for(timeout);
    }

    /// True when the task is done (successfully or not). Never blocks.
    bool ready() const { return state().ready(); }

    /// True when the task is done and did not fail. Throws state_error before ready().
    bool successful() const { return state().successful(); }

    /// Cancels the task (a map_async's or starmap_async's: all its chunks). One not yet started
    /// never runs; one running has its worker killed and replaced. get() then throws
    /// cancelled_error, which the error callback gets too, run here in the calling thread.
    /// True when the result is now cancelled; false when it had finished (or was finishing).
    /// Does not block on workers. Throws state_error for an empty handle.
    bool cancel() { return state().cancel(state_); }

    /// True when this handle refers to a submitted task.
    bool valid() const noexcept { return state_ != nullptr; }

private:
    friend class pool;
    explicit async_result(std::shared_ptr<detail::result_state<T>> state)
        : state_(std::move(state)) {}

    detail::result_state<T>& state() const {
        if (!state_)
            throw state_error("async_result: this handle refers to no task");
        return *state_;
    }

    /// Moves the value out (the pool's blocking calls use it to avoid a copy).
    T take() {
        if constexpr (std::is_void_v<T>)
            static_cast<void>(state().take());
        else
            return state().take();
    }

    std::shared_ptr<detail::result_state<T>> state_;
};

} // namespace procpool
