// When a task goes wrong: task timeouts (pool_options::task_timeout, task_options::timeout),
// max_memory_per_child and cancellation (async_result::cancel, imap_result::cancel), under the
// "spawn" and the "forkserver" contexts.
#define PROCPOOL_TEST_SUITE_NAME "task_limits"
#include "test_main.hpp"

#include "tasks.hpp"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

const char* const context_names[] = {"spawn", "forkserver"};

procpool::pool_options options_for(const char* context, std::size_t processes) {
    return {.processes = processes, .context = procpool::get_context(context)};
}

/// Sleeps for `ms` with SIGTERM ignored: only SIGKILL ends it early.
int sleep_ignoring_sigterm(int ms) {
    std::signal(SIGTERM, SIG_IGN);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}

/// Keeps `mib` MiB more of resident memory in this worker for good (a leak), returns its pid.
int leak_mib(int mib) {
    static std::vector<std::vector<char>> kept;
    kept.emplace_back(static_cast<std::size_t>(mib) << 20, '\1'); // written: resident
    return static_cast<int>(::getpid());
}

/// True once no process `pid` is left, within patience.
bool gone_within_patience(int pid) {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(10ms);
    return ::kill(pid, 0) != 0;
}

/// The pool is whole: all its workers, and a map that comes back right.
void check_whole(procpool::pool& pool) {
    BOOST_TEST(workers_once_replaced(pool) == pool.processes());
    BOOST_TEST(pool.map(square, iota_vector(50)) == squares(50));
}

} // namespace

BOOST_AUTO_TEST_CASE(a_100_ms_timeout_ends_a_task_that_would_sleep_for_an_hour) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            procpool::pool pool(options_for(context, 2));
            const std::vector<int> before = pool.worker_pids();
            auto hung =
                pool.apply_async(procpool::task_options{.timeout = 100ms}, sleep_ms, 3'600'000);
            auto fine = pool.apply_async(square, 7);
            // Bounded by patience (60 s), not by the hour: only the timeout can end it.
            BOOST_REQUIRE(hung.wait(patience));
            int victim = 0;
            try {
                hung.get();
                BOOST_FAIL("the hung task returned");
            } catch (const procpool::task_timeout_error& e) {
                BOOST_TEST(e.timeout() == 100ms);
                victim = e.pid();
                BOOST_TEST(std::string(e.what()).find("timeout of 100 ms") != std::string::npos,
                           e.what());
            }
            BOOST_TEST((std::find(before.begin(), before.end(), victim) != before.end()));
            BOOST_TEST(bounded_get(fine) == 49);
            BOOST_TEST(gone_within_patience(victim));
            check_whole(pool);
            const std::vector<int> after = pool.worker_pids();
            BOOST_TEST((std::find(after.begin(), after.end(), victim) == after.end()));
        }
    }
}

BOOST_AUTO_TEST_CASE(the_pool_task_timeout_applies_to_every_call_and_a_call_overrides_it) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            auto options = options_for(context, 2);
            // Timeouts far above what the quick tasks take, even on a loaded machine under a
            // sanitizer: the test must not fail for a worker that lost its core a while.
            options.task_timeout = 1s;
            procpool::pool pool(options);
            // Quick tasks are untouched by it.
            BOOST_TEST(pool.map(square, iota_vector(200), 3) == squares(200));
            BOOST_CHECK_THROW(pool.apply(sleep_ms, 60'000), procpool::task_timeout_error);
            // A call's own, longer timeout wins over the pool's.
            BOOST_TEST(pool.apply(procpool::task_options{.timeout = 20s}, sleep_ms, 1500) == 1500);
            check_whole(pool);
        }
    }
}

BOOST_AUTO_TEST_CASE(time_spent_queued_does_not_count) {
    procpool::pool pool({.processes = 1});
    // The one worker is busy for 2.5 s; the timed task waits behind it longer than its
    // timeout, then runs 50 ms (ample room under a sanitizer).
    auto first = pool.apply_async(sleep_ms, 2500);
    auto timed = pool.apply_async(procpool::task_options{.timeout = 1500ms}, sleep_ms, 50);
    BOOST_TEST(bounded_get(first) == 2500);
    BOOST_TEST(bounded_get(timed) == 50);
}

