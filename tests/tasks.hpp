// Task functions shared by the pool tests. Each test binary is its pools' worker executable,
// so these run in the workers.
#pragma once

#include "sanitized.hpp"

#include <procpool/procpool.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <ios>
#include <iterator>
#include <numeric>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace tasks {

/// The text of a /proc file, or "" when it cannot be read: the process (or thread) it describes
/// may end while it is read, and libstdc++'s filebuf throws on that read error (ESRCH).
inline std::string proc_text(const std::string& path) {
    try {
        std::ifstream in(path);
        return std::string((std::istreambuf_iterator<char>(in)), {});
    } catch (const std::ios_base::failure&) {
        return {};
    }
}

/// The options of a test pool of `processes` workers. The same suites also run under mpiexec
/// (built with PROCPOOL_TEST_MPI), where the workers are the job's ranks.
inline procpool::pool_options test_options(std::size_t processes, procpool::initializer init = {}) {
    procpool::pool_options options{.processes = processes, .initializer = std::move(init)};
#ifdef PROCPOOL_TEST_MPI
    options.context = procpool::get_context("mpi");
#endif
    return options;
}

/// 0, 1, ..., n-1: the usual input.
inline std::vector<int> iota_vector(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    return v;
}
/// What map(square, iota_vector(n)) returns.
inline std::vector<int> squares(int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i)
        v.push_back(i * i);
    return v;
}

inline int square(int x) {
    return x * x;
}
inline int add(int a, int b) {
    return a + b;
}
inline std::string repeat(std::string s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i)
        out += s;
    return out;
}
inline int worker_pid(int) {
    return static_cast<int>(::getpid());
}
inline int sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
inline std::vector<char> identity(std::vector<char> v) {
    return v;
}
/// identity, but throws for an item that starts with 'X'.
inline std::vector<char> identity_unless_marked(std::vector<char> v) {
    if (!v.empty() && v[0] == 'X')
        throw std::runtime_error("marked item of " + std::to_string(v.size()) + " bytes");
    return v;
}

/// A string of `bytes` bytes and a vector of doubles of about as many, both patterned by `seed`:
/// results of two more types whose large values travel from the worker's own memory.
inline std::string patterned_string(std::size_t bytes, int seed) {
    std::string s(bytes, '\0');
    for (std::size_t i = 0; i < bytes; ++i)
        s[i] = static_cast<char>(seed * 11 + i * 7 + (i >> 12));
    return s;
}
inline std::vector<double> patterned_doubles(std::size_t bytes, int seed) {
    std::vector<double> v(bytes / sizeof(double));
    for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = static_cast<double>(seed) + 0.25 * static_cast<double>(i);
    return v;
}
inline std::string patterned_string_of(std::pair<std::size_t, int> size_and_seed) {
    return patterned_string(size_and_seed.first, size_and_seed.second);
}
inline std::vector<double> patterned_doubles_of(std::pair<std::size_t, int> size_and_seed) {
    return patterned_doubles(size_and_seed.first, size_and_seed.second);
}
/// patterned_string's bytes as a std::vector of `Char`.
template <class Char>
std::vector<Char> patterned_bytes_of(std::pair<std::size_t, int> size_and_seed) {
    const std::string s = patterned_string_of(size_and_seed);
    return std::vector<Char>(s.begin(), s.end());
}

/// Whether x is odd.
inline bool is_odd(int x) {
    return x % 2 != 0;
}
inline void nothing(int) {}

/// Throws a standard exception chosen by `kind`, with message "kind <kind>".
inline int throw_standard(int kind) {
    const std::string m = "kind " + std::to_string(kind);
    switch (kind) {
    case 0:
        throw std::logic_error(m);
    case 1:
        throw std::invalid_argument(m);
    case 2:
        throw std::domain_error(m);
    case 3:
        throw std::length_error(m);
    case 4:
        throw std::out_of_range(m);
    case 5:
        throw std::runtime_error(m);
    case 6:
        throw std::range_error(m);
    case 7:
        throw std::overflow_error(m);
    case 8:
        throw std::underflow_error(m);
    }
    return kind;
}

