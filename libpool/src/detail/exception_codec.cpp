// Error records: see detail/exception_codec.hpp.
#include <procpool/detail/exception_codec.hpp>
#include <procpool/errors.hpp>

#include <boost/core/demangle.hpp>

#include <cstdint>
#include <cstring>
#include <cxxabi.h>
#include <filesystem>
#include <future>
#include <ios>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
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
    // With an error code: then a category (error_category_tag) and the code's value, and for
    // filesystem_error its two paths.
    system_error,
    filesystem_error,
    ios_failure,
    future_error,
};

/// The standard error categories, which both processes have as themselves.
enum class category_tag : std::uint8_t { other = 0, generic, system, iostream, future };

category_tag tag_of(const std::error_category& c) noexcept {
    if (c == std::generic_category())
        return category_tag::generic;
    if (c == std::system_category())
        return category_tag::system;
    if (c == std::iostream_category())
        return category_tag::iostream;
    if (c == std::future_category())
        return category_tag::future;
    return category_tag::other;
}

const std::error_category* category_of(category_tag tag) noexcept {
    switch (tag) {
    case category_tag::generic:
        return &std::generic_category();
    case category_tag::system:
        return &std::system_category();
    case category_tag::iostream:
        return &std::iostream_category();
    case category_tag::future:
        return &std::future_category();
    case category_tag::other:
        break;
    }
    return nullptr;
}

/// The what_arg a system_error (or ios_base::failure) was made with, from its what(), which
/// libstdc++ writes as "what_arg: message" (or "message" for an empty what_arg).
std::string what_arg_of(std::string_view what, const std::error_code& code) {
    const std::string message = code.message();
    if (what == message)
        return "";
    const std::string suffix = ": " + message;
    if (what.size() >= suffix.size() && what.substr(what.size() - suffix.size()) == suffix)
        return std::string(what.substr(0, what.size() - suffix.size()));
    return std::string(what);
}

/// The what_arg of a filesystem_error, from its what(): "filesystem error: what_arg: message
/// [path1] [path2]", the paths only when not empty.
std::string what_arg_of(std::string_view what, const std::filesystem::filesystem_error& e) {
    std::string rest(what);
    const std::string prefix = "filesystem error: ";
    if (rest.starts_with(prefix))
        rest.erase(0, prefix.size());
    for (const auto* p : {&e.path2(), &e.path1()}) {
        const std::string tail = " [" + p->string() + "]";
        if (!p->empty() && rest.ends_with(tail))
            rest.erase(rest.size() - tail.size());
    }
    return what_arg_of(rest, e.code());
}

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
    if (is<std::system_error>(type))
        return error_tag::system_error;
    if (is<std::filesystem::filesystem_error>(type))
        return error_tag::filesystem_error;
    if (is<std::ios_base::failure>(type))
        return error_tag::ios_failure;
    if (is<std::future_error>(type))
        return error_tag::future_error;
    return error_tag::remote;
}

void append_u32(std::vector<char>& out, std::uint32_t v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    out.insert(out.end(), p, p + sizeof v);
}

void append_string(std::vector<char>& out, std::string_view text) {
    append_u32(out, static_cast<std::uint32_t>(text.size()));
    out.insert(out.end(), text.begin(), text.end());
}

void append_record(std::vector<char>& out, error_tag tag, std::string_view type_name,
                   std::string_view message) {
    out.push_back(static_cast<char>(tag));
    append_string(out, type_name);
    append_string(out, message);
}

/// An exception with an error code (std::system_error and the three below it). `message` is
/// the what_arg it was made with. A category other than the standard ones cannot be made
/// again in the parent: a remote_error then says which it was.
void append_coded(std::vector<char>& out, error_tag tag, const std::type_info& type,
                  const std::error_code& code, std::string_view what, std::string_view message,
                  const std::filesystem::filesystem_error* fs = nullptr) {
    const category_tag category = tag_of(code.category());
    const std::string type_name = boost::core::demangle(type.name());
    if (category == category_tag::other) {
        append_record(out, error_tag::remote, type_name,
                      std::string(what) + " (error category " + code.category().name() + ", code " +
                          std::to_string(code.value()) + ")");
        return;
    }
    append_record(out, tag, type_name, message);
    out.push_back(static_cast<char>(category));
    append_u32(out, static_cast<std::uint32_t>(code.value()));
    if (fs != nullptr) {
        append_string(out, fs->path1().native());
        append_string(out, fs->path2().native());
    }
}

