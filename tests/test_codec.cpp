// The codec on its own: archives over memory, std::tuple, the plain codec, error records.
#define PROCPOOL_TEST_SUITE_NAME "codec"
#include "test_main.hpp"

#include <procpool/detail/codec.hpp>
#include <procpool/detail/exception_codec.hpp>
#include <procpool/errors.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace procpool::detail;

namespace {
template <class... Ts>
std::vector<char> encode(const Ts&... values) {
    std::vector<char> out;
    vector_sink sink(out);
    boost::archive::binary_oarchive oa(sink, archive_flags);
    ((oa << values), ...);
    return out;
}

std::exception_ptr round_trip(task_stage stage, auto&& throw_it) {
    std::vector<char> record;
    try {
        throw_it();
    } catch (...) {
        append_current_exception(record, stage);
    }
    return decode_error_record(record);
}

struct custom : std::runtime_error {
    using std::runtime_error::runtime_error;
};
} // namespace

BOOST_AUTO_TEST_CASE(a_tuple_round_trips) {
    const std::tuple<int, std::string, double, std::vector<int>> in{7, "seven", 7.5, {1, 2}};
    const auto bytes = encode(in);
    span_source source(bytes);
    boost::archive::binary_iarchive ia(source, archive_flags);
    std::tuple<int, std::string, double, std::vector<int>> out;
    ia >> out;
    BOOST_TEST((out == in));
    BOOST_TEST(source.consumed() == bytes.size());
}

BOOST_AUTO_TEST_CASE(a_tuple_is_encoded_as_its_elements_alone) {
    BOOST_TEST((encode(std::tuple<int, std::string>{3, "abc"}) == encode(3, std::string("abc"))));
    BOOST_TEST(encode(std::tuple<int, int>{1, 2}).size() == 2 * sizeof(int));
}

BOOST_AUTO_TEST_CASE(reading_past_the_end_throws_an_archive_exception) {
    const auto bytes = encode(1);
    span_source source(std::span<const char>(bytes).first(2));
    boost::archive::binary_iarchive ia(source, archive_flags);
    int x = 0;
    BOOST_CHECK_THROW(ia >> x, boost::archive::archive_exception);
}

BOOST_AUTO_TEST_CASE(a_standard_exception_record_recreates_the_same_type) {
    auto e = round_trip(task_stage::running, [] { throw std::overflow_error("too big"); });
    BOOST_CHECK_EXCEPTION(std::rethrow_exception(e), std::overflow_error,
                          [](const auto& x) { return std::string(x.what()) == "too big"; });
}

BOOST_AUTO_TEST_CASE(a_subclass_of_a_standard_exception_becomes_remote_error) {
    auto e = round_trip(task_stage::running, [] { throw custom("mine"); });
    BOOST_CHECK_EXCEPTION(std::rethrow_exception(e), procpool::remote_error, [](const auto& x) {
        return x.type_name() == "(anonymous namespace)::custom" && x.message() == "mine";
    });
}

BOOST_AUTO_TEST_CASE(an_exception_while_decoding_or_encoding_becomes_serialization_error) {
    auto d = round_trip(task_stage::decoding, [] { throw std::runtime_error("eof"); });
    BOOST_CHECK_THROW(std::rethrow_exception(d), procpool::serialization_error);
    auto e = round_trip(task_stage::encoding, [] { throw std::runtime_error("bad"); });
    BOOST_CHECK_THROW(std::rethrow_exception(e), procpool::serialization_error);
}

BOOST_AUTO_TEST_CASE(a_truncated_error_record_decodes_to_serialization_error) {
    std::vector<char> record;
    append_pool_error(record, "a message of some length");
    record.resize(record.size() - 5);
    BOOST_CHECK_THROW(std::rethrow_exception(decode_error_record(record)),
                      procpool::serialization_error);
}

// ---- the plain codec: values moved as bytes, without an archive ----

namespace {
enum class colour : short { red = 1, blue = 7 };
struct with_serialize {
    int x = 0;
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& x;
    }
};

