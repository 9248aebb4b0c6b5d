// Template bodies of procpool::pool: encode task frames in the caller's thread, hand them to the
// core, and wrap the result state. Included at the end of pool.hpp.
#pragma once

#include <procpool/detail/result_state.hpp>
#include <procpool/detail/single_result.hpp>
#include <procpool/detail/task.hpp>
#include <procpool/detail/vector_result.hpp>

#include <algorithm>
#include <iterator>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <utility>

namespace procpool {

namespace detail {

/// The frame of one apply: the arguments are written one by one, read back as one tuple.
template <class F, class... Args>
std::vector<char> encode_apply(const F& f, const Args&... args) {
    PROCPOOL_CHECK_SENDABLE(F);
    frame_encoder<F, std::tuple<std::decay_t<Args>...>, true> encoder(f, frame_kind::task);
    encoder.add_fields(args...);
    return std::move(encoder).finish();
}

/// Python's default map chunksize: ceil(len / (4 * processes)), at least 1.
inline std::size_t default_chunksize(std::size_t items, std::size_t processes) noexcept {
    const std::size_t per = 4 * processes;
    const std::size_t size = (items + per - 1) / per;
    return size == 0 ? 1 : size;
}

/// Paces the encoding of a map: when to hand the chunks encoded so far to the engine, and, for a
/// bounded map, when to wait for the workers. Chunks go to the engine in batches of about
/// 256 KiB (at least one chunk), so that workers start while the rest is encoded and a job of
/// tiny chunks costs few core calls. A bounded map keeps at most about 4 MiB of encoded chunks
/// per worker outstanding (submitted, not completed), never fewer than 2 chunks per worker,
/// and resumes when half of them have completed.
class chunk_pacer {
public:
    enum action { go_on, submit, submit_and_wait };

    chunk_pacer(std::size_t processes, bool bounded) noexcept
        : processes_(processes)
        , bounded_(bounded) {}

    /// A chunk of `bytes` was encoded; `outstanding` chunks are encoded and not completed (it
    /// included). Every action but go_on means the caller submits what it holds.
    action encoded(std::size_t bytes, std::size_t outstanding) noexcept {
        encoded_bytes_ += bytes;
        ++encoded_;
        unsubmitted_bytes_ += bytes;
        ++unsubmitted_;
        action next = go_on;
        if (bounded_) {
            const std::size_t mean = encoded_bytes_ / encoded_;
            limit_ = std::max(2 * processes_, (outstanding_bytes * processes_) / (mean + 1));
            if (outstanding >= limit_)
                next = submit_and_wait;
        }
        if (next == go_on && (unsubmitted_bytes_ >= batch_bytes || unsubmitted_ >= batch_chunks))
            next = submit;
        if (next != go_on) {
            unsubmitted_bytes_ = 0;
            unsubmitted_ = 0;
        }
        return next;
    }

    /// How many chunks may stay outstanding when the encoding resumes.
    std::size_t resume_below() const noexcept { return limit_ / 2; }

private:
    static constexpr std::size_t batch_bytes = std::size_t{256} << 10;
    static constexpr std::size_t batch_chunks = 4096;
    static constexpr std::size_t outstanding_bytes = std::size_t{4} << 20;

