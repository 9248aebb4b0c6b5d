// The scheduler (libpool/src/detail/scheduler.hpp) driven step by step through a fake
// transport (fake_transport.hpp): dispatch order and windows, results delivered once, stalls,
// requeue after a death with exactly one failure for the lost task, the start-failure policy,
// maxtasksperchild, stop and fail_everything. No process, no thread, no sleep, no timing.
#define PROCPOOL_TEST_SUITE_NAME "scheduler"
#include "test_main.hpp"

#include "../libpool/src/detail/scheduler.hpp"
#include "fake_transport.hpp"

#include "../libpool/src/detail/frame_spares.hpp"

#include <csignal>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace procpool::detail;
using procpool::test::exited_with;
using procpool::test::fake_transport;
using procpool::test::killed_by;
using procpool::test::recording_sink;
using procpool::test::tagged_frame;
using procpool::test::what;

namespace {

/// A scheduler over a fake transport of `n` workers, its failures recorded.
struct bench {
    explicit bench(std::uint32_t n, std::uint64_t max_tasks = 0,
                   std::shared_ptr<const std::vector<char>> initializer = nullptr)
        : workers(n)
        , sched(workers, std::move(initializer), max_tasks,
                std::make_shared<frame_spares>(8, std::size_t{64} << 20, 4),
                [this](std::exception_ptr e) { failures.push_back(std::move(e)); }) {
        sched.start_all();
    }

    /// Queues chunks tagged first, first + 1, ... of `sink`, chunk index = tag.
    void submit(std::uint32_t first, std::uint32_t count,
                const std::shared_ptr<recording_sink>& sink) {
        for (std::uint32_t tag = first; tag < first + count; ++tag)
            sched.enqueue(outgoing_chunk{tagged_frame(tag), sink, tag});
    }
    /// One turn of the io thread's loop.
    void turn() {
        sched.drain_all();
        sched.dispatch();
        sched.feed_all();
    }

    fake_transport workers;
    std::vector<std::exception_ptr> failures;
    scheduler sched;
};

using tags = std::vector<std::uint64_t>;

} // namespace

BOOST_AUTO_TEST_CASE(starts_every_worker_once_in_order) {
    bench b(3);
    BOOST_TEST((b.workers.started == std::vector<std::uint32_t>{0, 1, 2}));
    BOOST_TEST(b.sched.idle());
    BOOST_TEST(!b.sched.all_stopped());
}

BOOST_AUTO_TEST_CASE(dispatch_gives_each_chunk_to_the_worker_holding_fewest_lowest_first) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 4, sink);
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{0, 2}), boost::test_tools::per_element());
    BOOST_TEST(b.workers.tags(1) == (tags{1, 3}), boost::test_tools::per_element());
    // Task ids follow dispatch order, from 1.
    BOOST_TEST(b.workers.task_ids(0) == (tags{1, 3}), boost::test_tools::per_element());
    BOOST_TEST(b.workers.task_ids(1) == (tags{2, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_worker_holds_no_more_than_the_window_until_it_answers) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    BOOST_TEST(b.sched.window() == flow::min_window); // nothing measured yet
    b.submit(0, 10, sink);
    b.turn();
    BOOST_TEST(b.sched.queued(0) == flow::min_window);
    BOOST_TEST(b.sched.queued(1) == flow::min_window);
    BOOST_TEST(b.sched.has_pending());
    b.workers.answer(0, 10'000'000); // 10 ms a chunk: the window stays at its least
    b.turn();
    BOOST_TEST(b.sched.window() == flow::min_window);
    BOOST_TEST(b.workers.tags(0) == (tags{2, 4}), boost::test_tools::per_element());
    BOOST_TEST(b.sched.queued(1) == flow::min_window);
}

BOOST_AUTO_TEST_CASE(the_window_widens_when_chunks_prove_quick) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 200, sink);
    b.turn();
    for (int i = 0; i < 50; ++i) {
        b.workers.answer(0, 10'000); // 10 us a chunk: about 100 of them make 1 ms
        b.turn();
    }
    BOOST_TEST(b.sched.window() > flow::min_window * 10);
    BOOST_TEST(b.sched.window() <= flow::max_window);
    BOOST_TEST(b.sched.queued(0) == std::min<std::size_t>(b.sched.window(), 150));
}

