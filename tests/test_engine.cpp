// The engine's lifecycle (libpool/src/detail/engine.hpp) over a fake transport, without an io
// thread: the test runs the io loop a turn at a time (turn_io), so close, join and terminate
// happen in an order the test chooses. No process, no thread, no sleep, no timing.
#define PROCPOOL_TEST_SUITE_NAME "engine"
#include "test_main.hpp"

#include "../libpool/src/detail/engine.hpp"
#include "fake_transport.hpp"

#include <procpool/errors.hpp>

#include <csignal>
#include <memory>
#include <vector>

using namespace procpool::detail;
using procpool::test::exited_with;
using procpool::test::fake_transport;
using procpool::test::killed_by;
using procpool::test::recording_sink;
using procpool::test::tagged_frame;
using procpool::test::what;

namespace {

/// An engine of `n` fake workers and no io thread; `workers` is its transport.
struct bench {
    explicit bench(std::uint32_t n)
        : core(
              procpool::pool_options{.processes = n},
              [this, n](transport_options how) {
                  auto fake = std::make_unique<fake_transport>(n);
                  fake->on_exit = std::move(how.on_exit);
                  workers = fake.get();
                  return fake;
              },
              false) {}

    void submit(std::uint32_t first, std::uint32_t count,
                const std::shared_ptr<recording_sink>& sink, bool from_stream = false) {
        std::vector<outgoing_chunk> chunks;
        for (std::uint32_t tag = first; tag < first + count; ++tag)
            chunks.push_back({tagged_frame(tag), sink, tag});
        core.submit(std::move(chunks), from_stream);
    }
    /// Runs io turns while they move something.
    void settle() {
        while (core.turn_io()) {
        }
    }
    /// Every worker answers everything it holds.
    void answer_all() {
        for (std::uint32_t i = 0; i < workers->size(); ++i)
            while (!workers->workers[i].inbox.empty())
                workers->answer(i);
    }
    /// Every worker that was asked to leave does, cleanly.
    void leave_when_asked() {
        for (std::uint32_t i = 0; i < workers->size(); ++i) {
            auto& w = workers->workers[i];
            if (w.stop_asked && w.running) {
                w.left_cleanly = true;
                workers->report_death(i, exited_with(0), false);
            }
        }
    }

    fake_transport* workers = nullptr;
    engine core;
};

/// An imap's input as the engine sees it: counts how often join() asked for the rest.
struct counting_input final : stream_input {
    void read_rest() noexcept override { ++reads; }
    int reads = 0;
};

bool all_asked_to_stop(const fake_transport& t) {
    for (const auto& w : t.workers)
        if (!w.stop_asked)
            return false;
    return true;
}

} // namespace

BOOST_AUTO_TEST_CASE(join_before_close_or_terminate_is_a_state_error) {
    bench b(2);
    BOOST_CHECK_THROW(b.core.join(), procpool::state_error);
    BOOST_TEST(b.workers->shut_down == 0); // nothing was ended
}

BOOST_AUTO_TEST_CASE(close_lets_every_submitted_task_finish_then_stops_the_workers) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 5, sink);
    b.core.close();
    BOOST_CHECK_THROW(b.submit(5, 1, sink), procpool::state_error); // closed: no new work
    b.settle();
    BOOST_TEST(!all_asked_to_stop(*b.workers)); // work is left: nobody is told to leave
    for (int round = 0; round < 5 && sink->records.size() < 5; ++round) {
        b.answer_all();
        b.settle();
    }
    BOOST_REQUIRE(sink->records.size() == 5u);
    for (const auto& r : sink->records)
        BOOST_TEST(!r.error);
    BOOST_TEST(all_asked_to_stop(*b.workers)); // only now, with nothing left
    BOOST_TEST(!b.core.io_ended());            // they have not left yet
    b.leave_when_asked();
    b.core.join();
    BOOST_TEST(b.core.io_ended());
    BOOST_TEST(b.workers->shut_down == 1);
    BOOST_TEST(b.workers->killed_all == 0);                               // a clean end
    BOOST_TEST((b.workers->started == std::vector<std::uint32_t>{0, 1})); // none replaced
}

BOOST_AUTO_TEST_CASE(a_worker_lost_while_closing_is_not_replaced_and_its_task_fails_once) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink);
    b.core.close();
    b.settle();
    b.workers->answer(1);
    b.workers->report_death(0, killed_by(SIGKILL)); // mid-task
    b.settle();
    BOOST_REQUIRE(sink->records.size() == 2u);
    BOOST_TEST(sink->count(0) == 1u);
    BOOST_TEST(sink->count(1) == 1u);
    for (const auto& r : sink->records) {
        if (r.chunk == 0)
            BOOST_TEST(what(r.error).find("while running a task") != std::string::npos);
        else
            BOOST_TEST(!r.error);
    }
    // A closed pool still replaces a crashed worker until it winds down; once idle, it stops.
    b.settle();
    b.leave_when_asked();
    b.core.join();
    BOOST_TEST(b.core.io_ended());
}