BOOST_AUTO_TEST_CASE(a_map_raises_the_timeout_of_its_chunk_and_other_work_completes) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            procpool::pool pool(options_for(context, 2));
            auto other = pool.map_async(square, iota_vector(100), 10);
            std::vector<int> input(8, 1);
            input[5] = 3'600'000;
            BOOST_CHECK_THROW(pool.map(procpool::task_options{.timeout = 1s}, sleep_ms, input, 1),
                              procpool::task_timeout_error);
            BOOST_TEST(bounded_get(other) == squares(100));
            check_whole(pool);
        }
    }
}

BOOST_AUTO_TEST_CASE(map_async_gives_the_timeout_to_its_error_callback) {
    procpool::pool pool(2);
    std::atomic<int> timeouts{0};
    auto result = pool.map_async(
        procpool::task_options{.timeout = 1s}, sleep_ms, std::vector<int>{1, 3'600'000}, 1,
        [](const std::vector<int>&) {},
        [&](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const procpool::task_timeout_error&) {
                ++timeouts;
            } catch (...) {
            }
        });
    BOOST_REQUIRE(result.wait(patience));
    BOOST_TEST(!result.successful());
    BOOST_TEST(timeouts.load() == 1);
}

BOOST_AUTO_TEST_CASE(an_imap_gives_the_timeout_at_its_item_and_goes_on) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            procpool::pool pool(options_for(context, 2));
            const std::vector<int> input{1, 2, 3'600'000, 4, 5};
            for (bool ordered : {true, false}) {
                BOOST_TEST_CONTEXT("ordered " << ordered) {
                    const procpool::task_options limited{.timeout = 1s};
                    auto result = ordered ? pool.imap(limited, sleep_ms, input)
                                          : pool.imap_unordered(limited, sleep_ms, input);
                    std::multiset<int> values;
                    int timeouts = 0;
                    int position = 0, timeout_position = -1;
                    for (int i = 0; i < 5; ++i, ++position) {
                        try {
                            auto value = result.next(patience);
                            BOOST_REQUIRE(value.has_value());
                            values.insert(*value);
                        } catch (const procpool::task_timeout_error&) {
                            ++timeouts;
                            timeout_position = position;
                        }
                    }
                    BOOST_TEST(!result.next(patience).has_value());
                    BOOST_TEST(timeouts == 1);
                    BOOST_TEST((values == std::multiset<int>{1, 2, 4, 5}));
                    if (ordered)
                        BOOST_TEST(timeout_position == 2);
                }
            }
            check_whole(pool);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_task_that_ignores_sigterm_is_killed_after_the_grace) {
    procpool::pool pool(2);
    auto hung = pool.apply_async(procpool::task_options{.timeout = 100ms}, sleep_ignoring_sigterm,
                                 3'600'000);
    BOOST_REQUIRE(hung.wait(patience));
    int victim = 0;
    try {
        hung.get();
    } catch (const procpool::task_timeout_error& e) {
        victim = e.pid();
    }
    BOOST_REQUIRE(victim > 0);
    BOOST_TEST(gone_within_patience(victim));
    check_whole(pool);
}

BOOST_AUTO_TEST_CASE(starmap_and_apply_async_with_callbacks_take_task_options) {
    procpool::pool pool(2);
    const procpool::task_options limited{.timeout = 10s};
    const std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}};
    BOOST_TEST((pool.starmap(limited, add, pairs) == std::vector<int>{3, 7}));
    BOOST_TEST((bounded_get(pool.starmap_async(limited, add, pairs)) == std::vector<int>{3, 7}));
    std::atomic<int> seen{0};
    auto r = pool.apply_async(limited, add, std::tuple{20, 22}, [&](int v) { seen = v; });
    BOOST_TEST(bounded_get(r) == 42);
    BOOST_TEST(seen.load() == 42);
    BOOST_TEST((pool.imap_unordered(limited, square, iota_vector(3)).next(patience) >= 0));
}

