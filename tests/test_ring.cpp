// The SPSC ring and its frames, alone: no pool, no workers.
#define PROCPOOL_TEST_SUITE_NAME "ring"
#include "test_main.hpp"

#include "../libpool/src/detail/event.hpp"
#include "../libpool/src/detail/frame_spares.hpp"
#include "../libpool/src/detail/ring.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <span>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace procpool::detail;

namespace {

/// A ring in ordinary memory (or in a shared mapping, for the two-process test).
struct test_ring {
    explicit test_ring(std::uint64_t capacity, void* memory = nullptr)
        : capacity(capacity)
        , owned(memory ? nullptr
                       : ::operator new (sizeof(ring_control) + capacity,
                                         std::align_val_t{cache_line}))
        , base(static_cast<std::byte*>(memory ? memory : owned))
        , control(new (base) ring_control{})
        , producer(control, base + sizeof(ring_control), capacity)
        , consumer(control, base + sizeof(ring_control), capacity) {}
    ~test_ring() {
        if (owned)
            ::operator delete (owned, std::align_val_t{cache_line});
    }
    std::uint64_t capacity;
    void* owned;
    std::byte* base;
    ring_control* control;
    ring_producer producer;
    ring_consumer consumer;
};

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : v) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<std::byte>(x >> 24);
    }
    return v;
}

/// Streams a frame (`front`, then `bulk`: frame_writer's two pieces, the bulk read apart with
/// `bulk_apart`, into a buffer from `bulk_buffers` if given) through the ring with `writer` and
/// `reader` taking turns, as two processes would when the frame is larger than the ring, until
/// the reader has all of it.
void pump_until_read(test_ring& ring, frame_writer& writer, frame_reader& reader,
                     std::span<const std::byte> front, std::span<const std::byte> bulk = {},
                     bool bulk_apart = false, bulk_source* bulk_buffers = nullptr) {
    writer.start(front, bulk, bulk_apart);
    for (int spins = 0;; ++spins) {
        writer.pump(ring.producer);
        if (reader.pump(ring.consumer, bulk_buffers))
            break;
        BOOST_REQUIRE_MESSAGE(spins < 1'000'000, "the frame never arrived");
    }
    BOOST_TEST(!writer.busy());
}

/// Streams frames of a front and a bulk of various sizes, small and large, empty and not
/// (`bulk_apart`: the bulk read apart), through a ring smaller than the larger ones, and calls
/// check(front, bulk, reader) once the reader has each frame.
template <class Check>
void stream_two_piece_frames(bool bulk_apart, Check check) {
    test_ring ring(1 << 20);
    const std::size_t mib = 1 << 20;
    const std::pair<std::size_t, std::size_t> cases[] = {
        {40, 3 * mib}, {0, 100},       {100, 0},      {mib, mib + 1},
        {mib - 8, 8},  {mib - 16, 16}, {8, 64 << 10}, {3 * mib + 5, 64 << 10}};
    frame_writer writer;
    frame_reader reader;
    for (const auto& [front_size, bulk_size] : cases) {
        const auto front = pattern(front_size, static_cast<unsigned>(front_size));
        const auto bulk = pattern(bulk_size, static_cast<unsigned>(bulk_size) + 1);
        BOOST_TEST_CONTEXT("pieces of " << front_size << " and " << bulk_size << " bytes") {
            pump_until_read(ring, writer, reader, front, bulk, bulk_apart);
            check(front, bulk, reader);
        }
        reader.reset();
    }
}

/// The frame as a fresh writer and reader stream it through the ring.
std::vector<std::byte> stream_through(test_ring& ring, const std::vector<std::byte>& frame) {
    frame_writer writer;
    frame_reader reader;
    pump_until_read(ring, writer, reader, frame);
    auto out = std::vector<std::byte>(reader.frame().begin(), reader.frame().end());
    reader.reset();
    return out;
}

