// procpool::pool: Python's multiprocessing.Pool for C++.
#pragma once

#include <procpool/export.hpp>

#include <procpool/async_result.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/result_sink.hpp>
#include <procpool/detail/result_state.hpp>
#include <procpool/detail/task.hpp>
#include <procpool/errors.hpp>
#include <procpool/imap_result.hpp>
#include <procpool/initializer.hpp>
#include <procpool/pool_options.hpp>

#include <concepts>
#include <cstddef>
#include <memory>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <vector>

namespace procpool {

namespace detail {
class engine;
class imap_stream;
class imap_source;
template <class F, class... Args>
using apply_result_t = call_result_t<F, std::tuple<std::decay_t<Args>...>, true>;
template <class F, class Range>
using map_result_t = call_result_t<F, std::ranges::range_value_t<Range>, false>;
template <class F, class Range>
using starmap_result_t = call_result_t<F, std::ranges::range_value_t<Range>, true>;
} // namespace detail

/// A pool of worker processes (Python: multiprocessing.Pool).
///
/// Task functions (F) are functions, function pointers, captureless lambdas, or function
/// objects that are empty or serializable; a capturing lambda does not compile, with a message
/// saying what to do. Arguments and results are anything Boost.Serialization can write, plus
/// std::tuple. Every member may be called from several threads of the owning process at once.
/// Errors the pool raises itself derive from procpool::error; see errors.hpp.
class PROCPOOL_API pool {
public:
    /// Pool(): hardware_concurrency() workers. Returns once the workers are started, without
    /// waiting for them to be ready. Throws state_error when called in a worker process that
    /// skipped procpool::init, procpool::error when a worker cannot be started.
    pool();
    /// Pool(processes). Throws std::invalid_argument for zero, and as pool().
    explicit pool(std::size_t processes);
    /// Pool(processes, initializer, initargs, maxtasksperchild, context). Throws as pool().
    explicit pool(pool_options options);

    /// terminate(), as Python's `with Pool() as p:` does on exit: unfinished results fail with
    /// state_error, workers are killed, the shared memory is removed. Blocks until that is done.
    ~pool();

    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// f(args...) in a worker; blocks for the result. Rethrows the task's exception (the same
    /// type for standard exceptions, remote_error for others) and the pool's errors
    /// (worker_lost_error, serialization_error, state_error when not running).
    template <class F, class... Args>
    requires(!std::same_as<F, task_options>) detail::apply_result_t<F, Args...> apply(
        F f, Args&&... args);

    /// f(args...) in a worker, without waiting. Throws state_error when the pool is not
    /// running and serialization_error when an argument cannot be encoded; everything else
    /// comes through the result.
    template <class F, class... Args>
    requires(!std::same_as<F, task_options>)
        async_result<detail::apply_result_t<F, Args...>> apply_async(F f, Args&&... args);

    /// std::apply(f, args) in a worker, without waiting; `callback(result)` or
    /// `error_callback(std::exception_ptr)` runs in the pool's result thread before the result
    /// becomes ready, and must return quickly. A callback that throws fails the result with
    /// what it threw. Throws as the other apply_async.
    // clang-format 14 mangles requires-clauses
    // clang-format off
    template <class F, class... Args, class Callback, class ErrorCallback = detail::no_callback>
        requires(std::is_void_v<detail::apply_result_t<F, Args...>>
                     ? std::invocable<Callback&>
                     : std::invocable<Callback&, const detail::apply_result_t<F, Args...>&>)
    async_result<detail::apply_result_t<F, Args...>>
    apply_async(F f, std::tuple<Args...> args, Callback callback,
                ErrorCallback error_callback = {});
    // clang-format on

    /// [f(x) for x in items], computed in chunks of `chunksize` items (0: Python's default,
    /// ceil(len / (4 * processes))). Reads the whole range first. Blocks; raises the first
    /// error to arrive, as Python does. Empty input returns at once without touching a worker.
    template <class F, std::ranges::input_range Range>
    std::vector<detail::map_result_t<F, Range>> map(F f, Range&& items, std::size_t chunksize = 0);

