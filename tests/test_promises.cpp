// What the README (and docs/design.md) promise and no other suite checks: the error callbacks
// of map_async and starmap_async, which error map raises, a lost worker in imap, imap's
// read-ahead bound, one forkserver that is started again and leaves with its program, a
// segment of another layout, the message of workers that keep dying, an idle pool's CPU, calls
// after close(), user types as arguments and results, and the workers' stdio.
#define PROCPOOL_TEST_SUITE_NAME "promises"
#include "test_main.hpp"

#include "tasks.hpp"

#include "../libpool/src/detail/segment.hpp"

#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

/// A path under /tmp of this process's own, for `what`; nothing is there yet.
std::string fresh_path(const std::string& what) {
    const std::string path = "/tmp/procpool-promises-" + std::to_string(::getpid()) + "-" + what;
    std::filesystem::remove(path);
    return path;
}

void touch(const std::string& path) {
    std::ofstream(path).put('x');
}

std::string contents_of(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

/// How often `part` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
        ++n;
    return n;
}

/// Waits (at most `patience`) until `path` exists; returns whether it does.
bool wait_for_file(const std::string& path) {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(5ms);
    return std::filesystem::exists(path);
}

/// The what() of the std::runtime_error `call` throws, or a note saying it threw none.
template <class Call>
std::string runtime_error_of(Call call) {
    try {
        call();
    } catch (const std::runtime_error& e) {
        return e.what();
    } catch (...) {
        return "<an exception of another type>";
    }
    return "<no exception>";
}

/// The state letter in the /proc stat file at `stat_path`: 'R', 'S', 'Z'...; '?' when gone.
char state_in(const std::string& stat_path) {
    const std::string text = proc_text(stat_path);
    const auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() ? text[close + 2] : '?';
}

/// Waits (bounded) until process `pid` has ended: it is gone, or a zombie nobody reaped yet.
/// Never reaps it: it is the pool's (or the forkserver client's) to reap.
bool ended(int pid) {
    const std::string stat = "/proc/" + std::to_string(pid) + "/stat";
    const auto give_up = std::chrono::steady_clock::now() + patience;
    for (;;) {
        const char state = state_in(stat);
        if (state == '?' || state == 'Z' || state == 'X')
            return true;
        if (std::chrono::steady_clock::now() >= give_up)
            return false;
        std::this_thread::sleep_for(1ms);
    }
}

/// Sends this process's descriptor `fd` (1 or 2) to a new file at `path` while it lives, then
/// puts the original back. Workers started meanwhile inherit the file.
class redirected {
public:
    redirected(int fd, const std::string& path)
        : fd_(fd)
        , saved_(::fcntl(fd, F_DUPFD_CLOEXEC, 3)) {
        std::cout.flush();
        std::fflush(nullptr);
        const int file = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
        ok_ = saved_ >= 0 && file >= 0 && ::dup2(file, fd_) == fd_;
        if (file >= 0)
            ::close(file);
    }
    ~redirected() {
        std::cout.flush();
        std::fflush(nullptr);
        if (saved_ >= 0) {
            ::dup2(saved_, fd_);
            ::close(saved_);
        }
    }
    redirected(const redirected&) = delete;
    redirected& operator=(const redirected&) = delete;

    bool ok() const noexcept { return ok_; }

private:
    int fd_;
    int saved_;
    bool ok_ = false;
};

// ---- tasks ----

/// Fails on every odd item, always with the same invalid_argument.
int fail_if_odd(int x) {
    if (x % 2 != 0)
        throw std::invalid_argument("an odd item");
    return x;
}

/// Item 0 fails last: it waits until `gate` exists, leaves a file `gate`.failed, then throws.
/// Item 1 fails at once. Every other item returns itself.
struct fail_late_and_early {
    std::string gate;
    int operator()(int x) const {
        if (x == 0) {
            wait_for_file(gate);
            touch(gate + ".failed");
            throw std::runtime_error("item 0, which failed last");
        }
        if (x == 1)
            throw std::runtime_error("item 1, which failed first");
        return x;
    }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& gate;
    }
};

/// Kills its own worker at item 3; squares every other item.
int square_but_die_at_three(int x) {
    if (x == 3)
        ::raise(SIGKILL);
    return x * x;
}