template <class T>
T plain_round_trip(const T& in, std::size_t* size = nullptr) {
    std::vector<char> bytes;
    plain_writer(bytes) << in; // the vector holds exactly the value once the writer ends
    if (size != nullptr)
        *size = bytes.size();
    plain_reader reader(bytes);
    T out{};
    reader >> out;
    BOOST_TEST(reader.consumed() == bytes.size());
    return out;
}
} // namespace

BOOST_AUTO_TEST_CASE(plain_values_are_the_standard_value_types_and_nothing_else) {
    static_assert(plain_value<int> && plain_value<double> && plain_value<bool>);
    static_assert(plain_value<colour> && plain_value<std::string>);
    static_assert(plain_value<std::vector<char>> && plain_value<std::vector<double>>);
    static_assert(plain_value<std::array<float, 3>> && plain_value<std::pair<int, std::string>>);
    static_assert(plain_value<std::tuple<long, std::vector<int>, std::tuple<bool, std::string>>>);
    // These go through Boost.Serialization:
    static_assert(!plain_value<with_serialize> && !plain_value<std::vector<bool>>);
    static_assert(!plain_value<std::vector<std::string>> && !plain_value<const char*>);
    static_assert(!plain_value<std::tuple<int, with_serialize>>);
    BOOST_TEST(true); // the checks above are compile-time
}

BOOST_AUTO_TEST_CASE(plain_values_round_trip_exactly) {
    BOOST_TEST(plain_round_trip(-12345678901234L) == -12345678901234L);
    BOOST_TEST(plain_round_trip(2.5) == 2.5);
    BOOST_TEST(plain_round_trip(true) == true);
    BOOST_TEST((plain_round_trip(colour::blue) == colour::blue));
    BOOST_TEST(plain_round_trip(std::string()) == "");
    BOOST_TEST(plain_round_trip(std::string("a\0b", 3)) == std::string("a\0b", 3));
    BOOST_TEST(plain_round_trip(std::vector<double>{1.5, -2, 3}) ==
               (std::vector<double>{1.5, -2, 3}));
    BOOST_TEST(plain_round_trip(std::vector<char>{}).empty());
    BOOST_TEST((plain_round_trip(std::array<int, 3>{4, 5, 6}) == std::array<int, 3>{4, 5, 6}));
    const std::tuple<int, std::string, std::pair<bool, std::vector<short>>> nested{
        9, "nine", {true, {1, 2, 3}}};
    BOOST_TEST((plain_round_trip(nested) == nested));
}

BOOST_AUTO_TEST_CASE(plain_encoding_is_the_bytes_and_a_length_before_a_sequence) {
    std::size_t size = 0;
    plain_round_trip(7, &size);
    BOOST_TEST(size == sizeof(int));
    plain_round_trip(std::string("abc"), &size);
    BOOST_TEST(size == 8u + 3u);
    plain_round_trip(std::vector<std::int32_t>{1, 2}, &size);
    BOOST_TEST(size == 8u + 8u);
    plain_round_trip(std::tuple<std::int16_t, std::string>{1, "xy"}, &size);
    BOOST_TEST(size == 2u + 8u + 2u);
}

BOOST_AUTO_TEST_CASE(a_truncated_plain_value_throws_and_reads_nothing_past_the_end) {
    std::vector<char> bytes;
    plain_writer(bytes) << std::string("hello") << 42;
    for (std::size_t cut = 0; cut < bytes.size(); ++cut)
        BOOST_TEST_CONTEXT("cut at " << cut) {
            plain_reader reader(std::span<const char>(bytes).first(cut));
            std::string s;
            int x = 0;
            BOOST_CHECK_THROW(reader >> s >> x, std::length_error);
        }
    // A length that claims more than is there, even one that would overflow a size
    std::vector<char> lying;
    plain_writer(lying) << std::uint64_t{~std::uint64_t{0} / 2};
    plain_reader reader(lying);
    std::vector<int> v;
    BOOST_CHECK_THROW(reader >> v, std::length_error);
}