BOOST_AUTO_TEST_CASE(each_result_completes_its_chunk_once_in_the_order_answered) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 4, sink);
    b.turn();
    b.workers.answer(1, 1000, 1, {'b'});
    b.workers.answer(0, 1000, 1, {'a'});
    b.turn();
    b.workers.answer(0);
    b.workers.answer(1);
    b.turn();
    BOOST_REQUIRE(sink->records.size() == 4u);
    BOOST_TEST(sink->records[0].chunk == 0u); // worker 0 is drained first
    BOOST_TEST(sink->records[0].results == "a");
    BOOST_TEST(sink->records[1].chunk == 1u);
    BOOST_TEST(sink->records[1].results == "b");
    for (std::size_t chunk = 0; chunk < 4; ++chunk)
        BOOST_TEST(sink->count(chunk) == 1u);
    BOOST_TEST(b.sched.idle());
    BOOST_TEST(b.failures.empty());
}

BOOST_AUTO_TEST_CASE(a_stalled_worker_is_given_chunks_but_takes_them_only_once_it_moves) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.workers.workers[0].stalled = true;
    b.submit(0, 2, sink);
    b.turn();
    BOOST_TEST(b.sched.queued(0) == 2u);   // given
    BOOST_TEST(b.workers.tags(0).empty()); // not taken
    BOOST_TEST(!b.sched.work_ready());     // nothing the io thread could do: it may sleep
    b.workers.workers[0].stalled = false;
    BOOST_TEST(b.sched.work_ready());
    BOOST_TEST(b.sched.feed(0));
    BOOST_TEST(b.workers.tags(0) == (tags{0, 1}), boost::test_tools::per_element());
    BOOST_TEST(!b.sched.work_ready());
    b.workers.answer(0);
    BOOST_TEST(b.sched.work_ready()); // a result to read
}

BOOST_AUTO_TEST_CASE(a_lost_worker_fails_its_running_task_once_and_its_others_run_first_after) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 6, sink); // worker 0: 0, 2; worker 1: 1, 3; pending: 4, 5
    b.turn();
    b.workers.answer(0); // chunk 0 done; worker 0 then holds 2 and 4
    b.turn();
    BOOST_REQUIRE(b.workers.tags(0) == (tags{2, 4}));
    const int pid = b.workers.workers[0].pid;
    const worker_exit report = b.workers.die(0, killed_by(SIGKILL)); // while running chunk 2
    b.sched.on_exit(report);
    // Chunk 2 failed, once, with worker_lost_error naming the worker and the signal.
    BOOST_TEST(sink->count(2) == 1u);
    bool lost = false;
    for (const auto& r : sink->records) {
        if (r.chunk != 2)
            continue;
        try {
            std::rethrow_exception(r.error);
        } catch (const procpool::worker_lost_error& e) {
            lost = true;
            BOOST_TEST(e.pid() == pid);
            BOOST_TEST(e.signal().value_or(0) == SIGKILL);
            BOOST_TEST(!e.exit_code().has_value());
        }
    }
    BOOST_TEST(lost);
    // A replacement started in the same slot; chunk 4, unstarted, goes before chunk 5.
    BOOST_TEST((b.workers.started == std::vector<std::uint32_t>{0, 1, 0}));
    BOOST_TEST(b.sched.alive(0));
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{4, 5}), boost::test_tools::per_element());
    b.workers.answer(0);
    b.workers.answer(0);
    b.workers.answer(1);
    b.workers.answer(1);
    b.turn();
    for (std::size_t chunk = 0; chunk < 6; ++chunk)
        BOOST_TEST(sink->count(chunk) == 1u, "chunk " << chunk);
    BOOST_TEST(b.sched.idle());
    BOOST_TEST(b.failures.empty());
}

BOOST_AUTO_TEST_CASE(results_a_dying_worker_published_count_before_its_loss) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink);
    b.turn();
    b.workers.answer(0); // published, not yet read
    const worker_exit report = b.workers.die(0, killed_by(SIGSEGV));
    b.sched.on_exit(report);
    BOOST_REQUIRE(sink->records.size() == 2u);
    BOOST_TEST(sink->records[0].chunk == 0u);
    BOOST_TEST(!sink->records[0].error);
    BOOST_TEST(sink->records[1].chunk == 1u);
    BOOST_TEST(what(sink->records[1].error).find("while running a task") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_exit_report_for_a_replaced_worker_is_ignored) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 1, sink);
    b.turn();
    b.workers.answer(0);
    b.turn();
    const worker_exit first = b.workers.die(0, exited_with(3), false);
    b.sched.on_exit(first);
    BOOST_REQUIRE(b.workers.started.size() == 2u);
    b.sched.on_exit(first); // again: the slot has a new pid now
    BOOST_TEST(b.workers.started.size() == 2u);
    BOOST_TEST(b.sched.alive(0));
    BOOST_TEST(sink->records.size() == 1u);
}

