// What a task's failure, a bad value or a dead worker looks like to the caller, and that the
// pool carries on afterwards.
#define PROCPOOL_TEST_SUITE_NAME "pool_errors"
#include "test_main.hpp"

#include "tasks.hpp"

#include <csignal>

using namespace tasks;

namespace {
template <class Expected>
std::string what_of(procpool::async_result<int> result) {
    try {
        result.get(patience);
    } catch (const Expected& e) {
        return e.what();
    }
    return "<no exception of the expected type>";
}
} // namespace

BOOST_AUTO_TEST_CASE(get_rethrows_each_standard_exception_as_the_same_type_and_message) {
    procpool::pool pool(test_options(2));
    BOOST_TEST(what_of<std::logic_error>(pool.apply_async(throw_standard, 0)) == "kind 0");
    BOOST_TEST(what_of<std::invalid_argument>(pool.apply_async(throw_standard, 1)) == "kind 1");
    BOOST_TEST(what_of<std::domain_error>(pool.apply_async(throw_standard, 2)) == "kind 2");
    BOOST_TEST(what_of<std::length_error>(pool.apply_async(throw_standard, 3)) == "kind 3");
    BOOST_TEST(what_of<std::out_of_range>(pool.apply_async(throw_standard, 4)) == "kind 4");
    BOOST_TEST(what_of<std::runtime_error>(pool.apply_async(throw_standard, 5)) == "kind 5");
    BOOST_TEST(what_of<std::range_error>(pool.apply_async(throw_standard, 6)) == "kind 6");
    BOOST_TEST(what_of<std::overflow_error>(pool.apply_async(throw_standard, 7)) == "kind 7");
    BOOST_TEST(what_of<std::underflow_error>(pool.apply_async(throw_standard, 8)) == "kind 8");
}

BOOST_AUTO_TEST_CASE(a_standard_exception_keeps_its_exact_type) {
    procpool::pool pool(test_options(1));
    // invalid_argument must not arrive as its base, logic_error, only.
    std::string caught = "nothing";
    try {
        pool.apply(throw_standard, 1);
    } catch (const std::invalid_argument&) {
        caught = "invalid_argument";
    } catch (...) {
        caught = "another type";
    }
    BOOST_TEST(caught == "invalid_argument");
}

BOOST_AUTO_TEST_CASE(an_unknown_exception_type_becomes_remote_error_with_its_demangled_name) {
    procpool::pool pool(test_options(1));
    try {
        pool.apply(throw_custom, 0);
        BOOST_ERROR("no exception");
    } catch (const procpool::remote_error& e) {
        BOOST_TEST(e.type_name() == "tasks::custom_error");
        BOOST_TEST(e.message() == "custom message");
        BOOST_TEST(std::string(e.what()) == "tasks::custom_error: custom message");
    }
}

BOOST_AUTO_TEST_CASE(a_thrown_non_exception_becomes_remote_error_naming_its_type) {
    procpool::pool pool(test_options(1));
    try {
        pool.apply(throw_int, 0);
        BOOST_ERROR("no exception");
    } catch (const procpool::remote_error& e) {
        BOOST_TEST(e.type_name() == "int");
        BOOST_TEST(e.message().empty());
    }
}