std::size_t stress_scale() {
    const char* s = std::getenv("PROCPOOL_STRESS_SCALE");
    return s ? std::max(1ul, std::strtoul(s, nullptr, 10)) : 1;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_new_ring_has_no_frame_to_read) {
    test_ring ring(1024);
    std::byte byte{};
    BOOST_TEST(ring.consumer.readable() == 0u);
    BOOST_TEST(ring.consumer.read_some(&byte, 1) == 0u);
    frame_reader reader;
    BOOST_TEST(!reader.pump(ring.consumer));
}

BOOST_AUTO_TEST_CASE(a_full_ring_takes_no_byte_of_a_frame_until_one_is_read) {
    test_ring ring(256);
    const auto frame = pattern(56, 1); // 8 + 56 = 64 bytes: four fill the ring
    frame_writer writer;
    for (int i = 0; i < 4; ++i) {
        writer.start(frame);
        BOOST_TEST(writer.pump(ring.producer) == 64u);
        BOOST_TEST(!writer.busy());
    }
    BOOST_TEST(ring.producer.writable() == 0u);
    writer.start(frame);
    BOOST_TEST(writer.pump(ring.producer) == 0u);
    BOOST_TEST(writer.busy());
    frame_reader reader;
    BOOST_REQUIRE(reader.pump(ring.consumer));
    BOOST_TEST(std::ranges::equal(reader.frame(), frame));
    reader.reset();
    BOOST_TEST(writer.pump(ring.producer) == 64u);
    BOOST_TEST(!writer.busy());
}