/// Appends this worker's pid to the file at `path`, then aborts: a worker that never gets
/// ready. No core file: the abort is on purpose.
void record_pid_and_abort(std::string path) {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::ofstream(path, std::ios::app) << ::getpid() << '\n';
    std::abort();
}

/// Runs in a worker: writes `marker` to stdout, through stdio and std::cout, and to stderr.
int print_marker(std::string marker) {
    std::printf("%s on stdout\n", marker.c_str());
    std::fflush(stdout);
    std::cout << marker << " through std::cout" << std::endl;
    std::fprintf(stderr, "%s on stderr\n", marker.c_str());
    return 1;
}

/// What descriptors 0, 1 and 2 of this process refer to.
std::vector<std::string> stdio_targets(int) {
    std::vector<std::string> targets;
    for (int fd = 0; fd < 3; ++fd) {
        std::error_code ec;
        targets.push_back(
            std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string());
    }
    return targets;
}

// ---- a user's own types ----

/// A type with a serialize member, as Boost.Serialization documents it.
struct reading {
    std::string sensor;
    std::vector<double> values;
    int sequence = 0;
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& sensor;
        ar& values;
        ar& sequence;
    }
    bool operator==(const reading&) const = default;
};
std::ostream& operator<<(std::ostream& os, const reading& r) {
    return os << r.sensor << '#' << r.sequence << " (" << r.values.size() << " values)";
}

/// A type serialized by a free function (Boost.Serialization's non-intrusive form).
struct day_range {
    int first = 0;
    int last = 0;
    bool operator==(const day_range&) const = default;
};
template <class Archive>
void serialize(Archive& ar, day_range& r, unsigned) {
    ar& r.first;
    ar& r.last;
}
std::ostream& operator<<(std::ostream& os, const day_range& r) {
    return os << '[' << r.first << ", " << r.last << ']';
}

reading calibrated(reading r, double offset) {
    for (double& v : r.values)
        v += offset;
    r.sensor += "/calibrated";
    ++r.sequence;
    return r;
}
reading calibrated_by_one(reading r) {
    return calibrated(std::move(r), 1.0);
}
day_range widened(day_range r, int days) {
    return {r.first - days, r.last + days};
}

reading make_reading(int i) {
    reading r{"sensor-" + std::to_string(i), {}, i};
    for (int k = 0; k <= i % 5; ++k)
        r.values.push_back(0.5 * i + k);
    return r;
}

// ---- process helpers ----

/// This process's children (of every thread), zombies left out.
std::vector<int> live_children() {
    std::vector<int> pids;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream in(task.path() / "children");
        for (int pid; in >> pid;) {
            const char state = state_in("/proc/" + std::to_string(pid) + "/stat");
            if (state != 'Z' && state != 'X' && state != '?')
                pids.push_back(pid);
        }
    }
    std::sort(pids.begin(), pids.end());
    return pids;
}

