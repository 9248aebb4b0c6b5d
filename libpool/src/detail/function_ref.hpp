// function_ref: a non-owning reference to a callable, for calls that must not allocate.
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace procpool::detail {

/// A non-owning reference to a callable, for calls that must not allocate.
template <class Signature>
class function_ref;

template <class R, class... Args>
class function_ref<R(Args...)> {
public:
    // clang-format off
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, function_ref> &&
                 std::is_invocable_r_v<R, F&, Args...>)
    function_ref(F&& f) noexcept // implicit, as a reference is
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f))))
        , call_([](void* o, Args... args) -> R {
            return std::invoke(*static_cast<std::remove_reference_t<F>*>(o),
                               std::forward<Args>(args)...);
        }) {}
    // clang-format on

    R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

private:
    void* object_;
    R (*call_)(void*, Args...);
};

} // namespace procpool::detail
