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
    /// The errno of a pidfd_open that failed, else 0.
    int pidfd_error() const noexcept;
    /// Reaps the child; blocks until it exits. Returns the raw wait status. Idempotent.
    int wait();
    /// Sends SIGKILL unless the child was already reaped. Never throws.
    void kill() noexcept;
    /// Sends `signal` unless the child was already reaped. Never throws.
    void send(int signal) noexcept;
    /// True once wait() reaped it.
    bool reaped() const noexcept;

    struct impl; // defined in launch.cpp
    explicit child_process(std::unique_ptr<impl> p) noexcept;

private:
    std::unique_ptr<impl> impl_;
};

/// Starts this same executable with `args` and PROCPOOL_WORKER=1 in its environment (the
/// "spawn" start method). The child inherits stdin, stdout and stderr, `pass_fd` as descriptor
/// 3 (the pool's doorbell), and no other descriptor, and starts with no signal blocked. Throws
/// procpool::error naming the executable when it cannot be started.
child_process launch_worker(const std::vector<std::string>& args, int pass_fd);

/// The first argument that marks the forkserver process.
inline constexpr const char* forkserver_flag = "--procpool-forkserver";

/// Has this program's forkserver fork a worker that runs run_worker(args) (the "forkserver"
/// start method). The forkserver, this same executable started once with launch_worker's
/// hygiene and kept for the life of the program, forks with CLONE_PARENT: the worker is a
/// child of this process, watched and reaped like a spawned one. A forkserver that died is
/// started again. `pass_fd` reaches the worker as descriptor 3, sent to the forkserver with
/// the request (SCM_RIGHTS). Thread-safe. Throws procpool::error when no worker can be had.
child_process fork_worker(const std::vector<std::string>& args, int pass_fd);

/// The forkserver's loop: what procpool::init runs for forkserver_flag. Never returns.
[[noreturn]] void run_forkserver(int argc, char** argv);

/// Decodes a raw wait status: "exited with status 3", "killed by SIGKILL".
std::string describe_wait_status(int status);

/// What child_process::wait() returns when the child's status is lost: waitpid found no such
/// child, because the program ignores SIGCHLD (the kernel then reaps children itself) or
/// reaped it elsewhere. No real wait status has this value.
inline constexpr int wait_status_lost = -1;

} // namespace procpool::detail
