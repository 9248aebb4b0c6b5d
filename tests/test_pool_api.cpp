// Every method of procpool::pool and async_result, on their successful paths.
#define PROCPOOL_TEST_SUITE_NAME "pool_api"
#include "test_main.hpp"

#include "tasks.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <list>
#include <mutex>
#include <ranges>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unistd.h>

using namespace tasks;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(apply_returns_the_function_value) {
    procpool::pool pool(test_options(2));
    BOOST_TEST(pool.apply(add, 2, 3) == 5);
    BOOST_TEST(pool.apply(repeat, std::string("ab"), 3) == "ababab");
}

BOOST_AUTO_TEST_CASE(apply_runs_the_task_in_a_worker_process) {
    procpool::pool pool(test_options(2));
    const int pid = pool.apply(worker_pid, 0);
    BOOST_TEST(pid != static_cast<int>(::getpid()));
    const auto pids = pool.worker_pids();
    BOOST_TEST(pids.size() == 2u);
    BOOST_TEST((std::find(pids.begin(), pids.end(), pid) != pids.end()));
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: MPI pools default to N-1 ranks (test_mpi)
BOOST_AUTO_TEST_CASE(default_pool_has_one_worker_per_hardware_thread) {
    procpool::pool pool;
    BOOST_TEST(pool.processes() == std::max(1u, std::thread::hardware_concurrency()));
    BOOST_TEST(pool.apply(square, 9) == 81);
}
#endif

BOOST_AUTO_TEST_CASE(apply_async_get_returns_the_value_and_ready_turns_true) {
    procpool::pool pool(test_options(2));
    auto result = pool.apply_async(add, 40, 2);
    BOOST_TEST(result.valid());
    BOOST_TEST(result.get(patience) == 42);
    BOOST_TEST(result.ready());
    BOOST_TEST(result.successful());
    BOOST_TEST(result.get() == 42); // get() may be called again
}

BOOST_AUTO_TEST_CASE(apply_async_of_a_void_function_completes) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(nothing, 1);
    static_assert(std::is_void_v<decltype(result.get())>);
    BOOST_TEST(result.wait(patience));
    BOOST_TEST(result.successful());
    result.get();
}

BOOST_AUTO_TEST_CASE(apply_async_callback_runs_before_ready_with_the_value) {
    procpool::pool pool(test_options(2));
    auto seen = std::make_shared<std::atomic<int>>(0);
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto result = pool.apply_async(
        add, std::tuple{20, 22},
        [seen, calls](const int& v) {
            seen->store(v);
            calls->fetch_add(1);
        },
        [](std::exception_ptr) { BOOST_ERROR("error_callback must not run"); });
    BOOST_REQUIRE(result.wait(patience));
    // The callback ran before ready() turned true, so its effect is visible now.
    BOOST_TEST(seen->load() == 42);
    BOOST_TEST(calls->load() == 1);
    BOOST_TEST(result.get() == 42);
}

BOOST_AUTO_TEST_CASE(apply_async_error_callback_receives_the_task_exception) {
    procpool::pool pool(test_options(1));
    auto message = std::make_shared<std::string>();
    auto result = pool.apply_async(
        throw_standard, std::tuple{1}, [](const int&) { BOOST_ERROR("callback must not run"); },
        [message](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::invalid_argument& ex) {
                *message = ex.what();
            }
        });
    BOOST_REQUIRE(result.wait(patience));
    BOOST_TEST(*message == "kind 1");
    BOOST_TEST(!result.successful());
    BOOST_CHECK_THROW(result.get(), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_callback_that_throws_fails_the_result_with_its_exception) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(square, std::tuple{3},
                                   [](const int&) { throw std::length_error("from callback"); });
    BOOST_REQUIRE(result.wait(patience));
    BOOST_CHECK_THROW(result.get(), std::length_error);
    BOOST_TEST(pool.apply(square, 4) == 16); // the result thread survived
}