    std::size_t processes_;
    bool bounded_;
    std::size_t encoded_ = 0;
    std::size_t encoded_bytes_ = 0;
    std::size_t unsubmitted_bytes_ = 0;
    std::size_t unsubmitted_ = 0;
    std::size_t limit_ = 0;
};

/// The encoding loop of map, starmap and imap: adds items from `it` to `encoder`, which it
/// starts on take_buffer() (storage to reuse: pool::take_frame_buffer) if it is empty,
/// until the encoder holds `chunksize` items or the input ends. On an exception, `encoder`
/// keeps the items added before it.
template <bool Star, class F, class Item, class It, class End, class TakeBuffer>
void fill_chunk(std::optional<frame_encoder<F, Item, Star>>& encoder, const F& f, It& it,
                const End& end, std::size_t chunksize, TakeBuffer&& take_buffer) {
    if constexpr (!Star && plain_items<F, Item> && is_bytes<Item>::value &&
                  std::contiguous_iterator<It> && std::sized_sentinel_for<End, It> &&
                  std::is_same_v<std::iter_value_t<It>, Item>) {
        // Items stored side by side whose encoding is their bytes: the chunk is one copy.
        if (it == end || (encoder && encoder->size() >= chunksize))
            return;
        if (!encoder)
            encoder.emplace(f, frame_kind::task, take_buffer());
        const auto left = static_cast<std::size_t>(end - it);
        const std::size_t count = std::min(left, chunksize - encoder->size());
        encoder->add_run(std::to_address(it), count);
        it += static_cast<std::iter_difference_t<It>>(count);
    } else {
        for (; it != end && (!encoder || encoder->size() < chunksize); ++it) {
            // Binds directly for real elements, materialises a proxy or a prvalue once.
            const Item& item = *it;
            if (!encoder)
                encoder.emplace(f, frame_kind::task, take_buffer());
            encoder->add(item);
        }
    }
}

/// How an imap holds the user's range: a reference to an lvalue (even one of a move-only view,
/// which std::views::all refuses), the object itself for an rvalue, and a copy of a const
/// rvalue (which std::views::all refuses too: it can be neither moved from nor referred to).
template <class Range>
auto hold_range(Range&& range) {
    using object = std::remove_cvref_t<Range>;
    if constexpr (std::ranges::viewable_range<Range>) {
        return std::views::all(std::forward<Range>(range));
    } else if constexpr (std::is_lvalue_reference_v<Range>) {
        return std::ranges::ref_view(range);
    } else {
        static_assert(std::copy_constructible<object>,
                      "procpool: imap over a const rvalue keeps a copy of it: the range must be "
                      "copyable (or pass it as an lvalue or a non-const rvalue)");
        return std::ranges::owning_view(object(range));
    }
}

/// An imap's input: a view of the user's range (a reference to an lvalue, the object itself for
/// an rvalue), read one chunk at a time.
template <class F, class View>
class range_source final : public imap_source {
public:
    using item_type = std::ranges::range_value_t<View>;

    range_source(F f, View view, std::size_t chunksize)
        : f_(std::move(f))
        , view_(std::move(view))
        , chunksize_(chunksize) {}

