// Starting worker processes. Every process launch of the library goes through this file's
// functions (src/detail/launch.cpp), the only place that includes Boost.Process.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace procpool::detail {

/// The environment variable a pool sets in its workers. A process that has it and reaches a
/// pool constructor skipped procpool::init.
inline constexpr const char* worker_environment_variable = "PROCPOOL_WORKER";

/// A started child process. Movable; the destructor kills and reaps a child still running.
class child_process {
public:
    child_process() noexcept;
    child_process(child_process&&) noexcept;
    child_process& operator=(child_process&&) noexcept;
    ~child_process();

    int pid() const noexcept;
    /// A pidfd for the child (readable once it exits), or -1 where the kernel has none.
    int pidfd() const noexcept;
    /// Reaps the child; blocks until it exits. Returns the raw wait status. Idempotent.
    int wait();
    /// Sends SIGKILL unless the child was already reaped. Never throws.
    void kill() noexcept;
    /// True once wait() reaped it.
    bool reaped() const noexcept;

private:
    friend child_process launch_worker(const std::vector<std::string>& args);
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Starts this same executable with `args` and PROCPOOL_WORKER=1 in its environment. The child
/// inherits stdin, stdout and stderr and no other descriptor, and starts with no signal blocked.
/// Throws procpool::error naming the executable when it cannot be started.
child_process launch_worker(const std::vector<std::string>& args);

/// Decodes a raw wait status: "exited with status 3", "killed by SIGKILL".
std::string describe_wait_status(int status);

} // namespace procpool::detail