BOOST_AUTO_TEST_CASE(terminate_fails_every_unfinished_task_kills_and_hands_over_sent_frames) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 4, sink); // 2 sent (the window), 2 pending
    b.settle();
    b.workers->answer(0); // one done before the end
    b.settle();
    b.core.terminate();
    BOOST_REQUIRE(sink->records.size() == 4u);
    for (std::size_t chunk = 0; chunk < 4; ++chunk)
        BOOST_TEST(sink->count(chunk) == 1u);
    BOOST_TEST(!sink->records[0].error);
    for (std::size_t i = 1; i < 4; ++i)
        BOOST_TEST(what(sink->records[i].error).find("terminated") != std::string::npos);
    BOOST_TEST(b.workers->killed_all == 1);
    BOOST_TEST(b.workers->shut_down == 1);
    BOOST_TEST(b.workers->adopted == 2u); // the frames the worker may still be reading
    BOOST_CHECK_THROW(b.submit(4, 1, sink), procpool::state_error);
    b.core.terminate();                     // idempotent
    b.core.join();                          // after terminate: returns
    BOOST_TEST(b.workers->killed_all == 1); // the io loop ended once, at the first terminate
}

BOOST_AUTO_TEST_CASE(terminate_after_close_fails_what_close_was_waiting_for) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 1, sink);
    b.core.close();
    b.settle();
    b.core.terminate();
    BOOST_REQUIRE(sink->records.size() == 1u);
    BOOST_TEST(what(sink->records[0].error).find("terminated") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_open_stream_keeps_a_closed_pool_working_until_it_closes) {
    bench b(1);
    auto stream = std::make_shared<counting_input>();
    const std::uint64_t id = b.core.open_stream(stream);
    auto sink = std::make_shared<recording_sink>();
    b.core.close();
    b.submit(0, 1, sink, true); // the rest of an open stream: still taken
    b.settle();
    b.workers->answer(0);
    b.settle();
    BOOST_TEST(sink->records.size() == 1u);
    BOOST_TEST(!all_asked_to_stop(*b.workers)); // the stream may bring more
    b.core.close_stream(id);
    b.settle();
    BOOST_TEST(all_asked_to_stop(*b.workers));
    b.leave_when_asked();
    b.core.join();
    BOOST_TEST(stream->reads == 0); // closed before join: nothing left to read
    BOOST_TEST(b.core.io_ended());
}

BOOST_AUTO_TEST_CASE(join_reads_the_rest_of_every_open_stream) {
    bench b(1);
    auto stream = std::make_shared<counting_input>();
    b.core.open_stream(stream);
    b.core.close();
    b.core.join(); // the stream stays open (it never closes itself): the io turns go idle
    BOOST_TEST(stream->reads == 1);
}

BOOST_AUTO_TEST_CASE(a_pool_failure_fails_every_task_and_every_later_call) {
    bench b(2);
    b.workers->can_kill = false; // so a corrupt frame fails the pool
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 3, sink);
    b.settle();
    b.workers->publish(0, {'x'}); // shorter than a result header
    b.settle();
    BOOST_REQUIRE(sink->records.size() == 3u);
    for (const auto& r : sink->records)
        BOOST_TEST(what(r.error).find("corrupt frame") != std::string::npos);
    BOOST_TEST(b.workers->killed_all == 1);
    try {
        b.submit(3, 1, sink);
        BOOST_ERROR("a failed pool took a task");
    } catch (const procpool::error& e) {
        BOOST_TEST(std::string(e.what()).find("corrupt frame") != std::string::npos);
    }
    BOOST_TEST(b.core.worker_pids().empty());
}

BOOST_AUTO_TEST_CASE(a_worker_that_sends_a_corrupt_frame_costs_its_tasks_only) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink); // one chunk each
    b.settle();
    b.workers->publish(0, {'x'});
    b.settle();
    BOOST_TEST(b.workers->workers[0].killed);
    b.workers->report_death(0, killed_by(SIGKILL)); // what its SIGKILL brings
    b.workers->answer(1);
    b.settle();
    BOOST_REQUIRE(sink->records.size() == 2u);
    for (const auto& r : sink->records)
        BOOST_TEST(static_cast<bool>(r.error) == (r.chunk == 0));
    b.submit(2, 2, sink); // the pool goes on, with a replacement
    b.settle();
    b.answer_all();
    b.settle();
    BOOST_TEST(sink->records.size() == 4u);
    BOOST_TEST(b.workers->started.size() == 3u);
    BOOST_TEST(b.workers->killed_all == 0);
    b.core.close();
    b.settle();
    b.leave_when_asked();
    b.core.join();
    BOOST_TEST(b.core.io_ended());
}

BOOST_AUTO_TEST_CASE(an_exception_escaping_an_io_turn_fails_the_pool_and_leaves_no_thread) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink);
    b.settle();
    b.workers->before_receive = [] { throw 42; }; // not even a std::exception
    b.workers->answer(0);
    b.settle();
    BOOST_REQUIRE(sink->records.size() == 2u);
    for (const auto& r : sink->records)
        BOOST_CHECK_THROW(std::rethrow_exception(r.error), int);
    BOOST_TEST(b.core.io_ended());
    BOOST_TEST(b.workers->killed_all == 1);
    BOOST_CHECK_THROW(b.submit(2, 1, sink), int); // the pool's failure, for every later call
}

BOOST_AUTO_TEST_CASE(worker_pids_lists_the_running_workers_until_the_end) {
    bench b(3);
    BOOST_TEST(b.core.worker_pids().size() == 3u);
    b.core.terminate();
    BOOST_TEST(b.core.worker_pids().empty());
}
