// Out-of-line error paths of the codec and the result states.
#include <procpool/detail/decode_value.hpp>
#include <procpool/detail/task.hpp>
#include <procpool/errors.hpp>

#include <string>

namespace procpool::detail {

void throw_encode_error(const char* what) {
    throw serialization_error(std::string("procpool: could not encode a task argument or "
                                          "function object: ") +
                              what);
}

void throw_decode_error(const char* what) {
    throw serialization_error(std::string("procpool: could not decode a task result: ") + what);
}

} // namespace procpool::detail
