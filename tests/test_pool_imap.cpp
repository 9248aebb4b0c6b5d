// imap and imap_unordered: lazy input, order, errors at their position, timeouts, abandoning
// an iteration, close/join while one is open, and the input shapes a user passes.
#define PROCPOOL_TEST_SUITE_NAME "pool_imap"
#include "test_main.hpp"

#include "tasks.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <list>
#include <ranges>
#include <set>
#include <sstream>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

/// Drains an imap_result with bounded waits.
template <class T>
std::vector<T> drain(procpool::imap_result<T>& result) {
    std::vector<T> out;
    while (auto value = result.next(patience))
        out.push_back(std::move(*value));
    return out;
}

/// Item 0 waits (at most 60 s) until a file exists; every other item returns at once.
struct gate {
    std::string path;
    int operator()(int x) const {
        if (x == 0) {
            for (int i = 0; i < 6000 && !std::filesystem::exists(path); ++i)
                std::this_thread::sleep_for(10ms);
        }
        return x;
    }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& path;
    }
};

std::vector<char> bytes_of(int mib) {
    std::vector<char> v(static_cast<std::size_t>(mib) << 20);
    for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(mib)) & 0xff);
    return v;
}

int throw_at_seven(int x) {
    if (x == 7)
        throw std::runtime_error("the input broke at 7");
    return x;
}

} // namespace

static_assert(std::ranges::input_range<procpool::imap_result<int>>);

BOOST_AUTO_TEST_CASE(imap_returns_results_in_input_order_for_every_chunksize) {
    procpool::pool pool(test_options(2));
    for (std::size_t chunksize : {1u, 2u, 7u, 100u, 5000u}) {
        auto result = pool.imap(square, iota_vector(300), chunksize);
        BOOST_TEST(drain(result) == squares(300), "chunksize " << chunksize);
    }
}

BOOST_AUTO_TEST_CASE(imap_result_works_in_a_range_for_loop) {
    procpool::pool pool(test_options(2));
    std::vector<int> seen;
    for (int value : pool.imap(square, std::views::iota(0, 50)))
        seen.push_back(value);
    BOOST_TEST(seen == squares(50));
}

BOOST_AUTO_TEST_CASE(next_returns_nullopt_once_exhausted_and_keeps_returning_it) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(square, std::vector<int>{3});
    BOOST_TEST(result.next(patience).value() == 9);
    BOOST_TEST(!result.next(patience).has_value());
    BOOST_TEST(!result.next(patience).has_value());
}

BOOST_AUTO_TEST_CASE(imap_unordered_returns_results_as_they_finish) {
    procpool::pool pool(test_options(2));
    const std::string path = "/tmp/procpool-gate-" + std::to_string(::getpid());
    std::filesystem::remove(path);
    // Item 0 cannot finish before the first result has been received here, so an in-order
    // delivery would time out instead of returning item 1..9 first.
    auto result = pool.imap_unordered(gate{path}, iota_vector(10));
    const int first = result.next(patience).value();
    std::ofstream(path).put('x');
    std::vector<int> all{first};
    for (auto& v : drain(result))
        all.push_back(v);
    std::filesystem::remove(path);
    BOOST_TEST(first != 0);
    std::sort(all.begin(), all.end());
    BOOST_TEST(all == iota_vector(10));
}

BOOST_AUTO_TEST_CASE(imap_unordered_keeps_the_items_of_a_chunk_together_in_order) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap_unordered(square, iota_vector(400), 10);
    const auto values = drain(result);
    BOOST_REQUIRE(values.size() == 400u);
    std::set<int> chunks;
    for (std::size_t i = 0; i < values.size(); i += 10) {
        const int start = static_cast<int>(std::sqrt(values[i]));
        BOOST_TEST(start % 10 == 0);
        for (int k = 0; k < 10; ++k)
            BOOST_TEST(values[i + static_cast<std::size_t>(k)] == (start + k) * (start + k));
        chunks.insert(start);
    }
    BOOST_TEST(chunks.size() == 40u);
}

BOOST_AUTO_TEST_CASE(imap_over_an_infinite_input_can_be_left_early) {
    procpool::pool pool(test_options(2));
    {
        long long sum = 0;
        int count = 0;
        for (int value : pool.imap(square, std::views::iota(0))) {
            sum += value;
            if (++count == 2000)
                break; // destroys the unfinished imap_result
        }
        BOOST_TEST(sum == 2664667000LL); // sum of k*k for k < 2000
    }
    {
        auto result = pool.imap_unordered(square, std::views::iota(0), 3);
        BOOST_TEST(result.next(patience).has_value());
    } // destroyed after one result
    BOOST_TEST(pool.map(square, iota_vector(100)) == squares(100));
}

