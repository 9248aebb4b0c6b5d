// imap streams: 10^7 results over a lazily generated input in constant memory; a blocking map
// encodes its input as the workers take it. A binary of its own, so that the peak resident size
// it measures belongs to this test alone.
#define PROCPOOL_TEST_SUITE_NAME "imap_memory"
#include "test_main.hpp"

#include "tasks.hpp"

#include <cstdint>
#include <ranges>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace {

std::int64_t square64(std::int64_t x) {
    return x * x;
}

/// This process's peak resident set, in bytes (getrusage reports KiB on Linux).
std::int64_t peak_rss() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
}

constexpr std::int64_t items = 10'000'000;
/// Holding either the input or the results of 10^7 64-bit items takes 80 MB; streaming needs a
/// few chunks per worker.
constexpr std::int64_t bound = 32 << 20;

} // namespace

BOOST_AUTO_TEST_CASE(imap_of_10_million_lazy_items_stays_within_a_fixed_memory_bound) {
    procpool::pool pool(2);
    const std::int64_t before = peak_rss();
    std::int64_t expected = 0;
    std::int64_t mismatches = 0;
    auto result = pool.imap(square64, std::views::iota(std::int64_t{0}, items), 1000);
    while (auto value = result.next(tasks::patience)) {
        mismatches += *value != expected * expected;
        ++expected;
    }
    const std::int64_t growth = peak_rss() - before;
    BOOST_TEST_MESSAGE("peak resident set grew by " << growth / 1024 << " KiB");
    BOOST_TEST(expected == items);
    BOOST_TEST(mismatches == 0);
    if constexpr (!tasks::sanitized)
        BOOST_TEST(growth < bound);
}

BOOST_AUTO_TEST_CASE(imap_unordered_of_10_million_lazy_items_stays_within_the_bound) {
    procpool::pool pool(2);
    const std::int64_t before = peak_rss();
    std::int64_t count = 0;
    std::int64_t sum = 0; // wraps identically on both sides
    std::int64_t expected_sum = 0;
    for (std::int64_t i = 0; i < items; ++i)
        expected_sum = static_cast<std::int64_t>(static_cast<std::uint64_t>(expected_sum) +
                                                 static_cast<std::uint64_t>(i * i));
    auto result = pool.imap_unordered(square64, std::views::iota(std::int64_t{0}, items), 1000);
    while (auto value = result.next(tasks::patience)) {
        sum = static_cast<std::int64_t>(static_cast<std::uint64_t>(sum) +
                                        static_cast<std::uint64_t>(*value));
        ++count;
    }
    const std::int64_t growth = peak_rss() - before;
    BOOST_TEST_MESSAGE("peak resident set grew by " << growth / 1024 << " KiB");
    BOOST_TEST(count == items);
    BOOST_TEST(sum == expected_sum);
    if constexpr (!tasks::sanitized)
        BOOST_TEST(growth < bound);
}

namespace {
/// Slower than encoding the next input, so that an eager encoder would run far ahead.
std::uint64_t length_and_first(std::string s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return s.size() * 256 + static_cast<unsigned char>(s.front());
}
} // namespace

BOOST_AUTO_TEST_CASE(a_blocking_map_does_not_hold_its_whole_input_encoded) {
    // 64 inputs of 4 MiB: encoding them all before the first is sent would take 256 MiB more.
    constexpr std::size_t count = 64;
    constexpr std::size_t size = std::size_t{4} << 20;
    std::vector<std::string> input;
    for (std::size_t i = 0; i < count; ++i)
        input.emplace_back(size, static_cast<char>('a' + i % 26));
    procpool::pool pool(2);
    const std::int64_t before = peak_rss();
    const auto out = pool.map(length_and_first, input, 1);
    const std::int64_t growth = peak_rss() - before;
    BOOST_TEST_MESSAGE("peak resident set grew by " << growth / 1024 << " KiB");
    BOOST_REQUIRE(out.size() == count);
    for (std::size_t i = 0; i < count; ++i)
        BOOST_TEST(out[i] == size * 256 + static_cast<unsigned char>('a' + i % 26));
    if constexpr (!tasks::sanitized)
        BOOST_TEST(growth < 64 << 20);
}