BOOST_AUTO_TEST_CASE(workers_that_keep_dying_before_ready_fail_the_pool_once) {
    bench b(1);
    for (int i = 1; i < scheduler::max_start_failures; ++i) {
        b.sched.on_exit(b.workers.die(0, exited_with(1), false));
        BOOST_TEST(b.failures.empty());
        BOOST_TEST(b.sched.alive(0)); // replaced
    }
    b.sched.on_exit(b.workers.die(0, exited_with(1), false));
    BOOST_REQUIRE(b.failures.size() == 1u);
    BOOST_TEST(what(b.failures[0]).find("keep dying before they are ready") != std::string::npos);
    BOOST_TEST(b.workers.started.size() == std::size_t(scheduler::max_start_failures));
}

BOOST_AUTO_TEST_CASE(a_worker_that_answered_resets_the_start_failure_count) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    for (int round = 0; round < 3; ++round) {
        for (int i = 1; i < scheduler::max_start_failures; ++i)
            b.sched.on_exit(b.workers.die(0, exited_with(1), false));
        b.submit(round, 1, sink);
        b.turn();
        b.workers.answer(0); // this one got ready: the count starts again
        b.turn();
    }
    BOOST_TEST(b.failures.empty());
    BOOST_TEST(sink->records.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_replacement_that_cannot_start_fails_the_pool) {
    bench b(2);
    b.workers.workers[0].was_ready = true; // a crash after its start: not a start failure
    b.workers.workers[0].refuse_starts = 1;
    b.sched.on_exit(b.workers.die(0, killed_by(SIGKILL), false));
    BOOST_REQUIRE(b.failures.size() == 1u);
    BOOST_TEST(what(b.failures[0]).find("refused to start") != std::string::npos);
    BOOST_TEST(!b.sched.alive(0));
    BOOST_TEST(b.sched.alive(1));
}