BOOST_AUTO_TEST_CASE(destroying_an_unfinished_imap_result_with_slow_tasks_is_prompt) {
    procpool::pool pool(test_options(2));
    {
        auto result = pool.imap(sleep_ms, std::vector<int>(1000, 200));
        BOOST_TEST(result.next(patience).value() == 200);
    }
    // Only the few chunks already submitted still run: all of them, 1000 * 200 ms on 2
    // workers, would take 100 s, past the bound of bounded_get.
    BOOST_TEST(bounded_get(pool.apply_async(square, 12)) == 144);
}

BOOST_AUTO_TEST_CASE(next_with_timeout_throws_timeout_error_and_the_iteration_goes_on) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(sleep_ms, std::vector<int>{1000, 1, 2});
    BOOST_CHECK_THROW(result.next(10ms), procpool::timeout_error);
    BOOST_TEST(result.next(patience).value() == 1000);
    BOOST_TEST(result.next(patience).value() == 1);
    BOOST_TEST(result.next(patience).value() == 2);
    BOOST_TEST(!result.next(patience).has_value());
}

BOOST_AUTO_TEST_CASE(a_task_error_is_raised_at_its_position_and_chunksize_1_goes_on) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(fail_on_five, iota_vector(10));
    for (int i = 0; i < 5; ++i)
        BOOST_TEST(result.next(patience).value() == i);
    BOOST_CHECK_EXCEPTION(result.next(patience), std::out_of_range, [](const auto& e) {
        return std::string(e.what()) == "five is out of range";
    });
    for (int i = 6; i < 10; ++i)
        BOOST_TEST(result.next(patience).value() == i);
    BOOST_TEST(!result.next(patience).has_value());
}

BOOST_AUTO_TEST_CASE(with_a_larger_chunksize_an_error_ends_the_iteration_as_in_python) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(fail_on_five, iota_vector(20), 3);
    for (int i = 0; i < 5; ++i) // chunk [3, 4, 5] delivers 3 and 4, then fails
        BOOST_TEST(result.next(patience).value() == i);
    BOOST_CHECK_THROW(result.next(patience), std::out_of_range);
    BOOST_TEST(!result.next(patience).has_value());
    BOOST_TEST(pool.apply(square, 3) == 9);
}

BOOST_AUTO_TEST_CASE(imap_unordered_delivers_every_other_result_around_an_error) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap_unordered(fail_on_five, iota_vector(10));
    std::vector<int> values;
    int errors = 0;
    for (;;) {
        try {
            auto v = result.next(patience);
            if (!v)
                break;
            values.push_back(*v);
        } catch (const std::out_of_range&) {
            ++errors;
        }
    }
    std::sort(values.begin(), values.end());
    BOOST_TEST(errors == 1);
    BOOST_TEST(values == (std::vector<int>{0, 1, 2, 3, 4, 6, 7, 8, 9}));
}

BOOST_AUTO_TEST_CASE(an_input_that_throws_delivers_what_it_read_then_its_error_then_ends) {
    procpool::pool pool(test_options(2));
    // The transform runs in this process, as the input is read.
    auto input = std::views::iota(0, 20) | std::views::transform(throw_at_seven);
    auto result = pool.imap(square, input, 2);
    for (int i = 0; i < 7; ++i)
        BOOST_TEST(result.next(patience).value() == i * i);
    BOOST_CHECK_EXCEPTION(result.next(patience), std::runtime_error, [](const auto& e) {
        return std::string(e.what()) == "the input broke at 7";
    });
    BOOST_TEST(!result.next(patience).has_value());
    BOOST_TEST(pool.apply(square, 4) == 16);
}

