// An in-process transport (libpool/src/detail/transport.hpp) that a test drives step by step:
// no process, no thread, no clock. Frames sent to a worker wait in its inbox until the test
// answers them (answer), a worker can stall (takes nothing), die mid-task (die: the exit report
// the engine gets from a real transport's supervisor), or refuse to start.
#pragma once

#include "../libpool/src/detail/transport.hpp"

#include <procpool/detail/result_sink.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/errors.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace procpool::test {

namespace detail = procpool::detail;

/// A task frame as the tests make them: a task_header of one item whose reserved word is the
/// tag a test recognises the chunk by (the scheduler patches task_id only).
inline std::vector<char> tagged_frame(std::uint32_t tag,
                                      detail::frame_kind kind = detail::frame_kind::task) {
    detail::task_header header;
    header.kind = kind;
    header.reserved = tag;
    header.item_count = 1;
    std::vector<char> frame(sizeof header);
    std::memcpy(frame.data(), &header, sizeof header);
    return frame;
}

inline detail::task_header header_of(const std::vector<char>& frame) {
    detail::task_header header;
    std::memcpy(&header, frame.data(), sizeof header);
    return header;
}

/// A wait status as waitpid reports it.
inline int exited_with(int code) {
    return (code & 0xff) << 8;
}
inline int killed_by(int signal) {
    return signal & 0x7f;
}

/// Records every chunk it is given, in order.
struct recording_sink final : detail::result_sink {
    struct record {
        std::size_t chunk;
        std::uint64_t ok_count;
        std::exception_ptr error;
        std::string results;
    };
    void complete_chunk(std::size_t chunk, const detail::chunk_outcome& outcome) noexcept override {
        records.push_back({chunk, outcome.ok_count, outcome.error,
                           std::string(outcome.results.begin(), outcome.results.end())});
    }
    std::size_t count(std::size_t chunk) const {
        std::size_t n = 0;
        for (const auto& r : records)
            n += r.chunk == chunk;
        return n;
    }
    std::vector<record> records;
};

/// What an exception_ptr's exception says.
inline std::string what(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "(not a std::exception)";
    }
}

class fake_transport final : public detail::transport {
public:
    struct worker {
        int pid = 0;
        bool running = false;
        bool stalled = false;                 // takes no frame (a full inbox)
        int refuse_starts = 0;                // the next start() calls that throw
        bool stop_asked = false;              // stop() was called
        std::deque<std::vector<char>> inbox;  // sent, not yet answered, oldest first
        std::deque<std::vector<char>> outbox; // result frames for receive()
        std::uint64_t running_task = 0;       // for ended()
        bool was_ready = false;
        bool left_cleanly = false;
        bool killed = false;           // kill() was called
        bool terminated = false;       // terminate() was called
        std::uint64_t now_running = 0; // what running() says (begin())
        std::chrono::steady_clock::time_point since{};
        bool confirmed = true;         // ... and whether it is past its skip bit
        std::set<std::uint64_t> skips; // skip() marks, by frame seq
    };

    explicit fake_transport(std::uint32_t size)
        : workers(size) {}

    // ---- what a test does ----

    /// Worker `index` answers the oldest frame it was sent: a result frame with `ok_count`
    /// results (their bytes: `payload`) and the run time `exec_ns`.
    void answer(std::uint32_t index, std::uint64_t exec_ns = 1'000'000, std::uint64_t ok_count = 1,
                std::vector<char> payload = {'r'}) {
        worker& w = workers.at(index);
        if (w.inbox.empty())
            throw std::logic_error("fake_transport: worker has no frame to answer");
        const detail::task_header task = header_of(w.inbox.front());
        w.inbox.pop_front();
        detail::result_header result;
        result.task_id = task.task_id;
        result.kind = task.kind == detail::frame_kind::initializer
                          ? detail::frame_kind::initializer_done
                          : detail::frame_kind::result;
        result.ok_count = ok_count;
        result.exec_ns = exec_ns;
        std::vector<char> frame(sizeof result);
        std::memcpy(frame.data(), &result, sizeof result);
        frame.insert(frame.end(), payload.begin(), payload.end());
        w.outbox.push_back(std::move(frame));
    }

    /// Worker `index` says it began the oldest frame of its inbox at `since` (running()).
    void begin(std::uint32_t index, std::chrono::steady_clock::time_point since) {
        worker& w = workers.at(index);
        w.now_running = header_of(w.inbox.front()).task_id;
        w.since = since;
    }

    /// Worker `index` skips the oldest frame of its inbox (a cancelled task): it answers it
    /// with a `skipped` frame, and runs nothing.
    void skip_oldest(std::uint32_t index) {
        worker& w = workers.at(index);
        detail::result_header answer;
        answer.task_id = header_of(w.inbox.front()).task_id;
        answer.kind = detail::frame_kind::skipped;
        w.inbox.pop_front();
        w.now_running = 0;
        std::vector<char> frame(sizeof answer);
        std::memcpy(frame.data(), &answer, sizeof answer);
        w.outbox.push_back(std::move(frame));
    }

    /// Worker `index` publishes raw bytes as a frame (a corrupt one, say).
    void publish(std::uint32_t index, std::vector<char> frame) {
        workers.at(index).outbox.push_back(std::move(frame));
    }

