// Exceptions across the process boundary. A worker appends an error record for the exception
// in flight; the parent turns the record back into an exception: the same type for the
// standard exceptions and ProcPool's own, procpool::remote_error for anything else.
//
//   error record: u8 tag | u32 length | type name | u32 length | message
#pragma once

#include <exception>
#include <span>
#include <string_view>
#include <vector>

namespace procpool::detail {

/// Where in a task the exception came from; decides how it is reported.
enum class task_stage {
    decoding, ///< reading arguments: reported as serialization_error
    running,  ///< the user's function: reported as itself
    encoding, ///< writing the result: reported as serialization_error
};

/// Appends a record of the exception being handled. Call only inside a catch block.
void append_current_exception(std::vector<char>& out, task_stage stage);

/// Appends a record that recreates as procpool::error with `message`.
void append_pool_error(std::vector<char>& out, std::string_view message);

/// The exception a record describes; a malformed record gives serialization_error.
std::exception_ptr decode_error_record(std::span<const char> record) noexcept;

} // namespace procpool::detail
