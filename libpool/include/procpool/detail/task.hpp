// Task encoding (parent) and trampolines (worker) for one task type.
//
// A task type is (F, Item, Star): the function type, the type of one item, and whether an item
// is a tuple to unpack into the arguments (apply, starmap) or a single argument (map, imap).
// invoker<F, Item, Star>::run is the trampoline: it decodes the function object and the items,
// calls the function on each, and encodes the results. It throws on any failure and the worker
// reports what it threw; the stage it had reached tells a decoding failure from a task's own.
#pragma once

#include <procpool/export.hpp>

#include <procpool/detail/codec.hpp>
#include <procpool/detail/exception_codec.hpp>
#include <procpool/detail/task_identity.hpp>
#include <procpool/detail/wire.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace procpool {

/// Opt-in for a function object that is serialized by a free `serialize` function rather than
/// a member: `template <> inline constexpr bool is_serializable_function<my_fn> = true;`.
template <class F>
inline constexpr bool is_serializable_function = false;

} // namespace procpool

namespace procpool::detail {

/// What the worker hands a trampoline, and what the trampoline reports back.
struct task_call {
    const void* function = nullptr; ///< decoded function pointer, when the task has one
    std::span<const char> input;    ///< archive: [function object] item...
    std::uint64_t item_count = 0;
    std::vector<char>* output = nullptr; ///< the result archive is appended here
    std::uint64_t ok_count = 0;          ///< items whose results are in *output (and bulk)
    task_stage stage = task_stage::decoding;
    /// The bytes of the last result, when they are large and the trampoline did not copy them
    /// into *output: the result frame is *output followed by them. `bulk_owner` keeps them.
    std::span<const char> bulk;
    std::shared_ptr<const void> bulk_owner;
    /// The bulk is a std::vector<char>'s bytes: the parent reads them apart from the rest of
    /// the frame, into a vector of their own, which becomes the result as it is.
    bool bulk_apart = false;
};

/// A result whose bytes number at least this many is sent from the result itself, not copied
/// into the result frame first (see task_call::bulk): one copy of it fewer in the worker.
inline constexpr std::size_t detach_bytes = std::size_t{64} << 10;

template <class F>
concept function_pointer = std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;

template <class F>
concept stateless_function_object = std::is_class_v<F> && std::is_empty_v<F> &&
    std::default_initializable<F> && std::copy_constructible<F>;

template <class F>
concept serializable_function_object = std::is_class_v<F> && std::default_initializable<F> &&
    (is_serializable_function<F> ||
     requires(F & f, boost::archive::binary_oarchive& oa, boost::archive::binary_iarchive& ia) {
         f.serialize(oa, 0u);
         f.serialize(ia, 0u);
     });

/// What may be sent to a worker as a task function.
template <class F>
concept sendable_function =
    function_pointer<F> || stateless_function_object<F> || serializable_function_object<F>;

#define PROCPOOL_CHECK_SENDABLE(F)                                                                 \
    static_assert(::procpool::detail::sendable_function<F>,                                        \
                  "procpool: a task function must be a function, a function pointer, a "           \
                  "captureless lambda, or a function object that is empty or serializable. A "     \
                  "capturing lambda cannot travel to a worker process: pass what it captures as "  \
                  "arguments instead (apply_async(f, x, y)), or give the function object a "       \
                  "serialize() member.")

template <class T>
struct is_tuple_like : std::false_type {};
template <class... Ts>
struct is_tuple_like<std::tuple<Ts...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};

// SFINAE-friendly: no `type` when F cannot be called so, which lets overload resolution
// move on (apply_async with a tuple and callbacks) instead of failing hard.
template <class F, class Item, bool Star>
struct call_result {};
template <class F, class Item>
requires std::invocable<F&, Item&&>
struct call_result<F, Item, false> {
    using type = std::decay_t<std::invoke_result_t<F&, Item&&>>;
};
template <class F, class... Ts>
requires std::invocable<F&, Ts&&...>
struct call_result<F, std::tuple<Ts...>, true> {
    using type = std::decay_t<std::invoke_result_t<F&, Ts&&...>>;
};
template <class F, class A, class B>
requires std::invocable<F&, A&&, B&&>
struct call_result<F, std::pair<A, B>, true> {
    using type = std::decay_t<std::invoke_result_t<F&, A&&, B&&>>;
};

/// The result type of one item of a task type.
template <class F, class Item, bool Star>
using call_result_t = typename call_result<F, Item, Star>::type;

/// The function object of a task that carries none in its frame.
template <class F>
F make_function(const void* function) {
    if constexpr (function_pointer<F>) {
        // Conditionally supported in ISO C++, always supported on POSIX (dlsym relies on it).
        return reinterpret_cast<F>(const_cast<void*>(function));
    } else {
        static_assert(stateless_function_object<F>);
        return F{};
    }
}

/// Whether a task frame carries its function object (in the archive, before the items).
template <class F>
inline constexpr bool function_in_frame = !function_pointer<F> && !stateless_function_object<F>;

/// Whether the items of a task type skip Boost.Serialization (see codec.hpp): they are plain
/// and there is no function object to archive before them.
template <class F, class Item>
inline constexpr bool plain_items = plain_value<Item> && !function_in_frame<F>;