/// The first character and the size; an empty string is invalid.
inline std::pair<char, std::size_t> first_and_size(std::string s) {
    if (s.empty())
        throw std::invalid_argument("empty string");
    return {s.front(), s.size()};
}

/// Fails on one item only.
inline int fail_on_five(int x) {
    if (x == 5)
        throw std::out_of_range("five is out of range");
    return x;
}

struct custom_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
inline int throw_custom(int) {
    throw custom_error("custom message");
}
inline int throw_int(int) {
    throw 42;
}

/// An error category of the program's own: the parent cannot make its codes again.
inline const std::error_category& custom_category() {
    struct category final : std::error_category {
        const char* name() const noexcept override { return "tasks.custom"; }
        std::string message(int value) const override { return "custom " + std::to_string(value); }
    };
    static const category instance;
    return instance;
}

/// The exceptions with an error code, and the thrown texts, that throw_coded throws.
inline constexpr int coded_kinds = 9;
inline std::exception_ptr coded_exception(int kind) {
    namespace fs = std::filesystem;
    switch (kind) {
    case 0:
        return std::make_exception_ptr(
            std::system_error(std::error_code(ENOENT, std::generic_category()), "opening config"));
    case 1:
        return std::make_exception_ptr(
            std::system_error(std::error_code(EACCES, std::system_category())));
    case 2:
        return std::make_exception_ptr(fs::filesystem_error(
            "copy", "/a/b", "/c d/e", std::make_error_code(std::errc::file_exists)));
    case 3:
        return std::make_exception_ptr(fs::filesystem_error(
            "remove", "/only/one", std::make_error_code(std::errc::permission_denied)));
    case 4:
        return std::make_exception_ptr(
            std::ios_base::failure("stream broke", std::make_error_code(std::io_errc::stream)));
    case 5:
        return std::make_exception_ptr(
            std::future_error(std::future_errc::promise_already_satisfied));
    case 6:
        return std::make_exception_ptr(
            std::system_error(std::error_code(7, custom_category()), "own category"));
    case 7:
        return std::make_exception_ptr(std::string("text thrown as a std::string"));
    default:
        return std::make_exception_ptr("text thrown as a literal");
    }
}
inline int throw_coded(int kind) {
    std::rethrow_exception(coded_exception(kind));
}

/// Kills its own worker.
inline int die_by_signal(int sig) {
    ::raise(sig);
    return 0;
}

/// A value whose serialization always fails.
struct unsendable {
    template <class Archive>
    void serialize(Archive&, unsigned) {
        throw std::runtime_error("unsendable cannot be serialized");
    }
};
inline unsendable make_unsendable(int) {
    return {};
}
inline int take_unsendable(unsendable) {
    return 0;
}

/// An empty function object: default-constructed in the worker.
struct negate {
    int operator()(int x) const { return -x; }
};

/// A function object with state: serialized with the task.
struct scale {
    int factor = 0;
    int operator()(int x) const { return factor * x; }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& factor;
    }
};

using testing::sanitized;

/// Every wait in a test is bounded.
inline constexpr auto patience = std::chrono::seconds(60);

/// The number of live workers once the pool has replaced the ones it lost, or after `patience`:
/// a replacement starts in the background, so a count right after a loss can be one short.
inline std::size_t workers_once_replaced(const procpool::pool& pool) {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (pool.worker_pids().size() != pool.processes() &&
           std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return pool.worker_pids().size();
}

template <class T>
T bounded_get(procpool::async_result<T> result) {
    return result.get(patience);
}

/// Waits for `result` in waits of `step` each (as a caller polling it would), until it is
/// ready or `patience` has passed; returns ready().
template <class T, class Rep, class Period>
bool ready_after_waits_of(const procpool::async_result<T>& result,
                          std::chrono::duration<Rep, Period> step) {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!result.wait(step) && std::chrono::steady_clock::now() < give_up) {
    }
    return result.ready();
}

/// Runs body(t) for t = 0 .. n-1, each on a thread of its own, all at once; returns how many
/// threw.
template <class Body>
int failures_on_threads(int n, Body body) {
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t)
        threads.emplace_back([&, t] {
            try {
                body(t);
            } catch (...) {
                ++failed;
            }
        });
    for (auto& th : threads)
        th.join();
    return failed.load();
}

} // namespace tasks
