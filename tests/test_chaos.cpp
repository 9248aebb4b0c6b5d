// Chaos and soak (item 8 of the isolation issue): workers killed at random every few
// milliseconds during a long imap and during many map_async calls, every item ending exactly
// once with its value or worker_lost_error; ten million tiny tasks with the parent's memory
// flat after warm-up. The pools made and ended by the hundred are test_pool_churn's.
#define PROCPOOL_TEST_SUITE_NAME "chaos"
#include "test_main.hpp"

#include "tasks.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

/// About half a millisecond of work, then x * x.
int busy_square(int x) {
    const auto until = std::chrono::steady_clock::now() + 500us;
    while (std::chrono::steady_clock::now() < until) {
    }
    return x * x;
}

/// The worker's pid, after a millisecond: what the observer of a chaos run reads.
int pid_after_a_ms(int) {
    std::this_thread::sleep_for(1ms);
    return static_cast<int>(::getpid());
}

/// Kills a random worker of `pool` every 2 to 6 ms, while it runs. Only workers that have
/// answered a task are killed (their pids come back from an imap of pid_after_a_ms it keeps
/// going beside the job): a worker killed before it is ready counts towards the pool's "keep
/// dying before they are ready" limit, which is a different test's business.
class chaos_monkey {
public:
    explicit chaos_monkey(procpool::pool& pool)
        : pool_(pool)
        , observer_([this] { observe(); })
        , killer_([this] { kill_loop(); }) {}
    chaos_monkey(const chaos_monkey&) = delete;
    chaos_monkey& operator=(const chaos_monkey&) = delete;
    ~chaos_monkey() { stop(); }

    /// Stops killing; returns how many workers were killed. Idempotent.
    int stop() {
        stop_ = true;
        if (killer_.joinable())
            killer_.join();
        if (observer_.joinable())
            observer_.join();
        return kills_;
    }
    /// Items of the observer's imap that ended with worker_lost_error, and with their value.
    int observer_lost() const { return observer_lost_; }
    int observer_wrong() const { return observer_wrong_; }

private:
    void observe() {
        auto results = pool_.imap(pid_after_a_ms, std::views::iota(0));
        while (!stop_) {
            try {
                const std::optional<int> pid = results.next(patience);
                if (!pid) {
                    ++observer_wrong_; // an infinite input cannot end
                    return;
                }
                std::lock_guard lock(mutex_);
                answered_.insert(*pid);
            } catch (const procpool::worker_lost_error&) {
                ++observer_lost_;
            } catch (...) {
                ++observer_wrong_;
                return;
            }
        }
    }

    void kill_loop() {
        std::mt19937 random(12345);
        std::uniform_int_distribution<int> pause_ms(2, 6);
        while (!stop_) {
            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
            std::vector<int> candidates;
            {
                std::lock_guard lock(mutex_);
                for (int pid : pool_.worker_pids())
                    if (answered_.count(pid) != 0)
                        candidates.push_back(pid);
            }
            if (candidates.empty())
                continue;
            const int victim = candidates[random() % candidates.size()];
            // A worker of this pool, started by it: its pid comes from the pool's own list.
            if (::kill(victim, SIGKILL) == 0) {
                ++kills_;
                std::lock_guard lock(mutex_);
                answered_.erase(victim);
            }
        }
    }

    procpool::pool& pool_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::set<int> answered_; // pids that answered the observer, not yet killed
    std::atomic<int> kills_{0};
    std::atomic<int> observer_lost_{0};
    std::atomic<int> observer_wrong_{0};
    std::thread observer_;
    std::thread killer_;
};

/// After a chaos run: the pool has all its workers again and computes right.
void require_whole(procpool::pool& pool) {
    BOOST_TEST(workers_once_replaced(pool) == pool.processes());
    BOOST_TEST(pool.map(square, iota_vector(500), 7) == squares(500),
               boost::test_tools::per_element());
}

} // namespace

BOOST_AUTO_TEST_CASE(random_kills_during_a_long_imap_end_every_item_once_value_or_lost) {
    procpool::pool pool(3);
    constexpr int n = 6000;
    int values = 0, lost = 0, wrong = 0, position = 0;
    int kills = 0;
    {
        chaos_monkey monkey(pool);
        auto results = pool.imap(busy_square, iota_vector(n));
        // chunksize 1: a lost item is reported at its position and the iteration goes on, so
        // item i is the i-th next().
        for (;;) {
            try {
                const std::optional<int> v = results.next(patience);
                if (!v)
                    break;
                if (*v == position * position)
                    ++values;
                else
                    ++wrong;
            } catch (const procpool::worker_lost_error& e) {
                ++lost;
                BOOST_TEST(std::string(e.what()).find("while running a task") != std::string::npos);
            }
            ++position;
        }
        kills = monkey.stop();
        BOOST_TEST(monkey.observer_wrong() == 0);
    }
    BOOST_TEST_MESSAGE("imap under chaos: " << kills << " kills, " << values << " values, " << lost
                                            << " lost");
    BOOST_TEST(wrong == 0);
    BOOST_TEST(values + lost == n); // every item exactly once: none missing, none twice
    BOOST_TEST(position == n);
    BOOST_TEST(kills >= 5);
    BOOST_TEST(lost >= 1); // the kills landed on running tasks, and were reported
    require_whole(pool);
}