BOOST_AUTO_TEST_CASE(map_returns_results_in_input_order_for_every_chunksize) {
    procpool::pool pool(test_options(2));
    const auto input = iota_vector(1000);
    for (std::size_t chunksize : {0u, 1u, 7u, 999u, 1000u, 5000u})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_TEST(pool.map(square, input, chunksize) == squares(1000));
        }
}

namespace {
long twice(long x) {
    return 2 * x;
}
std::array<int, 2> split(double x) {
    return {static_cast<int>(x), static_cast<int>(-2 * x)};
}
enum class shade : std::uint8_t { light, dark };
shade flip(shade s) {
    return s == shade::light ? shade::dark : shade::light;
}
} // namespace

// Items stored side by side whose encoding is their bytes go into a chunk in one copy, and
// results of such types come out of one; each must still land in its place.
BOOST_AUTO_TEST_CASE(items_and_results_copied_a_chunk_at_a_time_keep_their_places) {
    procpool::pool pool(test_options(2));
    constexpr long n = 1001;
    std::vector<long> longs;
    std::vector<long> doubled;
    for (long i = -500; i < n - 500; ++i) {
        longs.push_back(i);
        doubled.push_back(2 * i);
    }
    const std::deque<long> deque(longs.begin(), longs.end()); // not contiguous: one by one
    const std::span<const long> middle = std::span(longs).subspan(7, 500);
    const std::vector<long> middle_doubled(doubled.begin() + 7, doubled.begin() + 507);
    for (std::size_t chunksize : {0u, 1u, 3u, 64u, 500u, 1000u, 1001u, 1002u})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_TEST(pool.map(twice, longs, chunksize) == doubled);
            BOOST_TEST(pool.map(twice, deque, chunksize) == doubled);
            BOOST_TEST(pool.map(twice, middle, chunksize) == middle_doubled);
            std::vector<long> streamed;
            for (long value : pool.imap(twice, longs, std::max<std::size_t>(chunksize, 1)))
                streamed.push_back(value);
            BOOST_TEST(streamed == doubled);
        }

    const std::array<double, 9> halves{0.5, 1.5, -2.5, 3, 4, 5, 6, 7, 8};
    std::vector<std::array<int, 2>> split_expected;
    for (double x : halves)
        split_expected.push_back(split(x));
    for (std::size_t chunksize : {1u, 2u, 9u})
        BOOST_TEST((pool.map(split, halves, chunksize) == split_expected));

    const std::vector<shade> shades{shade::dark, shade::light, shade::light, shade::dark};
    BOOST_TEST((pool.map(flip, shades, 3) ==
                std::vector<shade>{shade::light, shade::dark, shade::dark, shade::light}));
}

