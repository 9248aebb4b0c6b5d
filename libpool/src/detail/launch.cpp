// All process launching, on Boost.Process v1 (the stable API in Boost 1.81; v2's bind_fd and
// fd closing are broken there). See detail/launch.hpp.
//
// Workers are started with vfork, not fork (bp::posix::use_vfork). fork copies the parent's page
// tables, and its cost grows with the parent's resident memory (docs/performance.md: fork's
// page-table copy), so a large HPC parent would pay far more per worker. vfork shares the parent's
// memory until exec, and the child does only async-signal-safe calls before it (child_setup).
// Boost.Process 1.81 has the vfork executor but compiles it only when BOOST_POSIX_HAS_VFORK is set,
// which its config sets only for pre-2008 POSIX feature levels (vfork left POSIX in 2008; glibc
// keeps it): set it here, before any Boost.Process header. This is the only file that includes
// Boost.Process, so no other translation unit sees its executor without the vfork members. On a
// failed exec, Boost's vfork child writes the error code and a 13-character message into the
// parent's executor: the string fits std::string's inline buffer, so the child never calls malloc.
//
// Under ThreadSanitizer, which turns every vfork into a fork (it cannot follow a child that
// shares its parent's memory), that message would be written into the child's copy and lost, and
// a failed exec would look like a worker that exited with status 1: such a build uses Boost's
// fork executor, which reports a failed exec through a close-on-exec pipe.
#if defined(__SANITIZE_THREAD__)
#define PROCPOOL_LAUNCH_WITH_VFORK 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PROCPOOL_LAUNCH_WITH_VFORK 0
#endif
#endif
#ifndef PROCPOOL_LAUNCH_WITH_VFORK
#define PROCPOOL_LAUNCH_WITH_VFORK 1
#define BOOST_POSIX_HAS_VFORK 1
#endif

#include "launch.hpp"
#include "throw_error.hpp"
#include "worker.hpp"
#include <procpool/errors.hpp>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <linux/close_range.h>
#include <mutex>
#include <optional>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

namespace procpool::detail {

namespace bp = boost::process;

struct child_process::impl {
    std::optional<bp::child> child; // spawn; a forked worker has only its pid
    int pid = -1;
    int pidfd = -1;
    int pidfd_errno = 0; // why pidfd_open failed
    int status = 0;
    bool reaped = false;

    void open_pidfd() noexcept {
        pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        pidfd_errno = pidfd < 0 ? errno : 0;
    }

    ~impl() {
        if (pidfd >= 0)
            ::close(pidfd);
    }
};

child_process::child_process() noexcept = default;
child_process::child_process(std::unique_ptr<impl> p) noexcept
    : impl_(std::move(p)) {}
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
    return impl_ ? impl_->pid : -1;
}
int child_process::pidfd_error() const noexcept {
    return impl_ ? impl_->pidfd_errno : 0;
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
    if (impl_->child) {
        std::error_code ec;
        impl_->child->wait(ec);
        // native_exit_code() is the raw status: exit_code() cannot tell exit(9) from SIGKILL.
        // After a failed wait it is Boost's "still running" value, not a status.
        impl_->status = ec ? wait_status_lost : impl_->child->native_exit_code();
    } else {
        int status = 0;
        int got = 0;
        while ((got = ::waitpid(impl_->pid, &status, 0)) < 0 && errno == EINTR) {
        }
        impl_->status = got < 0 ? wait_status_lost : status;
    }
    impl_->reaped = true;
    return impl_->status;
}

void child_process::kill() noexcept {
    send(SIGKILL);
}

