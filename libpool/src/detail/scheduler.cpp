// The scheduler. See scheduler.hpp.
#include "scheduler.hpp"

#include "frame_spares.hpp"
#include "launch.hpp"
#include <procpool/detail/codec.hpp>
#include <procpool/detail/exception_codec.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/errors.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <sys/wait.h>

namespace procpool::detail {

static_assert(offsetof(task_header, task_id) == 0, "dispatch patches task_id at offset 0");

scheduler::scheduler(transport& workers, std::shared_ptr<const std::vector<char>> initializer_frame,
                     std::uint64_t max_tasks, std::shared_ptr<frame_spares> spares,
                     failure_handler on_failure)
    : transport_(workers)
    , initializer_frame_(std::move(initializer_frame))
    , max_tasks_(max_tasks)
    , spares_(std::move(spares))
    , on_failure_(std::move(on_failure)) {
    workers_.resize(transport_.size());
    for (std::uint32_t i = 0; i < workers_.size(); ++i)
        workers_[i].index = i;
}

void scheduler::start_all() {
    for (worker_state& w : workers_)
        start(w);
}

void scheduler::start(worker_state& w) {
    w.initializer_unsent = initializer_frame_ != nullptr;
    clear_queue(w);
    w.assigned = 0;
    w.ready = false;
    w.stop_sent = false;
    w.condemned = false;
    w.doomed = false;
    w.hard_killed = false;
    w.seen_task = 0;
    w.next_seq = 0;
    w.memory_killed_rss = 0;
    w.pid = transport_.start(w.index);
    w.alive = true;
}

void scheduler::enqueue(std::deque<outgoing_chunk>& chunks) {
    std::move(chunks.begin(), chunks.end(), std::back_inserter(pending_));
    chunks.clear();
}

void scheduler::enqueue(outgoing_chunk chunk) {
    pending_.push_back(std::move(chunk));
}

std::size_t scheduler::window() const noexcept {
    return flow::chunks_per_worker(mean_chunk_ns_, flow::min_window, flow::max_window);
}

bool scheduler::among(const std::vector<std::weak_ptr<result_sink>>& sinks,
                      const std::shared_ptr<result_sink>& sink) noexcept {
    return std::any_of(sinks.begin(), sinks.end(), [&](const std::weak_ptr<result_sink>& s) {
        return !s.expired() && !s.owner_before(sink) && !sink.owner_before(s);
    });
}

void scheduler::dispatch() {
    const std::size_t limit = window();
    if (!stormed_.empty())
        std::erase_if(stormed_, [](const auto& s) { return s.expired(); });
    while (!pending_.empty()) {
        if (!stormed_.empty() && among(stormed_, pending_.front().sink)) {
            // The rest of a job that set off a restart storm: failed, not run.
            outgoing_chunk chunk = std::move(pending_.front());
            pending_.pop_front();
            chunk_outcome outcome;
            outcome.error = storm_error_;
            chunk.sink->complete_chunk(chunk.index, outcome);
            continue;
        }
        worker_state* best = nullptr;
        for (worker_state& w : workers_) {
            if (!w.alive || w.stop_sent || w.condemned || w.doomed || w.queue.size() >= limit)
                continue;
            if (max_tasks_ != 0 && w.assigned >= max_tasks_)
                continue;
            if (best == nullptr || w.queue.size() < best->queue.size())
                best = &w;
        }
        if (best == nullptr)
            return;
        outgoing_chunk chunk = std::move(pending_.front());
        pending_.pop_front();
        const std::uint64_t id = next_task_id_++;
        std::memcpy(chunk.frame.data(), &id, sizeof id);
        if (chunk.limits.timeout.count() > 0) {
            ++best->timed;
            ++timed_held_;
        }
        best->queue.push_back({id, std::move(chunk)});
        ++best->assigned;
    }
}

bool scheduler::feed(std::uint32_t index) {
    worker_state& w = workers_[index];
    if (!w.alive || w.condemned)
        return false;
    try {
        return transport_.send(w.index, [&]() -> std::span<const std::byte> {
            if (w.initializer_unsent) {
                w.initializer_unsent = false;
                return std::as_bytes(std::span(*initializer_frame_));
            }
            if (w.sent < w.queue.size()) {
                dispatched& d = w.queue[w.sent++];
                d.seq = w.next_seq++;
                return std::as_bytes(std::span(d.chunk.frame));
            }
            return {};
        });
    } catch (...) {
        fail(std::current_exception()); // the transport cannot go on (no shared memory)
        return true;
    }
}

bool scheduler::drain(std::uint32_t index) {
    worker_state& w = workers_[index];
    if (!w.alive || w.condemned)
        return false;
    try {
        return transport_.receive(w.index,
                                  [&](std::span<const std::byte> frame, std::vector<char>* storage,
                                      std::vector<char>* bulk) {
                                      if (!w.condemned) // the rest of what it sent is not read
                                          on_frame(w, frame, storage, bulk);
                                  });
    } catch (const std::exception& e) {
        // A length the parent cannot allocate (std::bad_alloc, std::length_error): the frame
        // reader is mid-frame, and the ring is reset with the worker's slot.
        condemn(w, std::string("a frame the parent could not read: ") + e.what());
        return true;
    }
}

bool scheduler::feed_all() {
    bool moved = false;
    for (std::uint32_t i = 0; i < workers_.size(); ++i)
        moved |= feed(i);
    return moved;
}

bool scheduler::drain_all() {
    bool moved = false;
    for (std::uint32_t i = 0; i < workers_.size(); ++i)
        moved |= drain(i);
    return moved;
}

void scheduler::on_frame(worker_state& w, std::span<const std::byte> frame,
                         std::vector<char>* storage, std::vector<char>* bulk) {
    const auto bytes =
        std::span<const char>(reinterpret_cast<const char*>(frame.data()), frame.size());
    if (bytes.size() < sizeof(result_header))
        return condemn(w, std::to_string(bytes.size()) + " bytes, shorter than a result header");
    const auto header = read_pod<result_header>(bytes);
    const auto payload = bytes.subspan(sizeof header);
    if (header.kind == frame_kind::skipped)
        return on_skipped(w, header.task_id);
    if (header.kind != frame_kind::result && header.kind != frame_kind::initializer_done)
        return condemn(w, "a frame of unknown kind " +
                              std::to_string(static_cast<std::uint32_t>(header.kind)));
    if (header.failed > 1 || (header.failed && header.error_offset > payload.size()))
        return condemn(w, "an error record out of the frame's bounds");
    if (header.kind == frame_kind::initializer_done && initializer_frame_ == nullptr)
        return condemn(w, "an initializer's answer, with no initializer");
    chunk_outcome outcome;
    outcome.ok_count = header.ok_count;
    outcome.exec_ns = header.exec_ns;
    if (header.failed) {
        outcome.results = payload.first(header.error_offset);
        outcome.error = decode_error_record(payload.subspan(header.error_offset));
    } else {
        outcome.results = payload;
        outcome.bulk = bulk; // a failed chunk's frame has none
    }

    w.ready = true;
    start_failures_ = 0;
    if (header.kind == frame_kind::initializer_done) {
        if (header.failed) {
            std::string what = "unknown error";
            try {
                std::rethrow_exception(outcome.error);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            fail(std::make_exception_ptr(error("procpool: the initializer failed in worker " +
                                               std::to_string(w.pid) + ": " + what)));
        }
        return;
    }
    if (w.queue.empty() || w.queue.front().id != header.task_id)
        return condemn(w, "a result for task " + std::to_string(header.task_id) +
                              ", which it was not given or not next");
    const std::uint64_t items = read_pod<task_header>(w.queue.front().chunk.frame).item_count;
    if (header.failed ? header.ok_count > items : header.ok_count != items)
        return condemn(w, std::to_string(header.ok_count) + " results for a chunk of " +
                              std::to_string(items) + " items");
    dispatched d = std::move(w.queue.front());
    w.queue.pop_front();
    --w.sent;
    // A settled chunk was no longer counted; a doomed worker counts none.
    if (!d.settled && d.chunk.limits.timeout.count() > 0 && w.timed > 0) {
        --w.timed;
        --timed_held_;
    }
    if (d.settled) { // timed out or cancelled: its answer came too late
        transport_.unskip(w.index, d.seq);
        spares_->give(std::move(d.chunk.frame));
        return;
    }
    deaths_in_a_row_ = 0; // a task finished: no storm
    dying_sinks_.clear();
    const double ns = static_cast<double>(std::max<std::uint64_t>(header.exec_ns, 100));
    mean_chunk_ns_.add(ns);
    // The task frame is spare from here on (the worker read all of it before it answered),
    // and often the one buffer large enough to take the results' place (see vector_result).
    spares_->give(std::move(d.chunk.frame));
    outcome.spares = spares_;
    outcome.storage = storage;
    d.chunk.sink->complete_chunk(d.chunk.index, outcome);
}

void scheduler::on_exit(const worker_exit& report) {
    worker_state& w = workers_.at(report.index);
    if (!w.alive || w.pid != report.pid)
        return;
    drain(w.index); // every result it published counts
    w.alive = false;
    unwatch(w);
    const last_words words = transport_.ended(w.index);
    const std::uint64_t running = words.running_task;
    const bool clean =
        WIFEXITED(report.status) && WEXITSTATUS(report.status) == 0 && words.left_cleanly;
    const bool was_ready = w.ready || words.was_ready;

    std::optional<int> code, signal;
    if (WIFSIGNALED(report.status))
        signal = WTERMSIG(report.status);
    else if (WIFEXITED(report.status))
        code = WEXITSTATUS(report.status);
    const std::string how = describe_wait_status(report.status);
    std::deque<outgoing_chunk> unstarted;
    bool lost_mid_task = false;
    std::weak_ptr<result_sink> lost_sink;
    for (dispatched& d : w.queue) {
        if (d.settled)
            continue; // failed already (timed out, cancelled): neither lost nor run again
        if (running != 0 && d.id == running) {
            lost_mid_task = true;
            lost_sink = d.chunk.sink;
            if (++d.chunk.tries <= d.chunk.limits.max_retries) {
                unstarted.push_front(std::move(d.chunk)); // first again, on a fresh worker
                continue;
            }
            const std::size_t rss = w.memory_killed_rss;
            std::string what = rss != 0 ? "procpool: worker " + std::to_string(report.pid) +
                                              " went past memory_limit_per_child (" +
                                              std::to_string(rss) + " bytes resident, the limit " +
                                              std::to_string(memory_limit_) +
                                              ") and was killed while running a task"
                                        : "procpool: worker " + std::to_string(report.pid) + " " +
                                              how + " while running a task";
            if (d.chunk.tries > 1)
                what += " (tried " + std::to_string(d.chunk.tries) +
                        " times, each worker died: max_retries " +
                        std::to_string(d.chunk.limits.max_retries) + ")";
            chunk_outcome outcome;
            if (rss != 0)
                outcome.error = std::make_exception_ptr(
                    memory_limit_error(what, report.pid, memory_limit_, rss));
            else
                outcome.error =
                    std::make_exception_ptr(worker_lost_error(what, report.pid, code, signal));
            d.chunk.sink->complete_chunk(d.chunk.index, outcome);
        } else {
            unstarted.push_back(std::move(d.chunk));
        }
    }
    clear_queue(w);
    pending_.insert(pending_.begin(), std::make_move_iterator(unstarted.begin()),
                    std::make_move_iterator(unstarted.end()));

    // A restart storm (a map whose every item kills its worker): past the bound, the work
    // not started fails instead of being fed to ever new workers at full speed. The pool
    // stays usable; the count starts again.
    if (lost_mid_task && !lost_sink.expired()) {
        if (dying_sinks_.empty() || dying_sinks_.back().owner_before(lost_sink) ||
            lost_sink.owner_before(dying_sinks_.back()))
            dying_sinks_.push_back(lost_sink);
    }
    if (lost_mid_task &&
        ++deaths_in_a_row_ >= std::max<std::size_t>(min_storm_deaths, 4 * workers_.size())) {
        storm_error_ = std::make_exception_ptr(worker_lost_error(
            "procpool: a restart storm: " + std::to_string(deaths_in_a_row_) +
                " workers in a row died running tasks, none finishing in between (the last, " +
                std::to_string(report.pid) + ", " + how +
                "); the rest of the job fails instead of starting more workers",
            report.pid, code, signal));
        deaths_in_a_row_ = 0;
        std::erase_if(stormed_, [](const auto& s) { return s.expired(); });
        stormed_.insert(stormed_.end(), dying_sinks_.begin(), dying_sinks_.end());
        dying_sinks_.clear();
        chunk_outcome outcome;
        outcome.error = storm_error_;
        std::vector<outgoing_chunk> failed;
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (among(stormed_, it->sink)) {
                failed.push_back(std::move(*it));
                it = pending_.erase(it);
            } else {
                ++it;
            }
        }
        for (outgoing_chunk& c : failed)
            c.sink->complete_chunk(c.index, outcome);
    }

    if (!clean && !was_ready) {
        if (++start_failures_ >= max_start_failures) {
            fail(std::make_exception_ptr(
                error("procpool: workers keep dying before they are ready (the last, " +
                      std::to_string(report.pid) + ", " + describe_wait_status(report.status) +
                      "); giving up. Does main() call procpool::init(argc, argv) first?")));
            return;
        }
    }
    if (w.stop_sent)
        return; // the pool is winding down: no replacement
    try {
        start(w);
    } catch (...) {
        fail(std::current_exception());
    }
}

void scheduler::condemn(worker_state& w, const std::string& why) {
    if (w.condemned)
        return;
    w.condemned = true;
    unwatch(w); // the kill below is the SIGKILL it may have been due
    if (!transport_.kill(w.index)) {
        fail(std::make_exception_ptr(error("procpool: worker " + std::to_string(w.pid) +
                                           " sent a corrupt frame (" + why + ")")));
        return; // the engine fails every chunk
    }
    // Nothing it said can be trusted, not even which chunk it had started: each one fails.
    chunk_outcome outcome;
    outcome.error = std::make_exception_ptr(
        worker_lost_error("procpool: worker " + std::to_string(w.pid) + " sent a corrupt frame (" +
                              why + ") and was killed",
                          w.pid, std::nullopt, std::nullopt));
    std::vector<std::vector<char>> handed;
    fail_held(w, outcome, handed);
    if (!handed.empty())
        transport_.adopt(std::move(handed));
}

void scheduler::fail_held(worker_state& w, const chunk_outcome& outcome,
                          std::vector<std::vector<char>>& handed) {
    for (std::size_t i = 0; i < w.queue.size(); ++i) {
        dispatched& d = w.queue[i];
        if (!d.settled)
            d.chunk.sink->complete_chunk(d.chunk.index, outcome);
        if (i < w.sent)
            handed.push_back(std::move(d.chunk.frame)); // the transport may still be on it
    }
    clear_queue(w);
}

void scheduler::clear_queue(worker_state& w) noexcept {
    timed_held_ -= w.timed;
    w.timed = 0;
    w.queue.clear();
    w.sent = 0;
}

scheduler::clock::time_point scheduler::check_deadlines(clock::time_point now) {
    clock::time_point next = clock::time_point::max();
    if (memory_limit_ != 0 && in_flight()) {
        if (now >= next_memory_look_) {
            for (worker_state& w : workers_) {
                if (!w.alive || w.condemned || w.doomed || w.queue.empty())
                    continue;
                const std::size_t rss = transport_.resident_bytes(w.index);
                if (rss <= memory_limit_)
                    continue;
                w.memory_killed_rss = rss;
                doom(w, now);
                if (!w.hard_killed) { // no grace: its memory grows meanwhile
                    transport_.kill(w.index);
                    w.hard_killed = true;
                    --doomed_;
                }
            }
            next_memory_look_ = now + memory_look;
        }
        next = std::min(next, next_memory_look_);
    }
    for (worker_state& w : workers_) {
        if (!w.alive || w.condemned)
            continue;
        if (w.skip_watch != 0 && !w.doomed)
            next = std::min(next, check_skip(w, now));
        if (w.doomed) {
            if (w.hard_killed)
                continue;
            if (now >= w.kill_at) {
                transport_.kill(w.index);
                w.hard_killed = true;
                --doomed_;
            } else {
                next = std::min(next, w.kill_at);
            }
            continue;
        }
        if (w.timed == 0)
            continue;
        const transport::task_start start = transport_.running(w.index);
        dispatched* running = nullptr;
        std::chrono::milliseconds shortest = std::chrono::milliseconds::max();
        for (dispatched& d : w.queue) {
            if (start.task != 0 && d.id == start.task && !d.settled)
                running = &d; // a settled one is watched as a skip, never timed out again
            if (d.chunk.limits.timeout.count() > 0)
                shortest = std::min(shortest, d.chunk.limits.timeout);
        }
        if (running == nullptr || running->chunk.limits.timeout.count() == 0) {
            // A timed chunk waits behind another, or the worker is between tasks: look again
            // within an eighth of the timeout. Its start is the worker's own stamp, so a late
            // look delays the deadline only when it comes after it.
            w.seen_task = 0;
            const auto step = std::clamp<std::chrono::milliseconds>(
                shortest / 8, std::chrono::milliseconds(1), std::chrono::milliseconds(100));
            next = std::min(next, now + step);
            continue;
        }
        if (w.seen_task != running->id) {
            w.seen_task = running->id;
            w.seen_at = now;
        }
        const clock::time_point began = std::min(start.since, w.seen_at);
        const clock::time_point deadline = began + running->chunk.limits.timeout;
        if (now >= deadline) {
            time_out(w, *running, now);
            next = std::min(next, w.kill_at);
        } else {
            next = std::min(next, deadline);
        }
    }
    return next;
}

void scheduler::doom(worker_state& w, clock::time_point now) {
    if (w.doomed)
        return;
    if (w.skip_watch != 0) {
        w.skip_watch = 0;
        --skip_watched_;
    }
    w.doomed = true;
    ++doomed_;
    // What it holds is no longer watched: its chunks wait for its exit (then run elsewhere).
    timed_held_ -= w.timed;
    w.timed = 0;
    w.kill_at = now + kill_grace;
    if (!transport_.terminate(w.index)) {
        transport_.kill(w.index); // the engine refuses timeouts where neither works
        w.hard_killed = true;
        --doomed_;
    }
}

void scheduler::unwatch(worker_state& w) noexcept {
    if (w.doomed && !w.hard_killed) {
        w.hard_killed = true;
        --doomed_;
    }
    if (w.skip_watch != 0) {
        w.skip_watch = 0;
        --skip_watched_;
    }
}

scheduler::clock::time_point scheduler::check_skip(worker_state& w, clock::time_point now) {
    const transport::task_start start = transport_.running(w.index);
    if (start.task == w.skip_watch) {
        if (start.confirmed) { // it did not see the skip in time: it runs the task
            doom(w, now);
            return w.kill_at;
        }
        return now + std::chrono::milliseconds(1); // it is reading the skip bit now
    }
    w.skip_watch = 0; // it skipped it, or finished it: its answer is dropped
    --skip_watched_;
    return clock::time_point::max();
}

void scheduler::on_skipped(worker_state& w, std::uint64_t task_id) {
    if (w.queue.empty() || w.queue.front().id != task_id || !w.queue.front().settled)
        return condemn(w, "a task " + std::to_string(task_id) +
                              " skipped, which was not cancelled or not next");
    dispatched d = std::move(w.queue.front());
    w.queue.pop_front();
    --w.sent;
    w.ready = true;
    transport_.unskip(w.index, d.seq);
    if (w.skip_watch == d.id) {
        w.skip_watch = 0;
        --skip_watched_;
    }
    spares_->give(std::move(d.chunk.frame));
}

void scheduler::cancel(const result_sink& sink, clock::time_point now) {
    // Completed once everything is in order: a completion runs the user's callbacks.
    std::vector<outgoing_chunk> gone;                          // dropped before any worker ran them
    std::vector<std::pair<result_sink*, std::size_t>> settled; // sent: their answers are dropped
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->sink.get() == &sink) {
            gone.push_back(std::move(*it));
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    for (worker_state& w : workers_) {
        if (!w.alive)
            continue;
        for (std::size_t i = 0; i < w.queue.size();) {
            dispatched& d = w.queue[i];
            if (d.chunk.sink.get() != &sink || d.settled) {
                ++i;
                continue;
            }
            if (d.chunk.limits.timeout.count() > 0 && w.timed > 0) {
                --w.timed;
                --timed_held_;
            }
            if (i >= w.sent) { // never handed to the transport: it is simply dropped
                --w.assigned;
                gone.push_back(std::move(d.chunk));
                w.queue.erase(w.queue.begin() + static_cast<std::ptrdiff_t>(i));
                continue;
            }
            d.settled = true;
            settled.emplace_back(d.chunk.sink.get(), d.chunk.index);
            ++i;
            if (w.doomed || w.condemned)
                continue; // it is being killed anyway
            const bool asked = transport_.skip(w.index, d.seq);
            const transport::task_start start = transport_.running(w.index);
            if (start.task != d.id)
                continue; // not started: it skips it (asked), or runs it for nothing (not)
            if (start.confirmed || !asked) {
                if (transport_.kills_one_worker())
                    doom(w, now);
            } else {
                // The one it has now: an older watch (a task since skipped) is stale.
                if (w.skip_watch == 0)
                    ++skip_watched_;
                w.skip_watch = d.id;
            }
        }
    }
    chunk_outcome outcome;
    outcome.error = std::make_exception_ptr(cancelled_error("procpool: the task was cancelled"));
    for (outgoing_chunk& c : gone)
        c.sink->complete_chunk(c.index, outcome);
    for (auto& [s, index] : settled)
        s->complete_chunk(index, outcome);
}

void scheduler::time_out(worker_state& w, dispatched& d, clock::time_point now) {
    const std::chrono::milliseconds timeout = d.chunk.limits.timeout;
    chunk_outcome outcome;
    outcome.error = std::make_exception_ptr(task_timeout_error(
        "procpool: a task ran past its timeout of " + std::to_string(timeout.count()) +
            " ms; its worker " + std::to_string(w.pid) + " was killed and replaced",
        timeout, w.pid));
    // Settled only now that nothing can throw: a failure above leaves the chunk to the pool's
    // failure, which completes every unsettled chunk.
    d.settled = true;
    doom(w, now);
    d.chunk.sink->complete_chunk(d.chunk.index, outcome);
}

void scheduler::stop_workers() {
    for (worker_state& w : workers_) {
        if (!w.alive)
            continue;
        w.stop_sent = true;
        if (transport_.stop(w.index))
            w.alive = false; // gone at once: no exit will be reported
    }
}

void scheduler::fail_everything(const std::exception_ptr& error) {
    chunk_outcome outcome;
    outcome.error = error;
    std::vector<std::vector<char>> handed;
    for (worker_state& w : workers_)
        fail_held(w, outcome, handed);
    if (!handed.empty())
        transport_.adopt(std::move(handed));
    for (outgoing_chunk& c : pending_)
        c.sink->complete_chunk(c.index, outcome);
    pending_.clear();
}

bool scheduler::idle() const noexcept {
    return pending_.empty() && !in_flight();
}

bool scheduler::in_flight() const noexcept {
    return std::any_of(workers_.begin(), workers_.end(),
                       [](const worker_state& w) { return !w.queue.empty(); });
}

bool scheduler::all_stopped() const noexcept {
    return std::none_of(workers_.begin(), workers_.end(),
                        [](const worker_state& w) { return w.alive; });
}

bool scheduler::work_ready() {
    for (worker_state& w : workers_) {
        if (!w.alive || w.condemned)
            continue;
        if (transport_.has_input(w.index))
            return true;
        const bool has_output =
            transport_.sending(w.index) || w.initializer_unsent || w.sent < w.queue.size();
        if (has_output && transport_.can_send(w.index))
            return true;
    }
    return false;
}

bool scheduler::only_chunks_of(const result_sink& sink) const noexcept {
    const auto ours = [&](const outgoing_chunk& c) { return c.sink.get() == &sink; };
    if (!std::all_of(pending_.begin(), pending_.end(), ours))
        return false;
    return std::all_of(workers_.begin(), workers_.end(), [&](const worker_state& w) {
        return std::all_of(w.queue.begin(), w.queue.end(),
                           [&](const dispatched& d) { return ours(d.chunk); });
    });
}

} // namespace procpool::detail
