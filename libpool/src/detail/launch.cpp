// All process launching, on Boost.Process v1 (the stable API in Boost 1.81; v2's bind_fd and
// fd closing are broken there). See detail/launch.hpp.
#include <procpool/detail/launch.hpp>
#include <procpool/detail/throw_error.hpp>
#include <procpool/errors.hpp>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>

#include <climits>
#include <csignal>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace procpool::detail {

namespace bp = boost::process;

struct child_process::impl {
    bp::child child;
    int pidfd = -1;
    int status = 0;
    bool reaped = false;

    ~impl() {
        if (pidfd >= 0)
            ::close(pidfd);
    }
};

child_process::child_process() noexcept = default;
child_process::child_process(child_process&&) noexcept = default;
child_process& child_process::operator=(child_process&&) noexcept = default;

child_process::~child_process() {
    if (impl_ && !impl_->reaped) {
        kill();
        try {
            wait();
        } catch (...) {
        }
    }
}

int child_process::pid() const noexcept {
    return impl_ ? impl_->child.id() : -1;
}
int child_process::pidfd() const noexcept {
    return impl_ ? impl_->pidfd : -1;
}
bool child_process::reaped() const noexcept {
    return !impl_ || impl_->reaped;
}

int child_process::wait() {
    if (!impl_ || impl_->reaped)
        return impl_ ? impl_->status : 0;
    std::error_code ec;
    impl_->child.wait(ec);
    // native_exit_code() is the raw status: exit_code() cannot tell exit(9) from SIGKILL.
    impl_->status = impl_->child.native_exit_code();
    impl_->reaped = true;
    return impl_->status;
}

void child_process::kill() noexcept {
    if (impl_ && !impl_->reaped)
        ::kill(impl_->child.id(), SIGKILL);
}

namespace {

std::string executable_path() {
    char buffer[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    if (n <= 0)
        return "/proc/self/exe";
    std::string path(buffer, static_cast<std::size_t>(n));
    // The binary was replaced or removed since it started: /proc/self/exe still names it, and
    // is what a forked child execs.
    if (path.ends_with(" (deleted)"))
        return "/proc/self/exe";
    return path;
}

/// Runs in the child between fork and exec: only async-signal-safe calls.
struct child_setup {
    template <class Executor>
    void operator()(Executor&) const {
        // Close-on-exec every descriptor above stdio (Boost's own error pipe already is), so
        // the worker inherits no file, socket or pipe of the parent.
        ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
    }
};

} // namespace

child_process launch_worker(const std::vector<std::string>& args) {
    static const std::string exe = executable_path();
    child_process process;
    process.impl_ = std::make_unique<child_process::impl>();
    try {
        process.impl_->child =
            bp::child(bp::exe = exe, bp::args = args, bp::env[worker_environment_variable] = "1",
                      bp::extend::on_exec_setup = child_setup{});
    } catch (const std::exception& e) {
        throw error("procpool: cannot start worker process " + exe + ": " + e.what());
    }
    process.impl_->pidfd =
        static_cast<int>(::syscall(SYS_pidfd_open, process.impl_->child.id(), 0));
    return process;
}

std::string describe_wait_status(int status) {
    if (WIFSIGNALED(status))
        return std::string("killed by ") + signal_name(WTERMSIG(status));
    if (WIFEXITED(status))
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    return "ended with wait status " + std::to_string(status);
}

} // namespace procpool::detail
