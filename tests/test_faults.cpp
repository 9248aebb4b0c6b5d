// The fault-injection suite: drives fault_helper (one process per fault, so a fault can take a
// whole program down) and asserts the exact error its caller saw and the pool's state after.
// Every wait is bounded; a helper that overruns is killed and the case fails.
#define PROCPOOL_TEST_SUITE_NAME "faults"
#include "test_main.hpp"

#include "sanitized.hpp"

#include "../libpool/src/detail/doorbell.hpp"
#include "../libpool/src/detail/segment.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <poll.h>
#include <set>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto patience = 60s;

/// The mappings of pool segments in this process (/proc/self/maps).
struct segment_mapping {
    std::byte* start = nullptr;
    std::uint64_t bytes = 0;
    std::string perms; ///< "r--s", "rw-s"
    std::uint64_t offset = 0;
};

std::vector<segment_mapping> segment_mappings() {
    std::vector<segment_mapping> found;
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
        if (line.find("/dev/shm/procpool-") == std::string::npos)
            continue;
        std::istringstream in(line);
        std::string range, perms, offset;
        in >> range >> perms >> offset;
        const std::uintptr_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
        const std::uintptr_t end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
        found.push_back({reinterpret_cast<std::byte*>(start), end - start, perms,
                         std::stoull(offset, nullptr, 16)});
    }
    return found;
}

/// The worker's one read-write mapping (its block) and its read-only one (the header).
std::optional<segment_mapping> mapping_with(const std::string& perms) {
    for (const segment_mapping& m : segment_mappings())
        if (m.perms == perms)
            return m;
    return std::nullopt;
}

/// Runs in a worker: what it has mapped of the pool's segment, one "perms offset bytes" line
/// a mapping, after a first line "ring_bytes N".
std::vector<std::string> worker_segment_view() {
    namespace d = procpool::detail;
    std::vector<std::string> lines;
    const auto header = mapping_with("r--s");
    if (!header)
        return lines;
    lines.push_back(
        "ring_bytes " +
        std::to_string(reinterpret_cast<const d::segment_header*>(header->start)->ring_bytes));
    for (const segment_mapping& m : segment_mappings())
        lines.push_back(m.perms + " " + std::to_string(m.offset) + " " + std::to_string(m.bytes));
    std::sort(lines.begin() + 1, lines.end()); // "r--s" first
    return lines;
}

/// After a scribble: rings the parent's doorbell, as a worker that published would
/// (doorbell.hpp), and waits to be killed; returning late fails the test, it does not hang.
int wake_parent_and_wait() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n =
        ::write(procpool::detail::doorbell_descriptor, &one, sizeof one);
    std::this_thread::sleep_for(30s);
    return 1;
}

/// Runs in a worker: does what a stale pointer in a native task might, within the worker's own
/// part of the pool's shared memory. It finds its block (its one read-write mapping of the
/// segment), writes a frame length no parent can allocate at the head of its outbox,
/// publishes it and wakes the parent. The parent must kill this worker, fail its task with
/// worker_lost_error, and go on; the sleep ends with the kill (or, if the parent took the
/// garbage, the task returns late, and the test fails: no hang).
int scribble_over_own_outbox() {
    namespace d = procpool::detail;
    const auto header_map = mapping_with("r--s");
    const auto block = mapping_with("rw-s");
    if (!header_map || !block)
        return -1; // not a shared-memory worker
    const auto& header = *reinterpret_cast<const d::segment_header*>(header_map->start);
    auto& slot = *reinterpret_cast<d::worker_slot*>(block->start);
    std::byte* outbox = block->start + d::segment_layout::slot_region_bytes() + header.ring_bytes;
    const std::uint64_t head = slot.outbox.head.load();
    const std::uint64_t garbage = std::uint64_t{1} << 62;
    std::memcpy(outbox + (head & (header.ring_bytes - 1)), &garbage, sizeof garbage);
    slot.outbox.head.store(head + sizeof garbage);
    return wake_parent_and_wait();
}

