// libFuzzer target: the plain codec's reader (procpool/detail/codec.hpp), which decodes the
// results a worker wrote, for the common types. The input's first byte picks the type; the
// rest is read. A read either throws std::length_error (truncated input) or gives a value that
// plain_writer writes back as exactly the bytes it was read from.
#include <procpool/detail/codec.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace procpool::detail;

namespace {

void require(bool ok) {
    if (!ok)
        std::abort(); // libFuzzer reports the input
}

/// Reads a T (and then a second one, as a chunk of results holds several) and writes them
/// back. `apart`: the input's last `split` bytes are handed as the bytes read apart.
template <class T>
void check(std::span<const char> in, std::size_t split) {
    std::vector<char> apart;
    std::span<const char> front = in;
    if (split != 0 && split <= in.size()) {
        apart.assign(in.end() - static_cast<std::ptrdiff_t>(split), in.end());
        front = in.first(in.size() - split);
    }
    const std::vector<char> apart_copy = apart;
    plain_reader reader(front, split != 0 ? &apart : nullptr);
    T first{}, second{};
    std::size_t values = 0, whole = 0; // values read, and the bytes they came from
    try {
        reader >> first;
        ++values;
        whole = reader.consumed();
        reader >> second;
        ++values;
        whole = reader.consumed();
    } catch (const std::length_error&) {
    }
    require(reader.consumed() <= front.size());
    // What was read, written again, is the bytes it came from: the front's consumed bytes,
    // then the bytes apart when the reader took them.
    std::vector<char> again;
    {
        plain_writer writer(again);
        if (values >= 1)
            writer << first;
        if (values >= 2)
            writer << second;
    }
    std::vector<char> expected(front.begin(), front.begin() + static_cast<std::ptrdiff_t>(whole));
    if (again.size() > expected.size())
        expected.insert(expected.end(), apart_copy.begin(), apart_copy.end());
    require(again == expected);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2)
        return 0;
    const auto in = std::span(reinterpret_cast<const char*>(data + 2), size - 2);
    const std::size_t split = data[1] % 17; // bytes handed apart: 0 (none) to 16
    switch (data[0] % 11) {
    case 0:
        return check<std::int32_t>(in, split), 0;
    case 1:
        return check<double>(in, split), 0;
    case 2:
        return check<std::uint64_t>(in, split), 0;
    case 3:
        return check<std::string>(in, split), 0;
    case 4:
        return check<std::vector<char>>(in, split), 0;
    case 5:
        return check<std::vector<std::int32_t>>(in, split), 0;
    case 6:
        return check<std::vector<double>>(in, split), 0;
    case 7:
        return check<std::pair<std::int64_t, std::string>>(in, split), 0;
    case 8:
        return check<std::tuple<std::int32_t, double, std::string>>(in, split), 0;
    case 9:
        return check<std::array<std::uint16_t, 5>>(in, split), 0;
    default:
        return check<std::pair<std::string, std::vector<float>>>(in, split), 0;
    }
}
