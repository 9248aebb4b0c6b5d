// The shared-memory segment: mode, exclusive names, and refusing a segment whose header does
// not match this build.
#define PROCPOOL_TEST_SUITE_NAME "segment"
#include "test_main.hpp"

#include <procpool/detail/segment.hpp>
#include <procpool/errors.hpp>

#include <string>
#include <sys/stat.h>

using namespace procpool::detail;

namespace {

bool refused_because(const std::string& name, const std::string& why) {
    try {
        segment::attach(name);
    } catch (const procpool::error& e) {
        const std::string what = e.what();
        BOOST_TEST_MESSAGE(what);
        return what.find(name + " refused: " + why) != std::string::npos;
    }
    return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_new_segment_has_mode_0600_and_a_random_name) {
    segment a = segment::create(2, 4096);
    segment b = segment::create(2, 4096);
    struct stat st {};
    BOOST_REQUIRE(::stat(("/dev/shm/" + a.name()).c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0600u);
    BOOST_TEST(a.name() != b.name());
    const std::string prefix = "procpool-" + std::to_string(::getpid()) + "-";
    BOOST_TEST(a.name().starts_with(prefix));
    BOOST_TEST(a.name().size() == prefix.size() + 16); // 64 random bits in hex
}

BOOST_AUTO_TEST_CASE(a_name_that_exists_is_never_opened_as_a_new_segment) {
    segment a = segment::create(1, 4096);
    BOOST_CHECK_EXCEPTION(
        segment::create(1, 4096, a.name()), procpool::error, [](const procpool::error& e) {
            return std::string(e.what()).find("already exists") != std::string::npos;
        });
    BOOST_TEST(a.header().worker_count == 1u); // untouched
}

BOOST_AUTO_TEST_CASE(a_matching_segment_attaches) {
    segment a = segment::create(2, 4096);
    segment b = segment::attach(a.name());
    BOOST_TEST(b.header().worker_count == 2u);
}

BOOST_AUTO_TEST_CASE(a_segment_whose_header_does_not_match_is_refused_with_the_reason) {
    segment a = segment::create(2, 4096);
    a.header().magic ^= 1;
    BOOST_TEST(refused_because(a.name(), "bad magic (not a ProcPool segment)"));
    a.header().magic ^= 1;
    a.header().layout_version += 1;
    BOOST_TEST(refused_because(a.name(), "layout version"));
    a.header().layout_version -= 1;
    a.header().module_key ^= 1;
    BOOST_TEST(refused_because(a.name(), "the worker's executable is not the parent's"));
    a.header().module_key ^= 1;
    a.header().ring_bytes = 3000;
    BOOST_TEST(refused_because(a.name(), "ring size 3000 is not a power of two"));
}

BOOST_AUTO_TEST_CASE(removing_the_name_leaves_nothing_in_dev_shm) {
    std::string name;
    {
        segment a = segment::create(1, 4096);
        name = a.name();
        struct stat st {};
        BOOST_TEST(::stat(("/dev/shm/" + name).c_str(), &st) == 0);
    }
    struct stat st {};
    BOOST_TEST(::stat(("/dev/shm/" + name).c_str(), &st) != 0);
}