namespace {

/// A result frame as a worker would send it, with the fields a test sets.
std::vector<char> result_frame(const result_header& header, std::string_view payload = "r") {
    std::vector<char> frame(sizeof header);
    std::memcpy(frame.data(), &header, sizeof header);
    frame.insert(frame.end(), payload.begin(), payload.end());
    return frame;
}

/// Worker 0 of two, holding chunks 0 and 2 (worker 1: 1 and 3), sends `frame`: it is killed,
/// both its chunks fail once with worker_lost_error naming the corruption, worker 1's complete,
/// nothing fails the pool, and its exit report brings a replacement that takes new work.
void check_condemned(const std::vector<char>& frame, const std::string& cause) {
    BOOST_TEST_CONTEXT("a corrupt frame: " << cause) {
        bench b(2);
        auto sink = std::make_shared<recording_sink>();
        b.submit(0, 4, sink);
        b.turn();
        const int pid = b.workers.workers[0].pid;
        b.workers.publish(0, frame);
        b.workers.answer(0); // what it sends after the corrupt frame is not read
        b.turn();
        BOOST_TEST(b.workers.workers[0].killed);
        BOOST_TEST(b.failures.empty());
        for (std::size_t chunk : {0, 2}) {
            BOOST_TEST(sink->count(chunk) == 1u);
            for (const auto& r : sink->records) {
                if (r.chunk != chunk)
                    continue;
                try {
                    std::rethrow_exception(r.error);
                } catch (const procpool::worker_lost_error& e) {
                    BOOST_TEST(e.pid() == pid);
                    const std::string message = e.what();
                    BOOST_TEST(message.find("sent a corrupt frame") != std::string::npos);
                    BOOST_TEST(message.find(cause) != std::string::npos, message);
                } catch (...) {
                    BOOST_ERROR("not a worker_lost_error: " << what(r.error));
                }
            }
        }
        BOOST_TEST(b.sched.queued(0) == 0u);
        b.submit(4, 2, sink);
        b.turn();
        BOOST_TEST(b.sched.queued(0) == 0u); // a condemned worker gets no new chunk
        b.workers.answer(1);
        b.workers.answer(1);
        b.turn();
        b.sched.on_exit(b.workers.die(0, killed_by(SIGKILL)));
        BOOST_TEST((b.workers.started == std::vector<std::uint32_t>{0, 1, 0}));
        b.workers.answer(1); // chunks 4 and 5, which worker 1 took meanwhile
        b.workers.answer(1);
        b.submit(6, 1, sink);
        b.turn();
        BOOST_TEST(b.workers.tags(0) == (tags{6}), boost::test_tools::per_element());
        b.workers.answer(0);
        b.turn();
        for (std::size_t chunk = 0; chunk < 7; ++chunk)
            BOOST_TEST(sink->count(chunk) == 1u, "chunk " << chunk);
        for (const auto& r : sink->records)
            if (r.chunk != 0 && r.chunk != 2)
                BOOST_TEST(!r.error, "chunk " << r.chunk);
        BOOST_TEST(b.failures.empty());
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(a_worker_that_sends_a_corrupt_frame_is_killed_and_only_its_chunks_fail) {
    check_condemned({'x', 'y'}, "shorter than a result header");

    result_header forged;
    forged.task_id = 99;
    forged.ok_count = 1;
    check_condemned(result_frame(forged), "which it was not given or not next");

    result_header later; // the worker's second chunk answered first
    later.task_id = 3;
    later.ok_count = 1;
    check_condemned(result_frame(later), "which it was not given or not next");

    result_header kind;
    kind.task_id = 1;
    kind.ok_count = 1;
    kind.kind = frame_kind(7);
    check_condemned(result_frame(kind), "unknown kind 7");

    result_header counts;
    counts.task_id = 1;
    counts.ok_count = 1'000'000'000;
    check_condemned(result_frame(counts), "1000000000 results for a chunk of 1 items");

    result_header none;
    none.task_id = 1;
    none.ok_count = 0; // a chunk that succeeded has a result per item
    check_condemned(result_frame(none), "0 results for a chunk of 1 items");

    result_header record;
    record.task_id = 1;
    record.failed = 1;
    record.error_offset = 1u << 30;
    check_condemned(result_frame(record), "error record out of the frame's bounds");

    result_header flag;
    flag.task_id = 1;
    flag.ok_count = 1;
    flag.failed = 2;
    check_condemned(result_frame(flag), "error record out of the frame's bounds");

    result_header init;
    init.kind = frame_kind::initializer_done;
    check_condemned(result_frame(init), "with no initializer");
}

BOOST_AUTO_TEST_CASE(a_frame_the_parent_cannot_allocate_condemns_its_worker) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink);
    b.turn();
    b.workers.before_receive = [] { throw std::bad_alloc(); }; // as a length of 2^62 would
    b.workers.answer(0);
    b.turn();
    BOOST_TEST(b.workers.workers[0].killed);
    BOOST_TEST(b.failures.empty());
    BOOST_REQUIRE(sink->count(0) == 1u);
    BOOST_TEST(what(sink->records[0].error).find("could not read") != std::string::npos);
    b.workers.before_receive = nullptr;
    b.workers.answer(1);
    b.turn();
    BOOST_TEST(sink->count(1) == 1u);
}

BOOST_AUTO_TEST_CASE(a_corrupt_frame_fails_the_pool_when_the_transport_cannot_kill_one_worker) {
    bench b(2);
    b.workers.can_kill = false; // the "mpi" context: a rank cannot end alone
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink);
    b.turn();
    b.workers.publish(0, {'x'});
    b.turn();
    BOOST_REQUIRE(b.failures.size() == 1u);
    BOOST_TEST(what(b.failures[0]).find("sent a corrupt frame") != std::string::npos);
    BOOST_TEST(sink->records.empty()); // the engine fails them all (fail_everything)
}

BOOST_AUTO_TEST_CASE(the_initializer_goes_first_to_every_worker_and_to_each_replacement) {
    auto init =
        std::make_shared<const std::vector<char>>(tagged_frame(77, frame_kind::initializer));
    bench b(2, 0, init);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 2, sink);
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{77, 0}), boost::test_tools::per_element());
    BOOST_TEST(b.workers.tags(1) == (tags{77, 1}), boost::test_tools::per_element());
    b.workers.answer(0); // initializer_done
    b.turn();
    b.sched.on_exit(b.workers.die(0, killed_by(SIGKILL))); // while running chunk 0
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{77}), boost::test_tools::per_element());
    BOOST_TEST(sink->count(0) == 1u);
    BOOST_TEST(b.failures.empty());
}