    /// Worker `index` dies with wait status `status`, while running the oldest frame of its
    /// inbox when `mid_task`. Returns the report a supervisor would send.
    detail::worker_exit die(std::uint32_t index, int status, bool mid_task = true) {
        worker& w = workers.at(index);
        w.running_task = mid_task && !w.inbox.empty() ? header_of(w.inbox.front()).task_id : 0;
        w.running = false;
        w.inbox.clear();
        return {index, w.pid, status};
    }

    /// The task ids in worker `index`'s inbox, oldest first.
    std::vector<std::uint64_t> task_ids(std::uint32_t index) const {
        std::vector<std::uint64_t> ids;
        for (const auto& f : workers.at(index).inbox)
            ids.push_back(header_of(f).task_id);
        return ids;
    }
    /// The tags (tagged_frame) in worker `index`'s inbox, oldest first.
    std::vector<std::uint64_t> tags(std::uint32_t index) const {
        std::vector<std::uint64_t> tags;
        for (const auto& f : workers.at(index).inbox)
            tags.push_back(header_of(f).reserved);
        return tags;
    }

    std::vector<worker> workers;
    std::vector<std::uint32_t> started; // start() calls that succeeded, in order
    std::size_t adopted = 0;            // frames given to adopt()
    int killed_all = 0;                 // kill_all() calls
    bool can_kill = true;               // what kill() answers
    /// Runs at the start of receive() for a worker with a frame to read: a test makes it throw
    /// (std::bad_alloc, as a length of 2^62 would).
    std::function<void()> before_receive;
    int shut_down = 0; // shutdown() calls
    /// The engine's exit callback (transport_options::on_exit), for report().
    std::function<void(const detail::worker_exit&)> on_exit;

    /// Worker `index` dies (as die()) and the engine hears of it, as from a supervisor.
    void report_death(std::uint32_t index, int status, bool mid_task = true) {
        const detail::worker_exit report = die(index, status, mid_task);
        if (on_exit)
            on_exit(report);
    }
    int next_pid = 1000;

    // ---- the transport seam ----

    std::uint32_t size() const noexcept override {
        return static_cast<std::uint32_t>(workers.size());
    }

    int start(std::uint32_t index) override {
        worker& w = workers.at(index);
        if (w.refuse_starts > 0) {
            --w.refuse_starts;
            throw procpool::error("fake_transport: worker " + std::to_string(index) +
                                  " refused to start");
        }
        w = worker{};
        w.pid = ++next_pid;
        w.running = true;
        started.push_back(index);
        return w.pid;
    }

    bool receive(std::uint32_t index, frame_handler on_frame) override {
        worker& w = workers.at(index);
        if (before_receive && !w.outbox.empty())
            before_receive();
        bool moved = false;
        while (!w.outbox.empty()) {
            std::vector<char> frame = std::move(w.outbox.front());
            w.outbox.pop_front();
            on_frame(std::as_bytes(std::span(frame)), &frame, nullptr);
            moved = true;
        }
        return moved;
    }

    bool send(std::uint32_t index, frame_source next) override {
        worker& w = workers.at(index);
        if (w.stalled || !w.running)
            return false;
        bool moved = false;
        for (auto bytes = next(); !bytes.empty(); bytes = next()) {
            const auto* p = reinterpret_cast<const char*>(bytes.data());
            w.inbox.emplace_back(p, p + bytes.size());
            moved = true;
        }
        return moved;
    }

    bool has_input(std::uint32_t index) override { return !workers.at(index).outbox.empty(); }
    bool can_send(std::uint32_t index) override {
        return workers.at(index).running && !workers.at(index).stalled;
    }
    bool sending(std::uint32_t) const noexcept override { return false; }

    bool stop(std::uint32_t index) override {
        workers.at(index).stop_asked = true;
        return false; // its exit comes through a report (the test's die())
    }

    bool kill(std::uint32_t index) noexcept override {
        workers.at(index).killed = can_kill;
        return can_kill;
    }
    bool kills_one_worker() const noexcept override { return can_kill; }
    bool terminate(std::uint32_t index) noexcept override {
        workers.at(index).terminated = can_kill;
        return can_kill;
    }
    task_start running(std::uint32_t index) const noexcept override {
        const worker& w = workers.at(index);
        return {w.now_running, w.since, w.confirmed};
    }
    bool skip(std::uint32_t index, std::uint64_t seq) noexcept override {
        workers.at(index).skips.insert(seq);
        return true;
    }
    void unskip(std::uint32_t index, std::uint64_t seq) noexcept override {
        workers.at(index).skips.erase(seq);
    }

    detail::last_words ended(std::uint32_t index) override {
        const worker& w = workers.at(index);
        return {w.running_task, w.was_ready, w.left_cleanly};
    }

    void wait(detail::function_ref<bool()>, wait_hint) override {}
    void wake() noexcept override {}
    void adopt(std::vector<std::vector<char>> frames) override { adopted += frames.size(); }
    void kill_all() noexcept override { ++killed_all; }
    void shutdown() noexcept override { ++shut_down; }
    std::vector<int> pids() const override {
        std::vector<int> pids;
        for (const auto& w : workers)
            if (w.running)
                pids.push_back(w.pid);
        return pids;
    }
};

} // namespace procpool::test
