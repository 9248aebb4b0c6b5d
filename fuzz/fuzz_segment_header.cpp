// libFuzzer target: the check a worker makes of the segment header its parent wrote
// (segment_header_problem, libpool/src/detail/segment.hpp) before it maps anything else. The
// input is a flags byte, the mapped size, and the header's bytes; the flags set some fields to
// what this build writes (magic, version, sizes, module key, a consistent segment size), so the
// later checks are reached. A header the check accepts must give every worker a block inside
// the mapped bytes.
#include "../libpool/src/detail/segment.hpp"

#include <procpool/detail/task_identity.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace procpool::detail;

namespace {

void require(bool ok) {
    if (!ok)
        std::abort(); // libFuzzer reports the input
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 + sizeof(std::uint64_t))
        return 0;
    const std::uint8_t flags = data[0];
    std::uint64_t mapped = 0;
    std::memcpy(&mapped, data + 1, sizeof mapped);
    // The header as a worker sees it: bytes in memory, whatever they are.
    alignas(segment_header) unsigned char raw[sizeof(segment_header)] = {};
    std::memcpy(raw, data + 9, std::min(size - 9, sizeof raw));
    auto& h = *reinterpret_cast<segment_header*>(raw);
    if (flags & 1)
        h.magic = segment_magic;
    if (flags & 2)
        h.layout_version = segment_layout_version;
    if (flags & 4) {
        h.header_bytes = segment_layout::header_bytes();
        h.slot_bytes = sizeof(worker_slot);
    }
    if (flags & 8)
        h.module_key = main_module_key();
    if ((flags & 16) && h.worker_count <= segment_layout::max_workers &&
        h.ring_bytes <= segment_layout::max_ring_bytes)
        h.segment_bytes = segment_layout{h.worker_count, h.ring_bytes}.total_bytes();
    if (flags & 32)
        mapped = h.segment_bytes;

    if (!segment_header_problem(h, mapped).empty())
        return 0;
    // Accepted: every offset a worker computes from it lies inside what is mapped.
    const segment_layout layout{h.worker_count, h.ring_bytes};
    require(h.worker_count >= 1 && h.worker_count <= segment_layout::max_workers);
    require(h.ring_bytes >= segment_layout::page && (h.ring_bytes & (h.ring_bytes - 1)) == 0);
    require(segment_layout::header_region_bytes() <= layout.block_offset(0));
    for (std::uint32_t i = 0; i < h.worker_count; ++i) {
        require(layout.block_offset(i) % segment_layout::page == 0);
        require(layout.outbox_offset(i) + h.ring_bytes ==
                layout.block_offset(i) + layout.block_bytes());
        require(layout.block_offset(i) + layout.block_bytes() <= mapped);
    }
    return 0;
}