BOOST_AUTO_TEST_CASE(frames_wrap_around_the_end_of_the_ring_intact) {
    test_ring ring(128);
    // 8 + 37 = 45 bytes per frame: frames start at every offset modulo 128 over time,
    // so lengths and bodies are split at the end of the ring in every possible place.
    for (unsigned i = 0; i < 1000; ++i) {
        const auto frame = pattern(37, i);
        BOOST_REQUIRE((stream_through(ring, frame) == frame));
    }
    BOOST_TEST(ring.producer.position() == 45'000u);
}

BOOST_AUTO_TEST_CASE(write_some_and_read_some_move_partial_byte_counts) {
    test_ring ring(64);
    const auto bytes = pattern(100, 3);
    BOOST_TEST(ring.producer.write_some(bytes.data(), 100) == 64u);
    BOOST_TEST(ring.producer.write_some(bytes.data(), 1) == 0u);
    std::vector<std::byte> out(100);
    BOOST_TEST(ring.consumer.read_some(out.data(), 10) == 10u);
    BOOST_TEST(ring.producer.write_some(bytes.data() + 64, 36) == 10u);
    BOOST_TEST(ring.consumer.read_some(out.data() + 10, 90) == 64u);
    BOOST_TEST(std::equal(bytes.begin(), bytes.begin() + 74, out.begin()));
}

BOOST_AUTO_TEST_CASE(frames_from_0_bytes_to_64_mib_stream_through_a_1_mib_ring) {
    test_ring ring(1 << 20);
    std::vector<std::size_t> sizes = {
        0, 1, 7, 8, 9, 4095, 4096, (1 << 20) - 8, 1 << 20, (1 << 20) + 1, 3 << 20, 64 << 20};
    for (std::size_t size : sizes) {
        const auto frame = pattern(size, static_cast<unsigned>(size));
        const auto out = stream_through(ring, frame);
        BOOST_TEST_CONTEXT("frame of " << size << " bytes") {
            BOOST_TEST(out.size() == size);
            BOOST_TEST((out == frame));
        }
    }
}

BOOST_AUTO_TEST_CASE(a_frame_written_in_two_pieces_reads_back_as_their_bytes_side_by_side) {
    // A worker sends a large last result from where it lies: the frame is its other bytes,
    // then those.
    stream_two_piece_frames(false, [](const auto& front, const auto& bulk, frame_reader& reader) {
        const auto frame = reader.frame();
        BOOST_REQUIRE(frame.size() == front.size() + bulk.size());
        BOOST_TEST(std::equal(front.begin(), front.end(), frame.begin()));
        BOOST_TEST(std::equal(bulk.begin(), bulk.end(), frame.begin() + front.size()));
    });
    // One byte of room at a time: the writer stops inside either piece and goes on there.
    frame_writer writer;
    test_ring tiny(64);
    const auto front = pattern(37, 5), bulk = pattern(101, 6);
    writer.start(front, bulk);
    std::vector<std::byte> got;
    std::byte b{};
    while (writer.busy()) {
        BOOST_REQUIRE(writer.pump(tiny.producer) > 0u);
        while (tiny.consumer.read_some(&b, 1) == 1)
            got.push_back(b);
    }
    BOOST_REQUIRE(got.size() == 8u + 37u + 101u);
    std::uint64_t length = 0;
    std::memcpy(&length, got.data(), sizeof length);
    BOOST_TEST(length == 138u);
    BOOST_TEST(std::equal(front.begin(), front.end(), got.begin() + 8));
    BOOST_TEST(std::equal(bulk.begin(), bulk.end(), got.begin() + 8 + 37));
}

/// Hands out the buffers it was given, one per bulk, and counts what it was asked for.
struct listed_bulk_buffers final : bulk_source {
    std::vector<std::vector<char>> buffers;
    std::vector<std::size_t> asked;
    std::vector<char> bulk_buffer(std::size_t size) noexcept override {
        asked.push_back(size);
        if (buffers.empty())
            return {};
        std::vector<char> b = std::move(buffers.front());
        buffers.erase(buffers.begin());
        return b;
    }
};

BOOST_AUTO_TEST_CASE(a_frame_whose_bulk_goes_apart_reads_back_as_its_head_and_a_bulk_of_its_own) {
    // A worker's large std::vector<char> result: the parent reads its bytes into a vector of
    // their own (which becomes the result), of exactly their size, the rest of the frame into
    // the reader's buffer as usual.
    stream_two_piece_frames(true, [](const auto& front, const auto& bulk, frame_reader& reader) {
        BOOST_TEST(
            std::equal(front.begin(), front.end(), reader.frame().begin(), reader.frame().end()));
        const std::vector<char>& got = reader.bulk();
        BOOST_REQUIRE(got.size() == bulk.size());
        BOOST_TEST(got.capacity() == bulk.size()); // not a byte more, nothing to zero
        BOOST_TEST((bulk.empty() || std::memcmp(got.data(), bulk.data(), bulk.size()) == 0));
        std::vector<char> taken = std::move(reader.bulk());
        BOOST_TEST(taken.size() == bulk.size());
        reader.reset();
        BOOST_TEST(reader.bulk().capacity() == 0u); // what nobody took is let go
    });

    test_ring ring(1 << 20);
    const std::size_t mib = 1 << 20;
    frame_writer writer;
    frame_reader reader;
    // From a bulk source: into its buffer, which may hold bytes already (they are dropped);
    // with none to give, the reader allocates.
    listed_bulk_buffers bulk_buffers;
    bulk_buffers.buffers.emplace_back();
    bulk_buffers.buffers.back().reserve(3 * mib);
    bulk_buffers.buffers.emplace_back(2 * mib, 'z');
    const void* roomy = bulk_buffers.buffers[0].data();
    const void* sized = bulk_buffers.buffers[1].data();
    const auto front = pattern(24, 3);
    for (const auto& [size, buffer] : {std::pair{3 * mib, roomy}, std::pair{2 * mib, sized},
                                       std::pair{mib, static_cast<const void*>(nullptr)}}) {
        const auto bulk = pattern(size, static_cast<unsigned>(size));
        BOOST_TEST_CONTEXT("a bulk of " << size << " bytes") {
            pump_until_read(ring, writer, reader, front, bulk, true, &bulk_buffers);
            BOOST_TEST(reader.frame().size() == front.size());
            const std::vector<char>& got = reader.bulk();
            if (buffer != nullptr)
                BOOST_TEST(static_cast<const void*>(got.data()) == buffer);
            BOOST_REQUIRE(got.size() == size);
            BOOST_TEST(std::memcmp(got.data(), bulk.data(), size) == 0);
        }
        reader.reset();
    }
    BOOST_TEST((bulk_buffers.asked == std::vector<std::size_t>{3 * mib, 2 * mib, mib}));

    // Without bulk_apart (a string's bytes, say), the same pieces read back side by side.
    const auto bulk = pattern(mib, 4);
    pump_until_read(ring, writer, reader, front, bulk, false, &bulk_buffers);
    BOOST_TEST(reader.frame().size() == front.size() + mib);
    BOOST_TEST(reader.bulk().empty());
    BOOST_TEST(bulk_buffers.asked.size() == 3u); // not asked
    reader.reset();
}

BOOST_AUTO_TEST_CASE(a_frame_with_its_bulk_apart_is_reassembled_when_split_at_every_byte) {
    // The second length word may arrive apart from the first, the bulk a byte at a time.
    test_ring ring(4096);
    const auto front = pattern(30, 1), bulk = pattern(70, 2);
    frame_writer writer;
    writer.start(front, bulk, true);
    BOOST_TEST(writer.pump(ring.producer) == 16u + 100u);
    frame_reader reader;
    test_ring trickle(4096);
    std::byte b{};
    for (int i = 0; i < 116; ++i) {
        BOOST_REQUIRE(ring.consumer.read_some(&b, 1) == 1u);
        BOOST_REQUIRE(trickle.producer.write_some(&b, 1) == 1u);
        BOOST_REQUIRE(reader.pump(trickle.consumer) == (i == 115));
    }
    BOOST_TEST(
        std::equal(front.begin(), front.end(), reader.frame().begin(), reader.frame().end()));
    BOOST_REQUIRE(reader.bulk().size() == bulk.size());
    BOOST_TEST(std::memcmp(reader.bulk().data(), bulk.data(), bulk.size()) == 0);
}

BOOST_AUTO_TEST_CASE(a_frame_readers_storage_taken_after_each_frame_holds_it_and_reading_goes_on) {
    // What the pool does when it hands a large result to a waiting thread: it takes the buffer
    // the frame was read into and swaps in another one, of whatever size and contents.
    test_ring ring(1 << 20);
    const std::vector<std::size_t> sizes = {3 << 20, 5 << 20, 1 << 20, 4 << 20,
                                            1 << 20, 3 << 20, 300};
    std::vector<std::vector<char>> swapped_in;
    swapped_in.emplace_back();                           // empty
    swapped_in.emplace_back(std::size_t{1} << 20, 'a');  // smaller than the next frame
    swapped_in.emplace_back(std::size_t{16} << 20, 'b'); // much larger
    swapped_in.emplace_back(std::size_t{4} << 20, 'c');  // just the size of the next frame
    swapped_in.emplace_back(std::size_t{2} << 20, 'd');
    swapped_in.back().reserve(std::size_t{3} << 20); // the next frame fits its capacity only
    swapped_in.emplace_back(std::size_t{8}, 'e');
    swapped_in.emplace_back();
    frame_writer writer;
    frame_reader reader;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        const auto frame = pattern(sizes[i], static_cast<unsigned>(i + 40));
        pump_until_read(ring, writer, reader, frame);
        BOOST_TEST_CONTEXT("frame " << i << " of " << sizes[i] << " bytes") {
            BOOST_TEST(std::equal(frame.begin(), frame.end(), reader.frame().begin(),
                                  reader.frame().end()));
            std::vector<char> taken = std::move(swapped_in[i]);
            reader.storage().swap(taken);
            BOOST_REQUIRE(taken.size() >= frame.size());
            BOOST_TEST(std::memcmp(taken.data(), frame.data(), frame.size()) == 0);
        }
        reader.reset();
    }
}