BOOST_AUTO_TEST_CASE(a_detached_value_is_written_as_its_length_and_read_back_with_its_bytes_after) {
    // A worker writes a large last result's length only, and sends its bytes from the value
    // itself: the reader sees the length then the bytes, as if they were written together.
    auto check = [](const auto& value, std::size_t min_bytes, bool detached) {
        using T = std::decay_t<decltype(value)>;
        std::vector<char> out;
        std::span<const char> bulk;
        {
            plain_writer writer(out);
            writer << 7;
            bulk = writer.write_detachable(value, min_bytes);
        }
        const std::size_t bytes = value.size() * sizeof(typename T::value_type);
        BOOST_TEST(bulk.empty() == !detached);
        if (detached) {
            BOOST_TEST(static_cast<const void*>(bulk.data()) ==
                       static_cast<const void*>(value.data()));
            BOOST_TEST(bulk.size() == bytes);
            BOOST_TEST(out.size() == sizeof(int) + 8u);
        } else {
            BOOST_TEST(out.size() == sizeof(int) + 8u + bytes);
        }
        std::vector<char> frame = out;
        frame.insert(frame.end(), bulk.begin(), bulk.end());
        plain_reader reader(frame);
        int seven = 0;
        T back;
        reader >> seven >> back;
        BOOST_TEST(seven == 7);
        BOOST_TEST((back == value));
        BOOST_TEST(reader.consumed() == frame.size());
    };
    const std::vector<char> chars(100'000, 'c');
    check(chars, 100'000, true);
    check(chars, 100'001, false);
    check(std::string(5000, 's'), 64, true);
    check(std::string(), 0, false); // nothing to detach
    std::vector<double> doubles(1000);
    for (std::size_t i = 0; i < doubles.size(); ++i)
        doubles[i] = 0.5 * static_cast<double>(i);
    check(doubles, 8000, true); // counted in bytes, not elements
    check(doubles, 8001, false);
    static_assert(is_detachable<std::vector<int>>::value && is_detachable<std::string>::value);
    static_assert(!is_detachable<std::vector<bool>>::value &&
                  !is_detachable<std::vector<std::string>>::value &&
                  !is_detachable<std::array<char, 4>>::value);
}

BOOST_AUTO_TEST_CASE(a_last_value_whose_bytes_came_apart_is_read_from_them) {
    // The parent reads a large std::vector<char> result's bytes apart from the rest of the
    // frame (frame_reader::bulk): the reader finds them there when the span ends right after
    // the value's length, and a std::vector<char> takes that very buffer.
    std::vector<char> head;
    {
        plain_writer writer(head);
        writer << 7 << std::string("abc");
        const std::uint64_t length = 5;
        writer << length;
    }
    auto apart_of = [](const char* s) { return std::vector<char>(s, s + 5); };

    std::vector<char> apart = apart_of("vwxyz");
    const void* buffer = apart.data();
    plain_reader reader(head, &apart);
    int seven = 0;
    std::string abc;
    std::vector<char> back;
    reader >> seven >> abc >> back;
    BOOST_TEST(abc == "abc");
    BOOST_TEST((back == apart_of("vwxyz")));
    BOOST_TEST(static_cast<const void*>(back.data()) == buffer); // taken, not copied
    BOOST_TEST(reader.consumed() == head.size());

    // Other types copy from it: a string, a vector of another element type.
    {
        std::vector<char> bytes = apart_of("hello");
        plain_reader r(head, &bytes);
        std::string s;
        r >> seven >> abc >> s;
        BOOST_TEST(s == "hello");
    }
    {
        std::vector<char> bytes = apart_of("HELLO");
        plain_reader r(head, &bytes);
        std::vector<unsigned char> u;
        r >> seven >> abc >> u;
        BOOST_TEST((u == std::vector<unsigned char>{'H', 'E', 'L', 'L', 'O'}));
    }
    // Bytes apart of another length are not the value's: it is truncated.
    {
        std::vector<char> four(4, 'q');
        plain_reader r(head, &four);
        BOOST_CHECK_THROW(r >> seven >> abc >> back, std::length_error);
    }
    // Nor are they read for a value whose bytes are in the span.
    {
        std::vector<char> whole = head;
        whole.insert(whole.end(), {'a', 'b', 'c', 'd', 'e'});
        std::vector<char> other = apart_of("vwxyz");
        plain_reader r(whole, &other);
        r >> seven >> abc >> back;
        BOOST_TEST((back == apart_of("abcde")));
        BOOST_TEST(other.size() == 5u); // untouched
    }
    // value_decoder passes them on.
    std::vector<char> bytes = apart_of("12345");
    value_decoder<std::vector<char>> decoder(std::span<const char>(head).subspan(sizeof(int) + 11),
                                             &bytes);
    decoder.read(back);
    BOOST_TEST((back == apart_of("12345")));
}

BOOST_AUTO_TEST_CASE(a_plain_writer_appends_after_what_the_vector_held_and_leaves_exactly_it) {
    // A reused frame buffer: a header already in it, room reserved beyond it.
    std::vector<char> out{'h', 'd', 'r'};
    out.reserve(std::size_t{1} << 20);
    std::vector<char> expected = out;
    auto append = [&expected](const void* p, std::size_t n) {
        const auto* c = static_cast<const char*>(p);
        expected.insert(expected.end(), c, c + n);
    };
    {
        plain_writer writer(out);
        BOOST_TEST(writer.size() == 3u);
        // Small values past several growth steps, then values larger than one step (64 KiB).
        for (std::int64_t i = 0; i < 30'000; ++i) {
            writer << i;
            append(&i, sizeof i);
        }
        for (std::size_t n : {std::size_t{100'000}, std::size_t{5}, std::size_t{3} << 20}) {
            const std::string s(n, static_cast<char>('a' + n % 26));
            writer << s;
            const auto length = static_cast<std::uint64_t>(n);
            append(&length, sizeof length);
            append(s.data(), n);
        }
        BOOST_TEST(writer.size() == expected.size());
        writer.flush();
        BOOST_TEST(out == expected, boost::test_tools::per_element());

        // Writing goes on after a flush; a run is the same bytes as its values one by one.
        const std::array<double, 5> run{0.5, -1, 2e300, 3, 4};
        writer.write_run(run.data(), run.size());
        append(run.data(), sizeof run);
        std::vector<char> one_by_one;
        {
            plain_writer single(one_by_one);
            for (double d : run)
                single << d;
        }
        BOOST_TEST(std::equal(one_by_one.begin(), one_by_one.end(),
                              expected.end() - static_cast<std::ptrdiff_t>(sizeof run)));
        writer << std::int16_t{7};
        const std::int16_t seven = 7;
        append(&seven, sizeof seven);
        BOOST_TEST(writer.size() == expected.size());
    } // the writer's end cuts the vector back to what was written
    BOOST_TEST(out.size() == expected.size());
    BOOST_TEST(out == expected, boost::test_tools::per_element());

    // A frame is moved out of its vector before the writer ends (frame_encoder::finish): the
    // writer's end must not grow the emptied vector back to what it had written.
    std::vector<char> frame;
    std::vector<char> taken;
    {
        plain_writer writer(frame);
        for (int i = 0; i < 1000; ++i)
            writer << i;
        writer.flush();
        taken = std::move(frame);
        frame.clear(); // moved from: valid but unspecified; empty in every library we use
    }
    BOOST_TEST(taken.size() == 1000 * sizeof(int));
    BOOST_TEST(frame.empty());
}

BOOST_AUTO_TEST_CASE(value_codecs_pick_plain_or_archive_and_read_back_what_they_wrote) {
    std::vector<char> bytes;
    {
        value_encoder<with_serialize> archive_out(bytes);
        archive_out.write(with_serialize{5});
    }
    value_decoder<with_serialize> archive_in(bytes);
    with_serialize w;
    archive_in.read(w);
    BOOST_TEST(w.x == 5);

    std::vector<char> plain;
    value_encoder<std::string>(plain).write(std::string("text"));
    BOOST_TEST(plain.size() == 8u + 4u); // no archive in front
    value_decoder<std::string> plain_in(plain);
    std::string s;
    plain_in.read(s);
    BOOST_TEST(s == "text");
}