BOOST_AUTO_TEST_CASE(maxtasksperchild_caps_the_chunks_given_to_one_process) {
    bench b(1, 2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 3, sink);
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{0, 1}), boost::test_tools::per_element());
    b.workers.answer(0);
    b.workers.answer(0);
    b.turn();
    BOOST_TEST(b.sched.queued(0) == 0u); // its quota is spent: chunk 2 waits for a new process
    BOOST_TEST(b.sched.has_pending());
    b.workers.workers[0].left_cleanly = true;
    b.sched.on_exit(b.workers.die(0, exited_with(0), false));
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{2}), boost::test_tools::per_element());
    BOOST_TEST(b.workers.started.size() == 2u);
    BOOST_TEST(b.failures.empty());
}

BOOST_AUTO_TEST_CASE(fail_everything_completes_each_chunk_once_and_hands_over_sent_frames) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 7, sink); // 2 + 2 held, 3 pending
    b.turn();
    b.sched.fail_everything(std::make_exception_ptr(procpool::state_error("gone")));
    BOOST_REQUIRE(sink->records.size() == 7u);
    for (std::size_t chunk = 0; chunk < 7; ++chunk)
        BOOST_TEST(sink->count(chunk) == 1u);
    for (const auto& r : sink->records)
        BOOST_TEST(what(r.error) == "gone");
    BOOST_TEST(b.workers.adopted == 4u); // the frames the workers may still be reading
    BOOST_TEST(b.sched.idle());
}

BOOST_AUTO_TEST_CASE(stopped_workers_get_no_chunk_and_are_not_replaced) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.sched.stop_workers();
    BOOST_TEST(b.workers.workers[0].stop_asked);
    BOOST_TEST(b.workers.workers[1].stop_asked);
    b.submit(0, 1, sink);
    b.turn();
    BOOST_TEST(b.sched.queued(0) + b.sched.queued(1) == 0u);
    b.workers.workers[0].left_cleanly = b.workers.workers[1].left_cleanly = true;
    b.sched.on_exit(b.workers.die(0, exited_with(0), false));
    BOOST_TEST(!b.sched.all_stopped());
    b.sched.on_exit(b.workers.die(1, exited_with(0), false));
    BOOST_TEST(b.sched.all_stopped());
    BOOST_TEST(b.workers.started.size() == 2u);
}

BOOST_AUTO_TEST_CASE(only_chunks_of_sees_pending_and_held_chunks) {
    bench b(1);
    auto mine = std::make_shared<recording_sink>();
    auto other = std::make_shared<recording_sink>();
    BOOST_TEST(b.sched.only_chunks_of(*mine)); // an empty pool holds nobody else's
    b.submit(0, 1, mine);
    b.turn();
    BOOST_TEST(b.sched.only_chunks_of(*mine));
    b.submit(1, 1, other); // pending
    BOOST_TEST(!b.sched.only_chunks_of(*mine));
    b.turn(); // held
    BOOST_TEST(!b.sched.only_chunks_of(*mine));
    b.workers.answer(0);
    b.workers.answer(0);
    b.turn();
    BOOST_TEST(b.sched.only_chunks_of(*mine));
}

// ---- timeouts (check_deadlines): the time is the test's, no clock is read ----

