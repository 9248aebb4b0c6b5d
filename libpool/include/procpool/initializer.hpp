// procpool::initializer: a function run once in every worker at start (Python: initializer and
// initargs).
#pragma once

#include <procpool/detail/task.hpp>

#include <concepts>
#include <memory>
#include <type_traits>
#include <vector>

namespace procpool {

namespace detail {
class engine;
} // namespace detail

/// A function and its arguments, run once in every worker before its first task, replacement
/// workers included. Its arguments are encoded when the initializer is made, so a value that
/// cannot be serialized throws serialization_error here. Cheap to copy (copies share).
class initializer {
public:
    /// No initializer.
    initializer() = default;

    /// f(args...) runs in every worker at start. F follows the rules of task functions.
    // clang-format 14 mangles requires-clauses
    // clang-format off
    template <class F, class... Args>
        requires(!std::same_as<std::decay_t<F>, initializer>)
    initializer(F f, Args... args) {
        // clang-format on
        PROCPOOL_CHECK_SENDABLE(F);
        using item = std::tuple<Args...>;
        detail::frame_encoder<F, item, true> encoder(f, detail::frame_kind::initializer);
        encoder.add_fields(args...);
        frame_ = std::make_shared<const std::vector<char>>(std::move(encoder).finish());
    }

    /// True when there is no function to run.
    bool empty() const noexcept { return frame_ == nullptr; }

private:
    friend class detail::engine; // sends the frame to each new worker
    const std::shared_ptr<const std::vector<char>>& frame() const noexcept { return frame_; }

    std::shared_ptr<const std::vector<char>> frame_;
};

} // namespace procpool
