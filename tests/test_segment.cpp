// The shared-memory segment: mode, exclusive names, and refusing a segment whose header does
// not match this build.
#define PROCPOOL_TEST_SUITE_NAME "segment"
#include "test_main.hpp"

#include "../libpool/src/detail/ring.hpp"
#include "../libpool/src/detail/segment.hpp"
#include <procpool/errors.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace procpool::detail;

namespace {

bool refused_because(const std::string& name, const std::string& why) {
    try {
        segment::attach(name, 0);
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
    segment b = segment::attach(a.name(), 1);
    BOOST_TEST(b.header().worker_count == 2u);
    // The worker's view of its slot is the parent's slot 1.
    b.slot(1).running_task.store(42);
    BOOST_TEST(a.slot(1).running_task.load() == 42u);
    BOOST_TEST(a.slot(0).running_task.load() == 0u);
}

BOOST_AUTO_TEST_CASE(a_worker_index_past_the_segment_is_refused) {
    segment a = segment::create(2, 4096);
    BOOST_CHECK_EXCEPTION(segment::attach(a.name(), 2), std::invalid_argument,
                          [](const std::invalid_argument& e) {
                              return std::string(e.what()).find("worker index 2 is out of range") !=
                                     std::string::npos;
                          });
}

BOOST_AUTO_TEST_CASE(a_ring_smaller_than_a_page_or_not_a_power_of_two_is_refused) {
    BOOST_CHECK_THROW(segment::create(1, 2048), std::invalid_argument);
    BOOST_CHECK_THROW(segment::create(1, 3 * 4096), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(each_worker_block_is_page_aligned_and_follows_the_header) {
    const segment_layout layout{3, 8192};
    BOOST_TEST(segment_layout::header_region_bytes() % segment_layout::page == 0u);
    BOOST_TEST(layout.block_offset(0) == segment_layout::header_region_bytes());
    for (std::uint32_t i = 0; i < 3; ++i) {
        BOOST_TEST(layout.block_offset(i) % segment_layout::page == 0u);
        BOOST_TEST(layout.inbox_offset(i) == layout.block_offset(i) + segment_layout::page);
        BOOST_TEST(layout.outbox_offset(i) + 8192 == layout.block_offset(i) + layout.block_bytes());
    }
    BOOST_TEST(layout.total_bytes() == layout.block_offset(3));
}

BOOST_AUTO_TEST_CASE(a_header_with_sizes_out_of_range_is_refused_before_any_offset_is_computed) {
    segment a = segment::create(2, 4096);
    segment_header h;
    std::memcpy(static_cast<void*>(&h), &a.header(), sizeof h);
    BOOST_TEST(segment_header_problem(h, a.header().segment_bytes).empty());
    h.worker_count = 0;
    BOOST_TEST(segment_header_problem(h, a.header().segment_bytes).find("worker count 0") == 0u);
    h.worker_count = 1u << 31;
    BOOST_TEST(segment_header_problem(h, a.header().segment_bytes).find("out of range") !=
               std::string::npos);
    h.worker_count = 2;
    h.ring_bytes = std::uint64_t{1} << 62;
    BOOST_TEST(segment_header_problem(h, a.header().segment_bytes).find("ring size") == 0u);
    h.ring_bytes = 4096;
    BOOST_TEST(segment_header_problem(h, h.segment_bytes - 1).find("segment size") == 0u);
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
    a.header().ring_bytes = 2048;
    BOOST_TEST(refused_because(a.name(), "ring size 2048 is not a power of two"));
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

namespace {
/// Bytes of /dev/shm the segment's object holds.
std::uint64_t held_bytes(const segment& s) {
    struct stat st {};
    BOOST_REQUIRE(::stat(("/dev/shm/" + s.name()).c_str(), &st) == 0);
    return std::uint64_t(st.st_blocks) * 512;
}
} // namespace

BOOST_AUTO_TEST_CASE(rings_are_backed_in_full_only_once_their_producer_writes_past_their_start) {
    constexpr std::uint64_t ring = std::uint64_t{1} << 20;
    segment a = segment::create(2, ring);
    const std::uint64_t at_start = held_bytes(a);
    BOOST_TEST(at_start >= 4 * segment_layout::ring_backed_bytes);
    BOOST_TEST(at_start < 2 * ring); // of the 4 MiB of rings

    // A worker's producer, on its own mapping, writes a frame larger than the backed start.
    segment b = segment::attach(a.name(), 1);
    ring_producer out = b.outbox_producer(1);
    const std::vector<std::byte> frame(300 << 10, std::byte{7});
    frame_writer writer;
    writer.start(frame);
    BOOST_REQUIRE(writer.pump(out) == sizeof(std::uint64_t) + frame.size());
    BOOST_TEST(!out.unbacked());
    BOOST_TEST(held_bytes(a) >= at_start + ring - segment_layout::ring_backed_bytes);

    ring_consumer in = a.outbox_consumer(1);
    frame_reader reader;
    BOOST_REQUIRE(reader.pump(in));
    BOOST_TEST(std::ranges::equal(reader.frame(), frame));
}

BOOST_AUTO_TEST_CASE(a_segment_larger_than_the_free_shared_memory_is_refused_with_the_reason) {
    // 2^20 workers with rings of 1 GiB: 2 PiB, more than any /dev/shm has free.
    BOOST_CHECK_EXCEPTION(segment::create(1u << 20, std::uint64_t{1} << 30), procpool::error,
                          [](const procpool::error& e) {
                              const std::string what = e.what();
                              BOOST_TEST_MESSAGE(what);
                              return what.find("cannot create the shared-memory segment") !=
                                         std::string::npos &&
                                     what.find("bytes free") != std::string::npos;
                          });
    // Nothing left behind: this process holds no other segment now.
    const std::string mine =
        "ls /dev/shm | grep -q '^procpool-" + std::to_string(::getpid()) + "-'";
    BOOST_TEST(::system(mine.c_str()) != 0);
}