BOOST_AUTO_TEST_CASE(spare_frame_buffers_give_room_of_at_least_the_size_asked) {
    frame_spares spares(8, std::size_t{64} << 20, 4);
    BOOST_TEST(spares.take_room(1).empty()); // nothing kept yet
    auto kept = [&](std::size_t size_kib, std::size_t capacity_kib, char fill) {
        std::vector<char> b(size_kib << 10, fill);
        b.reserve(capacity_kib << 10);
        const void* data = b.data();
        spares.give(std::move(b));
        return data;
    };
    const void* exact = kept(200, 200, 'x');
    const void* large = kept(900, 900, 'l');
    const void* tight = kept(100, 260, 't'); // room beyond its size
    const void* small = kept(100, 300, 's');
    spares.give(std::vector<char>(16, 'u')); // under min_bytes: not kept

    // None has the room: nothing is taken.
    BOOST_TEST(spares.take_room(std::size_t{1000} << 10).empty());
    // The smallest whose size already suffices is preferred over larger ones and over one that
    // would need growing.
    std::vector<char> a = spares.take_room(std::size_t{150} << 10);
    BOOST_TEST(static_cast<const void*>(a.data()) == exact);
    BOOST_TEST(a.size() == std::size_t{200} << 10);
    BOOST_TEST(static_cast<const void*>(spares.take_room(std::size_t{800} << 10).data()) == large);
    // Otherwise the one with the least capacity that suffices grows to the size, in place,
    // keeping its bytes.
    std::vector<char> b = spares.take_room(std::size_t{250} << 10);
    BOOST_TEST(static_cast<const void*>(b.data()) == tight);
    BOOST_REQUIRE(b.size() == std::size_t{250} << 10);
    BOOST_TEST(std::all_of(b.begin(), b.begin() + (100 << 10), [](char c) { return c == 't'; }));
    BOOST_TEST(static_cast<const void*>(spares.take_room(std::size_t{290} << 10).data()) == small);
    BOOST_TEST(spares.take_room(1).empty()); // all taken
}