BOOST_AUTO_TEST_CASE(a_timeout_that_is_not_positive_is_refused) {
    BOOST_CHECK_THROW(procpool::pool({.processes = 1, .task_timeout = 0ms}), std::invalid_argument);
    BOOST_CHECK_THROW(procpool::pool({.processes = 1, .task_timeout = -5ms}),
                      std::invalid_argument);
    BOOST_CHECK_THROW(procpool::pool({.processes = 1, .max_memory_per_child = 0}),
                      std::invalid_argument);
    procpool::pool pool(1);
    BOOST_CHECK_THROW(pool.apply(procpool::task_options{.timeout = 0ms}, square, 2),
                      std::invalid_argument);
    BOOST_CHECK_THROW(pool.imap(procpool::task_options{.timeout = -1ms}, square, iota_vector(3)),
                      std::invalid_argument);
    BOOST_TEST(pool.apply(square, 3) == 9); // nothing was lost
}

BOOST_AUTO_TEST_CASE(a_worker_over_max_memory_per_child_after_a_task_is_replaced) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            // A sanitizer's shadow memory makes a worker start larger.
            const int limit_mib = sanitized ? 512 : 48;
            auto options = options_for(context, 1);
            options.max_memory_per_child = static_cast<std::size_t>(limit_mib) << 20;
            procpool::pool pool(options);
            // Each task leaks past the limit: each runs in a fresh worker, and every result
            // still comes back.
            std::set<int> pids;
            for (int i = 0; i < 4; ++i)
                pids.insert(pool.apply(leak_mib, limit_mib + 16));
            BOOST_TEST(pids.size() == 4u);
            // Tasks that stay under it share one worker.
            std::set<int> small;
            for (int i = 0; i < 4; ++i)
                small.insert(pool.apply(worker_pid, 0));
            BOOST_TEST(small.size() == 1u);
            BOOST_TEST(pool.map(square, iota_vector(20)) == squares(20));
        }
    }
}

// ---- cancellation ----

namespace {

/// Writes its worker's pid to the file `path` (proof that the task ran), then sleeps `ms`.
struct mark_then_sleep {
    std::string path;
    int ms = 0;
    int operator()(int x) const {
        {
            std::ofstream out(path + ".tmp");
            out << ::getpid();
        }
        std::filesystem::rename(path + ".tmp", path); // whole when it appears
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return x;
    }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& path& ms;
    }
};

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("procpool_test_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

bool exists_within_patience(const std::string& path) {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(5ms);
    return std::filesystem::exists(path);
}

template <class T>
bool throws_cancelled(procpool::async_result<T> result) {
    try {
        result.get(patience);
    } catch (const procpool::cancelled_error&) {
        return true;
    } catch (...) {
    }
    return false;
}

/// Runs `wait` on a thread of its own, then `cancel` here once it is (usually) waiting; true
/// when `wait` ended with cancelled_error.
template <class Wait, class Cancel>
bool cancel_wakes_a_waiter(Wait wait, Cancel cancel) {
    std::atomic<bool> cancelled{false};
    std::thread waiter([&] {
        try {
            wait();
        } catch (const procpool::cancelled_error&) {
            cancelled = true;
        } catch (...) {
        }
    });
    std::this_thread::sleep_for(50ms); // in its wait by now, or not: either way it must end
    cancel();
    waiter.join();
    return cancelled.load();
}

int sleep_from_two(int x) {
    if (x >= 2)
        std::this_thread::sleep_for(std::chrono::hours(1));
    return x;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_task_cancelled_before_it_starts_never_runs) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            procpool::pool pool(options_for(context, 1));
            const std::string started = temp_path("started"), ran = temp_path("ran");
            std::filesystem::remove(started);
            std::filesystem::remove(ran);
            auto busy = pool.apply_async(mark_then_sleep{started, 300}, 1);
            BOOST_REQUIRE(exists_within_patience(started)); // the one worker is busy
            // Queued behind it, perhaps already in the worker's inbox.
            auto queued = pool.apply_async(mark_then_sleep{ran, 0}, 2);
            BOOST_TEST(queued.cancel());
            BOOST_TEST(queued.ready());
            BOOST_TEST(throws_cancelled(queued));
            BOOST_TEST(!queued.cancel()); // once is enough
            BOOST_TEST(bounded_get(busy) == 1);
            BOOST_TEST(pool.apply(square, 5) == 25); // the worker went past where it was
            BOOST_TEST(!std::filesystem::exists(ran));
            BOOST_TEST(!busy.cancel()); // finished: nothing to cancel
            BOOST_TEST(pool.worker_pids().size() == 1u);
            std::filesystem::remove(started);
        }
    }
}