    encoded_chunk next_chunk(spare_buffers* spares) noexcept override {
        encoded_chunk chunk;
        std::optional<frame_encoder<F, item_type, false>> encoder;
        try {
            if (!position_)
                position_.emplace(std::ranges::begin(view_));
            auto& it = *position_;
            fill_chunk<false>(encoder, f_, it, std::ranges::end(view_), chunksize_,
                              [spares] { return spares ? spares->take() : std::vector<char>{}; });
            chunk.end = it == std::ranges::end(view_);
        } catch (...) {
            chunk.error = std::current_exception();
            chunk.end = true;
        }
        if (encoder && encoder->size() > 0)
            chunk.frame = std::move(*encoder).finish();
        return chunk;
    }

private:
    F f_;
    View view_;
    std::size_t chunksize_;
    std::optional<std::ranges::iterator_t<View>> position_;
};

} // namespace detail

template <class F, class... Args>
    requires(!std::same_as<F, task_options>)
detail::apply_result_t<F, Args...> pool::apply(F f, Args&&... args) {
    return apply(task_options{}, std::move(f), std::forward<Args>(args)...);
}

template <class F, class... Args>
detail::apply_result_t<F, Args...> pool::apply(const task_options& options, F f,
                                               Args&&... args) {
    auto result = apply_async(options, f, std::forward<Args>(args)...);
    return result.take();
}

template <class F, class... Args>
    requires(!std::same_as<F, task_options>)
async_result<detail::apply_result_t<F, Args...>> pool::apply_async(F f, Args&&... args) {
    return apply_async(task_options{}, std::move(f), std::forward<Args>(args)...);
}

template <class F, class... Args>
async_result<detail::apply_result_t<F, Args...>>
pool::apply_async(const task_options& options, F f, Args&&... args) {
    using result_type = detail::apply_result_t<F, Args...>;
    const detail::chunk_limits limits = limits_of(options);
    auto state = std::make_shared<detail::single_result<result_type>>();
    state->cancel_with(canceller());
    state->drive_with(driver());
    submit_waited(detail::encode_apply(f, args...), state, limits);
    return async_result<result_type>(std::move(state));
}

// clang-format 14 mangles requires-clauses
// clang-format off
template <class F, class... Args, class Callback, class ErrorCallback>
    requires(std::is_void_v<detail::apply_result_t<F, Args...>>
                 ? std::invocable<Callback&>
                 : std::invocable<Callback&, const detail::apply_result_t<F, Args...>&>)
async_result<detail::apply_result_t<F, Args...>>
pool::apply_async(F f, std::tuple<Args...> args, Callback callback, ErrorCallback error_callback) {
    // clang-format on
    return apply_async(task_options{}, std::move(f), std::move(args), std::move(callback),
                       std::move(error_callback));
}

// clang-format off
template <class F, class... Args, class Callback, class ErrorCallback>
    requires(std::is_void_v<detail::apply_result_t<F, Args...>>
                 ? std::invocable<Callback&>
                 : std::invocable<Callback&, const detail::apply_result_t<F, Args...>&>)
async_result<detail::apply_result_t<F, Args...>>
pool::apply_async(const task_options& options, F f, std::tuple<Args...> args, Callback callback,
                  ErrorCallback error_callback) {
    // clang-format on
    using result_type = detail::apply_result_t<F, Args...>;
    const detail::chunk_limits limits = limits_of(options);
    auto state = std::make_shared<detail::single_result<result_type>>();
    state->cancel_with(canceller());
    state->set_callbacks(std::move(callback), std::move(error_callback));
    auto frame = std::apply(
        [&f](const auto&... fields) { return detail::encode_apply<F, Args...>(f, fields...); },
        args);
    submit(std::move(frame), state, limits);
    return async_result<result_type>(std::move(state));
}

template <bool Star, class F, class Range, class Callback, class ErrorCallback>
auto pool::submit_chunks(const task_options& options, F f, Range&& items, std::size_t chunksize,
                         bool bounded, Callback callback, ErrorCallback error_callback) {
    PROCPOOL_CHECK_SENDABLE(F);
    using item_type = std::ranges::range_value_t<Range>;
    using result_type = detail::call_result_t<F, item_type, Star>;
    static_assert(!std::is_void_v<result_type>,
                  "procpool: map and starmap collect results, so the function must return a "
                  "value; for side effects only, use apply_async in a loop");
    if constexpr (Star)
        static_assert(detail::is_tuple_like<item_type>::value,
                      "procpool: starmap items must be std::tuple or std::pair");
    const detail::chunk_limits limits = limits_of(options);
    auto encode = [&](auto&& range, std::size_t count) {
        if (chunksize == 0)
            chunksize = detail::default_chunksize(count, processes());
        auto state = std::make_shared<detail::vector_result<result_type>>(count, chunksize);
        state->cancel_with(canceller());
        state->set_callbacks(std::move(callback), std::move(error_callback));
        detail::chunk_pacer pacer(processes(), bounded);
        std::vector<std::vector<char>> frames; // encoded, not yet submitted
        std::size_t submitted = 0;
        auto flush = [&] {
            const std::size_t n = frames.size();
            submit(std::move(frames), state, submitted, limits);
            submitted += n;
            frames.clear();
        };
        auto it = std::ranges::begin(range);
        const auto end = std::ranges::end(range);
        while (it != end) {
            std::optional<detail::frame_encoder<F, item_type, Star>> encoder;
            detail::fill_chunk<Star>(encoder, f, it, end, chunksize,
                                     [this] { return take_frame_buffer(); });
            const bool full = encoder->size() == chunksize;
            frames.push_back(std::move(*encoder).finish());
            if (!full)
                break; // the input ended: its last, shorter chunk
            switch (pacer.encoded(frames.back().size(),
                                  submitted + frames.size() - state->completed())) {
            case detail::chunk_pacer::go_on:
                break;
            case detail::chunk_pacer::submit:
                flush();
                break;
            case detail::chunk_pacer::submit_and_wait:
                flush();
                state->wait_completed(submitted - pacer.resume_below());
                break;
            }
        }
        if (!frames.empty() || submitted == 0)
            flush(); // with no chunk at all, still checks that the pool takes work
        state->finish_if_empty();
        return async_result<std::vector<result_type>>(std::move(state));
    };

    // Python's map makes a list of the iterable first; a sized range that can be walked twice
    // needs no copy.
    if constexpr (std::ranges::sized_range<Range> && std::ranges::forward_range<Range>) {
        return encode(items, static_cast<std::size_t>(std::ranges::size(items)));
    } else {
        std::vector<item_type> list;
        for (auto&& element : items)
            list.push_back(element);
        return encode(list, list.size());
    }
}

template <class F, std::ranges::input_range Range>
std::vector<detail::map_result_t<F, Range>> pool::map(F f, Range&& items, std::size_t chunksize) {
    return map(task_options{}, std::move(f), std::forward<Range>(items), chunksize);
}

template <class F, std::ranges::input_range Range>
std::vector<detail::map_result_t<F, Range>> pool::map(const task_options& options, F f,
                                                      Range&& items, std::size_t chunksize) {
    auto result = submit_chunks<false>(options, f, std::forward<Range>(items), chunksize, true,
                                       detail::no_callback{}, detail::no_callback{});
    return result.take();
}

template <class F, std::ranges::input_range Range, class Callback, class ErrorCallback>
async_result<std::vector<detail::map_result_t<F, Range>>>
pool::map_async(F f, Range&& items, std::size_t chunksize, Callback callback,
                ErrorCallback error_callback) {
    return map_async(task_options{}, std::move(f), std::forward<Range>(items), chunksize,
                     std::move(callback), std::move(error_callback));
}

template <class F, std::ranges::input_range Range, class Callback, class ErrorCallback>
async_result<std::vector<detail::map_result_t<F, Range>>>
pool::map_async(const task_options& options, F f, Range&& items, std::size_t chunksize,
                Callback callback, ErrorCallback error_callback) {
    return submit_chunks<false>(options, f, std::forward<Range>(items), chunksize, false,
                                std::move(callback), std::move(error_callback));
}

template <bool Ordered, class F, class Range>
auto pool::stream_chunks(const task_options& options, F f, Range&& items, std::size_t chunksize) {
    PROCPOOL_CHECK_SENDABLE(F);
    using result_type = detail::map_result_t<F, Range>;
    static_assert(!std::is_void_v<result_type>,
                  "procpool: imap yields results, so the function must return a value; for side "
                  "effects only, use apply_async in a loop");
    if (chunksize == 0)
        throw std::invalid_argument("procpool::pool::imap: chunksize must be at least 1");
    auto view = detail::hold_range(std::forward<Range>(items));
    auto source =
        std::make_unique<detail::range_source<F, decltype(view)>>(f, std::move(view), chunksize);
    auto channel = open_stream(options, std::move(source), Ordered);
    return imap_result<result_type>(std::move(channel), chunksize > 1);
}

template <class F, std::ranges::input_range Range>
imap_result<detail::map_result_t<F, Range>> pool::imap(F f, Range&& items, std::size_t chunksize) {
    return stream_chunks<true>(task_options{}, f, std::forward<Range>(items), chunksize);
}

template <class F, std::ranges::input_range Range>
imap_result<detail::map_result_t<F, Range>> pool::imap(const task_options& options, F f,
                                                       Range&& items, std::size_t chunksize) {
    return stream_chunks<true>(options, f, std::forward<Range>(items), chunksize);
}

template <class F, std::ranges::input_range Range>
imap_result<detail::map_result_t<F, Range>> pool::imap_unordered(F f, Range&& items,
                                                                 std::size_t chunksize) {
    return stream_chunks<false>(task_options{}, f, std::forward<Range>(items), chunksize);
}

template <class F, std::ranges::input_range Range>
imap_result<detail::map_result_t<F, Range>>
pool::imap_unordered(const task_options& options, F f, Range&& items, std::size_t chunksize) {
    return stream_chunks<false>(options, f, std::forward<Range>(items), chunksize);
}

template <class F, std::ranges::input_range Range>
std::vector<detail::starmap_result_t<F, Range>> pool::starmap(F f, Range&& tuples,
                                                              std::size_t chunksize) {
    return starmap(task_options{}, std::move(f), std::forward<Range>(tuples), chunksize);
}

template <class F, std::ranges::input_range Range>
std::vector<detail::starmap_result_t<F, Range>>
pool::starmap(const task_options& options, F f, Range&& tuples, std::size_t chunksize) {
    auto result = submit_chunks<true>(options, f, std::forward<Range>(tuples), chunksize, true,
                                      detail::no_callback{}, detail::no_callback{});
    return result.take();
}

template <class F, std::ranges::input_range Range, class Callback, class ErrorCallback>
async_result<std::vector<detail::starmap_result_t<F, Range>>>
pool::starmap_async(F f, Range&& tuples, std::size_t chunksize, Callback callback,
                    ErrorCallback error_callback) {
    return starmap_async(task_options{}, std::move(f), std::forward<Range>(tuples), chunksize,
                         std::move(callback), std::move(error_callback));
}

template <class F, std::ranges::input_range Range, class Callback, class ErrorCallback>
async_result<std::vector<detail::starmap_result_t<F, Range>>>
pool::starmap_async(const task_options& options, F f, Range&& tuples, std::size_t chunksize,
                    Callback callback, ErrorCallback error_callback) {
    return submit_chunks<true>(options, f, std::forward<Range>(tuples), chunksize, false,
                               std::move(callback), std::move(error_callback));
}

} // namespace procpool