namespace {

using clock_type = scheduler::clock;
constexpr auto timeout = std::chrono::milliseconds(100);

outgoing_chunk timed_chunk(std::uint32_t tag, const std::shared_ptr<recording_sink>& sink) {
    outgoing_chunk chunk{tagged_frame(tag), sink, tag};
    chunk.limits.timeout = timeout;
    return chunk;
}

bool timed_out(const recording_sink::record& r) {
    try {
        std::rethrow_exception(r.error);
    } catch (const procpool::task_timeout_error& e) {
        return e.timeout() == timeout;
    } catch (...) {
        return false;
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(a_timed_chunk_fails_at_its_deadline_and_its_worker_is_killed_after_the_grace) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.sched.enqueue(timed_chunk(0, sink));
    b.sched.enqueue(outgoing_chunk{tagged_frame(1), sink, 1}); // behind it, untimed
    b.turn();
    BOOST_TEST(b.sched.watching());
    const clock_type::time_point t0 = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.begin(0, t0);
    BOOST_TEST((b.sched.check_deadlines(t0 + timeout / 2) == t0 + timeout));
    BOOST_TEST(sink->records.empty());
    BOOST_TEST(!b.workers.workers[0].terminated);

    const auto kill_at = b.sched.check_deadlines(t0 + timeout);
    BOOST_TEST((kill_at == t0 + timeout + scheduler::kill_grace));
    BOOST_REQUIRE(sink->records.size() == 1u);
    BOOST_TEST(sink->records[0].chunk == 0u);
    BOOST_TEST(timed_out(sink->records[0]));
    BOOST_TEST(b.workers.workers[0].terminated);
    BOOST_TEST(!b.workers.workers[0].killed);
    b.sched.dispatch();
    BOOST_TEST(b.sched.queued(0) == 2u); // a doomed worker is given nothing more

    b.sched.check_deadlines(kill_at); // SIGTERM was not enough
    BOOST_TEST(b.workers.workers[0].killed);
    BOOST_TEST(!b.sched.watching());

    // It dies in the timed-out task: that chunk is not failed again; the other is run again.
    b.sched.on_exit(b.workers.die(0, killed_by(SIGKILL)));
    BOOST_TEST((b.workers.started == std::vector<std::uint32_t>{0, 0}));
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{1}), boost::test_tools::per_element());
    b.workers.answer(0);
    b.turn();
    BOOST_TEST(sink->count(0) == 1u);
    BOOST_TEST(sink->count(1) == 1u);
    BOOST_TEST(!sink->records[1].error);
    BOOST_TEST(b.sched.idle());
}

BOOST_AUTO_TEST_CASE(an_answer_after_the_timeout_is_dropped) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.sched.enqueue(timed_chunk(0, sink));
    b.turn();
    const clock_type::time_point t0 = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.begin(0, t0);
    b.sched.check_deadlines(t0 + timeout);
    b.workers.answer(0); // it finished just as it was timed out
    b.turn();
    BOOST_TEST(sink->records.size() == 1u);
    BOOST_TEST(timed_out(sink->records[0]));
    BOOST_TEST(b.failures.empty()); // not a corrupt frame: the chunk was its to answer
    b.sched.on_exit(b.workers.die(0, killed_by(SIGTERM), false));
    BOOST_TEST(sink->records.size() == 1u);
    BOOST_TEST(b.sched.idle());
}

BOOST_AUTO_TEST_CASE(time_a_timed_chunk_waits_behind_another_does_not_count) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.sched.enqueue(outgoing_chunk{tagged_frame(0), sink, 0}); // untimed, runs first
    b.sched.enqueue(timed_chunk(1, sink));
    b.turn();
    const clock_type::time_point t0 = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.begin(0, t0);
    const auto later = t0 + std::chrono::minutes(10);
    const auto next = b.sched.check_deadlines(later);
    BOOST_TEST(sink->records.empty());
    // It looks again within an eighth of the timeout, to see the timed one start.
    BOOST_TEST((next > later && next <= later + timeout / 8));
    b.workers.answer(0);
    b.turn();
    b.workers.begin(0, later); // the timed one starts now
    BOOST_TEST((b.sched.check_deadlines(later + timeout / 2) == later + timeout));
    BOOST_TEST(sink->records.size() == 1u); // only the untimed one's result
}

BOOST_AUTO_TEST_CASE(a_start_stamp_in_the_future_cannot_put_off_a_timeout) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.sched.enqueue(timed_chunk(0, sink));
    b.turn();
    const clock_type::time_point t0 = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.begin(0, t0 + std::chrono::hours(1000)); // garbage a task wrote over its slot
    b.sched.check_deadlines(t0);                       // first seen running now
    b.sched.check_deadlines(t0 + timeout);
    BOOST_REQUIRE(sink->records.size() == 1u);
    BOOST_TEST(timed_out(sink->records[0]));
}

// ---- cancellation ----