BOOST_AUTO_TEST_CASE(random_kills_during_many_map_async_end_every_call_once_value_or_lost) {
    procpool::pool pool(3);
    constexpr int calls = 300, items = 16;
    // Rounds of `calls` calls, until one lost a call to a kill (at most 10): a kill lands on a
    // worker that has answered the observer, and when replacements start slowly (under a
    // sanitizer, seen in CI) a whole round can end between kills.
    constexpr int max_rounds = 10;
    int kills = 0, ok = 0, lost = 0, wrong = 0, rounds = 0;
    {
        chaos_monkey monkey(pool);
        std::this_thread::sleep_for(50ms); // the observer's first answers arm the monkey
        while (lost == 0 && rounds < max_rounds) {
            ++rounds;
            std::vector<std::atomic<int>> callbacks(calls), error_callbacks(calls);
            std::vector<procpool::async_result<std::vector<int>>> results;
            for (int c = 0; c < calls; ++c) {
                std::vector<int> input(items);
                for (int i = 0; i < items; ++i)
                    input[static_cast<std::size_t>(i)] = c * items + i;
                results.push_back(pool.map_async(
                    busy_square, input, 4,
                    [&callbacks, c](const std::vector<int>&) { ++callbacks[c]; },
                    [&error_callbacks, c](std::exception_ptr) { ++error_callbacks[c]; }));
            }
            for (int c = 0; c < calls; ++c) {
                try {
                    const std::vector<int> got = results[static_cast<std::size_t>(c)].get(patience);
                    bool right = got.size() == items;
                    for (int i = 0; right && i < items; ++i)
                        right =
                            got[static_cast<std::size_t>(i)] == (c * items + i) * (c * items + i);
                    ++(right ? ok : wrong);
                    BOOST_TEST(callbacks[c] == 1);
                    BOOST_TEST(error_callbacks[c] == 0);
                } catch (const procpool::worker_lost_error&) {
                    ++lost;
                    BOOST_TEST(callbacks[c] == 0);
                    BOOST_TEST(error_callbacks[c] == 1);
                }
            }
        }
        kills = monkey.stop();
        BOOST_TEST_MESSAGE("map_async under chaos: " << rounds << " rounds, " << kills << " kills, "
                                                     << ok << " whole, " << lost << " lost");
        BOOST_TEST(wrong == 0);
        BOOST_TEST(ok + lost == calls * rounds);
        BOOST_TEST(kills >= 5);
        BOOST_TEST(lost >= 1);
        BOOST_TEST(monkey.observer_wrong() == 0);
    }
    require_whole(pool);
}

namespace {

/// The parent's resident memory, in bytes (/proc/self/statm).
std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

} // namespace

BOOST_AUTO_TEST_CASE(ten_million_tiny_tasks_leave_the_parents_memory_flat) {
    procpool::pool pool(2);
    // 250 000 items, each under 40 000 so that its square fits an int.
    std::vector<int> input, expected;
    for (int i = 0; i < 250'000; ++i) {
        input.push_back(i % 40'000);
        expected.push_back(square(i % 40'000));
    }
    // Per round: 250 000 items through map (chunks of 250), through imap_unordered (chunks of
    // 500), and 2 000 apply_async: every path that allocates per task or per chunk. Under a
    // sanitizer the memory is not compared (the sanitizer's own allocator holds on to freed
    // memory), so two rounds do: what they check there is the paths themselves.
    constexpr int rounds = sanitized ? 2 : 20, warm_up = sanitized ? 1 : 4;
    constexpr std::size_t per_round = 2 * 250'000 + 2'000;
    std::size_t tasks = 0, after_warm_up = 0;
    for (int round = 0; round < rounds; ++round) {
        BOOST_REQUIRE(pool.map(square, input, 250) == expected);
        long long sum = 0;
        for (int v : pool.imap_unordered(square, input, 500))
            sum += v;
        BOOST_REQUIRE(sum == std::accumulate(expected.begin(), expected.end(), 0LL));
        std::vector<procpool::async_result<int>> applied;
        for (int i = 0; i < 2'000; ++i)
            applied.push_back(pool.apply_async(square, i));
        for (int i = 0; i < 2'000; ++i)
            BOOST_REQUIRE(applied[static_cast<std::size_t>(i)].get(patience) == i * i);
        tasks += per_round;
        if (round + 1 == warm_up)
            after_warm_up = resident_bytes();
    }
    const std::size_t at_end = resident_bytes();
    BOOST_TEST_MESSAGE("soak: " << tasks << " tasks; resident " << after_warm_up / 1024
                                << " KiB after warm-up, " << at_end / 1024 << " KiB at the end");
    // Flat: the rounds after warm-up do the same work, so the memory they end with is the
    // memory they began with, give or take the allocator's slack (a round's results are 1 MiB).
    if constexpr (!sanitized) {
        BOOST_TEST(tasks >= std::size_t{10'000'000});
        BOOST_TEST(at_end <= after_warm_up + (std::size_t{4} << 20));
    } else {
        BOOST_TEST_MESSAGE("soak: memory not compared under a sanitizer (tasks::sanitized)");
    }
}