/// Runs in a worker: a stale pointer in a loop, over all of the worker's block (its slot, both
/// rings' counters and data) with pseudo-random bytes, then a wake-up for the parent. Only
/// this worker's task may pay for it.
int scribble_over_own_block() {
    const auto block = mapping_with("rw-s");
    if (!block)
        return -1;
    std::uint64_t x = 0x9e3779b97f4a7c15ULL ^ static_cast<std::uint64_t>(::getpid());
    for (std::uint64_t i = 0; i + 8 <= block->bytes; i += 8) {
        x ^= x << 13; // xorshift64
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(block->start + i, &x, sizeof x);
    }
    return wake_parent_and_wait();
}

/// Runs in a worker: a store into the segment's header, which a worker maps read-only. It
/// must be a SIGSEGV in this worker, never a change the parent sees.
int write_into_the_header() {
    const auto header = mapping_with("r--s");
    if (!header)
        return -1;
    volatile auto* magic = reinterpret_cast<volatile std::uint64_t*>(header->start);
    *magic = 0;
    return 1;
}

int square(int x) {
    return x * x;
}

/// Sleeps `ms` milliseconds, then squares it: a task still running when the test forks.
int sleep_then_square(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms * ms;
}

int raise_signal(int signal) {
    ::raise(signal);
    return 0;
}

/// Waits for child `pid` at most `patience`; kills it if it overruns. False then.
bool wait_bounded(pid_t pid, int& status) {
    const auto deadline = clock_type::now() + patience;
    while (clock_type::now() < deadline) {
        const pid_t got = ::waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return true;
        if (got < 0)
            return false;
        std::this_thread::sleep_for(10ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return false;
}

/// The pool segments in /dev/shm now.
/// This process's pools' segments (their names carry the owner's pid): what other test
/// binaries running at the same time make is not counted.
std::set<std::string> shm_segments() {
    const std::string mine = "procpool-" + std::to_string(::getpid()) + "-";
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
        if (e.path().filename().string().starts_with(mine))
            names.insert(e.path().filename().string());
    return names;
}

/// fault_helper, started with stdout on a pipe. The destructor kills it if it still runs.
class helper {
public:
    explicit helper(std::vector<std::string> args, std::string exe = PROCPOOL_FAULT_HELPER) {
        int fds[2];
        BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        std::vector<char*> argv{exe.data()};
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = ::posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        fd_ = fds[0];
        BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << exe);
    }
    ~helper() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(fd_);
    }

    int pid() const { return pid_; }

    /// Reads lines until one starts with `key=` (true) or the deadline or end of output.
    bool read_until(const std::string& key, clock_type::time_point deadline) {
        while (values_.count(key) == 0)
            if (!read_some(deadline))
                return false;
        return true;
    }

    /// Reads everything and reaps the helper; false when the deadline passed (then killed).
    bool finish(clock_type::time_point deadline) {
        while (read_some(deadline)) {
        }
        if (clock_type::now() >= deadline)
            ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        reaped_ = true;
        return clock_type::now() < deadline;
    }

    /// Kills the helper (SIGKILL) and reaps it.
    void kill_now() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        reaped_ = true;
    }

    int status() const { return status_; }
    std::string operator[](const std::string& key) const {
        auto it = values_.find(key);
        return it == values_.end() ? "<missing>" : it->second;
    }
    const std::string& output() const { return output_; }