namespace {

bool cancelled(const recording_sink::record& r) {
    try {
        std::rethrow_exception(r.error);
    } catch (const procpool::cancelled_error&) {
        return true;
    } catch (...) {
        return false;
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(cancel_completes_every_chunk_of_the_sink_once_and_drops_their_answers) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    auto other = std::make_shared<recording_sink>();
    b.submit(0, 4, sink); // two sent (the window), two pending
    b.sched.enqueue(outgoing_chunk{tagged_frame(9), other, 9});
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{0, 1}), boost::test_tools::per_element());
    const auto now = clock_type::time_point{} + std::chrono::hours(1);
    b.sched.cancel(*sink, now);
    BOOST_TEST(sink->records.size() == 4u);
    for (const auto& r : sink->records)
        BOOST_TEST(cancelled(r));
    // The worker is asked to skip both frames it was sent; it is not killed: neither started.
    BOOST_TEST((b.workers.workers[0].skips == std::set<std::uint64_t>{0, 1}));
    BOOST_TEST(!b.workers.workers[0].terminated);
    BOOST_TEST(!b.sched.watching());
    // One it ran anyway (it had begun reading it), one it skipped: both answers are dropped.
    b.workers.answer(0);
    b.workers.skip_oldest(0);
    b.turn();
    BOOST_TEST(sink->records.size() == 4u);
    BOOST_TEST(b.failures.empty());
    BOOST_TEST(b.workers.workers[0].skips.empty()); // each mark went with its answer
    // The other sink's chunk was not touched, and runs next.
    BOOST_TEST(b.workers.tags(0) == (tags{9}), boost::test_tools::per_element());
    b.workers.answer(0);
    b.turn();
    BOOST_TEST(other->records.size() == 1u);
    BOOST_TEST(!other->records[0].error);
    BOOST_TEST(b.sched.idle());
}

BOOST_AUTO_TEST_CASE(cancelling_a_chunk_its_worker_runs_kills_that_worker) {
    bench b(2);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 1, sink);
    b.turn();
    const auto now = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.begin(0, now);
    b.sched.cancel(*sink, now);
    BOOST_TEST(b.workers.workers[0].terminated);
    BOOST_TEST(!b.workers.workers[1].terminated);
    BOOST_REQUIRE(sink->records.size() == 1u);
    BOOST_TEST(cancelled(sink->records[0]));
    b.sched.on_exit(b.workers.die(0, killed_by(SIGTERM)));
    BOOST_TEST(sink->records.size() == 1u); // not failed again as lost
    BOOST_TEST((b.workers.started == std::vector<std::uint32_t>{0, 1, 0}));
}