BOOST_AUTO_TEST_CASE(buffers_readied_for_bulks_go_to_bulks_of_about_their_size_within_limits) {
    const std::size_t mib = 1 << 20;
    frame_spares spares(8, 10 * mib, 3);
    BOOST_TEST(spares.bulk_buffer(mib).capacity() == 0u); // none readied yet
    BOOST_TEST(!spares.ready_bulk(mib - 1, 8));           // too small to be worth it
    BOOST_TEST(spares.ready_bulk(2 * mib, 2));
    BOOST_TEST(spares.ready_bulk(2 * mib, 2));
    BOOST_TEST(!spares.ready_bulk(2 * mib, 2)); // `enough`
    BOOST_TEST(spares.ready_bulk(4 * mib, 8));
    BOOST_TEST(!spares.ready_bulk(mib, 8)); // max_ready (3)
    // Too large a buffer for the bulk (over an eighth more): not given.
    BOOST_TEST(spares.bulk_buffer(mib + mib / 2).capacity() == 0u);
    BOOST_TEST(spares.bulk_buffer(5 * mib).capacity() == 0u); // too small
    std::vector<char> b = spares.bulk_buffer(2 * mib - mib / 8);
    BOOST_TEST(b.capacity() == 2 * mib);
    BOOST_TEST(b.empty()); // room, not bytes: the reader appends
    BOOST_TEST(spares.bulk_buffer(4 * mib).capacity() == 4 * mib);
    // One 2 MiB buffer is left: 8 more MiB would pass max_bytes.
    BOOST_TEST(!spares.ready_bulk(9 * mib, 8));
    BOOST_TEST(spares.ready_bulk(8 * mib, 8));
    spares.drop_ready();
    BOOST_TEST(spares.bulk_buffer(2 * mib).capacity() == 0u);
    BOOST_TEST(spares.ready_bulk(2 * mib, 8));
    spares.stop(); // lets go of them, and readies none any more
    BOOST_TEST(spares.bulk_buffer(2 * mib).capacity() == 0u);
    BOOST_TEST(!spares.ready_bulk(2 * mib, 8));
}

