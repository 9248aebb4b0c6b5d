// What only the "mpi" context does: ranks as workers, its limits, and pools one after another.
// Runs under mpiexec -np 3 (see CMakeLists.txt): rank 0 runs these cases, ranks 1 and 2 serve
// inside procpool::init. The API suites also run in MPI mode (test_mpi_pool_*).
#define PROCPOOL_TEST_SUITE_NAME "mpi"
#include "test_main.hpp"

#include "tasks.hpp"

#include <cstdlib>
#include <set>
#include <string>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

int world_size() {
    const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
    BOOST_TEST_REQUIRE(size != nullptr, "run under mpiexec");
    return std::atoi(size);
}

procpool::pool_options mpi(std::optional<std::size_t> processes = {}) {
    return {.processes = processes, .context = procpool::get_context("mpi")};
}

int init_value = 0;
void set_init_value(int v) {
    init_value = v;
}
int read_init_value(int) {
    return init_value;
}

template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "no exception";
}

} // namespace

BOOST_AUTO_TEST_CASE(processes_defaults_to_every_rank_but_rank_0) {
    procpool::pool pool(mpi());
    BOOST_TEST(pool.processes() == static_cast<std::size_t>(world_size() - 1));
    BOOST_TEST(pool.apply(square, 12) == 144);
}

BOOST_AUTO_TEST_CASE(tasks_run_on_the_other_ranks_and_every_rank_takes_work) {
    procpool::pool pool(mpi());
    const auto ranks = pool.worker_pids();
    BOOST_TEST(ranks.size() == static_cast<std::size_t>(world_size() - 1));
    const auto pids = pool.map(worker_pid, std::vector<int>(8, 0), 1);
    const std::set<int> used(pids.begin(), pids.end());
    BOOST_TEST(used.count(static_cast<int>(::getpid())) == 0u);
    BOOST_TEST(used == std::set<int>(ranks.begin(), ranks.end()));
}

BOOST_AUTO_TEST_CASE(asking_for_more_processes_than_ranks_is_an_error_that_says_so) {
    const auto text = message_of([] { procpool::pool pool(mpi(world_size())); });
    BOOST_TEST(text.find("asks for more workers than the MPI job has") != std::string::npos, text);
    BOOST_CHECK_THROW(procpool::pool(mpi(world_size())), std::invalid_argument);
    procpool::pool fewer(mpi(1)); // fewer is fine
    BOOST_TEST(fewer.processes() == 1u);
    BOOST_TEST(fewer.apply(add, 1, 2) == 3);
}

BOOST_AUTO_TEST_CASE(maxtasksperchild_is_refused_because_ranks_are_not_respawned) {
    auto options = mpi();
    options.maxtasksperchild = 2;
    BOOST_CHECK_THROW(procpool::pool{options}, std::invalid_argument);
    const auto text = message_of([&] { procpool::pool pool(options); });
    BOOST_TEST(text.find("maxtasksperchild cannot be used with the \"mpi\" context") !=
                   std::string::npos,
               text);
}

BOOST_AUTO_TEST_CASE(one_mpi_pool_at_a_time_and_the_next_one_after_it) {
    {
        procpool::pool first(mpi());
        const auto text = message_of([] { procpool::pool second(mpi()); });
        BOOST_TEST(text.find("serve one pool at a time") != std::string::npos, text);
        BOOST_TEST(first.apply(square, 3) == 9); // the refusal cost the first pool nothing
    }
    procpool::pool next(mpi());
    BOOST_TEST(next.map(square, iota_vector(100)) == squares(100));
}

BOOST_AUTO_TEST_CASE(a_spawn_pool_works_beside_the_mpi_pool) {
    procpool::pool ranks(mpi());
    procpool::pool children(2);
    BOOST_TEST(ranks.apply(square, 5) == 25);
    BOOST_TEST(children.apply(square, 6) == 36);
}

BOOST_AUTO_TEST_CASE(after_terminate_the_next_pool_gets_only_its_own_results) {
    {
        procpool::pool pool(mpi());
        BOOST_TEST(pool.apply(square, 2) == 4); // the ranks are serving this pool
        std::vector<procpool::async_result<int>> slow;
        for (int i = 0; i < 6; ++i)
            slow.push_back(pool.apply_async(sleep_ms, 300));
        // Let each rank start one: their results arrive while the next pool runs.
        std::this_thread::sleep_for(100ms);
        pool.terminate();
        for (auto& r : slow)
            BOOST_CHECK_THROW(r.get(patience), procpool::state_error);
    }
    // The ranks finish the task they were running; the results of the terminated pool that
    // still arrive must not be taken for this pool's.
    procpool::pool pool(mpi());
    BOOST_TEST(pool.map(square, iota_vector(50), 1) == squares(50));
    auto r = pool.apply_async(add, 20, 22);
    BOOST_TEST(r.get(patience) == 42);
}

BOOST_AUTO_TEST_CASE(each_pool_runs_its_own_initializer_on_every_rank) {
    {
        procpool::pool pool({.processes = {},
                             .initializer = procpool::initializer(set_init_value, 41),
                             .context = procpool::get_context("mpi")});
        BOOST_TEST(pool.map(read_init_value, std::vector<int>(20, 0), 1) ==
                   std::vector<int>(20, 41));
    }
    procpool::pool pool({.processes = {},
                         .initializer = procpool::initializer(set_init_value, 7),
                         .context = procpool::get_context("mpi")});
    BOOST_TEST(pool.map(read_init_value, std::vector<int>(20, 0), 1) == std::vector<int>(20, 7));
}

BOOST_AUTO_TEST_CASE(payloads_of_many_mib_cross_between_ranks_intact) {
    procpool::pool pool(mpi());
    std::vector<std::vector<char>> blobs;
    for (int i = 0; i < 4; ++i)
        blobs.emplace_back(std::size_t{24} << 20, static_cast<char>(i * 37 + 1));
    const auto back = pool.map(identity, blobs, 1);
    BOOST_TEST((back == blobs));
}