/// Appends the record of an exception with an error code; false when `e` has none.
bool append_if_coded(std::vector<char>& out, error_tag tag, const std::exception& e) {
    switch (tag) {
    case error_tag::system_error: {
        const auto& x = static_cast<const std::system_error&>(e);
        append_coded(out, tag, typeid(e), x.code(), e.what(), what_arg_of(e.what(), x.code()));
        return true;
    }
    case error_tag::ios_failure: {
        const auto& x = static_cast<const std::ios_base::failure&>(e);
        append_coded(out, tag, typeid(e), x.code(), e.what(), what_arg_of(e.what(), x.code()));
        return true;
    }
    case error_tag::filesystem_error: {
        const auto& x = static_cast<const std::filesystem::filesystem_error&>(e);
        append_coded(out, tag, typeid(e), x.code(), e.what(), what_arg_of(e.what(), x), &x);
        return true;
    }
    case error_tag::future_error: {
        const auto& x = static_cast<const std::future_error&>(e);
        append_coded(out, tag, typeid(e), x.code(), e.what(), "");
        return true;
    }
    default:
        return false;
    }
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
        if (append_if_coded(out, tag, e))
            return;
        if (tag == error_tag::remote) {
            if (const auto* remote = dynamic_cast<const remote_error*>(&e)) {
                // A nested pool's remote error: keep the original type and message.
                append_record(out, tag, remote->type_name(), remote->message());
                return;
            }
        }
        append_record(out, tag, boost::core::demangle(typeid(e).name()), e.what());
    } catch (const std::string& text) {
        append_record(out, error_tag::remote, "std::string", text);
    } catch (const char* text) {
        append_record(out, error_tag::remote, "const char*", text != nullptr ? text : "");
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
        auto take_string = [&] {
            const std::uint32_t length = take_u32();
            return std::string(take(length), length);
        };
        const auto tag = static_cast<error_tag>(*take(1));
        std::string type_name = take_string();
        std::string message = take_string();
        auto take_code = [&] {
            const auto* category = category_of(static_cast<category_tag>(*take(1)));
            const auto value = static_cast<int>(take_u32());
            if (category == nullptr)
                throw serialization_error("procpool: a worker sent an unknown error category");
            return std::error_code(value, *category);
        };

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
        case error_tag::system_error: {
            const std::error_code code = take_code();
            // Made as it was: what_arg empty adds nothing to what().
            return message.empty() ? std::make_exception_ptr(std::system_error(code))
                                   : std::make_exception_ptr(std::system_error(code, message));
        }
        case error_tag::ios_failure:
            return std::make_exception_ptr(std::ios_base::failure(message, take_code()));
        case error_tag::filesystem_error: {
            const std::error_code code = take_code();
            std::filesystem::path path1 = take_string();
            std::filesystem::path path2 = take_string();
            using fs_error = std::filesystem::filesystem_error;
            // Made with as many paths as it had: an empty one would show as "[]".
            if (path1.empty() && path2.empty())
                return std::make_exception_ptr(fs_error(message, code));
            if (path2.empty())
                return std::make_exception_ptr(fs_error(message, path1, code));
            return std::make_exception_ptr(fs_error(message, path1, path2, code));
        }
        case error_tag::future_error: {
            const std::error_code code = take_code();
            if (code.category() != std::future_category())
                throw serialization_error("procpool: a worker sent a future_error of another "
                                          "category");
            return std::make_exception_ptr(std::future_error(std::future_errc(code.value())));
        }
        }
        return std::make_exception_ptr(
            serialization_error("procpool: a worker sent an error record of unknown kind"));
    } catch (...) {
        return std::current_exception();
    }
}

} // namespace procpool::detail