    /// map without waiting; callbacks as for apply_async, given the whole vector.
    template <class F, std::ranges::input_range Range, class Callback = detail::no_callback,
              class ErrorCallback = detail::no_callback>
    async_result<std::vector<detail::map_result_t<F, Range>>>
    map_async(F f, Range&& items, std::size_t chunksize = 0, Callback callback = {},
              ErrorCallback error_callback = {});

    /// f(x) for x in items, lazily, results in input order (Python: Pool.imap). The items are
    /// read as workers need them, in the thread that iterates, in chunks of `chunksize`; a few
    /// chunks per worker are outstanding (see imap_result), so `items` may be infinite.
    /// An lvalue range is referenced, not copied: keep it alive while iterating. Throws
    /// state_error when the pool is not running, std::invalid_argument for chunksize 0; task
    /// errors come through the iteration at their item's position (see imap_result).
    template <class F, std::ranges::input_range Range>
    imap_result<detail::map_result_t<F, Range>> imap(F f, Range&& items, std::size_t chunksize = 1);

    /// As imap, but results come in the order they finish (Python: Pool.imap_unordered); the
    /// items of one chunk stay together, in order.
    template <class F, std::ranges::input_range Range>
    imap_result<detail::map_result_t<F, Range>> imap_unordered(F f, Range&& items,
                                                               std::size_t chunksize = 1);

    /// [std::apply(f, t) for t in tuples]; as map. Items are std::tuple or std::pair.
    template <class F, std::ranges::input_range Range>
    std::vector<detail::starmap_result_t<F, Range>> starmap(F f, Range&& tuples,
                                                            std::size_t chunksize = 0);

    /// starmap without waiting; as map_async.
    template <class F, std::ranges::input_range Range, class Callback = detail::no_callback,
              class ErrorCallback = detail::no_callback>
    async_result<std::vector<detail::starmap_result_t<F, Range>>>
    starmap_async(F f, Range&& tuples, std::size_t chunksize = 0, Callback callback = {},
                  ErrorCallback error_callback = {});

    /// The calls above with per-call options (task_options), which override the pool's: each
    /// takes them first, as in pool.map(procpool::task_options{.timeout = 2s}, f, xs), and
    /// otherwise behaves as the call without them. A task that runs past its timeout fails with
    /// task_timeout_error (see pool_options::task_timeout). Throws std::invalid_argument for a
    /// timeout that is not positive, or that the pool's context cannot enforce ("mpi").
    template <class F, class... Args>
    detail::apply_result_t<F, Args...> apply(const task_options& options, F f, Args&&... args);
    template <class F, class... Args>
    async_result<detail::apply_result_t<F, Args...>> apply_async(const task_options& options, F f,
                                                                 Args&&... args);
    // clang-format off
    template <class F, class... Args, class Callback, class ErrorCallback = detail::no_callback>
        requires(std::is_void_v<detail::apply_result_t<F, Args...>>
                     ? std::invocable<Callback&>
                     : std::invocable<Callback&, const detail::apply_result_t<F, Args...>&>)
    async_result<detail::apply_result_t<F, Args...>>
    apply_async(const task_options& options, F f, std::tuple<Args...> args, Callback callback,
                ErrorCallback error_callback = {});
    // clang-format on
    template <class F, std::ranges::input_range Range>
    std::vector<detail::map_result_t<F, Range>> map(const task_options& options, F f, Range&& items,
                                                    std::size_t chunksize = 0);
    template <class F, std::ranges::input_range Range, class Callback = detail::no_callback,
              class ErrorCallback = detail::no_callback>
    async_result<std::vector<detail::map_result_t<F, Range>>>
    map_async(const task_options& options, F f, Range&& items, std::size_t chunksize = 0,
              Callback callback = {}, ErrorCallback error_callback = {});
    template <class F, std::ranges::input_range Range>
    imap_result<detail::map_result_t<F, Range>> imap(const task_options& options, F f,
                                                     Range&& items, std::size_t chunksize = 1);
    template <class F, std::ranges::input_range Range>
    imap_result<detail::map_result_t<F, Range>>
    imap_unordered(const task_options& options, F f, Range&& items, std::size_t chunksize = 1);
    template <class F, std::ranges::input_range Range>
    std::vector<detail::starmap_result_t<F, Range>>
    starmap(const task_options& options, F f, Range&& tuples, std::size_t chunksize = 0);
    template <class F, std::ranges::input_range Range, class Callback = detail::no_callback,
              class ErrorCallback = detail::no_callback>
    async_result<std::vector<detail::starmap_result_t<F, Range>>>
    starmap_async(const task_options& options, F f, Range&& tuples, std::size_t chunksize = 0,
                  Callback callback = {}, ErrorCallback error_callback = {});

