// Task identity on its own: module-relative addresses and the trampoline registry.
#define PROCPOOL_TEST_SUITE_NAME "task_identity"
#include "test_main.hpp"

#include <procpool/detail/task.hpp>
#include <procpool/errors.hpp>

#include <memory>

using namespace procpool::detail;

namespace {
int triple(int x) {
    return 3 * x;
}
int some_data = 7;
using triple_invoker = invoker<int (*)(int), int, false>;
} // namespace

BOOST_AUTO_TEST_CASE(a_function_address_round_trips_through_module_and_offset) {
    const code_address a = to_code_address(reinterpret_cast<const void*>(&triple));
    BOOST_TEST(a.module != 0u);
    BOOST_TEST(a.module == main_module_key());
    BOOST_TEST(from_code_address(a) == reinterpret_cast<const void*>(&triple));
}

BOOST_AUTO_TEST_CASE(an_address_outside_executable_code_cannot_be_named) {
    auto heap = std::make_unique<int>(1);
    BOOST_CHECK_THROW(to_code_address(heap.get()), procpool::error);
    BOOST_CHECK_THROW(to_code_address(&some_data), procpool::error);
}

BOOST_AUTO_TEST_CASE(an_unknown_module_or_an_offset_outside_its_code_resolves_to_nothing) {
    BOOST_TEST(from_code_address({0x1234, 0}) == nullptr);
    BOOST_TEST(from_code_address({main_module_key(), std::uint64_t{1} << 40}) == nullptr);
}

BOOST_AUTO_TEST_CASE(only_registered_trampolines_are_found) {
    const code_address id = triple_invoker::identity();
    const void* address = from_code_address(id);
    BOOST_TEST(address == reinterpret_cast<const void*>(&triple_invoker::run));
    BOOST_TEST(find_trampoline(address) == &triple_invoker::run);
    // A real function that is not a trampoline is refused, never called.
    BOOST_TEST(find_trampoline(reinterpret_cast<const void*>(&triple)) == nullptr);
}

BOOST_AUTO_TEST_CASE(a_trampoline_runs_the_encoded_items_and_counts_them) {
    frame_encoder<int (*)(int), int, false> encoder(&triple, frame_kind::task);
    encoder.add(5);
    encoder.add(-2);
    const std::vector<char> frame = std::move(encoder).finish();
    const auto header = read_pod<task_header>(frame);
    BOOST_TEST(header.item_count == 2u);

    std::vector<char> output;
    task_call call;
    call.function = from_code_address(header.function);
    call.input = std::span<const char>(frame).subspan(sizeof(task_header));
    call.item_count = header.item_count;
    call.output = &output;
    find_trampoline(from_code_address(header.trampoline))(call);
    BOOST_TEST(call.ok_count == 2u);

    span_source source(output);
    boost::archive::binary_iarchive ia(source, archive_flags);
    int a = 0, b = 0;
    ia >> a >> b;
    BOOST_TEST(a == 15);
    BOOST_TEST(b == -6);
}