BOOST_AUTO_TEST_CASE(cancelling_a_running_task_kills_and_replaces_its_worker) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            procpool::pool pool(options_for(context, 2));
            const std::string started = temp_path("running");
            std::filesystem::remove(started);
            std::atomic<int> cancelled_seen{0};
            auto running = pool.apply_async(
                mark_then_sleep{started, 3'600'000}, std::tuple{1}, [](int) {},
                [&](std::exception_ptr e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const procpool::cancelled_error&) {
                        ++cancelled_seen;
                    } catch (...) {
                    }
                });
            BOOST_REQUIRE(exists_within_patience(started));
            int victim = 0;
            std::ifstream(started) >> victim;
            BOOST_REQUIRE(victim > 0);
            BOOST_TEST(running.cancel());
            BOOST_TEST(throws_cancelled(running));
            BOOST_TEST(cancelled_seen.load() == 1);
            BOOST_TEST(gone_within_patience(victim));
            check_whole(pool);
            const std::vector<int> after = pool.worker_pids();
            BOOST_TEST((std::find(after.begin(), after.end(), victim) == after.end()));
            std::filesystem::remove(started);
        }
    }
}

BOOST_AUTO_TEST_CASE(cancelling_a_map_async_cancels_all_its_chunks) {
    procpool::pool pool(2);
    auto job = pool.map_async(sleep_ms, std::vector<int>(20, 3'600'000), 1);
    BOOST_TEST(job.cancel());
    BOOST_TEST(throws_cancelled(job));
    check_whole(pool); // its running chunks' workers were replaced, the rest never ran
    auto starjob = pool.starmap_async(add, std::vector<std::tuple<int, int>>{{1, 2}});
    BOOST_TEST(bounded_get(starjob) == (std::vector<int>{3}));
    BOOST_TEST(!starjob.cancel());
}

BOOST_AUTO_TEST_CASE(cancelling_a_map_async_wakes_a_thread_waiting_for_it) {
    procpool::pool pool(2);
    auto job = pool.map_async(sleep_ms, std::vector<int>(6, 3'600'000), 1);
    // A timeout_error here would mean the cancel never woke the waiter.
    BOOST_TEST(
        cancel_wakes_a_waiter([&] { job.get(patience); }, [&] { BOOST_TEST(job.cancel()); }));
    check_whole(pool);
}

BOOST_AUTO_TEST_CASE(a_short_timeout_sent_while_a_long_one_runs_is_kept) {
    procpool::pool pool(2);
    // The io thread sleeps until the first task's deadline, ten minutes away.
    auto long_one = pool.apply_async(procpool::task_options{.timeout = 600s}, sleep_ms, 3'600'000);
    std::this_thread::sleep_for(50ms);
    auto short_one =
        pool.apply_async(procpool::task_options{.timeout = 300ms}, sleep_ms, 3'600'000);
    BOOST_CHECK_THROW(short_one.get(patience), procpool::task_timeout_error);
    BOOST_TEST(!long_one.ready());
}