BOOST_AUTO_TEST_CASE(frame_reader_reassembles_frames_split_at_every_byte) {
    test_ring ring(4096);
    const auto frame = pattern(300, 9);
    frame_writer writer;
    writer.start(frame);
    BOOST_TEST(writer.pump(ring.producer) == 308u);
    frame_reader reader;
    // Hand the reader one byte at a time through a second ring.
    test_ring trickle(4096);
    std::byte b{};
    bool done = false;
    for (int i = 0; i < 308; ++i) {
        BOOST_REQUIRE(!done);
        BOOST_REQUIRE(ring.consumer.read_some(&b, 1) == 1u);
        BOOST_REQUIRE(trickle.producer.write_some(&b, 1) == 1u);
        done = reader.pump(trickle.consumer);
        BOOST_REQUIRE(done == (i == 307));
    }
    BOOST_TEST(done);
    BOOST_TEST(
        std::equal(frame.begin(), frame.end(), reader.frame().begin(), reader.frame().end()));
}

BOOST_AUTO_TEST_CASE(two_processes_exchange_frames_in_order_with_futex_waits) {
    // Producer in a forked child, consumer here, through a small ring in a shared mapping so
    // the ring fills and both sides sleep on the event words. Each frame carries its sequence
    // number and a length that varies, including frames larger than the ring.
    constexpr std::uint64_t capacity = 4096;
    const std::size_t frames = 20'000 * stress_scale();
    const std::size_t bytes = sizeof(ring_control) + capacity + 2 * cache_line;
    void* shared =
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    BOOST_REQUIRE(shared != MAP_FAILED);
    auto* events = new (static_cast<std::byte*>(shared) + sizeof(ring_control) + capacity)
        event_word[2]{}; // [0]: consumer sleeps here, [1]: producer sleeps here
    test_ring ring(capacity, shared);
    const auto spin = std::chrono::microseconds(20);

    const pid_t child = ::fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) {
        frame_writer writer;
        std::vector<std::byte> frame;
        for (std::uint64_t seq = 0; seq < frames; ++seq) {
            frame.assign(8 + (seq * 7919) % (3 * capacity), std::byte{0});
            std::memcpy(frame.data(), &seq, 8);
            frame.back() = static_cast<std::byte>(seq);
            writer.start(frame);
            while (writer.busy()) {
                if (writer.pump(ring.producer) > 0)
                    notify(events[0]);
                else if (!wait_for(
                             events[1], [&] { return ring.producer.writable() > 0; }, spin,
                             std::chrono::seconds(20)))
                    ::_exit(2); // the consumer stalled, or is gone
            }
        }
        ::_exit(0);
    }
    // Should a check below end the test early, the child is not left behind.
    struct reaper {
        pid_t pid;
        bool reaped = false;
        ~reaper() {
            if (!reaped) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
            }
        }
    } guard{child};
    frame_reader reader;
    std::size_t in_order = 0;
    for (std::uint64_t expected = 0; expected < frames; ++expected) {
        for (;;) {
            const std::uint64_t before = ring.consumer.position();
            const bool done = reader.pump(ring.consumer);
            if (ring.consumer.position() != before)
                notify(events[1]);
            if (done)
                break;
            const bool ok = wait_for(
                events[0], [&] { return ring.consumer.readable() > 0; }, spin,
                std::chrono::seconds(20));
            BOOST_REQUIRE_MESSAGE(ok, "the producer stalled at frame " << expected);
        }
        std::uint64_t seq = 0;
        std::memcpy(&seq, reader.frame().data(), 8);
        const bool good = seq == expected &&
                          reader.frame().size() == 8 + (seq * 7919) % (3 * capacity) &&
                          reader.frame().back() == static_cast<std::byte>(seq);
        in_order += good;
        reader.reset();
    }
    int status = 0;
    BOOST_TEST(::waitpid(child, &status, 0) == child);
    guard.reaped = true;
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    BOOST_TEST(in_order == frames);
    ::munmap(shared, bytes);
}

namespace {
/// A ring_backing that records each reservation and grants it or not.
struct recording_backing {
    bool grant = true;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> calls; // (offset, bytes)

    static bool reserve(void* self, std::uint64_t offset, std::uint64_t bytes) noexcept {
        auto* me = static_cast<recording_backing*>(self);
        me->calls.emplace_back(offset, bytes);
        return me->grant;
    }
    ring_backing backing(std::uint64_t offset, std::uint64_t backed) {
        return {&recording_backing::reserve, this, offset, backed};
    }
};
} // namespace