void child_process::send(int signal) noexcept {
    if (impl_ && !impl_->reaped)
        ::kill(impl_->pid, signal);
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

/// Runs in the child between vfork and exec: only async-signal-safe calls, no memory writes
/// but to its own stack.
struct child_setup {
    int pass_fd = -1; ///< passed on purpose, as descriptor 3

    template <class Executor>
    void operator()(Executor&) const {
        // This runs in a vfork child, on the parent's memory: a signal caught before exec would
        // run one of the parent's handlers on the parent's data. So every caught signal goes
        // back to its default first (the child has its own handler table; exec would reset
        // them anyway), as glibc's posix_spawn does.
        for (int sig = 1; sig < NSIG; ++sig) {
            struct sigaction action {};
            if (::sigaction(sig, nullptr, &action) == 0 && action.sa_handler != SIG_DFL &&
                action.sa_handler != SIG_IGN) {
                action.sa_handler = SIG_DFL;
                action.sa_flags = 0;
                ::sigaction(sig, &action, nullptr);
            }
        }
        // Close-on-exec every descriptor above stdio, so the worker inherits no file, socket
        // or pipe of the parent.
        ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        if (pass_fd == 3)
            ::fcntl(3, F_SETFD, 0);
        else if (pass_fd >= 0)
            ::dup2(pass_fd, 3); // the copy is not close-on-exec
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
    }
};

const std::string& executable() {
    static const std::string exe = executable_path();
    return exe;
}

child_process start_process(const std::vector<std::string>& args, int pass_fd) {
    auto p = std::make_unique<child_process::impl>();
    try {
#if PROCPOOL_LAUNCH_WITH_VFORK
        p->child.emplace(bp::exe = executable(), bp::args = args,
                         bp::env[worker_environment_variable] = "1",
                         bp::extend::on_exec_setup = child_setup{pass_fd}, bp::posix::use_vfork);
#else
        p->child.emplace(bp::exe = executable(), bp::args = args,
                         bp::env[worker_environment_variable] = "1",
                         bp::extend::on_exec_setup = child_setup{pass_fd});
#endif
    } catch (const std::exception& e) {
        throw error("procpool: cannot start worker process " + executable() + ": " + e.what());
    }
    p->pid = p->child->id();
    p->open_pidfd();
    return child_process(std::move(p));
}

// ---- the forkserver ----
//
// Protocol, over a SOCK_SEQPACKET socket pair (one message per request, no framing needed):
//   request  the worker's arguments, each followed by a NUL byte, and one descriptor
//            (SCM_RIGHTS): the pool's doorbell, which the worker gets as descriptor 3
//   reply    an int32: the worker's pid, or -errno when clone failed
// The forkserver is single-threaded, so forking it (with a raw clone, which runs no atfork
// handlers) copies a consistent process.

constexpr std::size_t max_request = 4096;

/// One datagram of `bytes` at `data` with room for one descriptor (SCM_RIGHTS), for sendmsg
/// and recvmsg alike.
struct fd_message {
    iovec data;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr header{};

    fd_message(void* bytes, std::size_t size) noexcept
        : data{bytes, size} {
        header.msg_iov = &data;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = sizeof control;
    }
    fd_message(const fd_message&) = delete; // header points into this object

    void attach(int fd) noexcept {
        cmsghdr* c = CMSG_FIRSTHDR(&header);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }

    /// The descriptor a received message carried, or -1.
    int attached() const noexcept {
        const cmsghdr* c = CMSG_FIRSTHDR(&header);
        if (c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int)))
            return -1;
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
        return fd;
    }
};

class forkserver_client {
public:
    child_process fork(const std::vector<std::string>& args, int pass_fd) {
        std::string request;
        for (const std::string& a : args) {
            request += a;
            request.push_back('\0');
        }
        if (request.size() > max_request)
            throw error("procpool: worker arguments too long for the forkserver");
        std::lock_guard lock(mutex_);
        for (int attempt = 0;; ++attempt) {
            if (!server_)
                start();
            std::int32_t reply = 0;
            if (exchange(request, pass_fd, reply)) {
                if (reply < 0)
                    throw error(std::string("procpool: the forkserver cannot fork a worker: ") +
                                std::strerror(-reply));
                auto p = std::make_unique<child_process::impl>();
                p->pid = reply;
                p->open_pidfd();
                return child_process(std::move(p));
            }
            stop(); // it died: start another, once
            if (attempt == 1)
                throw error("procpool: the forkserver stopped answering");
        }
    }