/// The trampoline of one task type; see the file comment.
template <class F, class Item, bool Star>
struct invoker {
    using result_type = call_result_t<F, Item, Star>;

    static void run(task_call& call) {
        decoder<plain_items<F, Item>> in(call.input);
        if constexpr (function_in_frame<F>) {
            F f;
            in.read(f);
            run_items(call, f, in);
        } else {
            F f = make_function<F>(call.function);
            run_items(call, f, in);
        }
    }

    /// This trampoline's identity, computed once. Odr-uses `registered`, so that every process
    /// running this binary registers the trampoline before main().
    static code_address identity() {
        static_cast<void>(registered);
        static const code_address address = to_code_address(reinterpret_cast<const void*>(&run));
        return address;
    }

private:
    static void run_items(task_call& call, F& f, decoder<plain_items<F, Item>>& in) {
        if constexpr (std::is_void_v<result_type>) {
            for (std::uint64_t i = 0; i < call.item_count; ++i) {
                call.stage = task_stage::decoding;
                Item item;
                in.read(item);
                call.stage = task_stage::running;
                invoke_item(f, std::move(item));
                ++call.ok_count;
            }
        } else {
            value_encoder<result_type> out(*call.output);
            for (std::uint64_t i = 0; i < call.item_count; ++i) {
                call.stage = task_stage::decoding;
                Item item;
                in.read(item);
                call.stage = task_stage::running;
                result_type result = invoke_item(f, std::move(item));
                call.stage = task_stage::encoding;
                if constexpr (is_detachable<result_type>::value) {
                    if (i + 1 == call.item_count) {
                        // The last result: a large one's bytes go from where they are, kept
                        // alive (and found again after the move) by bulk_owner.
                        const std::size_t n = out.write_detachable(result, detach_bytes).size();
                        if (n != 0) {
                            auto owner = std::make_shared<const result_type>(std::move(result));
                            call.bulk = {reinterpret_cast<const char*>(owner->data()), n};
                            call.bulk_owner = std::move(owner);
                            call.bulk_apart = std::is_same_v<result_type, std::vector<char>>;
                        }
                        ++call.ok_count;
                        break;
                    }
                }
                out.write(result);
                ++call.ok_count;
            }
        }
    }

    static decltype(auto) invoke_item(F& f, Item&& item) {
        if constexpr (Star)
            return std::apply(f, std::move(item));
        else
            return std::invoke(f, std::move(item));
    }

    static inline const bool registered = (register_trampoline(&run), true);
};

/// Builds one task frame in the parent: the header, then the function object when it has
/// state, then the items. Throws serialization_error when a value cannot be encoded.
template <class F, class Item, bool Star>
class frame_encoder {
public:
    /// `buffer`: storage to reuse (its contents are dropped), such as the engine's
    /// take_frame_buffer() gives: a large frame then fills pages already in memory.
    frame_encoder(const F& f, frame_kind kind, std::vector<char> buffer = {})
        : frame_(std::move(buffer))
        , sink_(init(f, kind)) {
        if constexpr (function_in_frame<F>)
            guarded([&] { sink_.write(f); });
    }

    template <class T>
    void add(const T& item) {
        guarded([&] { sink_.write(item); });
        ++header_.item_count;
    }

    /// Adds one item made of `fields`, written in order: what a std::tuple of them reads back
    /// as (see tuple_serialization.hpp), without building the tuple.
    template <class... Ts>
    void add_fields(const Ts&... fields) {
        guarded([&] { (sink_.write(fields), ...); });
        ++header_.item_count;
    }

    /// Adds `count` items of an is_bytes type at once, as `count` calls of add would.
    template <class T>
    void add_run(const T* first, std::size_t count) {
        static_assert(plain_items<F, Item> && std::is_same_v<T, Item> && is_bytes<T>::value);
        guarded([&] { sink_.write_run(first, count); });
        header_.item_count += count;
    }

    std::uint64_t size() const noexcept { return header_.item_count; }

    /// The finished frame; the encoder is spent afterwards.
    std::vector<char> finish() && {
        sink_.flush();
        std::memcpy(frame_.data(), &header_, sizeof header_);
        return std::move(frame_);
    }

private:
    /// Sets up the header and the frame before the sink is built on it.
    std::vector<char>& init(const F& f, frame_kind kind) {
        header_.kind = kind;
        header_.trampoline = invoker<F, Item, Star>::identity();
        if constexpr (function_pointer<F>)
            header_.function = to_code_address(reinterpret_cast<const void*>(f));
        frame_.clear();
        frame_.reserve(sizeof(task_header) + 64);
        append_pod(frame_, header_); // patched in finish()
        return frame_;
    }

    template <class Fn>
    static void guarded(Fn&& fn);

    task_header header_;
    std::vector<char> frame_;
    encoder<plain_items<F, Item>> sink_;
};

/// Rethrows the exception in flight as serialization_error naming what was being encoded.
[[noreturn]] PROCPOOL_API void throw_encode_error(const char* what);

template <class F, class Item, bool Star>
template <class Fn>
void frame_encoder<F, Item, Star>::guarded(Fn&& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        throw_encode_error(e.what());
    }
}

} // namespace procpool::detail