BOOST_AUTO_TEST_CASE(
    a_producer_reserves_its_whole_ring_once_when_it_first_writes_past_the_backed_start) {
    test_ring ring(4096);
    recording_backing record;
    ring.producer = ring_producer(ring.control, ring.base + sizeof(ring_control), 4096,
                                  record.backing(12288, 1024));
    for (unsigned i = 0; i < 3; ++i) // 3 x (8 + 300) bytes: within the backed 1024
        BOOST_TEST((stream_through(ring, pattern(300, i)) == pattern(300, i)));
    BOOST_TEST(record.calls.empty());
    for (unsigned i = 3; i < 40; ++i) // past 1024, and round the ring several times
        BOOST_TEST((stream_through(ring, pattern(300, i)) == pattern(300, i)));
    BOOST_REQUIRE_EQUAL(record.calls.size(), 1u);
    BOOST_TEST(record.calls[0].first == 12288u);
    BOOST_TEST(record.calls[0].second == 4096u);
    BOOST_TEST(!ring.producer.unbacked());
}

BOOST_AUTO_TEST_CASE(a_producer_whose_ring_cannot_be_backed_writes_nothing_past_the_backed_start) {
    test_ring ring(4096);
    recording_backing record;
    record.grant = false;
    ring.producer = ring_producer(ring.control, ring.base + sizeof(ring_control), 4096,
                                  record.backing(0, 1024));
    BOOST_TEST((stream_through(ring, pattern(500, 1)) == pattern(500, 1))); // 508 bytes: backed
    // The next frame's length fits below 1024; its body would end at 1116.
    const auto second = pattern(600, 2);
    frame_writer writer;
    writer.start(second);
    BOOST_TEST(writer.pump(ring.producer) == 8u);
    BOOST_TEST(writer.busy());
    BOOST_TEST(ring.producer.unbacked());
    const auto frame = pattern(2000, 3);
    BOOST_TEST(ring.producer.write_some(frame.data(), frame.size()) == 0u);
    BOOST_TEST(writer.pump(ring.producer) == 0u);
    BOOST_TEST(ring.producer.position() == 516u);
    BOOST_TEST(record.calls.size() == 1u); // it does not keep asking
    frame_reader reader;
    BOOST_TEST(!reader.pump(ring.consumer)); // the second frame never arrives
}

// The other side's counter lives in memory that side can write (ring.hpp: untrusted
// counters). A head or tail no honest peer could have written must never make a view touch a
// byte outside its ring.
BOOST_AUTO_TEST_CASE(a_head_past_what_the_ring_holds_reads_as_empty_and_is_reported) {
    test_ring ring(4096);
    const auto frame = pattern(100, 1);
    BOOST_REQUIRE(ring.producer.write_some(frame.data(), frame.size()) == frame.size());
    BOOST_TEST(!ring.consumer.overrun());
    ring.control->head.store(4096 + 1); // the consumer is at 0
    std::vector<std::byte> out(8192);
    BOOST_TEST(ring.consumer.readable() == 0u);
    BOOST_TEST(ring.consumer.read_some(out.data(), out.size()) == 0u);
    BOOST_TEST(ring.consumer.overrun());
    BOOST_TEST(ring.consumer.position() == 0u);
}

BOOST_AUTO_TEST_CASE(a_tail_past_the_head_reads_as_a_full_ring_and_is_reported) {
    test_ring ring(4096);
    const auto frame = pattern(100, 2);
    BOOST_REQUIRE(ring.producer.write_some(frame.data(), frame.size()) == frame.size());
    ring.control->tail.store(1000); // past the head, 100: it would claim 4096 + 900 free bytes
    BOOST_TEST(ring.producer.writable() == 0u);
    const auto big = pattern(8192, 3);
    BOOST_TEST(ring.producer.write_some(big.data(), big.size()) == 0u);
    BOOST_TEST(ring.producer.overrun());
    BOOST_TEST(ring.producer.position() == 100u);
}