    /// Accept no more tasks; submitted ones still complete. Does not block. Idempotent.
    void close();

    /// Stop now: unfinished results fail with state_error, workers are killed. Blocks until
    /// the workers are gone. Idempotent. Must not be called from a callback.
    void terminate();

    /// Wait for the workers to finish every submitted task and exit. Throws state_error unless
    /// close() or terminate() came first. Blocks. Must not be called from a callback.
    void join();

    /// The number of workers.
    std::size_t processes() const noexcept;

    /// The pids of the workers now running (for diagnostics). Thread-safe.
    std::vector<int> worker_pids() const;

private:
    /// map and starmap. `bounded` (the blocking calls, whose input outlives the call): encode
    /// chunks as the workers take them rather than all at once, so a job's encoded input
    /// never takes much more memory than a few chunks per worker.
    template <bool Star, class F, class Range, class Callback, class ErrorCallback>
    auto submit_chunks(const task_options& options, F f, Range&& items, std::size_t chunksize,
                       bool bounded, Callback callback, ErrorCallback error_callback);

    template <bool Ordered, class F, class Range>
    auto stream_chunks(const task_options& options, F f, Range&& items, std::size_t chunksize);

    /// Makes and starts the channel of an imap. Throws state_error when not running.
    std::shared_ptr<detail::imap_stream> open_stream(const task_options& options,
                                                     std::unique_ptr<detail::imap_source> source,
                                                     bool ordered);

    /// What the engine holds of a call's options; throws std::invalid_argument for ones it
    /// cannot honour. Called before anything is encoded.
    detail::chunk_limits limits_of(const task_options& options) const;
    void submit(std::vector<char> frame, std::shared_ptr<detail::result_sink> sink,
                const detail::chunk_limits& limits);
    /// As submit, for a task its caller is likely to wait for (a single_result without
    /// callbacks, which waits through driver()): the engine may send it from this thread.
    void submit_waited(std::vector<char> frame, std::shared_ptr<detail::result_sink> sink,
                       const detail::chunk_limits& limits);
    std::weak_ptr<detail::result_driver> driver() const noexcept;
    std::weak_ptr<detail::chunk_canceller> canceller() const noexcept;
    /// An empty buffer with room for a large frame, from a chunk this pool completed, or an
    /// empty vector: encoding into it fills pages already in memory.
    std::vector<char> take_frame_buffer() noexcept;
    /// Submits frames as chunks first_index, first_index + 1, ... of `sink`.
    void submit(std::vector<std::vector<char>> frames, std::shared_ptr<detail::result_sink> sink,
                std::size_t first_index, const detail::chunk_limits& limits);

    // Shared: an imap_result reaches the pool through a weak_ptr, so that it outlives it safely.
    std::shared_ptr<detail::engine> engine_;
};

} // namespace procpool

#include <procpool/detail/pool.ipp>
