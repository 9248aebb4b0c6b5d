// imap streams: 10^7 results over a lazily generated input in constant memory. A binary of its
// own, so that the peak resident size it measures belongs to this test alone.
#define PROCPOOL_TEST_SUITE_NAME "imap_memory"
#include "test_main.hpp"

#include "tasks.hpp"

#include <cstdint>
#include <ranges>
#include <sys/resource.h>

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
    BOOST_TEST(growth < bound);
}
