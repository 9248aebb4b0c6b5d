// The io role on its own (libpool/src/detail/io_role.hpp): every transition of its state
// table, and the hand-back between a caller and the io thread, in one thread, with no process
// and no timing.
#define PROCPOOL_TEST_SUITE_NAME "io_role"
#include "test_main.hpp"

#include "../libpool/src/detail/io_role.hpp"

using procpool::detail::io_role;

BOOST_AUTO_TEST_CASE(starts_free_and_not_rejected) {
    io_role role(true);
    BOOST_TEST(role.state() == io_role::free);
    BOOST_TEST(role.is_free());
    BOOST_TEST(!role.rejected());
}

BOOST_AUTO_TEST_CASE(io_thread_takes_a_free_role_and_releases_it) {
    io_role role(true);
    BOOST_TEST(role.try_take_for_io());
    BOOST_TEST(role.state() == io_role::io_thread);
    BOOST_TEST(!role.is_free());
    role.release_for_io();
    BOOST_TEST(role.state() == io_role::free);
}

BOOST_AUTO_TEST_CASE(a_caller_cannot_take_the_role_while_the_io_thread_works) {
    io_role role(true);
    BOOST_REQUIRE(role.try_take_for_io());
    BOOST_TEST(!role.take_for_caller());
    BOOST_TEST(role.state() == io_role::io_thread);
}

BOOST_AUTO_TEST_CASE(io_thread_looks_only_when_the_role_is_free) {
    io_role role(true);
    BOOST_TEST(role.try_look());
    BOOST_TEST(role.state() == io_role::io_look);
    BOOST_TEST(!role.try_look()); // one look at a time
    BOOST_TEST(!role.try_take_for_io());
    role.release_for_io();
    BOOST_TEST(role.state() == io_role::free);
    BOOST_REQUIRE(role.take_for_caller());
    BOOST_TEST(!role.try_look()); // a caller drives: the io thread waits for the role instead
}

BOOST_AUTO_TEST_CASE(a_caller_gives_up_after_spinning_on_a_look_that_does_not_end) {
    io_role role(true);
    BOOST_REQUIRE(role.try_look());
    BOOST_TEST(!role.take_for_caller()); // bounded spin, then the caller waits as usual
    BOOST_TEST(role.state() == io_role::io_look);
}

BOOST_AUTO_TEST_CASE(a_caller_takes_a_free_role_and_releases_it_without_a_wake) {
    io_role role(true);
    BOOST_REQUIRE(role.take_for_caller());
    BOOST_TEST(role.state() == io_role::caller);
    BOOST_TEST(!role.take_for_caller()); // one caller at a time
    BOOST_TEST(!role.release_for_caller(false));
    BOOST_TEST(role.state() == io_role::free);
}

BOOST_AUTO_TEST_CASE(a_caller_with_leftovers_asks_for_a_wake) {
    io_role role(true);
    BOOST_REQUIRE(role.take_for_caller());
    BOOST_TEST(role.release_for_caller(true));
}

BOOST_AUTO_TEST_CASE(io_thread_rejected_by_a_caller_is_woken_when_the_caller_lets_go) {
    io_role role(true);
    BOOST_REQUIRE(role.take_for_caller());
    BOOST_TEST(!role.try_take_for_io());
    BOOST_TEST(role.rejected());
    BOOST_TEST(!role.is_free());                // the io thread's wait condition: it keeps sleeping
    BOOST_TEST(role.release_for_caller(false)); // the hand-back: the caller must wake it
    BOOST_TEST(role.is_free());
    BOOST_TEST(role.try_take_for_io());
    BOOST_TEST(!role.rejected()); // taking the role clears the mark
    role.release_for_io();
    BOOST_REQUIRE(role.take_for_caller());
    BOOST_TEST(!role.release_for_caller(false)); // no io thread waits: no wake
}

BOOST_AUTO_TEST_CASE(callers_never_take_the_role_on_a_transport_that_forbids_it) {
    io_role role(false);
    BOOST_TEST(!role.take_for_caller());
    BOOST_TEST(role.state() == io_role::free);
    BOOST_TEST(role.try_take_for_io()); // the io thread works as usual
}