/// Whether process `pid` runs with the forkserver's command line: the forkserver itself, or a
/// worker it forked (a fork runs on without exec, so it keeps that command line; a spawned
/// worker's is the worker flag's).
bool has_forkserver_command_line(int pid) {
    const std::string text = proc_text("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> args;
    std::istringstream fields(text);
    for (std::string arg; std::getline(fields, arg, '\0');)
        args.push_back(arg);
    return args.size() >= 2 && args[1] == "--procpool-forkserver";
}

/// The forkserver helpers among this process's children: those with the forkserver's command
/// line that are not workers of `pools` (whose workers must be settled: none starting).
std::vector<int> forkservers(std::initializer_list<const procpool::pool*> pools) {
    std::set<int> workers;
    for (const procpool::pool* p : pools)
        for (int pid : p->worker_pids())
            workers.insert(pid);
    std::vector<int> servers;
    for (int pid : live_children())
        if (!workers.contains(pid) && has_forkserver_command_line(pid))
            servers.push_back(pid);
    return servers;
}

/// While it lives, orphaned descendants of this process are reparented to it (so that it can
/// reap them) rather than to init.
struct child_subreaper {
    child_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
    ~child_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
    child_subreaper(const child_subreaper&) = delete;
    child_subreaper& operator=(const child_subreaper&) = delete;
};

/// CPU time (user and system) process `pid` has used so far, in seconds (/proc/PID/stat: the
/// whole process, every thread).
double cpu_seconds(int pid) {
    const std::string text = proc_text("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i)
        if (i == 14 || i == 15) // utime, stime
            ticks += std::stod(field);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// This process's pool segments in /dev/shm.
std::vector<std::string> our_segments() {
    std::vector<std::string> names;
    const std::string prefix = "procpool-" + std::to_string(::getpid()) + "-";
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
        if (entry.path().filename().string().starts_with(prefix))
            names.push_back(entry.path().filename().string());
    return names;
}

} // namespace

// ---- callbacks of map_async and starmap_async ----

namespace {
/// What the callbacks of one call saw.
struct callback_log {
    std::atomic<int> values{0};
    std::atomic<int> errors{0};
    std::string error_what; // written by the one error callback, read after ready()
};

/// Calls `submit(callback, error_callback)` (a map_async or starmap_async whose items fail
/// with invalid_argument "an odd item" several times) and checks that the error callback got
/// that exception, once, and the callback never ran, even after every late error arrived.
template <class Submit>
void check_error_callback_runs_once(procpool::pool& pool, Submit submit) {
    auto log = std::make_shared<callback_log>();
    auto result = submit([log](const std::vector<int>&) { ++log->values; },
                         [log](std::exception_ptr e) {
                             ++log->errors;
                             try {
                                 std::rethrow_exception(e);
                             } catch (const std::invalid_argument& x) {
                                 log->error_what = x.what();
                             } catch (...) {
                                 log->error_what = "<an exception of another type>";
                             }
                         });
    BOOST_REQUIRE(result.wait(patience));
    // The error callback ran before ready() turned true.
    BOOST_TEST(log->errors.load() == 1);
    BOOST_TEST(log->error_what == "an odd item");
    BOOST_TEST(log->values.load() == 0);
    BOOST_TEST(!result.successful());
    BOOST_CHECK_EXCEPTION(result.get(), std::invalid_argument,
                          [](const auto& e) { return std::string(e.what()) == "an odd item"; });
    // Every chunk has run now: the errors that came after the first called nothing.
    pool.close();
    pool.join();
    BOOST_TEST(log->errors.load() == 1);
    BOOST_TEST(log->values.load() == 0);
}
} // namespace

BOOST_AUTO_TEST_CASE(map_async_error_callback_gets_the_task_exception_once_and_no_callback) {
    procpool::pool pool(2);
    check_error_callback_runs_once(pool, [&](auto callback, auto error_callback) {
        return pool.map_async(fail_if_odd, iota_vector(40), 1, callback, error_callback);
    });
}

BOOST_AUTO_TEST_CASE(starmap_async_error_callback_gets_the_task_exception_once_and_no_callback) {
    procpool::pool pool(2);
    std::vector<std::tuple<int>> items;
    for (int i = 0; i < 40; ++i)
        items.emplace_back(i);
    check_error_callback_runs_once(pool, [&](auto callback, auto error_callback) {
        return pool.starmap_async(fail_if_odd, items, 3, callback, error_callback);
    });
}

BOOST_AUTO_TEST_CASE(map_async_and_starmap_async_on_success_call_the_callback_once_only) {
    procpool::pool pool(2);
    auto values = std::make_shared<std::atomic<int>>(0);
    auto errors = std::make_shared<std::atomic<int>>(0);
    auto seen = std::make_shared<std::vector<int>>();
    const auto input = iota_vector(30);
    auto mapped = pool.map_async(
        square, input, 4,
        [values, seen](const std::vector<int>& v) {
            ++*values;
            *seen = v;
        },
        [errors](std::exception_ptr) { ++*errors; });
    BOOST_TEST(bounded_get(mapped) == squares(30));
    BOOST_TEST(*seen == squares(30));
    std::vector<std::tuple<int, int>> pairs;
    for (int i = 0; i < 30; ++i)
        pairs.emplace_back(i, i);
    auto starred = pool.starmap_async(
        add, pairs, 4, [values](const std::vector<int>&) { ++*values; },
        [errors](std::exception_ptr) { ++*errors; });
    const auto sums = bounded_get(starred);
    for (int i = 0; i < 30; ++i)
        BOOST_TEST(sums[static_cast<std::size_t>(i)] == 2 * i);
    BOOST_TEST(values->load() == 2);
    BOOST_TEST(errors->load() == 0);
}

// ---- which error map raises ----

// README: map raises "the first error to arrive, as Python does" (time order, not input
// order). Item 0 cannot fail before the map has raised: its gate opens only afterwards. Each
// pool is fresh, so item 0 goes to one worker and item 1 to the other (the scheduler gives a
// chunk to the worker holding fewest).
BOOST_AUTO_TEST_CASE(map_raises_the_first_error_to_arrive_not_the_first_in_input_order) {
    {
        const std::string gate = fresh_path("map-gate");
        procpool::pool pool(2);
        const std::string raised = runtime_error_of([&] {
            (void)pool.map(fail_late_and_early{gate}, std::vector<int>{0, 1}, 1);
        });
        touch(gate);
        BOOST_TEST(raised == "item 1, which failed first");
        pool.close();
        pool.join();
        BOOST_TEST(std::filesystem::exists(gate + ".failed")); // item 0 did fail, later
        std::filesystem::remove(gate);
        std::filesystem::remove(gate + ".failed");
    }
    {
        const std::string gate = fresh_path("map-async-gate");
        procpool::pool pool(2);
        auto result = pool.map_async(fail_late_and_early{gate}, std::vector<int>{0, 1, 2}, 1);
        // Decided by item 1's error alone, while item 0 still waits.
        const bool ready_before_item_0_failed = result.wait(patience);
        touch(gate);
        BOOST_TEST(ready_before_item_0_failed);
        pool.close();
        pool.join(); // item 0's error has arrived too now
        BOOST_TEST(std::filesystem::exists(gate + ".failed"));
        BOOST_TEST(runtime_error_of([&] { result.get(); }) == "item 1, which failed first");
        std::filesystem::remove(gate);
        std::filesystem::remove(gate + ".failed");
    }
}

// ---- a lost worker in imap ----

BOOST_AUTO_TEST_CASE(imap_raises_worker_lost_error_at_the_position_of_the_task_whose_worker_died) {
    procpool::pool pool(2);
    const auto lost = [](const procpool::worker_lost_error& e) {
        BOOST_TEST(e.signal().value_or(0) == SIGKILL);
        BOOST_TEST(std::string(e.what()).find("killed by SIGKILL while running a task") !=
                   std::string::npos);
        return true;
    };
    {
        // chunksize 1: the items before it as values, its own position throws, the rest go on.
        auto result = pool.imap(square_but_die_at_three, iota_vector(8));
        for (int i = 0; i < 3; ++i)
            BOOST_TEST(result.next(patience).value() == i * i);
        BOOST_CHECK_EXCEPTION(result.next(patience), procpool::worker_lost_error, lost);
        for (int i = 4; i < 8; ++i)
            BOOST_TEST(result.next(patience).value() == i * i);
        BOOST_TEST(!result.next(patience).has_value());
    }
    {
        // chunksize 2: chunk [2, 3] is lost whole, at its place; the rest of it never ran, so
        // the iteration ends there, as for a task's error in a larger chunk.
        auto result = pool.imap(square_but_die_at_three, iota_vector(8), 2);
        for (int i = 0; i < 2; ++i)
            BOOST_TEST(result.next(patience).value() == i * i);
        BOOST_CHECK_EXCEPTION(result.next(patience), procpool::worker_lost_error, lost);
        BOOST_TEST(!result.next(patience).has_value());
    }
    BOOST_TEST(pool.apply(square, 5) == 25); // replacements serve
}

// ---- imap's read-ahead ----

namespace {
/// An endless lazy input whose items are made by `make(i)`, counting in `pulled` the items
/// read from it. The count is read by the same thread (the one iterating) or after the fact.
template <class Make>
auto counted_input(std::atomic<long>& pulled, Make make) {
    return std::views::iota(0) | std::views::transform([&pulled, make](int i) {
               // relaxed: a count only; nothing else is published through it.
               pulled.fetch_add(1, std::memory_order_relaxed);
               return make(i);
           });
}

/// Takes `items` results from `result` and returns the most items ever read from the input
/// ahead of those taken, checked after each next().
template <class T>
long most_read_ahead(procpool::imap_result<T>& result, const std::atomic<long>& pulled,
                     long items) {
    long most = 0;
    for (long taken = 1; taken <= items; ++taken) {
        BOOST_REQUIRE(result.next(patience).has_value());
        most = std::max(most, pulled.load(std::memory_order_relaxed) - taken);
    }
    return most;
}
} // namespace

// README: "The input is read in the iterating thread, a few chunks per worker ahead";
// imap_result.hpp and docs/design.md give the bounds: 4 chunks per worker until chunks prove
// quick and small, then about 1 ms of work and 1 MiB per worker, never more than 64 chunks.
BOOST_AUTO_TEST_CASE(imap_reads_its_input_only_a_bounded_number_of_chunks_ahead) {
    constexpr long processes = 2;
    procpool::pool pool(processes);
    for (const long chunksize : {1L, 3L})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            // Tasks of 20 ms: slow chunks keep the least read-ahead, 4 chunks per worker.
            std::atomic<long> pulled{0};
            auto result = pool.imap(sleep_ms, counted_input(pulled, [](int) { return 20; }),
                                    static_cast<std::size_t>(chunksize));
            const long at_start = pulled.load(std::memory_order_relaxed);
            BOOST_TEST(at_start > 0); // the workers have work before the first next()
            BOOST_TEST(at_start <= 4 * processes * chunksize);
            // The workers finish what they hold meanwhile; nothing reads the input but next().
            std::this_thread::sleep_for(300ms);
            BOOST_TEST(pulled.load(std::memory_order_relaxed) == at_start);
            const long most = most_read_ahead(result, pulled, 40);
            BOOST_TEST_MESSAGE("slow tasks: at most " << most << " items read ahead");
            BOOST_TEST(most <= 4 * processes * chunksize);
        }
    {
        // Quick tiny tasks: the read-ahead grows, but never past 64 chunks per worker.
        std::atomic<long> pulled{0};
        auto result = pool.imap(square, counted_input(pulled, [](int i) { return i % 1000; }));
        const long most = most_read_ahead(result, pulled, 20'000);
        BOOST_TEST_MESSAGE("quick tasks: at most " << most << " items read ahead");
        BOOST_TEST(most <= 64 * processes);
    }
    {
        // Quick tasks of 64 KiB items and results: about 1 MiB per worker, so 16 items each.
        std::atomic<long> pulled{0};
        auto result =
            pool.imap(identity, counted_input(pulled, [](int i) {
                          return std::vector<char>(std::size_t{64} << 10, static_cast<char>(i));
                      }));
        const long most = most_read_ahead(result, pulled, 2'000);
        BOOST_TEST_MESSAGE("64 KiB items: at most " << most << " items read ahead");
        BOOST_TEST(most <= 16 * processes);
    }
}

// ---- the forkserver ----

BOOST_AUTO_TEST_CASE(one_forkserver_serves_every_pool_of_the_program) {
    const procpool::context forkserver = procpool::get_context("forkserver");
    procpool::pool a({.processes = 2, .context = forkserver});
    procpool::pool b({.processes = 2, .context = forkserver});
    BOOST_TEST(a.apply(square, 2) == 4);
    BOOST_TEST(b.apply(square, 3) == 9);
    // Every worker of both pools is a fork of a forkserver, not a program started afresh...
    for (const procpool::pool* p : {&a, &b})
        for (int pid : p->worker_pids())
            BOOST_TEST(has_forkserver_command_line(pid), "worker " << pid);
    // ... and there is one forkserver for both.
    const std::vector<int> servers = forkservers({&a, &b});
    BOOST_REQUIRE(servers.size() == 1u);
    {
        // A third pool that forks a worker per task, beside them: the same server.
        procpool::pool c({.processes = 2, .maxtasksperchild = 1, .context = forkserver});
        const auto pids = c.map(worker_pid, std::vector<int>(10, 0), 1);
        BOOST_TEST(std::set<int>(pids.begin(), pids.end()).size() == 10u);
    } // c's workers are gone
    BOOST_TEST(forkservers({&a, &b}) == servers, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_forkserver_that_died_is_started_again) {
    procpool::pool pool({.processes = 1, .context = procpool::get_context("forkserver")});
    const int first_worker = pool.apply(worker_pid, 0);
    const std::vector<int> servers = forkservers({&pool});
    BOOST_REQUIRE(servers.size() == 1u);
    const int server = servers[0];
    BOOST_REQUIRE(::kill(server, SIGKILL) == 0);
    BOOST_REQUIRE(ended(server));
    // The next worker needs a forkserver: killing the worker (idle, so no task is lost) makes
    // the pool fork a replacement.
    BOOST_REQUIRE(::kill(first_worker, SIGKILL) == 0);
    BOOST_REQUIRE(ended(first_worker));
    const int replacement = bounded_get(pool.apply_async(worker_pid, 0));
    BOOST_TEST(replacement != first_worker);
    BOOST_TEST(has_forkserver_command_line(replacement)); // forked, not spawned
    const std::vector<int> now = forkservers({&pool});
    BOOST_REQUIRE(now.size() == 1u);
    BOOST_TEST(now[0] != server);
    BOOST_TEST(pool.map(square, iota_vector(50), 1) == squares(50));
}

// docs/design.md: the forkserver "exits when the program does" (after kill -9 too: test_faults).
// fault_helper's pool runs its tasks through a forkserver and the program ends as usual.
BOOST_AUTO_TEST_CASE(the_forkserver_leaves_when_its_program_exits) {
    const child_subreaper orphans_come_here; // the helper's, to be reaped
    const std::string out_path = fresh_path("helper-output");
    // Output to a file, not a pipe: the forkserver inherits it, and a pipe would stay open.
    const std::string command =
        "timeout 60 " PROCPOOL_FAULT_HELPER " forkserver throw > " + out_path + " 2>&1";
    const int status = std::system(command.c_str());
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    std::map<std::string, std::string> report;
    std::istringstream lines(contents_of(out_path));
    for (std::string line; std::getline(lines, line);)
        if (const auto eq = line.find('='); eq != std::string::npos)
            report[line.substr(0, eq)] = line.substr(eq + 1);
    BOOST_TEST_MESSAGE(contents_of(out_path));
    const auto pids_in = [](const std::string& list) {
        std::set<int> pids;
        std::istringstream in(list);
        for (std::string pid; std::getline(in, pid, ',');)
            pids.insert(std::stoi(pid));
        return pids;
    };
    const std::set<int> workers = pids_in(report["worker_pids"]);
    std::vector<int> servers;
    for (int pid : pids_in(report["children"]))
        if (!workers.contains(pid))
            servers.push_back(pid);
    BOOST_TEST(workers.size() == 2u);
    BOOST_REQUIRE(servers.size() == 1u);
    // Gone, or ours now (reparented) and a zombie: ended() waits for either, bounded.
    const bool server_ended = ended(servers[0]);
    BOOST_TEST(server_ended, "the forkserver " << servers[0] << " outlived its program");
    if (!server_ended)
        ::kill(servers[0], SIGKILL); // ours now: do not leak it into other tests
    ::waitpid(servers[0], nullptr, WNOHANG);
    for (int pid : workers) {
        BOOST_TEST(ended(pid));
        ::waitpid(pid, nullptr, WNOHANG);
    }
    std::filesystem::remove(out_path);
}

// ---- a segment of another layout ----

// README: a worker refuses a segment whose header does not match its build ("shared-memory
// segment ... refused: layout version ..."), so the pool fails as for workers that keep dying
// before they are ready. The header is changed after the first worker attached, as a worker of
// another build would find it; that worker's replacements attach to the changed header.
BOOST_AUTO_TEST_CASE(a_segment_whose_header_does_not_match_fails_the_pool_and_the_worker_says_why) {
    namespace d = procpool::detail;
    const std::string errors = fresh_path("refusals");
    procpool::pool pool(1);
    const int first_worker = pool.apply(worker_pid, 0);
    const std::vector<std::string> segments = our_segments();
    BOOST_REQUIRE(segments.size() == 1u);
    const std::string name = segments[0];
    {
        const int fd = ::open(("/dev/shm/" + name).c_str(), O_RDWR);
        BOOST_REQUIRE(fd >= 0);
        void* header = ::mmap(nullptr, d::segment_layout::header_region_bytes(),
                              PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        BOOST_REQUIRE(header != MAP_FAILED);
        static_cast<d::segment_header*>(header)->layout_version = d::segment_layout_version + 1;
        ::munmap(header, d::segment_layout::header_region_bytes());
    }
    std::string what = "<no error>";
    {
        const redirected stderr_to_file(2, errors); // the refusing workers write there
        BOOST_REQUIRE(stderr_to_file.ok());
        BOOST_REQUIRE(::kill(first_worker, SIGKILL) == 0); // idle: no task is lost
        BOOST_REQUIRE(ended(first_worker));
        try {
            pool.apply_async(square, 2).get(patience);
        } catch (const procpool::error& e) {
            what = e.what();
        }
    }
    BOOST_TEST(what.find("workers keep dying before they are ready") != std::string::npos, what);
    BOOST_TEST(what.find("giving up") != std::string::npos, what);
    const std::string refusals = contents_of(errors);
    BOOST_TEST_MESSAGE(refusals);
    const std::string refusal = "shared-memory segment " + name + " refused: layout version " +
                                std::to_string(d::segment_layout_version + 1) +
                                ", this build speaks " + std::to_string(d::segment_layout_version);
    BOOST_TEST(occurrences(refusals, refusal) == 3u, refusals); // three in a row, then no more
    pool.terminate();
    BOOST_TEST(our_segments().empty());
    std::filesystem::remove(errors);
}

// ---- workers that keep dying before they are ready ----

BOOST_AUTO_TEST_CASE(three_workers_dying_before_ready_fail_the_pool_with_the_readme_message) {
    const std::string starts = fresh_path("starts");
    procpool::pool pool(
        {.processes = 1, .initializer = procpool::initializer(record_pid_and_abort, starts)});
    std::string what = "<no error>";
    try {
        pool.apply_async(square, 1).get(patience);
    } catch (const procpool::error& e) {
        what = e.what();
    }
    pool.terminate();
    // One worker at a time: the three starts are the three that died, and nothing started
    // after the third.
    std::vector<std::string> pids;
    std::istringstream lines(contents_of(starts));
    for (std::string line; std::getline(lines, line);)
        pids.push_back(line);
    BOOST_REQUIRE(pids.size() == 3u);
    // README: "workers keep dying before they are ready (the last, 4312, killed by SIGABRT);
    // giving up".
    const std::string readme_text = "workers keep dying before they are ready (the last, " +
                                    pids[2] + ", killed by SIGABRT); giving up";
    BOOST_TEST(what.find(readme_text) != std::string::npos, what);
    std::filesystem::remove(starts);
}

// ---- an idle pool ----

// README: "an idle pool uses no CPU". Not a speed check: a worker or a parent thread that spun
// while idle would use a whole core here, and the bound is far below that, far above what
// sleeping costs.
BOOST_AUTO_TEST_CASE(an_idle_pool_uses_almost_no_cpu_in_the_parent_or_its_workers) {
    for (const char* method : {"spawn", "forkserver"})
        BOOST_TEST_CONTEXT(method) {
            procpool::pool pool({.processes = 2, .context = procpool::get_context(method)});
            BOOST_TEST(pool.map(square, iota_vector(2000), 1) == squares(2000));
            std::this_thread::sleep_for(100ms); // past the brief spin after the last task
            const std::vector<int> workers = pool.worker_pids();
            BOOST_REQUIRE(workers.size() == 2u);
            const auto cpu = [&] {
                double total = cpu_seconds(::getpid());
                for (int pid : workers)
                    total += cpu_seconds(pid);
                return total;
            };
            const double before = cpu();
            const auto start = std::chrono::steady_clock::now();
            std::this_thread::sleep_for(1s);
            const double used = cpu() - before;
            const double seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            BOOST_TEST_MESSAGE(method << ": " << used << " s of CPU in " << seconds << " s idle");
            BOOST_TEST(used / seconds < 0.2);
        }
}

// ---- calls after close() ----

BOOST_AUTO_TEST_CASE(apply_and_every_other_call_after_close_or_terminate_throw_pool_not_running) {
    const std::vector<int> items{1, 2, 3};
    const std::vector<std::tuple<int, int>> pairs{{1, 2}};
    const auto message_of = [](auto call) -> std::string {
        try {
            call();
        } catch (const procpool::state_error& e) {
            return e.what();
        } catch (...) {
            return "<an exception of another type>";
        }
        return "<no exception>";
    };
    const std::string expected = "procpool: pool not running"; // README, the close() row
    for (const bool terminated : {false, true})
        BOOST_TEST_CONTEXT((terminated ? "after terminate()" : "after close()")) {
            procpool::pool pool(1);
            BOOST_TEST(pool.apply(square, 2) == 4);
            if (terminated)
                pool.terminate();
            else
                pool.close();
            BOOST_TEST(message_of([&] { pool.apply(square, 1); }) == expected);
            BOOST_TEST(message_of([&] { pool.apply_async(square, 1); }) == expected);
            BOOST_TEST(message_of([&] {
                           pool.apply_async(square, std::tuple{1}, [](const int&) {});
                       }) == expected);
            BOOST_TEST(message_of([&] { (void)pool.map(square, items); }) == expected);
            BOOST_TEST(message_of([&] { pool.map_async(square, items); }) == expected);
            BOOST_TEST(message_of([&] { (void)pool.starmap(add, pairs); }) == expected);
            BOOST_TEST(message_of([&] { pool.starmap_async(add, pairs); }) == expected);
            BOOST_TEST(message_of([&] { pool.imap(square, items); }) == expected);
            BOOST_TEST(message_of([&] { pool.imap_unordered(square, items); }) == expected);
            pool.join();
        }
}

// ---- user types ----

BOOST_AUTO_TEST_CASE(user_types_with_serialize_travel_as_arguments_and_results) {
    procpool::pool pool(2);
    const reading one = make_reading(3);
    BOOST_TEST(pool.apply(calibrated, one, 0.25) == calibrated(one, 0.25));
    BOOST_TEST(bounded_get(pool.apply_async(calibrated, one, -2.0)) == calibrated(one, -2.0));

    std::vector<reading> many;
    std::vector<reading> expected;
    for (int i = 0; i < 50; ++i) {
        many.push_back(make_reading(i));
        expected.push_back(calibrated_by_one(many.back()));
    }
    for (std::size_t chunksize : {0u, 1u, 7u})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_TEST(pool.map(calibrated_by_one, many, chunksize) == expected,
                       boost::test_tools::per_element());
        }
    std::vector<reading> streamed;
    for (reading& r : pool.imap(calibrated_by_one, many, 3))
        streamed.push_back(std::move(r));
    BOOST_TEST(streamed == expected, boost::test_tools::per_element());

    // Serialized by a free function, and inside a tuple, through starmap.
    std::vector<std::tuple<day_range, int>> ranges;
    std::vector<day_range> wider;
    for (int i = 0; i < 20; ++i) {
        ranges.emplace_back(day_range{i, 2 * i}, i % 3);
        wider.push_back(widened(day_range{i, 2 * i}, i % 3));
    }
    BOOST_TEST(pool.starmap(widened, ranges, 4) == wider, boost::test_tools::per_element());
    BOOST_TEST((pool.apply(widened, day_range{10, 20}, 5) == widened(day_range{10, 20}, 5)));
}

// ---- stdio ----

BOOST_AUTO_TEST_CASE(workers_write_to_the_stdout_and_stderr_of_the_program) {
    const std::string out_path = fresh_path("stdout");
    const std::string err_path = fresh_path("stderr");
    const std::string marker = "marker-" + std::to_string(::getpid());
    int ran = 0;
    {
        // Assertions wait until both are back: Boost.Test writes to stdout.
        const redirected out(1, out_path);
        const redirected err(2, err_path);
        if (out.ok() && err.ok()) {
            procpool::pool pool(2);
            ran = bounded_get(pool.apply_async(print_marker, marker));
            pool.close();
            pool.join();
        }
    }
    BOOST_REQUIRE(ran == 1);
    const std::string out = contents_of(out_path);
    const std::string err = contents_of(err_path);
    BOOST_TEST(out.find(marker + " on stdout\n") != std::string::npos, out);
    BOOST_TEST(out.find(marker + " through std::cout\n") != std::string::npos, out);
    BOOST_TEST(err.find(marker + " on stderr\n") != std::string::npos, err);
    BOOST_TEST(out.find(" on stderr") == std::string::npos); // each stream to its own file
    BOOST_TEST(err.find(" on stdout") == std::string::npos);
    std::filesystem::remove(out_path);
    std::filesystem::remove(err_path);
}

BOOST_AUTO_TEST_CASE(workers_of_both_start_methods_hold_the_programs_stdin_stdout_and_stderr) {
    const std::vector<std::string> ours = stdio_targets(0);
    for (const char* method : {"spawn", "forkserver"})
        BOOST_TEST_CONTEXT(method) {
            procpool::pool pool({.processes = 1, .context = procpool::get_context(method)});
            BOOST_TEST(pool.apply(stdio_targets, 0) == ours, boost::test_tools::per_element());
        }
}
