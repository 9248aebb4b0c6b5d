// The result of one task (apply, apply_async).
#pragma once

#include <procpool/detail/codec.hpp>
#include <procpool/detail/decode_value.hpp>
#include <procpool/detail/result_state.hpp>
#include <procpool/errors.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>
#include <variant>

namespace procpool::detail {

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
                value_decoder<R> decoder(outcome.results, outcome.bulk);
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

} // namespace procpool::detail