BOOST_AUTO_TEST_CASE(an_input_item_that_cannot_be_encoded_is_a_serialization_error_in_place) {
    procpool::pool pool(test_options(2));
    std::vector<unsendable> input(3);
    auto result = pool.imap(take_unsendable, input);
    BOOST_CHECK_THROW(result.next(patience), procpool::serialization_error);
    BOOST_TEST(!result.next(patience).has_value());
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: uses maxtasksperchild
BOOST_AUTO_TEST_CASE(empty_input_touches_no_worker_and_yields_nothing) {
    // With maxtasksperchild = 1, any task would replace a worker and change the pids.
    procpool::pool pool({.processes = 2, .maxtasksperchild = 1});
    // The worker that ran this leaves and is replaced: wait until its replacement runs (until
    // it is reaped, its pid still answers kill(pid, 0) and is listed).
    const int leaving = pool.apply(worker_pid, 0);
    std::set<int> pids_before;
    auto settled = [&] { return pids_before.size() == 2 && !pids_before.contains(leaving); };
    for (int i = 0; i < 6000 && !settled(); ++i) {
        const auto p = pool.worker_pids();
        pids_before = std::set<int>(p.begin(), p.end());
        if (!settled())
            std::this_thread::sleep_for(10ms);
    }
    BOOST_REQUIRE(settled());
    auto a = pool.imap(square, std::vector<int>{});
    auto b = pool.imap_unordered(square, std::list<int>{}, 5);
    BOOST_TEST(!a.next(patience).has_value());
    BOOST_TEST(!b.next(patience).has_value());
    BOOST_TEST(pool.map(square, std::vector<int>{}).empty());
    BOOST_TEST(pool.starmap(add, std::vector<std::tuple<int, int>>{}).empty());
    const auto p = pool.worker_pids();
    BOOST_TEST((std::set<int>(p.begin(), p.end()) == pids_before));
}
#endif

BOOST_AUTO_TEST_CASE(imap_accepts_vectors_lists_views_and_single_pass_ranges) {
    procpool::pool pool(test_options(2));
    const std::vector<int> vec = iota_vector(30);
    const std::list<int> lst(vec.begin(), vec.end());
    auto a = pool.imap(square, vec, 4);
    auto b = pool.imap(square, lst, 4);
    auto c = pool.imap(square, vec | std::views::filter([](int x) { return x % 2 == 0; }));
    std::istringstream text("0 1 2 3 4 5 6 7 8 9");
    auto d = pool.imap(square, std::views::istream<int>(text), 3); // input-only, unsized
    auto e = pool.imap(square, std::vector<int>{5, 6});            // an rvalue container is kept
    BOOST_TEST(drain(a) == squares(30));
    BOOST_TEST(drain(b) == squares(30));
    std::vector<int> even;
    for (int x = 0; x < 30; x += 2)
        even.push_back(x * x);
    BOOST_TEST(drain(c) == even);
    BOOST_TEST(drain(d) == squares(10));
    BOOST_TEST(drain(e) == (std::vector<int>{25, 36}));
}

BOOST_AUTO_TEST_CASE(imap_accepts_an_lvalue_of_a_move_only_view) {
    procpool::pool pool(test_options(2));
    // A pipeline that owns its vector is move-only, so std::views::all refuses an lvalue of it.
    auto owning = iota_vector(10) | std::views::filter([](int x) { return x % 3 == 0; });
    static_assert(!std::copyable<decltype(owning)>);
    auto by_reference = pool.imap(square, owning, 2);
    BOOST_TEST(drain(by_reference) == (std::vector<int>{0, 9, 36, 81}));
    auto moved_in = pool.imap_unordered(square, std::move(owning));
    BOOST_TEST(drain(moved_in).size() == 4u);
}

BOOST_AUTO_TEST_CASE(imap_over_a_const_rvalue_keeps_its_own_copy) {
    procpool::pool pool(test_options(2));
    auto result = [&] {
        const auto input = iota_vector(5000);
        return pool.imap(square, std::move(input)); // a const rvalue: cannot be moved from
    }();
    // The original is gone; memory it used may be reused by now.
    const std::vector<int> reuse(5000, -1);
    BOOST_TEST(drain(result) == squares(5000));
    BOOST_TEST(reuse.front() == -1);
}

BOOST_AUTO_TEST_CASE(results_of_a_few_mib_each_travel_through_imap_intact) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(bytes_of, std::vector<int>{1, 3, 5, 2, 4});
    for (const int mib : {1, 3, 5, 2, 4}) {
        auto v = result.next(patience);
        BOOST_REQUIRE(v.has_value());
        BOOST_TEST((*v == bytes_of(mib)), "the " << mib << " MiB result");
    }
    BOOST_TEST(!result.next(patience).has_value());
}

