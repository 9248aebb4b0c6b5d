// A few hundred pools created and ended in every way a pool ends (item 8 of the isolation
// issue), leaving no descriptor, thread, child process or /dev/shm entry behind. A suite of its
// own: it takes minutes, and each suite has its own time limit.
#define PROCPOOL_TEST_SUITE_NAME "pool_churn"
#include "test_main.hpp"

#include "tasks.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

/// What a process holds that a pool could leave behind.
struct holdings {
    std::size_t descriptors = 0;
    std::size_t threads = 0;
    std::set<int> children;
    std::set<std::string> segments;
};

std::size_t entries(const char* dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
        ++n;
    return n;
}

holdings held_now() {
    holdings h;
    h.descriptors = entries("/proc/self/fd") - 1; // the iterator's own
    h.threads = entries("/proc/self/task");
    // Children: every process whose parent is this one (/proc/PID/stat's 4th field).
    const int self = static_cast<int>(::getpid());
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
            continue;
        std::ifstream stat(e.path() / "stat");
        std::string line;
        if (!std::getline(stat, line))
            continue;
        const std::size_t close = line.rfind(')'); // the command may hold spaces and ')'
        if (close == std::string::npos)
            continue;
        char state = 0;
        int ppid = 0;
        std::istringstream rest(line.substr(close + 1));
        if (rest >> state >> ppid && ppid == self)
            h.children.insert(std::stoi(name));
    }
    const std::string mine = "procpool-" + std::to_string(self) + "-";
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
        if (e.path().filename().string().starts_with(mine))
            h.segments.insert(e.path().filename().string());
    return h;
}

int exit_early(int code) {
    std::_Exit(code);
}

void failing_initializer() {
    throw std::runtime_error("this initializer always fails");
}

/// One pool, ended in way `way` of the ways a pool ends. Returns a short name of the way.
std::string end_a_pool(int way) {
    const auto context = [](const char* name) { return procpool::get_context(name); };
    switch (way) {
    case 0: { // destroyed idle
        procpool::pool pool(2);
        return "idle destructor";
    }
    case 1: { // close and join after work
        procpool::pool pool(2);
        BOOST_REQUIRE(pool.map(square, iota_vector(20)) == squares(20));
        pool.close();
        pool.join();
        return "close+join";
    }
    case 2: { // terminate with work in flight
        procpool::pool pool(2);
        auto pending = pool.apply_async(sleep_ms, 10'000);
        pool.terminate();
        BOOST_CHECK_THROW(pending.get(patience), procpool::state_error);
        return "terminate";
    }
    case 3: { // destroyed with work in flight and an imap open
        procpool::pool pool(2);
        // One worker sleeps; the other serves the imap (were both asleep, its first item
        // would wait for them).
        auto pending = pool.map_async(sleep_ms, std::vector<int>{5'000});
        auto stream = pool.imap(square, std::views::iota(0));
        BOOST_REQUIRE(stream.next(patience) == 0);
        return "destructor mid-work";
    }
    case 4: { // a worker crashed, then close and join
        procpool::pool pool(2);
        BOOST_CHECK_THROW(pool.apply(exit_early, 3), procpool::worker_lost_error);
        BOOST_REQUIRE(pool.apply(square, 4) == 16);
        pool.close();
        pool.join();
        return "after a crash";
    }
    case 5: { // the initializer fails: the pool fails
        procpool::pool pool(procpool::pool_options{
            .processes = 2, .initializer = procpool::initializer(failing_initializer)});
        BOOST_CHECK_THROW(pool.apply(square, 2), procpool::error);
        return "failed initializer";
    }
    case 6: { // the forkserver context
        procpool::pool pool({.processes = 2, .context = context("forkserver")});
        BOOST_REQUIRE(pool.apply(square, 5) == 25);
        return "forkserver";
    }
    case 7: { // maxtasksperchild 1: a worker replaced after every task
        procpool::pool pool({.processes = 2, .maxtasksperchild = 1});
        BOOST_REQUIRE(pool.map(square, iota_vector(6), 1) == squares(6));
        pool.close();
        pool.join();
        return "maxtasksperchild";
    }
    default:
        throw std::logic_error("no such way");
    }
}

} // namespace

/// What is held now, once it matches `before` or five seconds have passed. A pool's threads and
/// children are gone when it has ended, but the kernel may list a thread that was just joined,
/// or a child that was just reaped, for a moment more, and the segment's last unmapping runs on
/// a detached thread of its own (segment.cpp) that may still be giving pages back on a loaded
/// machine.
holdings settled(const holdings& before) {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    for (;;) {
        holdings now = held_now();
        const bool same = now.descriptors == before.descriptors && now.threads == before.threads &&
                          now.children == before.children && now.segments.empty();
        if (same || std::chrono::steady_clock::now() > give_up)
            return now;
        std::this_thread::sleep_for(5ms);
    }
}

BOOST_AUTO_TEST_CASE(hundreds_of_pools_ended_every_way_leave_nothing_behind) {
    // Under a sanitizer, fewer rounds: what it looks for (a bad access, a race) shows in the
    // first rounds of every way as well as in the last, and each round there is slow.
    constexpr int ways = 8, rounds = sanitized ? 4 : 25;
    // No pool leaves a thread in this process: the count before any pool is the baseline (taken
    // after the warm-up below, it could include a segment's unmapper still running).
    // A thread started and joined first: a runtime's helper that starts with the first thread
    // (ThreadSanitizer's) is then in the baseline too.
    std::thread([] {}).join();
    const std::size_t threads_before_any_pool = held_now().threads;
    // One pool of each way first: what lives on by design (the forkserver, started once and
    // serving every pool after) is in the baseline.
    for (int way = 0; way < ways; ++way)
        end_a_pool(way);
    holdings before = held_now();
    before.threads = threads_before_any_pool;
    before = settled(before);
    BOOST_TEST_REQUIRE(before.threads == threads_before_any_pool);
    BOOST_TEST_REQUIRE(before.segments.empty());
    for (int round = 0; round < rounds; ++round)
        for (int way = 0; way < ways; ++way) {
            const std::string name = end_a_pool(way);
            if (round == rounds - 1 || round % 6 == 0) {
                const holdings now = settled(before);
                BOOST_TEST_INFO("after a pool ended by " << name << ", round " << round);
                BOOST_TEST(now.descriptors == before.descriptors);
                BOOST_TEST_INFO("after a pool ended by " << name << ", round " << round);
                BOOST_TEST(now.threads == before.threads);
                BOOST_TEST_INFO("after a pool ended by " << name << ", round " << round);
                BOOST_TEST(now.children == before.children, boost::test_tools::per_element());
                BOOST_TEST_INFO("after a pool ended by " << name << ", round " << round);
                BOOST_TEST(now.segments.empty());
            }
        }
    BOOST_TEST_MESSAGE("pools: " << ways * (rounds + 1) << " created and ended");
}