    ~forkserver_client() { stop(); }

private:
    void start() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
            throw_system_error("socketpair");
        try {
            server_.emplace(start_process({forkserver_flag, std::to_string(::getpid())}, fds[1]));
        } catch (...) {
            ::close(fds[0]);
            ::close(fds[1]);
            throw;
        }
        ::close(fds[1]);
        fd_ = fds[0];
    }

    void stop() noexcept {
        if (fd_ >= 0)
            ::close(fd_); // the server sees end of file and leaves
        fd_ = -1;
        if (server_) {
            try {
                server_->wait();
            } catch (...) {
            }
            server_.reset();
        }
    }

    bool exchange(const std::string& request, int pass_fd, std::int32_t& reply) noexcept {
        fd_message message(const_cast<char*>(request.data()), request.size());
        message.attach(pass_fd);
        if (::sendmsg(fd_, &message.header, MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
            return false;
        ssize_t n;
        while ((n = ::recv(fd_, &reply, sizeof reply, 0)) < 0 && errno == EINTR) {
        }
        return n == sizeof reply;
    }

    std::mutex mutex_;
    std::optional<child_process> server_;
    int fd_ = -1;
};

} // namespace

child_process launch_worker(const std::vector<std::string>& args, int pass_fd) {
    return start_process(args, pass_fd);
}

child_process fork_worker(const std::vector<std::string>& args, int pass_fd) {
    static forkserver_client client;
    return client.fork(args, pass_fd);
}

void run_forkserver(int argc, char** argv) {
    constexpr int fd = 3;
    if (argc != 3)
        ::_exit(3);
    const pid_t parent = static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
    if (::getppid() != parent)
        ::_exit(3);
    ::unsetenv(worker_environment_variable);
    std::vector<char> buffer(max_request);
    for (;;) {
        fd_message message(buffer.data(), buffer.size());
        const ssize_t n = ::recvmsg(fd, &message.header, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ::_exit(0); // the program closed its end, or died
        const int passed = message.attached();
        std::vector<char*> args{argv[0]}; // the request starts with worker_flag
        for (ssize_t i = 0; i < n;) {
            args.push_back(buffer.data() + i);
            i += static_cast<ssize_t>(std::strlen(buffer.data() + i)) + 1;
        }
        args.push_back(nullptr);
        // CLONE_PARENT: the worker is the program's child, so the program reaps it and reads
        // its exit status exactly as for a spawned worker.
        const long pid =
            ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
        if (pid == 0) {
            // The request socket is descriptor 3; the worker's doorbell takes its place.
            ::close(fd);
            if (passed >= 0) {
                ::dup2(passed, fd);
                ::close(passed);
            }
            run_worker(static_cast<int>(args.size() - 1), args.data());
        }
        if (passed >= 0)
            ::close(passed);
        const std::int32_t reply = pid < 0 ? -errno : static_cast<std::int32_t>(pid);
        if (::send(fd, &reply, sizeof reply, MSG_NOSIGNAL) != sizeof reply)
            ::_exit(0);
    }
}

std::string describe_wait_status(int status) {
    if (status == wait_status_lost) {
        struct sigaction action {};
        const bool ignored =
            ::sigaction(SIGCHLD, nullptr, &action) == 0 &&
            (((action.sa_flags & SA_SIGINFO) == 0 && action.sa_handler == SIG_IGN) ||
             (action.sa_flags & SA_NOCLDWAIT) != 0);
        return ignored ? "ended, its exit status lost: this program ignores SIGCHLD, so the "
                         "kernel reaps its children and keeps no status"
                       : "ended, its exit status lost: it was reaped outside the pool";
    }
    if (WIFSIGNALED(status))
        return std::string("killed by ") + signal_name(WTERMSIG(status));
    if (WIFEXITED(status))
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    return "ended with wait status " + std::to_string(status);
}

} // namespace procpool::detail
