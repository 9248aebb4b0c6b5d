#include "throw_error.hpp"
#include <procpool/errors.hpp>

#include <cstring>
#include <string>

namespace procpool::detail {

void throw_system_error(const char* call, int err) {
    throw error(std::string(call) + " failed: " + std::strerror(err) + " (errno " +
                std::to_string(err) + ")");
}

const char* signal_name(int signal) noexcept {
    // sigabbrev_np (glibc 2.32) gives "KILL"; keep our own names to print "SIGKILL".
    static thread_local char buffer[32];
    const char* abbrev = sigabbrev_np(signal);
    if (abbrev == nullptr) {
        std::snprintf(buffer, sizeof buffer, "signal %d", signal);
        return buffer;
    }
    std::snprintf(buffer, sizeof buffer, "SIG%s", abbrev);
    return buffer;
}

} // namespace procpool::detail
