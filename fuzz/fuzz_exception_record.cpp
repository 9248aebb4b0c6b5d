// libFuzzer target: the error records a worker appends to a failed result frame
// (procpool/detail/exception_codec.hpp). Two properties, chosen by the input's first byte:
//  - decoding any bytes gives an exception to rethrow (a malformed record: serialization_error),
//    never a throw out of the noexcept decoder, never a crash;
//  - an exception made from the input, recorded and decoded, comes back as the same type with
//    the same what() (and error code, for the coded ones).
#include <procpool/detail/exception_codec.hpp>
#include <procpool/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <ios>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <typeinfo>
#include <vector>

using namespace procpool::detail;

namespace {

void require(bool ok) {
    if (!ok)
        std::abort(); // libFuzzer reports the input
}

[[noreturn]] void throw_made(std::uint8_t kind, const std::string& text, int code) {
    switch (kind % 9) {
    case 0:
        throw std::runtime_error(text);
    case 1:
        throw std::invalid_argument(text);
    case 2:
        throw std::system_error(code, std::generic_category(), text);
    case 3:
        throw std::system_error(code, std::system_category(), text);
    case 4:
        // A path that is not empty: one made explicitly empty comes back as no path (its "[]"
        // in what() is lost), a known difference (docs/testing.md: fuzzers).
        throw std::filesystem::filesystem_error(text, std::filesystem::path("/fuzz/" + text),
                                                std::error_code(code, std::generic_category()));
    case 5:
        throw std::ios_base::failure(text, std::error_code(code, std::iostream_category()));
    case 6:
        throw procpool::error(text);
    case 7:
        throw text; // a std::string: remote_error whose message() is the text
    default:
        throw std::out_of_range(text);
    }
}

/// Records the exception `kind` makes, decodes the record, and checks what comes back.
void round_trip(std::uint8_t kind, const std::string& text, int code) {
    std::vector<char> record;
    std::string thrown_what;
    const std::type_info* thrown_type = nullptr;
    try {
        throw_made(kind, text, code);
    } catch (const std::exception& e) {
        thrown_what = e.what();
        thrown_type = &typeid(e);
        append_current_exception(record, task_stage::running);
    } catch (const std::string&) {
        append_current_exception(record, task_stage::running);
    }
    const std::exception_ptr back = decode_error_record(record);
    require(back != nullptr);
    try {
        std::rethrow_exception(back);
    } catch (const procpool::remote_error& e) {
        require(thrown_type == nullptr); // only the thrown std::string comes back as this
        require(e.message() == text);
    } catch (const std::exception& e) {
        require(thrown_type != nullptr && typeid(e) == *thrown_type);
        require(thrown_what == e.what());
        if (const auto* coded = dynamic_cast<const std::system_error*>(&e))
            require(coded->code().value() == code);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    if ((data[0] & 0x80) != 0) {
        // Up to a NUL: what() is a C string, so an exception's text ends at its first NUL.
        std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
        text.resize(std::min(text.size(), text.find('\0')));
        // Not empty: a system_error made with an explicitly empty what_arg comes back as one
        // made without (its what() loses the leading ": "), a known difference.
        if (text.empty())
            text = "-";
        round_trip(data[0] & 0x7f, text, static_cast<int>(size % 200) + 1);
        return 0;
    }
    const std::exception_ptr e =
        decode_error_record(std::span(reinterpret_cast<const char*>(data + 1), size - 1));
    require(e != nullptr);
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        (void)std::string(x.what());
    } catch (...) {
        std::abort(); // every record decodes to a std::exception
    }
    return 0;
}