BOOST_AUTO_TEST_CASE(map_of_many_chunks_handed_over_in_batches_keeps_every_position) {
    procpool::pool pool(test_options(2));
    const auto input = iota_vector(30'000);
    for (std::size_t chunksize : {1u, 3u})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_TEST(pool.map(square, input, chunksize) == squares(30'000));
            BOOST_TEST(bounded_get(pool.map_async(square, input, chunksize)) == squares(30'000));
        }
}

BOOST_AUTO_TEST_CASE(map_of_large_items_paced_by_the_workers_returns_every_result) {
    // 40 items of 1 MiB: a blocking map waits for the workers between chunks.
    procpool::pool pool(test_options(2));
    std::vector<std::string> input;
    for (int i = 0; i < 40; ++i)
        input.emplace_back(std::size_t{1} << 20, static_cast<char>('A' + i));
    const auto out = pool.map(first_and_size, input);
    BOOST_REQUIRE(out.size() == input.size());
    for (std::size_t i = 0; i < input.size(); ++i)
        BOOST_TEST((out[i] == std::pair<char, std::size_t>{static_cast<char>('A' + i), 1u << 20}));
    // A failure in the middle of a paced map is its error, and the pool goes on.
    input[7] = "";
    BOOST_CHECK_THROW(pool.map(first_and_size, input, 1), std::invalid_argument);
    BOOST_TEST(pool.apply(square, 6) == 36);
}

BOOST_AUTO_TEST_CASE(maps_of_large_items_of_changing_sizes_return_each_item_intact) {
    // Frames of 64 KiB and more are encoded into the buffers of completed chunks: a reused
    // buffer must carry its new frame only, whatever size its last one had.
    procpool::pool pool(test_options(2));
    for (int round = 0; round < 3; ++round) {
        std::vector<std::vector<char>> input;
        for (int i = 0; i < 24; ++i) {
            const std::size_t kib = (i + round) % 3 == 0 ? 300 : (i + round) % 3 == 1 ? 70 : 130;
            std::vector<char> item(kib << 10);
            for (std::size_t j = 0; j < item.size(); j += 97)
                item[j] = static_cast<char>(round * 31 + i + j);
            input.push_back(std::move(item));
        }
        BOOST_TEST_CONTEXT("round " << round) {
            BOOST_TEST((pool.map(identity, input, 1) == input));
            BOOST_TEST((pool.map(identity, input, 2) == input));
        }
    }
}

namespace {
/// `count` items of `kib` KiB, each filled with a pattern of its own.
std::vector<std::vector<char>> patterned_items(int count, std::size_t kib, int seed) {
    std::vector<std::vector<char>> items;
    for (int i = 0; i < count; ++i) {
        std::vector<char> item(kib << 10);
        for (std::size_t j = 0; j < item.size(); j += 61)
            item[j] = static_cast<char>(seed * 7 + i * 13 + j);
        items.push_back(std::move(item));
    }
    return items;
}
} // namespace

BOOST_AUTO_TEST_CASE(large_results_are_intact_whichever_thread_decodes_them) {
    // Results of 256 KiB and more are handed to a thread waiting for them (get(), wait(timeout),
    // a blocking map) while it is idle, and decoded by the io thread otherwise; callbacks
    // always get them from the io thread.
    procpool::pool pool(test_options(2));
    const auto input = patterned_items(16, 600, 1);
    BOOST_TEST((bounded_get(pool.map_async(identity, input, 1)) == input));
    BOOST_TEST((bounded_get(pool.map_async(identity, input, 3)) == input));

    auto polled = pool.map_async(identity, input, 1);
    BOOST_REQUIRE(ready_after_waits_of(polled, std::chrono::milliseconds(1)));
    BOOST_TEST((polled.get() == input));

    std::vector<std::vector<char>> seen;
    auto with_callback = pool.map_async(identity, input, 1,
                                        [&](const std::vector<std::vector<char>>& r) { seen = r; });
    BOOST_TEST((bounded_get(with_callback) == input));
    BOOST_TEST((seen == input));
}

BOOST_AUTO_TEST_CASE(large_last_results_of_a_chunk_sent_from_the_workers_memory_are_intact) {
    // A chunk's last result of 64 KiB or more (a string, or a vector of numbers) goes to the
    // ring from the worker's own copy, after the rest of the frame: sizes on both sides of
    // that line, in every place of chunks of 1, 2 and 3, through map, imap and apply.
    procpool::pool pool(test_options(2));
    std::vector<std::pair<std::size_t, int>> sizes;
    const std::size_t kib = 1024;
    for (int i = 0; i < 14; ++i) {
        const std::size_t bytes[] = {64 * kib, 64 * kib - 8, 3 * kib, 700 * kib, 0, 2048 * kib};
        sizes.emplace_back(bytes[i % 6], i);
    }
    std::vector<std::string> strings;
    std::vector<std::vector<double>> doubles;
    for (const auto& size : sizes) {
        strings.push_back(patterned_string_of(size));
        doubles.push_back(patterned_doubles_of(size));
    }
    for (std::size_t chunksize : {1, 2, 3})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_TEST((pool.map(patterned_string_of, sizes, chunksize) == strings));
            BOOST_TEST((pool.map(patterned_doubles_of, sizes, chunksize) == doubles));
            std::vector<std::string> streamed;
            for (std::string& s : pool.imap(patterned_string_of, sizes, chunksize))
                streamed.push_back(std::move(s));
            BOOST_TEST((streamed == strings));
        }
    BOOST_TEST(bounded_get(pool.apply_async(patterned_string, std::size_t{3} << 20, 5)) ==
               patterned_string(std::size_t{3} << 20, 5));
}

BOOST_AUTO_TEST_CASE(large_char_vector_results_read_straight_into_their_own_vectors_are_intact) {
    // A chunk's last result, when it is a std::vector<char> of 64 KiB or more, is read from the
    // ring into a vector of its own that becomes the result; from 1 MiB on, into one a waiting
    // caller readied. Sizes that change (a readied buffer fits some only), in every place of
    // chunks of 1, 2 and 3, through map, map_async, imap and apply; and vectors of unsigned
    // char, read with the rest of their frame.
    procpool::pool pool(test_options(2));
    const std::size_t mib = std::size_t{1} << 20;
    const std::size_t bytes[] = {3 * mib, mib, 64 << 10, 2 * mib + 5, 0, mib - 1, 3 * mib, 3 * mib};
    std::vector<std::pair<std::size_t, int>> sizes;
    for (int i = 0; i < 16; ++i)
        sizes.emplace_back(bytes[i % 8], i);
    std::vector<std::vector<char>> chars;
    std::vector<std::vector<unsigned char>> uchars;
    for (const auto& size : sizes) {
        chars.push_back(patterned_bytes_of<char>(size));
        uchars.push_back(patterned_bytes_of<unsigned char>(size));
    }
    for (std::size_t chunksize : {1, 2, 3})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_TEST((pool.map(patterned_bytes_of<char>, sizes, chunksize) == chars));
            BOOST_TEST(
                (bounded_get(pool.map_async(patterned_bytes_of<char>, sizes, chunksize)) == chars));
            std::vector<std::vector<char>> streamed;
            for (std::vector<char>& v : pool.imap(patterned_bytes_of<char>, sizes, chunksize))
                streamed.push_back(std::move(v));
            BOOST_TEST((streamed == chars));
            BOOST_TEST((pool.map(patterned_bytes_of<unsigned char>, sizes, chunksize) == uchars));
        }
    BOOST_TEST((bounded_get(pool.apply_async(patterned_bytes_of<char>, sizes[0])) == chars[0]));
    BOOST_TEST((pool.apply(patterned_bytes_of<char>, sizes[3]) == chars[3]));
}

BOOST_AUTO_TEST_CASE(large_chunks_of_bool_results_are_intact) {
    // Chunks of 300 000 bools are over the hand-over size, and 300 000 is no multiple of 64:
    // neighbouring chunks share words of std::vector<bool>, so they must never be decoded on
    // two threads at once (they all are on the io thread). Such a race would only rarely show
    // here; this checks the results.
    procpool::pool pool(test_options(2));
    const auto input = iota_vector(1'500'000);
    std::vector<bool> expected;
    for (int x : input)
        expected.push_back(is_odd(x));
    for (int round = 0; round < 3; ++round)
        BOOST_TEST_CONTEXT("round " << round) {
            BOOST_TEST((pool.map(is_odd, input, 300'000) == expected));
            BOOST_TEST((bounded_get(pool.map_async(is_odd, input, 300'000)) == expected));
        }
}

BOOST_AUTO_TEST_CASE(a_failing_item_among_large_results_fails_the_map_and_the_pool_goes_on) {
    procpool::pool pool(test_options(2));
    auto input = patterned_items(20, 400, 2);
    input[13][0] = 'X';
    BOOST_CHECK_EXCEPTION(pool.map(identity_unless_marked, input, 1), std::runtime_error,
                          [](const std::runtime_error& e) {
                              return std::string(e.what()).find("marked item of 409600 bytes") !=
                                     std::string::npos;
                          });
    BOOST_CHECK_THROW(bounded_get(pool.map_async(identity_unless_marked, input, 2)),
                      std::runtime_error);
    input[13][0] = 'x';
    BOOST_TEST((pool.map(identity_unless_marked, input, 1) == input));
}

BOOST_AUTO_TEST_CASE(map_over_empty_input_returns_an_empty_vector) {
    procpool::pool pool(test_options(2));
    BOOST_TEST(pool.map(square, std::vector<int>{}).empty());
    BOOST_TEST(pool.map(square, std::vector<int>{}, 5).empty());
}

BOOST_AUTO_TEST_CASE(map_accepts_views_lists_and_unsized_ranges) {
    procpool::pool pool(test_options(2));
    BOOST_TEST(pool.map(square, std::views::iota(0, 50)) == squares(50));
    const std::list<int> list(50, 3);
    BOOST_TEST(pool.map(square, list) == std::vector<int>(50, 9));
    auto evens = std::views::iota(0, 20) | std::views::filter([](int x) { return x % 2 == 0; });
    BOOST_TEST(pool.map(square, evens) ==
               (std::vector<int>{0, 4, 16, 36, 64, 100, 144, 196, 256, 324}));
}

BOOST_AUTO_TEST_CASE(map_default_chunksize_is_pythons) {
    using procpool::detail::default_chunksize;
    BOOST_TEST(default_chunksize(20'000, 2) == 2'500u);
    BOOST_TEST(default_chunksize(17, 2) == 3u); // ceil(17 / 8)
    BOOST_TEST(default_chunksize(8, 2) == 1u);
    BOOST_TEST(default_chunksize(0, 4) == 1u);
}

BOOST_AUTO_TEST_CASE(map_async_callback_gets_the_whole_vector) {
    procpool::pool pool(test_options(2));
    auto got = std::make_shared<std::vector<int>>();
    auto result = pool.map_async(square, iota_vector(100), 10,
                                 [got](const std::vector<int>& v) { *got = v; });
    BOOST_TEST(bounded_get(result) == squares(100));
    BOOST_TEST(*got == squares(100));
}

BOOST_AUTO_TEST_CASE(starmap_unpacks_tuples_and_pairs) {
    procpool::pool pool(test_options(2));
    std::vector<std::tuple<int, int>> tuples;
    for (int i = 0; i < 100; ++i)
        tuples.emplace_back(i, 1000 * i);
    const auto sums = pool.starmap(add, tuples, 3);
    for (int i = 0; i < 100; ++i)
        BOOST_TEST(sums[static_cast<std::size_t>(i)] == 1001 * i);
    const std::vector<std::pair<std::string, int>> pairs = {{"x", 3}, {"yz", 2}};
    BOOST_TEST(pool.starmap(repeat, pairs) == (std::vector<std::string>{"xxx", "yzyz"}));
}

BOOST_AUTO_TEST_CASE(starmap_async_delivers_through_get_and_callback) {
    procpool::pool pool(test_options(2));
    auto calls = std::make_shared<std::atomic<int>>(0);
    std::vector<std::tuple<int, int>> tuples = {{1, 2}, {3, 4}};
    auto result =
        pool.starmap_async(add, tuples, 0, [calls](const std::vector<int>&) { ++*calls; });
    BOOST_TEST(bounded_get(result) == (std::vector<int>{3, 7}));
    BOOST_TEST(calls->load() == 1);
}

BOOST_AUTO_TEST_CASE(function_objects_lambdas_and_pointers_all_run) {
    procpool::pool pool(test_options(2));
    BOOST_TEST(pool.map(negate{}, iota_vector(5)) == (std::vector<int>{0, -1, -2, -3, -4}));
    BOOST_TEST(pool.map(scale{3}, iota_vector(4)) == (std::vector<int>{0, 3, 6, 9}));
    BOOST_TEST(pool.apply([](int a, int b) { return a * b; }, 6, 7) == 42);
    int (*pointer)(int) = &square;
    BOOST_TEST(pool.apply(pointer, 12) == 144);
}

BOOST_AUTO_TEST_CASE(get_with_timeout_throws_timeout_error_and_the_result_stays_usable) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(sleep_ms, 1000);
    BOOST_CHECK_THROW(result.get(10ms), procpool::timeout_error);
    BOOST_TEST(!result.ready());
    BOOST_TEST(result.get(patience) == 1000);
}

BOOST_AUTO_TEST_CASE(wait_with_timeout_is_false_until_the_task_is_done) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(sleep_ms, 1000);
    BOOST_TEST(!result.wait(10ms));
    BOOST_TEST(result.wait(patience));
    BOOST_TEST(result.ready());
}

BOOST_AUTO_TEST_CASE(successful_throws_state_error_before_ready) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(sleep_ms, 1000);
    BOOST_CHECK_THROW(result.successful(), procpool::state_error);
    BOOST_TEST(result.wait(patience));
    BOOST_TEST(result.successful());
}

BOOST_AUTO_TEST_CASE(an_empty_async_result_throws_state_error) {
    procpool::async_result<int> empty;
    BOOST_TEST(!empty.valid());
    BOOST_CHECK_THROW(empty.get(), procpool::state_error);
    BOOST_CHECK_THROW(empty.ready(), procpool::state_error);
}

BOOST_AUTO_TEST_CASE(payloads_much_larger_than_the_ring_travel_intact) {
    procpool::pool pool(test_options(2));
    for (std::size_t size :
         {std::size_t{0}, std::size_t{1} << 10, std::size_t{1} << 20, std::size_t{16} << 20}) {
        std::vector<char> v(size);
        for (std::size_t i = 0; i < size; ++i)
            v[i] = static_cast<char>(i * 31 + 7);
        BOOST_TEST_CONTEXT(size << " bytes") {
            BOOST_TEST((bounded_get(pool.apply_async(identity, v)) == v));
        }
    }
}

BOOST_AUTO_TEST_CASE(a_huge_argument_streams_through_a_1_mib_ring) {
    procpool::pool pool(test_options(1));
    // 1 GiB; under a sanitizer, which copies it several times slower, 256 MiB: still 256
    // times the ring (a TSan run on a loaded machine took more than the test's patience).
    std::vector<char> v(std::size_t{1} << (sanitized ? 28 : 30));
    for (std::size_t i = 0; i < v.size(); i += 4096)
        v[i] = static_cast<char>(i >> 12);
    v.back() = 'z';
    auto size_and_probe = [](std::vector<char> big) {
        long sum = 0;
        for (std::size_t i = 0; i < big.size(); i += 4096)
            sum += big[i];
        return std::tuple<std::size_t, long, char>{big.size(), sum, big.back()};
    };
    long expected = 0;
    for (std::size_t i = 0; i < v.size(); i += 4096)
        expected += v[i];
    const auto [size, sum, last] = bounded_get(pool.apply_async(size_and_probe, v));
    BOOST_TEST(size == v.size());
    BOOST_TEST(sum == expected);
    BOOST_TEST(last == 'z');
}

BOOST_AUTO_TEST_CASE(eight_threads_submit_at_once_and_every_result_is_right) {
    // Each thread: 1000 apply_async, a map, a starmap and an imap_unordered, all checked.
    procpool::pool pool(test_options(2));
    std::atomic<int> wrong{0};
    const int failed = failures_on_threads(8, [&](int t) {
        std::vector<procpool::async_result<int>> results;
        for (int i = 0; i < 1000; ++i)
            results.push_back(pool.apply_async(add, t * 10000, i));
        wrong +=
            pool.map(square, iota_vector(1000), static_cast<std::size_t>(t + 1)) != squares(1000);
        std::vector<std::tuple<int, int>> pairs;
        for (int i = 0; i < 100; ++i)
            pairs.emplace_back(t, i);
        const auto sums = pool.starmap(add, pairs);
        for (int i = 0; i < 100; ++i)
            wrong += sums[static_cast<std::size_t>(i)] != t + i;
        auto streamed = pool.imap_unordered(square, std::views::iota(0, 500));
        long long total = 0;
        while (auto v = streamed.next(patience))
            total += *v;
        wrong += total != 41541750LL; // sum of k*k for k < 500
        for (int i = 0; i < 1000; ++i)
            wrong += results[static_cast<std::size_t>(i)].get(patience) != t * 10000 + i;
    });
    BOOST_TEST(failed == 0);
    BOOST_TEST(wrong.load() == 0);
}

// A caller waiting for its one task (apply, apply_async(...).get()) writes it to the worker and
// reads its result itself while the io thread sleeps (engine.cpp, "The io role"). What the io
// thread must still do, it does.

BOOST_AUTO_TEST_CASE(tasks_nobody_waits_for_complete_beside_tasks_their_callers_wait_for) {
    procpool::pool pool(test_options(1));
    const auto ready_without_waiting = [](const procpool::async_result<int>& r) {
        const auto give_up = std::chrono::steady_clock::now() + patience;
        while (!r.ready() && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(1ms);
        return r.ready();
    };
    for (int round = 0; round < 5; ++round) {
        BOOST_TEST(pool.apply(square, round) == round * round);
        // A wait that ends while the task runs: the io thread takes the result, not the caller.
        auto given_up = pool.apply_async(sleep_ms, 20);
        BOOST_TEST(!given_up.wait(1ms));
        BOOST_REQUIRE(ready_without_waiting(given_up));
        BOOST_TEST(given_up.get() == 20);
        // Sent by this thread, never waited for.
        auto unwatched = pool.apply_async(sleep_ms, 5);
        BOOST_REQUIRE(ready_without_waiting(unwatched));
        BOOST_TEST(unwatched.get() == 5);
    }
}

BOOST_AUTO_TEST_CASE(callbacks_run_on_the_result_thread_while_a_caller_waits_for_its_own_task) {
    procpool::pool pool(test_options(1));
    std::mutex mutex;
    std::set<std::thread::id> callback_threads;
    const auto record = [&](const int&) {
        std::lock_guard lock(mutex);
        callback_threads.insert(std::this_thread::get_id());
    };
    for (int i = 0; i < 50; ++i) {
        auto with_callback = pool.apply_async(sleep_ms, std::tuple{1}, record);
        // Behind it on the one worker; its waits (short ones, again and again) overlap the
        // end of the task with a callback.
        auto waited = pool.apply_async(add, i, 1);
        BOOST_TEST(ready_after_waits_of(waited, 10us));
        BOOST_TEST(bounded_get(waited) == i + 1);
        BOOST_TEST(bounded_get(with_callback) == 1);
    }
    std::lock_guard lock(mutex);
    BOOST_TEST(callback_threads.size() == 1u);
    BOOST_TEST(callback_threads.count(std::this_thread::get_id()) == 0u);
}

namespace {
/// Creates the file `started` once it runs, then holds its worker until the file `release`
/// exists (at most 30 s), creates the file `ended` and returns x: a task whose start the test
/// can see. terminate() does not stop an MPI rank's task, so the test lets it go.
struct announce_and_hold {
    std::string started;
    std::string release;
    std::string ended;
    int operator()(int x) const {
        std::ofstream(started).put('x');
        for (int i = 0; i < 3000 && !std::filesystem::exists(release); ++i)
            std::this_thread::sleep_for(10ms);
        std::ofstream(ended).put('x');
        return x;
    }
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& started;
        ar& release;
        ar& ended;
    }
};

/// The scheduling state of thread `tid` of this process: 'R' running, 'S' asleep, ...
char thread_state(int tid) {
    const std::string text = proc_text("/proc/self/task/" + std::to_string(tid) + "/stat");
    const auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() ? text[close + 2] : '?';
}
} // namespace

// terminate() from another thread ends a wait that is in progress with state_error. The other
// thread terminates only once the task runs and this thread sleeps in its wait (its state in
// /proc, after the submission returned), so it is terminate() that ends the wait: the task
// would hold on for 30 s more, then return a value, well within the wait's bound.
BOOST_AUTO_TEST_CASE(terminate_from_another_thread_ends_a_wait_in_progress_with_state_error) {
    const std::string waits[] = {"get", "map_async get", "imap next"};
    for (const std::string& wait : waits)
        BOOST_TEST_CONTEXT(wait) {
            const std::string base = "/tmp/procpool-api-terminate-" + std::to_string(::getpid()) +
                                     "-" + std::to_string(&wait - waits);
            const announce_and_hold task{base + ".started", base + ".release", base + ".ended"};
            for (const std::string& path : {task.started, task.release, task.ended})
                std::filesystem::remove(path);
            procpool::pool pool(test_options(1));
            BOOST_TEST(pool.apply(square, 3) == 9);
            const int waiter = static_cast<int>(::gettid());
            // seq_cst: flags between two threads of a test, nothing on a hot path.
            std::atomic<bool> submitted{false};
            std::atomic<bool> done{false};
            std::atomic<bool> seen_waiting{false};
            std::thread terminator([&] {
                const auto give_up = std::chrono::steady_clock::now() + patience;
                while (!done.load() && std::chrono::steady_clock::now() < give_up) {
                    if (submitted.load() && std::filesystem::exists(task.started) &&
                        thread_state(waiter) == 'S') {
                        seen_waiting = true;
                        break;
                    }
                    std::this_thread::sleep_for(1ms);
                }
                pool.terminate();
            });
            std::string outcome = "a value";
            try {
                if (wait == "get") {
                    auto result = pool.apply_async(task, 1);
                    submitted = true;
                    result.get(patience);
                } else if (wait == "map_async get") {
                    auto result = pool.map_async(task, std::vector<int>{1}, 1);
                    submitted = true;
                    result.get(patience);
                } else {
                    auto result = pool.imap(task, std::vector<int>{1});
                    submitted = true;
                    result.next(patience);
                }
            } catch (const procpool::state_error&) {
                outcome = "state_error";
            } catch (const procpool::timeout_error&) {
                outcome = "timeout_error";
            } catch (...) {
                outcome = "another exception";
            }
            done = true;
            terminator.join();
            BOOST_TEST(seen_waiting.load());
            BOOST_TEST(outcome == "state_error");
            std::ofstream(task.release).put('x');
#ifdef PROCPOOL_TEST_MPI // the rank runs on: wait until it is free for the next pool
            for (int i = 0; i < 6000 && !std::filesystem::exists(task.ended); ++i)
                std::this_thread::sleep_for(10ms);
#endif
            for (const std::string& path : {task.started, task.release, task.ended})
                std::filesystem::remove(path);
        }
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: maxtasksperchild is refused with MPI
BOOST_AUTO_TEST_CASE(callers_waiting_at_once_while_workers_are_replaced_all_get_their_results) {
    procpool::pool pool({.processes = 2, .maxtasksperchild = 3});
    std::atomic<int> wrong{0};
    // Under a sanitizer, fewer: each replacement there forks a process with the sanitizer's
    // shadow memory, and what it looks for shows in the first few hundred tasks.
    const int rounds = sanitized ? 25 : 150;
    const int failed = failures_on_threads(4, [&](int t) {
        for (int i = 0; i < rounds; ++i) {
            wrong += pool.apply(add, t * 1000, i) != t * 1000 + i;
            wrong += bounded_get(pool.apply_async(square, i)) != i * i;
        }
    });
    BOOST_TEST(failed == 0);
    BOOST_TEST(wrong.load() == 0);
}
#endif

BOOST_AUTO_TEST_CASE(a_cancelled_result_throws_cancelled_error_and_the_pool_goes_on) {
    // Every context: with "mpi", a task a rank holds runs on and its result is dropped.
    procpool::pool pool(test_options(1));
    auto busy = pool.apply_async(sleep_ms, 300);
    auto queued = pool.apply_async(square, 3);
    BOOST_TEST(queued.cancel());
    BOOST_CHECK_THROW(queued.get(patience), procpool::cancelled_error);
    BOOST_TEST(bounded_get(busy) == 300);
    BOOST_TEST(!busy.cancel());
    BOOST_TEST(pool.apply(square, 4) == 16);
    auto job = pool.map_async(square, iota_vector(100), 7);
    job.wait(patience);
    BOOST_TEST(!job.cancel());
    BOOST_TEST(job.get() == squares(100));
}
