// The fault-injection helper: a program with a pool that injects one fault, then reports what
// its caller saw and the pool's state as key=value lines. test_faults drives it with bounded
// waits. Usage: fault_helper CONTEXT MODE [ARG]
//   CONTEXT  spawn | forkserver
//   MODE     a fault inside a task:  kill, segv, abort, terminate, exit N, signal N, throw,
//                                    outside (the worker is killed from outside)
//            a fault at start:       init-crash, init-throw, exe-replaced (run a copy: it
//                                    replaces its own executable)
//            busy: starts long tasks, prints busy=1 and waits to be killed
// Task faults (at their end) and busy also print children= (the workers, and a forkserver) and
// worker_pids= (the pool's workers).
#include <procpool/procpool.hpp>

#include <boost/core/demangle.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <typeinfo>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr auto patience = 30s;

int square(int x) {
    return x * x;
}

/// A store through a null pointer: the real SIGSEGV of a buggy task. The pointer is read from
/// a volatile, so the compiler cannot see it is null (and drop or trap the store), and the
/// function is left out of UndefinedBehaviorSanitizer's null check, which would end the worker
/// with a report instead (scripts/sanitize.sh).
__attribute__((noinline, no_sanitize("null"))) void store_through_null() {
    static volatile std::uintptr_t zero = 0;
    *reinterpret_cast<volatile int*>(zero) = 1;
}

/// Runs in a worker: does what `mode` says.
int inject(std::string mode, int arg) {
    if (mode == "kill")
        ::raise(SIGKILL);
    if (mode == "segv")
        store_through_null();
    if (mode == "abort")
        std::abort();
    if (mode == "terminate")
        std::terminate();
    if (mode == "exit")
        std::_Exit(arg);
    if (mode == "signal")
        ::raise(arg);
    if (mode == "throw")
        throw std::runtime_error("thrown on purpose");
    return -1;
}

/// starmap item: item 5 injects the fault, the others square.
int inject_at_five(std::string mode, int arg, int i) {
    if (i == 5)
        return inject(std::move(mode), arg);
    return i * i;
}

/// Writes this worker's pid to `path`, then sleeps for a minute.
int announce_and_sleep(std::string path) {
    const std::string mine = path + "." + std::to_string(::getpid());
    std::ofstream(mine + ".tmp") << ::getpid();
    std::filesystem::rename(mine + ".tmp", mine); // appears whole
    // Far longer than any test waits: a worker that ends this task was ended from outside.
    std::this_thread::sleep_for(300s);
    return 0;
}

void crash_in_initializer() {
    std::abort();
}
void throw_in_initializer(int) {
    throw std::invalid_argument("bad initargs");
}

std::string type_of(const std::exception& e) {
    return boost::core::demangle(typeid(e).name());
}

void report(const std::string& key, const std::string& value) {
    std::cout << key << '=' << value << std::endl;
}

/// Reports the exception `fn` throws: its type, message and worker_lost_error's fields.
template <class Fn>
void report_error(const std::string& prefix, Fn&& fn) {
    try {
        fn();
        report(prefix + "error", "none");
    } catch (const procpool::worker_lost_error& e) {
        report(prefix + "error", type_of(e));
        report(prefix + "what", e.what());
        report(prefix + "pid_is_worker", e.pid() > 0 && e.pid() != ::getpid() ? "1" : "0");
        if (e.signal())
            report(prefix + "signal", std::to_string(*e.signal()));
        if (e.exit_code())
            report(prefix + "exit", std::to_string(*e.exit_code()));
    } catch (const std::exception& e) {
        report(prefix + "error", type_of(e));
        report(prefix + "what", e.what());
    }
}

/// Waits (bounded) until the pool has `n` live workers again; reports how many it has.
void report_workers(procpool::pool& pool, std::size_t n) {
    std::size_t now = 0;
    for (int i = 0; i < 3000 && (now = pool.worker_pids().size()) != n; ++i)
        std::this_thread::sleep_for(10ms);
    report("workers", std::to_string(now));
}

/// The pids of this process's children (workers, and a forkserver).
std::string children() {
    std::string out;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream in(task.path() / "children");
        std::string pid;
        while (in >> pid)
            out += (out.empty() ? "" : ",") + pid;
    }
    return out;
}

std::string joined(const std::vector<int>& pids) {
    std::string out;
    for (const int pid : pids)
        out += (out.empty() ? "" : ",") + std::to_string(pid);
    return out;
}

std::string our_segment() {
    const std::string prefix = "procpool-" + std::to_string(::getpid()) + "-";
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
        if (entry.path().filename().string().starts_with(prefix))
            return entry.path().filename();
    return "";
}

