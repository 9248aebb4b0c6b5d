// Errors thrown by ProcPool itself. Everything here derives from procpool::error, which is a
// std::runtime_error, so `catch (const std::runtime_error&)` sees all of them.
#pragma once

#include <procpool/export.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace procpool {

/// Base of every error the pool throws itself (Python: the pool's own exceptions).
class PROCPOOL_API error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// `async_result::get(timeout)` or `imap_result::next(timeout)` ran out of time
/// (Python: multiprocessing.TimeoutError). The result stays usable: wait again.
class PROCPOOL_API timeout_error : public error {
public:
    using error::error;
};

/// The call does not fit the pool's state: submitting to a closed or terminated pool,
/// `join()` before `close()`, `successful()` before the result is ready, a result that can
/// never complete because the pool was terminated, or a worker process that reached a pool
/// constructor without calling `procpool::init` (Python: ValueError / AssertionError).
class PROCPOOL_API state_error : public error {
public:
    using error::error;
};

/// The worker process running this task died (killed by a signal, or exited) before it
/// returned a result. Carries the worker's pid and either its exit code or its signal.
class PROCPOOL_API worker_lost_error : public error {
public:
    worker_lost_error(const std::string& what, int pid, std::optional<int> exit_code,
                      std::optional<int> signal)
        : error(what)
        , pid_(pid)
        , exit_code_(exit_code)
        , signal_(signal) {}

    /// The process id of the worker that died.
    int pid() const noexcept { return pid_; }
    /// The worker's exit status when it exited; empty when a signal ended it.
    std::optional<int> exit_code() const noexcept { return exit_code_; }
    /// The signal that ended the worker (SIGKILL, SIGSEGV, ...); empty when it exited.
    std::optional<int> signal() const noexcept { return signal_; }

private:
    int pid_;
    std::optional<int> exit_code_;
    std::optional<int> signal_;
};

/// The task (one apply, or one chunk of a map or imap) was still running when its timeout
/// (pool_options::task_timeout, task_options::timeout) passed. Its worker was killed and
/// replaced; the pool's other tasks are unaffected. Never retried.
class PROCPOOL_API task_timeout_error : public error {
public:
    task_timeout_error(const std::string& what, std::chrono::milliseconds timeout, int pid)
        : error(what)
        , timeout_(timeout)
        , pid_(pid) {}

    /// The timeout the task ran past.
    std::chrono::milliseconds timeout() const noexcept { return timeout_; }
    /// The worker that was running it (killed since).
    int pid() const noexcept { return pid_; }

private:
    std::chrono::milliseconds timeout_;
    int pid_;
};

/// get() on a result that was cancelled (async_result::cancel, imap_result::cancel), and
/// what its error callback receives.
class PROCPOOL_API cancelled_error : public error {
public:
    using error::error;
};

/// The worker running this task went past pool_options::memory_limit_per_child and was killed
/// (a worker_lost_error: signal() is SIGKILL). Retried as any lost task (max_retries).
class PROCPOOL_API memory_limit_error : public worker_lost_error {
public:
    memory_limit_error(const std::string& what, int pid, std::size_t limit, std::size_t rss)
        : worker_lost_error(what, pid, std::nullopt, 9 /* SIGKILL */)
        , limit_(limit)
        , rss_(rss) {}

    /// The limit, in bytes.
    std::size_t limit() const noexcept { return limit_; }
    /// The worker's resident memory when the pool saw it past the limit, in bytes.
    std::size_t rss() const noexcept { return rss_; }

private:
    std::size_t limit_;
    std::size_t rss_;
};

/// A task threw an exception of a type the parent cannot recreate (anything but the standard
/// exception types and ProcPool's own). `what()` reads "TYPE: MESSAGE".
class PROCPOOL_API remote_error : public error {
public:
    remote_error(std::string type_name, std::string message)
        : error(type_name + ": " + message)
        , type_name_(std::move(type_name))
        , message_(std::move(message)) {}

    /// The demangled type name of the exception thrown in the worker.
    const std::string& type_name() const noexcept { return type_name_; }
    /// Its `what()`, or empty when the type was not a std::exception.
    const std::string& message() const noexcept { return message_; }

private:
    std::string type_name_;
    std::string message_;
};

/// An argument, a function object or a result could not be encoded or decoded with
/// Boost.Serialization (Python: PicklingError).
class PROCPOOL_API serialization_error : public error {
public:
    using error::error;
};

} // namespace procpool