BOOST_AUTO_TEST_CASE(cancelling_an_imap_stops_its_input_and_its_workers) {
    procpool::pool pool(2);
    auto result = pool.imap(sleep_from_two, std::views::iota(0));
    BOOST_TEST(result.next(patience).value() == 0);
    BOOST_TEST(result.next(patience).value() == 1);
    // A consumer waits for item 2, which would take an hour; another thread cancels.
    BOOST_TEST(cancel_wakes_a_waiter([&] { result.next(patience); }, [&] { result.cancel(); }));
    BOOST_CHECK_THROW(result.next(patience), procpool::cancelled_error);
    check_whole(pool);
    pool.close();
    pool.join(); // the cancelled imap's stream is closed: join does not wait on it
}

// ---- retries and restart storms ----

namespace {

/// Counts its runs in the file `path` (across workers); its worker dies by SIGKILL on each of
/// the first `deaths` runs, and the run after returns the count.
struct die_first {
    std::string path;
    int deaths = 0;
    int operator()(int) const {
        int runs = 0;
        std::ifstream(path) >> runs;
        ++runs;
        std::ofstream(path) << runs;
        if (runs <= deaths)
            std::raise(SIGKILL);
        return runs;
    }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& path& deaths;
    }
};

int runs_in(const std::string& path) {
    int runs = 0;
    std::ifstream(path) >> runs;
    return runs;
}

/// Counts its runs in the file `path`, then throws.
struct count_and_throw {
    std::string path;
    int operator()(int) const {
        int runs = 0;
        std::ifstream(path) >> runs;
        std::ofstream(path) << runs + 1;
        throw std::runtime_error("a task error");
    }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& path;
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(a_task_whose_worker_died_runs_again_up_to_max_retries) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            auto options = options_for(context, 2);
            options.max_retries = 2;
            procpool::pool pool(options);
            const std::string counter = temp_path("retries");
            std::filesystem::remove(counter);
            // Two deaths, then it succeeds on its third worker.
            BOOST_TEST(pool.apply(die_first{counter, 2}, 0) == 3);
            // Three deaths are one too many: the error says how often it was tried.
            std::filesystem::remove(counter);
            try {
                pool.apply(die_first{counter, 3}, 0);
                BOOST_ERROR("no exception");
            } catch (const procpool::worker_lost_error& e) {
                BOOST_TEST(std::string(e.what()).find("tried 3 times") != std::string::npos,
                           e.what());
                BOOST_TEST(e.signal().value_or(0) == SIGKILL);
            }
            BOOST_TEST(runs_in(counter) == 3);
            // A call's own max_retries wins over the pool's.
            std::filesystem::remove(counter);
            BOOST_TEST(pool.apply(procpool::task_options{.max_retries = 5}, die_first{counter, 4},
                                  0) == 5);
            std::filesystem::remove(counter);
            BOOST_CHECK_THROW(
                pool.apply(procpool::task_options{.max_retries = 0}, die_first{counter, 1}, 0),
                procpool::worker_lost_error);
            BOOST_TEST(runs_in(counter) == 1);
            check_whole(pool);
            std::filesystem::remove(counter);
        }
    }
}

BOOST_AUTO_TEST_CASE(exceptions_and_timeouts_are_not_retried) {
    procpool::pool pool({.processes = 2, .max_retries = 3});
    const std::string counter = temp_path("no_retry");
    std::filesystem::remove(counter);
    BOOST_CHECK_THROW(pool.apply(count_and_throw{counter}, 0), std::runtime_error);
    BOOST_TEST(runs_in(counter) == 1);
    std::filesystem::remove(counter);
    const std::string started = temp_path("no_retry_timeout");
    std::filesystem::remove(started);
    BOOST_CHECK_THROW(pool.apply(procpool::task_options{.timeout = 200ms},
                                 mark_then_sleep{started, 3'600'000}, 0),
                      procpool::task_timeout_error);
    check_whole(pool);
    // Had it run again, a second worker would have written its pid over the first's.
    int pid = 0;
    std::ifstream(started) >> pid;
    BOOST_TEST(pid > 0);
    BOOST_TEST(gone_within_patience(pid));
    BOOST_TEST(pool.apply(square, 2) == 4);
    std::ifstream(started) >> pid;
    int again = 0;
    std::ifstream(started) >> again;
    BOOST_TEST(again == pid);
    std::filesystem::remove(started);
}

