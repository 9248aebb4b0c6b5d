// Error records: see detail/exception_codec.hpp.
#include <procpool/detail/exception_codec.hpp>
#include <procpool/errors.hpp>

#include <boost/core/demangle.hpp>

#include <cstdint>
#include <cstring>
#include <cxxabi.h>
#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace procpool::detail {

namespace {

/// The exception types recreated as themselves. Values are on the wire: append only.
enum class error_tag : std::uint8_t {
    remote = 0, // anything else: remote_error(type name, message)
    exception,
    logic_error,
    invalid_argument,
    domain_error,
    length_error,
    out_of_range,
    runtime_error,
    range_error,
    overflow_error,
    underflow_error,
    bad_alloc,
    pool_error,
    timeout_error,
    state_error,
    serialization_error,
};

template <class E>
bool is(const std::type_info& type) {
    return type == typeid(E);
}

/// The tag of an exception of exactly this dynamic type; a subclass the parent does not know
/// is a remote error, so that catching it by its real type is never silently wrong.
error_tag tag_of(const std::type_info& type) {
    if (is<std::invalid_argument>(type))
        return error_tag::invalid_argument;
    if (is<std::domain_error>(type))
        return error_tag::domain_error;
    if (is<std::length_error>(type))
        return error_tag::length_error;
    if (is<std::out_of_range>(type))
        return error_tag::out_of_range;
    if (is<std::logic_error>(type))
        return error_tag::logic_error;
    if (is<std::range_error>(type))
        return error_tag::range_error;
    if (is<std::overflow_error>(type))
        return error_tag::overflow_error;
    if (is<std::underflow_error>(type))
        return error_tag::underflow_error;
    if (is<std::runtime_error>(type))
        return error_tag::runtime_error;
    if (is<std::bad_alloc>(type))
        return error_tag::bad_alloc;
    if (is<std::exception>(type))
        return error_tag::exception;
    if (is<procpool::error>(type))
        return error_tag::pool_error;
    if (is<procpool::timeout_error>(type))
        return error_tag::timeout_error;
    if (is<procpool::state_error>(type))
        return error_tag::state_error;
    if (is<procpool::serialization_error>(type))
        return error_tag::serialization_error;
    return error_tag::remote;
}

void append_u32(std::vector<char>& out, std::uint32_t v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    out.insert(out.end(), p, p + sizeof v);
}

void append_record(std::vector<char>& out, error_tag tag, std::string_view type_name,
                   std::string_view message) {
    out.push_back(static_cast<char>(tag));
    append_u32(out, static_cast<std::uint32_t>(type_name.size()));
    out.insert(out.end(), type_name.begin(), type_name.end());
    append_u32(out, static_cast<std::uint32_t>(message.size()));
    out.insert(out.end(), message.begin(), message.end());
}

std::string current_type_name() {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return type ? boost::core::demangle(type->name()) : std::string("unknown exception");
}

} // namespace

void append_current_exception(std::vector<char>& out, task_stage stage) {
    try {
        throw;
    } catch (const std::exception& e) {
        if (stage != task_stage::running) {
            const char* what = stage == task_stage::decoding
                                   ? "procpool: could not decode a task argument in the worker: "
                                   : "procpool: could not encode a task result in the worker: ";
            append_record(out, error_tag::serialization_error, "", std::string(what) + e.what());
            return;
        }
        const error_tag tag = tag_of(typeid(e));
        if (tag == error_tag::remote) {
            if (const auto* remote = dynamic_cast<const remote_error*>(&e)) {
                // A nested pool's remote error: keep the original type and message.
                append_record(out, tag, remote->type_name(), remote->message());
                return;
            }
        }
        append_record(out, tag, boost::core::demangle(typeid(e).name()), e.what());
    } catch (...) {
        append_record(out, error_tag::remote, current_type_name(), "");
    }
}

void append_pool_error(std::vector<char>& out, std::string_view message) {
    append_record(out, error_tag::pool_error, "procpool::error", message);
}

std::exception_ptr decode_error_record(std::span<const char> record) noexcept {
    try {
        std::size_t at = 0;
        auto take = [&](std::size_t n) {
            if (record.size() - at < n)
                throw serialization_error("procpool: a worker sent a truncated error record");
            const char* p = record.data() + at;
            at += n;
            return p;
        };
        auto take_u32 = [&] {
            std::uint32_t v;
            std::memcpy(&v, take(sizeof v), sizeof v);
            return v;
        };
        const auto tag = static_cast<error_tag>(*take(1));
        const std::uint32_t type_length = take_u32();
        std::string type_name(take(type_length), type_length);
        const std::uint32_t message_length = take_u32();
        std::string message(take(message_length), message_length);

        switch (tag) {
        case error_tag::exception: // what() of a plain std::exception is fixed by the library
            return std::make_exception_ptr(std::exception());
        case error_tag::logic_error:
            return std::make_exception_ptr(std::logic_error(message));
        case error_tag::invalid_argument:
            return std::make_exception_ptr(std::invalid_argument(message));
        case error_tag::domain_error:
            return std::make_exception_ptr(std::domain_error(message));
        case error_tag::length_error:
            return std::make_exception_ptr(std::length_error(message));
        case error_tag::out_of_range:
            return std::make_exception_ptr(std::out_of_range(message));
        case error_tag::runtime_error:
            return std::make_exception_ptr(std::runtime_error(message));
        case error_tag::range_error:
            return std::make_exception_ptr(std::range_error(message));
        case error_tag::overflow_error:
            return std::make_exception_ptr(std::overflow_error(message));
        case error_tag::underflow_error:
            return std::make_exception_ptr(std::underflow_error(message));
        case error_tag::bad_alloc:
            return std::make_exception_ptr(std::bad_alloc());
        case error_tag::pool_error:
            return std::make_exception_ptr(error(message));
        case error_tag::timeout_error:
            return std::make_exception_ptr(timeout_error(message));
        case error_tag::state_error:
            return std::make_exception_ptr(state_error(message));
        case error_tag::serialization_error:
            return std::make_exception_ptr(serialization_error(message));
        case error_tag::remote:
            return std::make_exception_ptr(remote_error(std::move(type_name), std::move(message)));
        }
        return std::make_exception_ptr(
            serialization_error("procpool: a worker sent an error record of unknown kind"));
    } catch (...) {
        return std::current_exception();
    }
}

} // namespace procpool::detail
