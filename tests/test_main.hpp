// main() for every test binary: procpool::init first (a test binary is also its pools'
// worker executable), then Boost.Test's runner. Include once per test binary.
#pragma once

#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <procpool/init.hpp>

#ifndef PROCPOOL_TEST_SUITE_NAME
#error "define PROCPOOL_TEST_SUITE_NAME before including test_main.hpp"
#endif

int main(int argc, char** argv) {
    procpool::init(argc, argv);
    return boost::unit_test::unit_test_main(
        [] {
            boost::unit_test::framework::master_test_suite().p_name.value =
                PROCPOOL_TEST_SUITE_NAME;
            return true;
        },
        argc, argv);
}