BOOST_AUTO_TEST_CASE(large_results_of_changing_sizes_stay_intact_in_imap_and_imap_unordered) {
    // Results of 64 KiB and more stay in the buffer the io thread read them into until the
    // consumer is done with their chunk; the io thread reads on into a spare buffer, which
    // may be larger or smaller than the next result.
    procpool::pool pool(test_options(2));
    std::vector<std::vector<char>> input;
    const std::size_t kib[] = {70, 600, 130, 2048, 300, 64, 1000};
    for (int i = 0; i < 21; ++i) {
        std::vector<char> item(kib[i % 7] << 10);
        for (std::size_t j = 0; j < item.size(); j += 53)
            item[j] = static_cast<char>(i * 11 + j);
        input.push_back(std::move(item));
    }
    for (const std::size_t chunksize : {std::size_t{1}, std::size_t{2}}) {
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            auto ordered = pool.imap(identity, input, chunksize);
            BOOST_TEST((drain(ordered) == input));
            auto unordered = pool.imap_unordered(identity, input, chunksize);
            auto got = drain(unordered);
            auto expected = input;
            std::sort(got.begin(), got.end());
            std::sort(expected.begin(), expected.end());
            BOOST_TEST((got == expected));
        }
    }
    {
        // Left after two results, with large ones still arriving: their buffers are let go.
        auto left = pool.imap(identity, input, 1);
        BOOST_REQUIRE(left.next(patience).has_value());
        BOOST_REQUIRE(left.next(patience).has_value());
    }
    BOOST_TEST((pool.map(identity, input, 1) == input));
    auto again = pool.imap(identity, input, 3);
    BOOST_TEST((drain(again) == input));
}

BOOST_AUTO_TEST_CASE(imap_after_close_throws_state_error_and_chunksize_0_is_invalid) {
    procpool::pool pool(test_options(2));
    BOOST_CHECK_THROW(pool.imap(square, iota_vector(3), 0), std::invalid_argument);
    pool.close();
    BOOST_CHECK_THROW(pool.imap(square, iota_vector(3)), procpool::state_error);
    BOOST_CHECK_THROW(pool.imap_unordered(square, std::vector<int>{}), procpool::state_error);
    pool.join();
}

BOOST_AUTO_TEST_CASE(an_imap_started_before_close_completes_and_join_waits_for_it) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(square, std::views::iota(0, 3000));
    pool.close();
    std::vector<int> values = drain(result); // reads its input after close
    pool.join();
    BOOST_TEST(values == squares(3000));
}

BOOST_AUTO_TEST_CASE(the_last_batch_of_an_imap_closed_under_it_is_never_lost) {
    // The input's last batch goes in while results stream back, just before the stream
    // closes; the io thread, between two looks, once took the pool for idle and stopped the
    // workers with that batch unsent. Many short pools make that window likely to be hit
    // (before the fix, one round in a few hundred here hung).
    // Fewer under a sanitizer, where each pool forks processes with its shadow memory.
    const int rounds = sanitized ? 40 : 200;
    for (int round = 0; round < rounds; ++round) {
        procpool::pool pool(test_options(2));
        auto result = pool.imap(square, std::views::iota(0, 400));
        pool.close();
        const std::vector<int> values = drain(result);
        pool.join();
        BOOST_TEST_REQUIRE(values == squares(400), "round " << round);
    }
}

BOOST_AUTO_TEST_CASE(join_before_iterating_reads_the_rest_of_the_input_as_python_does) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap_unordered(square, iota_vector(500), 3);
    pool.close();
    pool.join(); // workers are gone, the results wait in the imap_result
    auto values = drain(result);
    std::sort(values.begin(), values.end());
    BOOST_TEST(values == squares(500));
}

BOOST_AUTO_TEST_CASE(terminate_fails_an_open_imap_with_state_error) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap(sleep_ms, std::vector<int>(100, 2000));
    pool.terminate();
    BOOST_CHECK_THROW(result.next(patience), procpool::state_error);
}

BOOST_AUTO_TEST_CASE(an_imap_result_outliving_its_pool_throws_state_error) {
    std::optional<procpool::imap_result<int>> result;
    {
        procpool::pool pool(test_options(2));
        result = pool.imap(sleep_ms, std::vector<int>(10, 2000));
    }
    BOOST_CHECK_THROW(result->next(patience), procpool::state_error);
    result.reset();
}

BOOST_AUTO_TEST_CASE(an_empty_imap_result_handle_throws_state_error) {
    procpool::imap_result<int> empty;
    BOOST_CHECK_THROW(empty.next(), procpool::state_error);
}

BOOST_AUTO_TEST_CASE(several_threads_may_share_one_imap_result) {
    procpool::pool pool(test_options(2));
    auto result = pool.imap_unordered(square, iota_vector(2000), 5);
    std::vector<std::vector<int>> got(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            while (auto v = result.next(patience))
                got[t].push_back(*v);
        });
    for (auto& th : threads)
        th.join();
    std::vector<int> all;
    for (auto& g : got)
        all.insert(all.end(), g.begin(), g.end());
    std::sort(all.begin(), all.end());
    BOOST_TEST(all == squares(2000));
}