private:
    bool read_some(clock_type::time_point deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        if (left.count() <= 0)
            return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char buffer[4096];
        const ssize_t n = ::read(fd_, buffer, sizeof buffer);
        if (n <= 0)
            return false;
        partial_.append(buffer, static_cast<std::size_t>(n));
        output_.append(buffer, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = partial_.find('\n')) != std::string::npos) {
            const std::string line = partial_.substr(0, nl);
            partial_.erase(0, nl + 1);
            const auto eq = line.find('=');
            if (eq != std::string::npos)
                values_[line.substr(0, eq)] = line.substr(eq + 1);
        }
        return true;
    }

    pid_t pid_ = -1;
    int fd_ = -1;
    int status_ = 0;
    bool reaped_ = false;
    std::string partial_, output_;
    std::map<std::string, std::string> values_;
};

/// Runs the helper to the end within `patience`.
std::unique_ptr<helper> run(std::vector<std::string> args) {
    auto h = std::make_unique<helper>(std::move(args));
    BOOST_REQUIRE_MESSAGE(h->finish(clock_type::now() + patience), "the helper overran");
    BOOST_TEST_MESSAGE(h->output());
    BOOST_TEST(WIFEXITED(h->status()));
    BOOST_TEST(WEXITSTATUS(h->status()) == 0);
    return h;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

/// A process has exited: gone, reaped here, or a zombie waiting for its new parent.
bool exited(int pid) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid)
        return true; // it was reparented to us (subreaper) and is now reaped
    std::string text;
    try {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        if (!stat)
            return true;
        text.assign(std::istreambuf_iterator<char>(stat), {});
    } catch (const std::ios_base::failure&) {
        return true; // libstdc++ throws on a read error: ESRCH, it has just gone
    }
    const auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

/// Whether process `pid` runs with the forkserver's command line (its helper, or a worker it
/// forked, which keeps it): its second argument is the forkserver flag.
bool is_forkserver(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string arg;
    return std::getline(in, arg, '\0') && std::getline(in, arg, '\0') &&
           arg == "--procpool-forkserver";
}

std::vector<int> split_pids(const std::string& s) {
    std::vector<int> pids;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty())
            pids.push_back(std::stoi(item));
    return pids;
}

struct task_fault {
    const char* mode;
    const char* arg;
    const char* error;         // the exact type the caller sees
    std::optional<int> signal; // for worker_lost_error
    std::optional<int> exit;
    const char* what; // part of what()
};

const task_fault task_faults[] = {
    {"kill",
     "0",
     "procpool::worker_lost_error",
     SIGKILL,
     {},
     "killed by SIGKILL while running a task"},
    {"segv",
     "0",
     "procpool::worker_lost_error",
     SIGSEGV,
     {},
     "killed by SIGSEGV while running a task"},
    {"abort", "0", "procpool::worker_lost_error", SIGABRT, {}, "killed by SIGABRT"},
    {"terminate", "0", "procpool::worker_lost_error", SIGABRT, {}, "killed by SIGABRT"},
    {"exit",
     "7",
     "procpool::worker_lost_error",
     {},
     7,
     "exited with status 7 while running a task"},
    {"exit",
     "0",
     "procpool::worker_lost_error",
     {},
     0,
     "exited with status 0 while running a task"},
    {"signal", "15", "procpool::worker_lost_error", SIGTERM, {}, "killed by SIGTERM"},
    {"signal", "7", "procpool::worker_lost_error", SIGBUS, {}, "killed by SIGBUS"},
    {"throw", "0", "std::runtime_error", {}, {}, "thrown on purpose"},
};

const char* const contexts[] = {"spawn", "forkserver"};

} // namespace

BOOST_AUTO_TEST_CASE(each_fault_in_a_task_costs_that_task_alone_with_the_exact_error) {
    for (const char* context : contexts)
        for (const task_fault& f : task_faults)
            BOOST_TEST_CONTEXT(context << " " << f.mode << " " << f.arg) {
                auto h = run({context, f.mode, f.arg});
                const auto& r = *h;
                BOOST_TEST(r["error"] == f.error);
                BOOST_TEST(contains(r["what"], f.what), r["what"]);
                if (f.signal)
                    BOOST_TEST(r["signal"] == std::to_string(*f.signal));
                if (f.exit)
                    BOOST_TEST(r["exit"] == std::to_string(*f.exit));
                if (f.signal || f.exit) {
                    BOOST_TEST(r["pid_is_worker"] == "1");
                    BOOST_TEST(contains(r["what"], "procpool: worker "));
                }
                BOOST_TEST(r["others"] == "100/100");  // every other task completed
                BOOST_TEST(r["map_error"] == f.error); // map raises the same error
                BOOST_TEST(r["after"] == "49");        // the pool stays usable
                BOOST_TEST(r["workers"] == "2");       // a replacement started
            }
}