namespace {
/// Catches `error` as the type the pool must deliver for coded kind `kind`, and checks it
/// against the same exception made here.
void check_coded(int kind, const std::exception_ptr& error) {
    namespace fs = std::filesystem;
    const std::exception_ptr local = coded_exception(kind);
    auto what = [](const std::exception_ptr& e) -> std::string {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            return x.what();
        } catch (...) {
            return "";
        }
    };
    BOOST_TEST_CONTEXT("kind " << kind << ": " << what(local)) {
        try {
            std::rethrow_exception(error);
        } catch (const fs::filesystem_error& e) {
            BOOST_REQUIRE(kind >= 2);
            BOOST_REQUIRE(kind <= 3);
            try {
                std::rethrow_exception(local);
            } catch (const fs::filesystem_error& l) {
                BOOST_TEST(e.code() == l.code());
                BOOST_TEST(e.path1() == l.path1());
                BOOST_TEST(e.path2() == l.path2());
                BOOST_TEST(std::string(e.what()) == l.what());
            }
        } catch (const std::ios_base::failure& e) {
            BOOST_REQUIRE(kind == 4);
            BOOST_TEST(e.code() == std::make_error_code(std::io_errc::stream));
            BOOST_TEST(std::string(e.what()) == what(local));
        } catch (const std::system_error& e) {
            BOOST_REQUIRE(kind <= 1);
            BOOST_TEST(e.code() == (kind == 0 ? std::error_code(ENOENT, std::generic_category())
                                              : std::error_code(EACCES, std::system_category())));
            BOOST_TEST(std::string(e.what()) == what(local));
        } catch (const std::future_error& e) {
            BOOST_REQUIRE(kind == 5);
            BOOST_TEST(e.code() ==
                       std::make_error_code(std::future_errc::promise_already_satisfied));
        } catch (const procpool::remote_error& e) {
            BOOST_REQUIRE(kind >= 6);
            if (kind == 6) {
                BOOST_TEST(e.type_name() == "std::system_error");
                BOOST_TEST(e.message() ==
                           "own category: custom 7 (error category tasks.custom, code 7)");
            } else if (kind == 7) {
                BOOST_TEST(e.type_name() == "std::string");
                BOOST_TEST(e.message() == "text thrown as a std::string");
            } else {
                BOOST_TEST(e.type_name() == "const char*");
                BOOST_TEST(e.message() == "text thrown as a literal");
            }
        } catch (...) {
            BOOST_ERROR("an exception of another type");
        }
    }
}
} // namespace

BOOST_AUTO_TEST_CASE(exceptions_with_an_error_code_come_back_whole_and_thrown_texts_as_text) {
    procpool::pool pool(test_options(2));
    for (int kind = 0; kind < coded_kinds; ++kind) {
        std::exception_ptr error;
        try {
            pool.apply(throw_coded, kind);
        } catch (...) {
            error = std::current_exception();
        }
        BOOST_REQUIRE(error);
        check_coded(kind, error);
    }
}

BOOST_AUTO_TEST_CASE(map_raises_the_error_of_its_failing_item_and_the_pool_stays_usable) {
    procpool::pool pool(test_options(2));
    const auto input = iota_vector(20);
    for (std::size_t chunksize : {1u, 4u, 20u})
        BOOST_TEST_CONTEXT("chunksize " << chunksize) {
            BOOST_CHECK_THROW(pool.map(fail_on_five, input, chunksize), std::out_of_range);
        }
    BOOST_TEST(pool.map(square, std::vector<int>{1, 2, 3}) == (std::vector<int>{1, 4, 9}));
}

BOOST_AUTO_TEST_CASE(an_argument_that_cannot_be_encoded_throws_serialization_error_at_once) {
    procpool::pool pool(test_options(1));
    BOOST_CHECK_THROW(pool.apply_async(take_unsendable, unsendable{}),
                      procpool::serialization_error);
    BOOST_TEST(pool.apply(square, 5) == 25);
}

