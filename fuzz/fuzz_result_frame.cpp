// libFuzzer target: the parent's validation of result frames (scheduler::on_frame, item 2 of
// the isolation issue), through the scheduler over the in-process fake transport of the tests.
// A worker holding three chunks publishes frames made from the input; whatever they are, no
// exception leaves the scheduler, no chunk completes twice, a frame the scheduler refuses
// condemns the worker and fails the chunks it held ("sent a corrupt frame"), and once the
// worker is replaced every chunk ends exactly once.
#include "../libpool/src/detail/frame_spares.hpp"
#include "../libpool/src/detail/scheduler.hpp"
#include "../tests/fake_transport.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

using namespace procpool::detail;
using procpool::test::exited_with;
using procpool::test::fake_transport;
using procpool::test::killed_by;
using procpool::test::recording_sink;
using procpool::test::tagged_frame;

namespace {

void require(bool ok) {
    if (!ok)
        std::abort(); // libFuzzer reports the input
}

/// The input as frames: each a u8 length, a u8 of flags, then that many bytes. Flag 1 writes
/// the task id the worker is expected to answer next over the frame's first 8 bytes (a header
/// the scheduler would accept that far), so the deeper checks are reached.
std::vector<std::vector<char>> frames_of(const std::uint8_t* data, std::size_t size,
                                         std::uint64_t& next_id) {
    std::vector<std::vector<char>> frames;
    std::size_t at = 0;
    while (at + 2 <= size) {
        const std::size_t n = std::min<std::size_t>(data[at], size - at - 2);
        const std::uint8_t flags = data[at + 1];
        std::vector<char> frame(reinterpret_cast<const char*>(data + at + 2),
                                reinterpret_cast<const char*>(data + at + 2 + n));
        if ((flags & 1) != 0 && frame.size() >= sizeof next_id) {
            std::memcpy(frame.data(), &next_id, sizeof next_id);
            ++next_id;
        }
        frames.push_back(std::move(frame));
        at += 2 + n;
    }
    return frames;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::size_t chunks = 3;
    fake_transport workers(1);
    std::vector<std::exception_ptr> failures;
    scheduler sched(workers, nullptr, 0, std::make_shared<frame_spares>(4, std::size_t{1} << 20, 2),
                    [&](std::exception_ptr e) { failures.push_back(std::move(e)); });
    sched.start_all();
    auto sink = std::make_shared<recording_sink>();
    for (std::uint32_t tag = 0; tag < chunks; ++tag)
        sched.enqueue(outgoing_chunk{tagged_frame(tag), sink, tag});
    const auto turn = [&] {
        sched.drain_all();
        sched.dispatch();
        sched.feed_all();
    };
    turn();
    require(!workers.workers[0].inbox.empty());

    std::uint64_t next_id = 1; // task ids start at 1, in dispatch order
    for (auto& frame : frames_of(data, size, next_id))
        workers.publish(0, std::move(frame));
    turn();
    for (std::size_t c = 0; c < chunks; ++c)
        require(sink->count(c) <= 1);

    const bool condemned = workers.workers[0].killed;
    // Chunks failed by the scheduler itself: an error record cannot make a worker_lost_error.
    std::size_t corrupt = 0;
    for (const auto& r : sink->records) {
        if (!r.error)
            continue;
        try {
            std::rethrow_exception(r.error);
        } catch (const procpool::worker_lost_error& e) {
            require(std::string(e.what()).find("sent a corrupt frame") != std::string::npos);
            ++corrupt;
        } catch (...) {
        }
    }
    // Condemned or not, the worker ends (killed, or it exits) and its replacement answers
    // what is left: every chunk ends exactly once.
    sched.on_exit(workers.die(0, condemned ? killed_by(9) : exited_with(1), /*mid_task=*/false));
    turn();
    for (int answers = 0; !workers.workers[0].inbox.empty(); ++answers) {
        require(answers < 16);
        workers.answer(0);
        turn();
    }
    require(failures.empty());
    require(sink->records.size() == chunks);
    for (std::size_t c = 0; c < chunks; ++c)
        require(sink->count(c) == 1);
    // Chunks fail as lost only when the worker was condemned for what it sent.
    require(condemned || corrupt == 0);
    return 0;
}
