// The codec on its own: archives over memory, std::tuple, error records.
#define PROCPOOL_TEST_SUITE_NAME "codec"
#include "test_main.hpp"

#include <procpool/detail/codec.hpp>
#include <procpool/detail/exception_codec.hpp>
#include <procpool/errors.hpp>

#include <string>
#include <tuple>

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