int task_fault(procpool::pool_options options, const std::string& mode, int arg) {
    procpool::pool pool(options);
    if (mode == "outside") {
        const std::string path = "/tmp/procpool-fault-" + std::to_string(::getpid());
        auto doomed = pool.apply_async(announce_and_sleep, path);
        int victim = 0;
        for (int i = 0; i < 3000 && victim == 0; ++i) {
            for (const int pid : pool.worker_pids())
                if (std::filesystem::exists(path + "." + std::to_string(pid)))
                    victim = pid;
            if (victim == 0)
                std::this_thread::sleep_for(10ms);
        }
        if (victim == 0) {
            report("error", "the task never started");
            return 1;
        }
        std::filesystem::remove(path + "." + std::to_string(victim));
        ::kill(victim, SIGKILL);
        report_error("", [&] { doomed.get(patience); });
    } else {
        auto doomed = pool.apply_async(inject, mode, arg);
        auto others = pool.map_async(square, std::views::iota(0, 100), 1);
        report_error("", [&] { doomed.get(patience); });
        const auto values = others.get(patience);
        int right = 0;
        for (int i = 0; i < 100; ++i)
            right += values[static_cast<std::size_t>(i)] == i * i;
        report("others", std::to_string(right) + "/100");
        std::vector<std::tuple<std::string, int, int>> items;
        for (int i = 0; i < 10; ++i)
            items.emplace_back(mode, arg, i);
        report_error("map_", [&] { pool.starmap(inject_at_five, items, 1); });
    }
    report("after", std::to_string(pool.apply(square, 7)));
    report_workers(pool, 2);
    report("children", children());
    report("worker_pids", joined(pool.worker_pids()));
    return 0;
}

int start_fault(procpool::pool_options options, const std::string& mode) {
    if (mode == "init-crash")
        options.initializer = procpool::initializer(crash_in_initializer);
    else
        options.initializer = procpool::initializer(throw_in_initializer, 1);
    procpool::pool pool(options);
    report_error("", [&] { pool.apply(square, 2); });
    report_error("again_", [&] { pool.apply(square, 3); });
    pool.terminate();
    report("workers", std::to_string(pool.worker_pids().size()));
    return 0;
}

int exe_replaced(procpool::pool_options options) {
    procpool::pool pool(options);
    report("before", std::to_string(pool.apply(square, 3)));
    // Replace this program's file, as an upgrade in place would: new workers cannot start.
    const std::string self = std::filesystem::read_symlink("/proc/self/exe");
    { std::ofstream(self + ".new") << "not a program\n"; }
    ::chmod((self + ".new").c_str(), 0755);
    std::filesystem::rename(self + ".new", self);
    report_error("construct_", [&] { procpool::pool other(options); });
    const auto pids = pool.worker_pids();
    ::kill(pids.at(0), SIGKILL); // its replacement cannot start
    bool failed = false;
    for (int i = 0; i < 3000 && !failed; ++i) {
        try {
            pool.apply(square, 4);
            std::this_thread::sleep_for(10ms);
        } catch (const procpool::error&) {
            failed = true;
        }
    }
    report_error("respawn_", [&] { pool.apply(square, 5); });
    return 0;
}

int busy(procpool::pool_options options) {
    procpool::pool pool(options);
    const std::string path = "/tmp/procpool-busy-" + std::to_string(::getpid());
    auto a = pool.apply_async(announce_and_sleep, path);
    auto b = pool.apply_async(announce_and_sleep, path);
    for (int i = 0; i < 3000; ++i) {
        int started = 0;
        for (const int pid : pool.worker_pids())
            started += std::filesystem::exists(path + "." + std::to_string(pid));
        if (started == 2)
            break;
        std::this_thread::sleep_for(10ms);
    }
    for (const int pid : pool.worker_pids())
        std::filesystem::remove(path + "." + std::to_string(pid));
    report("segment", our_segment());
    report("children", children());
    report("worker_pids", joined(pool.worker_pids())); // the other children: the forkserver
    report("busy", "1");
    std::this_thread::sleep_for(120s); // the test kills this process long before
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    procpool::init(argc, argv);
    if (argc < 3) {
        std::cerr << "usage: fault_helper spawn|forkserver MODE [ARG]\n";
        return 2;
    }
    procpool::pool_options options{.processes = 2, .context = procpool::get_context(argv[1])};
    const std::string mode = argv[2];
    const int arg = argc > 3 ? std::atoi(argv[3]) : 0;
    try {
        if (mode == "init-crash" || mode == "init-throw")
            return start_fault(options, mode);
        if (mode == "exe-replaced")
            return exe_replaced(options);
        if (mode == "busy")
            return busy(options);
        return task_fault(options, mode, arg);
    } catch (const std::exception& e) {
        report("unexpected", e.what());
        return 1;
    }
}