BOOST_AUTO_TEST_CASE(a_worker_deciding_whether_to_skip_is_watched_until_it_has) {
    for (bool runs_it : {true, false}) {
        BOOST_TEST_CONTEXT("runs it " << runs_it) {
            bench b(1);
            auto sink = std::make_shared<recording_sink>();
            b.submit(0, 1, sink);
            b.turn();
            const auto now = clock_type::time_point{} + std::chrono::hours(1);
            b.workers.begin(0, now);
            b.workers.workers[0].confirmed = false; // it has the task, not yet its skip bit
            b.sched.cancel(*sink, now);
            BOOST_TEST(!b.workers.workers[0].terminated);
            BOOST_TEST(b.sched.watching());
            const auto again = b.sched.check_deadlines(now);
            BOOST_TEST((again > now && again <= now + std::chrono::milliseconds(1)));
            if (runs_it)
                b.workers.workers[0].confirmed = true; // it missed the bit
            else
                b.workers.skip_oldest(0);
            b.sched.check_deadlines(again);
            BOOST_TEST(b.workers.workers[0].terminated == runs_it);
            b.turn();
            BOOST_TEST(b.failures.empty());
            BOOST_TEST(sink->records.size() == 1u);
            if (!runs_it) {
                BOOST_TEST(!b.sched.watching());
                BOOST_TEST(b.sched.idle());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(a_skipped_answer_for_a_task_not_cancelled_condemns_the_worker) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    b.submit(0, 1, sink);
    b.turn();
    b.workers.skip_oldest(0); // garbage: nobody cancelled it
    b.turn();
    BOOST_TEST(b.workers.workers[0].killed);
    BOOST_REQUIRE(sink->records.size() == 1u);
    BOOST_TEST(what(sink->records[0].error).find("skipped") != std::string::npos);
}

// ---- retries and restart storms ----

BOOST_AUTO_TEST_CASE(a_chunk_whose_worker_dies_runs_again_until_its_retries_are_spent) {
    bench b(1);
    auto sink = std::make_shared<recording_sink>();
    outgoing_chunk chunk{tagged_frame(0), sink, 0};
    chunk.limits.max_retries = 1;
    b.sched.enqueue(std::move(chunk));
    b.turn();
    b.workers.workers[0].was_ready = true;
    b.sched.on_exit(b.workers.die(0, killed_by(SIGSEGV)));
    BOOST_TEST(sink->records.empty()); // run again, on the replacement
    b.turn();
    BOOST_TEST(b.workers.tags(0) == (tags{0}), boost::test_tools::per_element());
    b.workers.workers[0].was_ready = true;
    b.sched.on_exit(b.workers.die(0, killed_by(SIGSEGV)));
    BOOST_REQUIRE(sink->records.size() == 1u);
    BOOST_TEST(what(sink->records[0].error).find("tried 2 times") != std::string::npos,
               what(sink->records[0].error));
    BOOST_TEST(b.sched.idle());
}

BOOST_AUTO_TEST_CASE(a_restart_storm_fails_the_rest_of_its_job_and_spares_other_work) {
    bench b(1);
    auto storming = std::make_shared<recording_sink>();
    auto other = std::make_shared<recording_sink>();
    b.submit(0, 40, storming);
    b.turn();
    std::size_t deaths = 0;
    while (storming->records.size() < 40 && deaths < 100) {
        b.workers.workers[0].was_ready = true; // each dies in a task, not in its start
        b.sched.on_exit(b.workers.die(0, killed_by(SIGKILL)));
        ++deaths;
        b.turn();
    }
    BOOST_TEST(deaths == scheduler::min_storm_deaths);
    BOOST_TEST(storming->records.size() == 40u);
    std::size_t by_storm = 0;
    for (const auto& r : storming->records)
        by_storm += what(r.error).find("restart storm") != std::string::npos;
    BOOST_TEST(by_storm == 40u - deaths); // all but those lost with their workers
    BOOST_TEST(b.failures.empty());       // the pool itself goes on
    // Later chunks of that job fail at once; another job's run.
    b.submit(40, 2, storming);
    b.sched.enqueue(outgoing_chunk{tagged_frame(99), other, 99});
    b.turn();
    BOOST_TEST(storming->records.size() == 42u);
    BOOST_TEST(b.workers.tags(0) == (tags{99}), boost::test_tools::per_element());
    b.workers.answer(0);
    b.turn();
    BOOST_TEST(other->records.size() == 1u);
    BOOST_TEST(!other->records[0].error);
}

// ---- found in review: counters and watches across cancel and timeouts ----

BOOST_AUTO_TEST_CASE(a_cancelled_timed_chunk_answered_late_leaves_the_next_one_timed) {
    bench b(1);
    auto first = std::make_shared<recording_sink>();
    auto second = std::make_shared<recording_sink>();
    b.sched.enqueue(timed_chunk(0, first));
    b.sched.enqueue(timed_chunk(1, second));
    b.turn();
    const auto t0 = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.answer(0); // it finished, its answer not yet read
    b.sched.cancel(*first, t0);
    b.turn(); // the late answer is dropped
    BOOST_TEST(first->records.size() == 1u);
    b.workers.begin(0, t0); // the second, timed, runs now
    b.sched.check_deadlines(t0 + timeout);
    BOOST_REQUIRE(second->records.size() == 1u);
    BOOST_TEST(timed_out(second->records[0]));
}

BOOST_AUTO_TEST_CASE(a_second_cancel_while_the_worker_decides_is_watched_too) {
    bench b(1);
    auto first = std::make_shared<recording_sink>();
    auto second = std::make_shared<recording_sink>();
    b.submit(0, 1, first);
    b.submit(1, 1, second);
    b.turn();
    const auto now = clock_type::time_point{} + std::chrono::hours(1);
    b.workers.begin(0, now);
    b.workers.workers[0].confirmed = false;
    b.sched.cancel(*first, now); // watched: it may run it
    b.workers.skip_oldest(0);    // it skipped it, unread yet
    b.workers.begin(0, now);     // and has the second, undecided
    b.workers.workers[0].confirmed = false;
    b.sched.cancel(*second, now);
    b.workers.workers[0].confirmed = true; // it missed the second's bit: it runs it
    b.sched.check_deadlines(now + std::chrono::milliseconds(1));
    BOOST_TEST(b.workers.workers[0].terminated);
    BOOST_TEST(first->records.size() == 1u);
    BOOST_TEST(second->records.size() == 1u);
}
