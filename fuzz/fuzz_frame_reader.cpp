// libFuzzer target: the parent's frame reader (libpool/src/detail/ring.hpp) fed through a ring,
// the bytes a worker wrote, in pieces of every size. The input's first bytes choose the piece
// sizes and the limit; the rest is the byte stream. Every frame the reader hands over must be
// exactly the bytes that followed its length prefix, and a refused length must be over the limit.
#include "../libpool/src/detail/ring.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

using namespace procpool::detail;

namespace {

void require(bool ok) {
    if (!ok)
        std::abort(); // libFuzzer reports the input
}

/// A bulk_source that hands out buffers of the size asked, as the transport's spares do.
struct spare_bulk final : bulk_source {
    std::vector<char> bulk_buffer(std::size_t size) noexcept override {
        std::vector<char> v;
        v.reserve(size);
        return v;
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3)
        return 0;
    const std::size_t piece = 1 + data[0] % 64; // what the producer writes at a time
    const std::uint64_t limit = std::uint64_t{1} << (8 + data[1] % 12); // 256 B .. 512 KiB
    const bool use_bulk_source = (data[2] & 1) != 0;
    const std::uint8_t* stream = data + 3;
    const std::size_t length = size - 3;

    constexpr std::uint64_t capacity = 256; // small: frames wrap and fragment
    alignas(cache_line) ring_control control;
    std::vector<std::byte> ring_data(capacity);
    ring_producer producer(&control, ring_data.data(), capacity);
    ring_consumer consumer(&control, ring_data.data(), capacity);
    frame_reader reader;
    reader.limit(limit);
    spare_bulk spares;

    std::size_t written = 0;  // bytes of the stream in the ring
    std::size_t frame_at = 0; // where the frame being read starts in the stream
    for (int idle = 0; idle < 4;) {
        bool moved = false;
        if (written < length && producer.writable() != 0) {
            const std::size_t n = std::min(piece, length - written);
            const std::size_t k = producer.write_some(stream + written, n);
            written += k;
            moved |= k != 0;
        }
        const std::uint64_t before = consumer.readable();
        bool ready = false;
        try {
            ready = reader.pump(consumer, use_bulk_source ? &spares : nullptr);
        } catch (const std::length_error&) {
            // Refused: the announced length (the prefix's low 63 bits) is over the limit.
            std::uint64_t word = 0;
            require(frame_at + sizeof word <= length);
            std::memcpy(&word, stream + frame_at, sizeof word);
            require((word & ~bulk_apart_flag) > limit);
            return 0;
        }
        moved |= consumer.readable() != before || ready;
        if (ready) {
            std::uint64_t word = 0;
            std::memcpy(&word, stream + frame_at, sizeof word);
            const bool apart = (word & bulk_apart_flag) != 0;
            const std::uint64_t announced = word & ~bulk_apart_flag;
            const std::size_t prefix = apart ? 16 : 8;
            const auto frame = reader.frame();
            const auto& bulk = reader.bulk();
            require(frame.size() + bulk.size() == announced);
            require(frame_at + prefix + announced <= written);
            require(frame.empty() ||
                    std::memcmp(frame.data(), stream + frame_at + prefix, frame.size()) == 0);
            require(bulk.empty() ||
                    std::memcmp(bulk.data(), stream + frame_at + prefix + frame.size(),
                                bulk.size()) == 0);
            frame_at += prefix + static_cast<std::size_t>(announced);
            reader.reset();
        }
        idle = moved ? 0 : idle + 1;
    }
    // All was written, and whatever the reader holds is a frame not yet whole.
    require(written == length);
    require(frame_at == written || reader.partial());
    return 0;
}
