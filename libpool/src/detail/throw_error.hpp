// The one helper through which setup and OS calls report failure.
#pragma once

#include <cerrno>

namespace procpool::detail {

/// Throws procpool::error "CALL failed: STRERROR" for an OS call that failed with `err`.
[[noreturn]] void throw_system_error(const char* call, int err = errno);

/// The name of a signal, "SIGKILL", or "signal N" for one without a name.
const char* signal_name(int signal) noexcept;

} // namespace procpool::detail
