// Reading one result value out of a chunk's results, for every result state; a failure
// becomes the serialization_error its caller rethrows (defined in codec.cpp).
#pragma once

#include <procpool/export.hpp>

#include <exception>

namespace procpool::detail {

/// Throws serialization_error for a result that could not be decoded.
[[noreturn]] PROCPOOL_API void throw_decode_error(const char* what);

/// Reads one result value; a failure is rethrown by throw_decode_error.
template <class T, class Decoder>
T decode_value(Decoder& decoder) {
    T value; // through a local: std::vector<bool> has no element to load into
    try {
        decoder.read(value);
    } catch (const std::exception& e) {
        throw_decode_error(e.what());
    }
    return value;
}

} // namespace procpool::detail
