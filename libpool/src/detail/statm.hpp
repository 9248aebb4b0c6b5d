// A process's resident memory, read from its /proc/PID/statm: by a worker of its own
// (max_memory_per_child) and by the parent of its busy workers (memory_limit_per_child).
#pragma once

#include <cstddef>
#include <cstdio>
#include <unistd.h>

namespace procpool::detail {

/// Resident bytes from an open statm descriptor (read at offset 0: the file is made anew on
/// each read), or 0 when it cannot be read. A few microseconds; async-signal-safe it is not.
inline std::size_t resident_bytes_from(int statm_fd) noexcept {
    if (statm_fd < 0)
        return 0;
    char text[128];
    const ssize_t n = ::pread(statm_fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(text, "%llu %llu", &size, &resident) != 2)
        return 0;
    static const long page = ::sysconf(_SC_PAGESIZE);
    return static_cast<std::size_t>(resident) * static_cast<std::size_t>(page);
}

} // namespace procpool::detail
