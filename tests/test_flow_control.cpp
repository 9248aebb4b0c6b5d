// Flow control on its own: the moving mean that paces the parent, and the chunk counts derived
// from it for the scheduler's window and imap's read-ahead.
#define PROCPOOL_TEST_SUITE_NAME "flow_control"
#include "test_main.hpp"

#include "../libpool/src/detail/flow_control.hpp"

#include <limits>

using namespace procpool::detail;

namespace {
moving_mean mean_of(std::initializer_list<double> samples) {
    moving_mean m;
    for (double s : samples)
        m.add(s);
    return m;
}
} // namespace

BOOST_AUTO_TEST_CASE(a_mean_is_unknown_and_zero_before_its_first_sample) {
    const moving_mean m;
    BOOST_TEST(!m.known());
    BOOST_TEST(m.value() == 0.0);
}

BOOST_AUTO_TEST_CASE(the_first_sample_is_the_mean_even_when_it_is_zero) {
    BOOST_TEST(mean_of({250}).value() == 250.0);
    const moving_mean zero = mean_of({0});
    BOOST_TEST(zero.known());
    BOOST_TEST(zero.value() == 0.0);
    // A later sample is weighed against the zero, not taken as a first one.
    BOOST_TEST(mean_of({0, 100}).value() == 10.0, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(each_later_sample_weighs_a_tenth) {
    BOOST_TEST(mean_of({100, 200}).value() == 110.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(mean_of({100, 200, 200}).value() == 119.0, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(a_step_change_is_followed_within_tens_of_samples) {
    moving_mean m = mean_of({0});
    for (int i = 0; i < 10; ++i)
        m.add(1000);
    BOOST_TEST(m.value() > 600.0); // 1 - 0.9^10 = 65%
    BOOST_TEST(m.value() < 700.0);
    for (int i = 0; i < 20; ++i)
        m.add(1000);
    BOOST_TEST(m.value() > 950.0); // 1 - 0.9^30 = 96%
}

BOOST_AUTO_TEST_CASE(chunks_per_worker_is_the_least_until_a_chunk_is_measured) {
    BOOST_TEST(flow::chunks_per_worker(moving_mean{}, 2, 1024) == 2u);
    BOOST_TEST(flow::chunks_per_worker(moving_mean{}, 4, 64) == 4u);
}

BOOST_AUTO_TEST_CASE(chunks_per_worker_covers_about_a_millisecond_of_work) {
    BOOST_TEST(flow::chunks_per_worker(mean_of({10'000}), 2, 1024) == 100u); // 10 us chunks
    BOOST_TEST(flow::chunks_per_worker(mean_of({30'000}), 2, 1024) == 33u);  // rounded down
}

BOOST_AUTO_TEST_CASE(chunks_per_worker_stays_within_its_bounds) {
    BOOST_TEST(flow::chunks_per_worker(mean_of({1e9}), 2, 1024) == 2u); // 1 s chunks
    BOOST_TEST(flow::chunks_per_worker(mean_of({100}), 2, 1024) == 1024u);
    BOOST_TEST(flow::chunks_per_worker(mean_of({100}), flow::min_chunks_per_worker,
                                       flow::max_chunks_per_worker) == 64u);
    // A chunk measured at nothing gives an infinite count, clamped before it is converted.
    BOOST_TEST(flow::chunks_per_worker(mean_of({0}), 2, 1024) == 1024u);
}

BOOST_AUTO_TEST_CASE(clamped_count_rounds_down_within_its_bounds) {
    BOOST_TEST(flow::clamped_count(7.9, 4, 64) == 7u);
    BOOST_TEST(flow::clamped_count(0.5, 4, 64) == 4u);
    BOOST_TEST(flow::clamped_count(std::numeric_limits<double>::infinity(), 4, 64) == 64u);
    BOOST_TEST(flow::clamped_count(1e30, 4, 64) == 64u);
}

BOOST_AUTO_TEST_CASE(the_bounds_keep_their_reasons) {
    // imap tops up at half its read-ahead: the least window must still be outstanding then.
    static_assert(flow::min_chunks_per_worker / 2 >= flow::min_window);
    static_assert(flow::min_window <= flow::max_window);
    static_assert(flow::min_chunks_per_worker <= flow::max_chunks_per_worker);
    BOOST_TEST(flow::work_per_worker_ns == 1e6);
}