BOOST_AUTO_TEST_CASE(a_worker_killed_from_outside_fails_its_task_with_worker_lost_error) {
    for (const char* context : contexts)
        BOOST_TEST_CONTEXT(context) {
            auto h = run({context, "outside"});
            BOOST_TEST((*h)["error"] == "procpool::worker_lost_error");
            BOOST_TEST((*h)["signal"] == std::to_string(SIGKILL));
            BOOST_TEST((*h)["after"] == "49");
            BOOST_TEST((*h)["workers"] == "2");
        }
}

BOOST_AUTO_TEST_CASE(an_initializer_that_crashes_fails_the_pool_instead_of_respawning) {
    for (const char* context : contexts)
        BOOST_TEST_CONTEXT(context) {
            auto h = run({context, "init-crash"});
            BOOST_TEST((*h)["error"] == "procpool::error");
            BOOST_TEST(contains((*h)["what"], "workers keep dying before they are ready"));
            BOOST_TEST(contains((*h)["what"], "killed by SIGABRT"));
            BOOST_TEST((*h)["again_error"] == "procpool::error");
            BOOST_TEST((*h)["workers"] == "0");
        }
}

BOOST_AUTO_TEST_CASE(an_initializer_that_throws_fails_the_pool_with_its_message) {
    for (const char* context : contexts)
        BOOST_TEST_CONTEXT(context) {
            auto h = run({context, "init-throw"});
            BOOST_TEST((*h)["error"] == "procpool::error");
            BOOST_TEST(contains((*h)["what"], "the initializer failed"));
            BOOST_TEST(contains((*h)["what"], "bad initargs"));
            BOOST_TEST((*h)["again_error"] == "procpool::error");
        }
}