BOOST_AUTO_TEST_CASE(a_map_whose_every_item_kills_its_worker_ends_in_a_bounded_storm) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            procpool::pool pool(options_for(context, 2));
            auto result = pool.imap_unordered(die_by_signal, std::vector<int>(300, SIGKILL));
            int lost = 0, storm = 0, other = 0;
            for (int i = 0; i < 300; ++i) {
                try {
                    result.next(patience);
                    ++other;
                } catch (const procpool::worker_lost_error& e) {
                    if (std::string(e.what()).find("restart storm") != std::string::npos)
                        ++storm;
                    else
                        ++lost;
                }
            }
            BOOST_TEST(!result.next(patience).has_value());
            BOOST_TEST(other == 0);
            // Far fewer workers died than there were items: the rest failed without one.
            BOOST_TEST(storm > 0);
            BOOST_TEST(lost < 150, "workers lost: " << lost);
            BOOST_TEST_MESSAGE(context << ": " << lost << " workers lost, " << storm
                                       << " items failed by the storm bound");
            check_whole(pool); // and the pool goes on
        }
    }
}

// ---- memory_limit_per_child ----

namespace {

/// Grows this worker's resident memory by 8 MiB every 10 ms, up to `mib` MiB; returns its pid.
int grow_to_mib(int mib) {
    std::vector<std::vector<char>> held;
    for (int have = 0; have < mib; have += 8) {
        held.emplace_back(std::size_t{8} << 20, '\1');
        std::this_thread::sleep_for(10ms);
    }
    return static_cast<int>(::getpid());
}

} // namespace

BOOST_AUTO_TEST_CASE(a_worker_past_memory_limit_per_child_is_killed_and_its_task_says_so) {
    for (const char* context : context_names) {
        BOOST_TEST_CONTEXT(context) {
            const std::size_t limit = std::size_t{sanitized ? 768 : 128} << 20;
            auto options = options_for(context, 2);
            options.memory_limit_per_child = limit;
            procpool::pool pool(options);
            auto other = pool.map_async(square, iota_vector(100), 5);
            try {
                pool.apply(grow_to_mib, sanitized ? 4096 : 2048); // far past it
                BOOST_ERROR("no exception");
            } catch (const procpool::memory_limit_error& e) {
                BOOST_TEST(e.limit() == limit);
                BOOST_TEST(e.rss() > limit);
                BOOST_TEST(e.signal().value_or(0) == SIGKILL);
                BOOST_TEST(std::string(e.what()).find("memory_limit_per_child") !=
                               std::string::npos,
                           e.what());
                BOOST_TEST(gone_within_patience(e.pid()));
            }
            BOOST_TEST(bounded_get(other) == squares(100));
            // Under the limit, the same task comes back.
            BOOST_TEST(pool.apply(grow_to_mib, 16) > 0);
            check_whole(pool);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_memory_kill_is_retried_as_a_lost_worker_is) {
    procpool::pool pool({.processes = 1,
                         .memory_limit_per_child = std::size_t{sanitized ? 768 : 128} << 20,
                         .max_retries = 1});
    try {
        pool.apply(grow_to_mib, sanitized ? 4096 : 2048);
        BOOST_ERROR("no exception");
    } catch (const procpool::memory_limit_error& e) {
        BOOST_TEST(std::string(e.what()).find("tried 2 times") != std::string::npos, e.what());
    }
    BOOST_CHECK_THROW(procpool::pool({.processes = 1, .memory_limit_per_child = 0}),
                      std::invalid_argument);
}