BOOST_AUTO_TEST_CASE(a_result_that_cannot_be_encoded_fails_with_serialization_error) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(make_unsendable, 0);
    BOOST_REQUIRE(result.wait(patience));
    try {
        result.get();
        BOOST_ERROR("no exception");
    } catch (const procpool::serialization_error& e) {
        BOOST_TEST(std::string(e.what()).find("unsendable cannot be serialized") !=
                   std::string::npos);
    }
    BOOST_TEST(pool.apply(square, 6) == 36);
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: a dead rank ends the MPI job (test_mpi_rank_death)
BOOST_AUTO_TEST_CASE(
    a_task_that_kills_its_worker_fails_with_worker_lost_error_and_others_complete) {
    procpool::pool pool(test_options(2));
    auto doomed = pool.apply_async(die_by_signal, SIGKILL);
    std::vector<procpool::async_result<int>> others;
    for (int i = 0; i < 50; ++i)
        others.push_back(pool.apply_async(square, i));
    try {
        doomed.get(patience);
        BOOST_ERROR("no exception");
    } catch (const procpool::worker_lost_error& e) {
        BOOST_TEST(e.signal().value_or(0) == SIGKILL);
        BOOST_TEST(!e.exit_code().has_value());
        BOOST_TEST(e.pid() > 0);
        BOOST_TEST(std::string(e.what()) == "procpool: worker " + std::to_string(e.pid()) +
                                                " killed by SIGKILL while running a task");
    }
    for (int i = 0; i < 50; ++i)
        BOOST_TEST(others[static_cast<std::size_t>(i)].get(patience) == i * i);
    BOOST_TEST(pool.apply(square, 7) == 49); // a replacement worker serves
    BOOST_TEST(workers_once_replaced(pool) == 2u);
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: a dead rank ends the MPI job (test_mpi_rank_death)
BOOST_AUTO_TEST_CASE(a_worker_that_exits_mid_task_reports_its_exit_code) {
    procpool::pool pool(test_options(1));
    auto result = pool.apply_async(
        [](int code) {
            std::_Exit(code);
            return 0;
        },
        9);
    try {
        result.get(patience);
        BOOST_ERROR("no exception");
    } catch (const procpool::worker_lost_error& e) {
        BOOST_TEST(e.exit_code().value_or(-1) == 9);
        BOOST_TEST(!e.signal().has_value());
    }
    BOOST_TEST(pool.apply(square, 3) == 9);
}
#endif

BOOST_AUTO_TEST_CASE(bad_options_throw_invalid_argument_naming_the_option) {
    BOOST_CHECK_THROW(procpool::pool(0), std::invalid_argument);
    BOOST_CHECK_THROW(procpool::pool({.processes = 1, .maxtasksperchild = 0}),
                      std::invalid_argument);
    BOOST_CHECK_THROW(procpool::get_context("threads"), std::invalid_argument);
    BOOST_TEST(procpool::get_context("spawn").name() == "spawn");
}

#ifndef PROCPOOL_TEST_MPI // this binary does not link ProcPool::mpi
BOOST_AUTO_TEST_CASE(the_mpi_context_without_procpool_mpi_linked_says_what_to_link) {
    try {
        procpool::pool pool({.processes = 1, .context = procpool::get_context("mpi")});
        BOOST_ERROR("no exception");
    } catch (const procpool::error& e) {
        BOOST_TEST(std::string(e.what()).find("needs the ProcPool::mpi library") !=
                       std::string::npos,
                   e.what());
    }
    procpool::pool pool(1); // nothing was left half made
    BOOST_TEST(pool.apply(square, 4) == 16);
}
#endif

#ifdef PROCPOOL_TEST_MPI
BOOST_AUTO_TEST_CASE(the_mpi_context_refuses_timeouts_and_memory_limits_it_cannot_enforce) {
    // A rank cannot be killed or replaced alone: what needs that is refused up front.
    auto with_timeout = test_options(2);
    with_timeout.task_timeout = std::chrono::seconds(1);
    BOOST_CHECK_EXCEPTION(
        procpool::pool{with_timeout}, std::invalid_argument, [](const std::invalid_argument& e) {
            return std::string(e.what()).find("task_timeout") != std::string::npos;
        });
    auto with_memory = test_options(2);
    with_memory.max_memory_per_child = std::size_t{1} << 30;
    BOOST_CHECK_EXCEPTION(
        procpool::pool{with_memory}, std::invalid_argument, [](const std::invalid_argument& e) {
            return std::string(e.what()).find("max_memory_per_child") != std::string::npos;
        });
    auto with_watch = test_options(2);
    with_watch.memory_limit_per_child = std::size_t{1} << 30;
    BOOST_CHECK_EXCEPTION(
        procpool::pool{with_watch}, std::invalid_argument, [](const std::invalid_argument& e) {
            return std::string(e.what()).find("memory_limit_per_child") != std::string::npos;
        });
    procpool::pool pool(test_options(2));
    BOOST_CHECK_THROW(
        pool.apply(procpool::task_options{.timeout = std::chrono::seconds(1)}, square, 3),
        std::invalid_argument);
    BOOST_TEST(pool.apply(square, 3) == 9); // the pool goes on
}
#endif