BOOST_AUTO_TEST_CASE(an_executable_that_cannot_start_fails_with_a_clear_error) {
    // The helper replaces its own file, so run a copy.
    const auto dir =
        std::filesystem::temp_directory_path() / ("procpool-exe-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto copy = dir / "fault_helper";
    std::filesystem::copy_file(PROCPOOL_FAULT_HELPER, copy,
                               std::filesystem::copy_options::overwrite_existing);
    {
        helper h({"spawn", "exe-replaced"}, copy.string());
        BOOST_REQUIRE(h.finish(clock_type::now() + patience));
        BOOST_TEST_MESSAGE(h.output());
        BOOST_TEST(h["before"] == "9");
        BOOST_TEST(h["construct_error"] == "procpool::error");
        BOOST_TEST(contains(h["construct_what"], "cannot start worker process"));
        BOOST_TEST(h["respawn_error"] == "procpool::error");
        BOOST_TEST(contains(h["respawn_what"], "cannot start worker process"));
    }
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(after_kill_9_of_the_parent_every_worker_exits_before_its_task_ends) {
    // Orphans are reparented here, so they can be reaped rather than left as zombies.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (const char* context : contexts)
        BOOST_TEST_CONTEXT(context) {
            helper h({context, "busy"});
            BOOST_REQUIRE(h.read_until("busy", clock_type::now() + patience));
            const std::string segment = h["segment"];
            const auto children = split_pids(h["children"]);
            const auto workers = split_pids(h["worker_pids"]);
            BOOST_REQUIRE(!segment.empty());
            BOOST_REQUIRE(workers.size() == 2u);
            // The children besides the two workers: with "forkserver", its one helper, which
            // must leave too; with "spawn", none.
            std::vector<int> servers;
            for (int pid : children)
                if (std::count(workers.begin(), workers.end(), pid) == 0)
                    servers.push_back(pid);
            const bool forkserver = std::string(context) == "forkserver";
            BOOST_REQUIRE(children.size() == (forkserver ? 3u : 2u));
            BOOST_REQUIRE(servers.size() == (forkserver ? 1u : 0u));
            if (forkserver)
                BOOST_REQUIRE(is_forkserver(servers[0]));
            h.kill_now();
            const auto killed = clock_type::now();
            std::vector<int> left = children;
            // The workers are 300 s into announce_and_sleep: only their watchdogs, which react
            // to the parent's death, end them within this bound (no timing is asserted: the
            // time taken is only reported).
            while (!left.empty() && clock_type::now() - killed < patience / 2) {
                std::erase_if(left, exited);
                if (!left.empty())
                    std::this_thread::sleep_for(2ms);
            }
            const auto took = std::chrono::duration<double, std::milli>(clock_type::now() - killed);
            BOOST_TEST_MESSAGE(context << ": every child exited " << took.count()
                                       << " ms after the parent's SIGKILL");
            BOOST_TEST(left.empty(), "still running: " << left.size());
            for (int pid : servers)
                BOOST_TEST(std::count(left.begin(), left.end(), pid) == 0,
                           "the forkserver " << pid << " did not exit");
            for (int pid : left) // do not leak them into other tests
                ::kill(pid, SIGKILL);
            BOOST_TEST(!std::filesystem::exists("/dev/shm/" + segment));
        }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

BOOST_AUTO_TEST_CASE(a_segment_left_by_a_dead_owner_is_swept_by_the_next_pool) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    helper h({"spawn", "busy"});
    BOOST_REQUIRE(h.read_until("busy", clock_type::now() + patience));
    const std::string segment = h["segment"];
    const auto children = split_pids(h["children"]);
    BOOST_REQUIRE(!segment.empty());
    // Stop the workers so that their watchdogs cannot clean up, kill the parent, then them.
    for (int pid : children)
        ::kill(pid, SIGSTOP);
    // Checked while its owner lives: once the owner is dead, any new pool on the machine (a
    // test running in parallel too) may sweep it, which is the behaviour under test.
    BOOST_REQUIRE(std::filesystem::exists("/dev/shm/" + segment));
    h.kill_now();
    for (int pid : children)
        ::kill(pid, SIGKILL);
    for (int pid : children)
        ::waitpid(pid, nullptr, 0); // ours now (subreaper)
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    procpool::pool pool(1);
    BOOST_TEST(!std::filesystem::exists("/dev/shm/" + segment));
}

namespace {
/// Runs `scribble` on one of the pool's workers; it must cost that worker alone: its task fails
/// with worker_lost_error "sent a corrupt frame", then `items` squares in chunks of `chunksize`
/// are all correct. Returns the error's message ("" when there was none).
std::string expect_corrupt_frame_alone(procpool::pool& pool, int (*scribble)(), int items,
                                       std::size_t chunksize) {
    const std::vector<int> before = pool.worker_pids();
    auto doomed = pool.apply_async(scribble);
    std::string message;
    try {
        const int got = doomed.get(patience);
        BOOST_ERROR("the task returned " << got << " instead of costing its worker");
    } catch (const procpool::worker_lost_error& e) {
        message = e.what();
        BOOST_TEST(message.find("sent a corrupt frame") != std::string::npos, message);
        BOOST_TEST(std::count(before.begin(), before.end(), e.pid()) == 1);
    }
    // The pool goes on, with a replacement.
    std::vector<int> values(static_cast<std::size_t>(items));
    std::iota(values.begin(), values.end(), 0);
    const std::vector<int> squares = pool.map(square, values, chunksize);
    for (int i = 0; i < items; ++i)
        BOOST_TEST(squares[i] == i * i);
    return message;
}
} // namespace

BOOST_AUTO_TEST_CASE(a_worker_that_scribbles_over_its_shared_memory_costs_its_task_alone) {
    procpool::pool pool(2);
    const std::string message = expect_corrupt_frame_alone(pool, scribble_over_own_outbox, 200, 0);
    BOOST_TEST(message.find("could not read") != std::string::npos, message);
    pool.close();
    pool.join();
}

BOOST_AUTO_TEST_CASE(a_worker_maps_the_header_read_only_and_its_own_block_and_nothing_else) {
    namespace d = procpool::detail;
    for (const char* method : {"spawn", "forkserver"}) {
        BOOST_TEST_MESSAGE(method);
        procpool::pool pool({.processes = 2, .context = procpool::get_context(method)});
        std::set<std::uint64_t> blocks;
        for (int round = 0; round < 8; ++round) {
            const std::vector<std::string> view = pool.apply(worker_segment_view);
            BOOST_TEST_MESSAGE(
                std::accumulate(view.begin(), view.end(), std::string(),
                                [](std::string a, const std::string& b) { return a + b + "; "; }));
            BOOST_REQUIRE(view.size() == 3u); // ring_bytes, then exactly two mappings
            const std::uint64_t ring_bytes = std::stoull(view[0].substr(view[0].find(' ') + 1));
            const d::segment_layout layout{2, ring_bytes};
            BOOST_TEST(view[1] ==
                       "r--s 0 " + std::to_string(d::segment_layout::header_region_bytes()));
            bool own_block = false;
            for (std::uint32_t i = 0; i < 2; ++i) {
                if (view[2] == "rw-s " + std::to_string(layout.block_offset(i)) + " " +
                                   std::to_string(layout.block_bytes())) {
                    own_block = true;
                    blocks.insert(i);
                }
            }
            BOOST_TEST(own_block, view[2]);
        }
        BOOST_TEST(!blocks.empty());
    }
}

BOOST_AUTO_TEST_CASE(a_worker_that_writes_into_the_header_dies_alone_and_the_pool_goes_on) {
    procpool::pool pool(2);
    const std::vector<int> before = pool.worker_pids();
    auto doomed = pool.apply_async(write_into_the_header);
    std::vector<int> items(200);
    std::iota(items.begin(), items.end(), 0);
    auto squares = pool.map_async(square, items);
    try {
        const int got = doomed.get(patience);
        BOOST_ERROR("the store into the header succeeded (task returned " << got << ")");
    } catch (const procpool::worker_lost_error& e) {
        BOOST_TEST(e.signal().value_or(0) == SIGSEGV, e.what());
        BOOST_TEST(std::count(before.begin(), before.end(), e.pid()) == 1);
    }
    const std::vector<int> got = squares.get(patience);
    for (int i = 0; i < 200; ++i)
        BOOST_TEST(got[i] == i * i);
    BOOST_TEST(pool.apply(square, 7) == 49); // a replacement runs
    pool.close();
    pool.join();
}

BOOST_AUTO_TEST_CASE(a_worker_that_scribbles_over_its_whole_block_costs_its_task_alone) {
    procpool::pool pool(2);
    expect_corrupt_frame_alone(pool, scribble_over_own_block, 500, 1);
    // The pids the pool reports are its own copies, never the scribbled slot's.
    for (const int pid : pool.worker_pids())
        BOOST_TEST(::kill(pid, 0) == 0);
    // The replacement starts in the background: wait for it, boundedly.
    const auto give_up = clock_type::now() + patience;
    while (pool.worker_pids().size() != 2u && clock_type::now() < give_up)
        std::this_thread::sleep_for(10ms);
    BOOST_TEST(pool.worker_pids().size() == 2u);
    pool.close();
    pool.join();
}

namespace {
/// A sanitizer's runtime opens descriptors while it checks: UBSan's vptr check probes memory
/// through a pipe (sanitizer_common's IsAccessibleMemoryRange), and a report goes to a file of
/// its own. With none left, it reports an "invalid vptr" in our constructors that is not there
/// (seen in CI), and could not write a real report either, so the test is skipped there.
boost::test_tools::assertion_result not_sanitized(boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result ok(!testing::sanitized);
    ok.message() << "a sanitizer's runtime needs the descriptors this test takes away";
    return ok;
}
} // namespace

BOOST_AUTO_TEST_CASE(too_few_descriptors_is_an_error_that_says_so_and_leaves_nothing,
                     *boost::unit_test::precondition(not_sanitized)) {
    rlimit saved{};
    BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    std::size_t open = 0;
    for ([[maybe_unused]] const auto& fd : std::filesystem::directory_iterator("/proc/self/fd"))
        ++open;
    const std::set<std::string> segments_before = shm_segments();
    // Room for a descriptor or two more (the count includes the iterator's own): the pool
    // needs more for 4 workers, and fails at one step or another of its start.
    for (std::size_t room : {0, 1, 2}) {
        rlimit low = saved;
        low.rlim_cur = open + room;
        BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
        std::string message;
        try {
            procpool::pool pool(4);
        } catch (const procpool::error& e) {
            message = e.what();
        }
        BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
        BOOST_TEST_CONTEXT("with room for " << room << " more descriptors: " << message) {
            BOOST_TEST(!message.empty()); // it failed, and said why:
            BOOST_TEST((message.find("Too many open files") != std::string::npos ||
                        message.find("ulimit") != std::string::npos));
        }
    }
    BOOST_TEST((shm_segments() == segments_before)); // nothing left in /dev/shm
    procpool::pool pool(2);                          // and the next pool works
    BOOST_TEST(pool.apply(square, 9) == 81);
}

BOOST_AUTO_TEST_CASE(a_program_that_ignores_sigchld_gets_its_results_and_a_lost_worker_says_why) {
    // The kernel then reaps the workers itself: their statuses are lost.
    struct sigaction ignore {
    }, saved{};
    ignore.sa_handler = SIG_IGN;
    BOOST_REQUIRE(::sigaction(SIGCHLD, &ignore, &saved) == 0);
    for (const char* method : {"spawn", "forkserver"}) {
        BOOST_TEST_CONTEXT(method) {
            procpool::pool pool({.processes = 2,
                                 .maxtasksperchild = 3, // workers leave, and are replaced
                                 .context = procpool::get_context(method)});
            std::vector<int> items(50);
            std::iota(items.begin(), items.end(), 0);
            const std::vector<int> squares = pool.map(square, items, 1);
            for (int i = 0; i < 50; ++i)
                BOOST_TEST(squares[i] == i * i);
            auto doomed = pool.apply_async(raise_signal, SIGKILL);
            try {
                doomed.get(patience);
                BOOST_ERROR("a worker killed by SIGKILL returned");
            } catch (const procpool::worker_lost_error& e) {
                const std::string message = e.what();
                BOOST_TEST(message.find("ignores SIGCHLD") != std::string::npos, message);
                BOOST_TEST(!e.exit_code().has_value());
                BOOST_TEST(!e.signal().has_value());
            }
            BOOST_TEST(pool.apply(square, 7) == 49); // and it goes on
            pool.close();
            pool.join();
        }
    }
    BOOST_REQUIRE(::sigaction(SIGCHLD, &saved, nullptr) == 0);
}

BOOST_AUTO_TEST_CASE(a_forked_child_cannot_use_the_pool_and_leaves_the_parents_alone) {
    procpool::pool pool(2);
    BOOST_REQUIRE(pool.apply(square, 3) == 9);
    const std::vector<int> workers = pool.worker_pids();
    const std::set<std::string> segments = shm_segments();
    // Results still pending at the fork, and one already complete.
    auto done = pool.apply_async(square, 6);
    BOOST_REQUIRE(done.wait(patience));
    auto pending = pool.apply_async(sleep_then_square, 300);
    auto pending_map = pool.map_async(sleep_then_square, std::vector<int>{200, 200});
    auto stream = pool.imap(sleep_then_square, std::vector<int>{200, 200});
    const pid_t child = ::fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) {
        // Each pool method throws state_error naming the owner; nothing is touched. Exit code:
        // the number of methods that did not.
        const std::string owner = "belongs to process " + std::to_string(::getppid());
        int wrong = 0;
        auto expect = [&](auto call) {
            try {
                call();
                ++wrong;
            } catch (const procpool::state_error& e) {
                wrong += std::string(e.what()).find(owner) == std::string::npos;
            } catch (...) {
                ++wrong;
            }
        };
        const std::vector<int> items{1, 2, 3};
        expect([&] { pool.apply(square, 2); });
        expect([&] { pool.apply_async(square, 2); });
        expect([&] { pool.map(square, items); });
        expect([&] { pool.map_async(square, items); });
        expect([&] { pool.imap(square, items); });
        expect([&] { pool.worker_pids(); });
        expect([&] { pool.close(); });
        expect([&] { pool.join(); });
        expect([&] { pool.terminate(); });
        // A result the parent's pool would complete cannot complete here: waiting for it
        // throws, it does not hang. One complete before the fork is the child's copy.
        auto expect_result_refused = [&](auto call) {
            try {
                call();
                ++wrong;
            } catch (const procpool::state_error& e) {
                wrong += std::string(e.what()).find("forked from") == std::string::npos;
            } catch (...) {
                ++wrong;
            }
        };
        expect_result_refused([&] { pending.get(); });
        expect_result_refused([&] { pending.wait(1s); });
        expect_result_refused([&] { pending_map.get(); });
        expect_result_refused([&] { stream.next(1s); });
        expect_result_refused([&] { stream.next(); });
        expect_result_refused([&] { stream.begin(); });
        wrong += done.get() != 36;
        ::_exit(wrong); // the pool's destructor is tried below, in a child of its own
    }
    int status = 0;
    BOOST_REQUIRE(wait_bounded(child, status));
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0,
               "methods that did not throw state_error: " << WEXITSTATUS(status));

    // A child whose copy of the pool is destroyed (its scope ends, then exit() runs the rest):
    // the parent's workers and segment stay.
    const pid_t second = ::fork();
    BOOST_REQUIRE(second >= 0);
    if (second == 0) {
        {
            procpool::pool* copy = &pool;
            copy->~pool();                 // what leaving the pool's scope does in the child
            if (testing::thread_sanitized) // see thread_sanitized: no thread can start here
                ::_exit(0);
            new (copy) procpool::pool(1); // a pool of its own works, and ends as usual
            const int got = copy->apply(square, 4);
            copy->~pool();
            ::_exit(got == 16 ? 0 : 1);
        }
    }
    BOOST_REQUIRE(wait_bounded(second, status));
    BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    BOOST_TEST(pending.get(patience) == 300 * 300); // the parent's results complete as usual
    BOOST_TEST(pending_map.get(patience) == (std::vector<int>{200 * 200, 200 * 200}));
    // The parent's imap, untouched by the child's calls.
    BOOST_TEST(stream.next(patience).value_or(-1) == 200 * 200);
    BOOST_TEST(stream.next(patience).value_or(-1) == 200 * 200);
    BOOST_TEST(!stream.next(patience).has_value());
    BOOST_TEST(pool.worker_pids() == workers, boost::test_tools::per_element());
    BOOST_TEST((shm_segments() == segments));
    BOOST_TEST(pool.apply(square, 5) == 25);
}
