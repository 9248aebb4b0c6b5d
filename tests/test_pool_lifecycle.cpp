// close, join, terminate and the destructor; initializers; what the pool leaves on the system.
#define PROCPOOL_TEST_SUITE_NAME "pool_lifecycle"
#include "test_main.hpp"

#include "tasks.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sys/stat.h>
#include <sys/wait.h>

using namespace tasks;
using namespace std::chrono_literals;

namespace {

[[maybe_unused]] bool running(int pid) {
    return ::kill(pid, 0) == 0 || errno != ESRCH;
}

/// Our pools' segments in /dev/shm: name and mode.
std::vector<std::pair<std::string, unsigned>> our_segments() {
    std::vector<std::pair<std::string, unsigned>> found;
    const std::string prefix = "procpool-" + std::to_string(::getpid()) + "-";
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
        const std::string name = entry.path().filename();
        if (name.starts_with(prefix)) {
            struct stat st {};
            ::stat(entry.path().c_str(), &st);
            found.emplace_back(name, st.st_mode & 07777);
        }
    }
    return found;
}

/// What this process has open above stdio, as paths (the listing's own descriptor included).
[[maybe_unused]] std::vector<std::string> open_files(int) {
    std::vector<std::string> paths;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        if (std::stoi(entry.path().filename().string()) < 3)
            continue;
        std::error_code ec;
        paths.push_back(std::filesystem::read_symlink(entry.path(), ec).string());
    }
    return paths;
}

int init_value = 0;
void set_init_value(int v) {
    init_value = v;
}
int read_init_value(int) {
    return init_value;
}

int init_runs = 0;
std::string init_label;
[[maybe_unused]] void count_init(std::string label, int value) {
    ++init_runs;
    init_label = std::move(label);
    init_value = value;
}
/// What the initializer left in this worker: how often it ran, its arguments, and the pid.
[[maybe_unused]] std::tuple<int, std::string, int, int> init_state(int) {
    return {init_runs, init_label, init_value, static_cast<int>(::getpid())};
}

} // namespace

BOOST_AUTO_TEST_CASE(submitting_after_close_throws_state_error_pool_not_running) {
    procpool::pool pool(test_options(1));
    pool.close();
    BOOST_CHECK_EXCEPTION(
        pool.apply_async(square, 1), procpool::state_error, [](const procpool::state_error& e) {
            return std::string(e.what()).find("pool not running") != std::string::npos;
        });
    BOOST_CHECK_THROW(pool.map(square, std::vector<int>{1}), procpool::state_error);
    BOOST_CHECK_THROW(pool.map(square, std::vector<int>{}), procpool::state_error);
    pool.join();
}

BOOST_AUTO_TEST_CASE(join_before_close_throws_state_error) {
    procpool::pool pool(test_options(1));
    BOOST_CHECK_THROW(pool.join(), procpool::state_error);
    BOOST_TEST(pool.apply(square, 2) == 4);
}

BOOST_AUTO_TEST_CASE(tasks_submitted_before_close_complete_and_join_waits_for_the_workers) {
    procpool::pool pool(test_options(2));
    std::vector<procpool::async_result<int>> results;
    for (int i = 0; i < 6; ++i)
        results.push_back(pool.apply_async(sleep_ms, 50 + i));
    const auto pids = pool.worker_pids();
    pool.close();
    pool.join();
    for (int i = 0; i < 6; ++i) {
        BOOST_TEST(results[static_cast<std::size_t>(i)].ready());
        BOOST_TEST(results[static_cast<std::size_t>(i)].get() == 50 + i);
    }
#ifndef PROCPOOL_TEST_MPI // MPI ranks stay for the next pool
    for (int pid : pids)
        BOOST_TEST(!running(pid));
#endif
    BOOST_TEST(our_segments().empty());
}

BOOST_AUTO_TEST_CASE(terminate_fails_unfinished_results_with_state_error) {
    procpool::pool pool(test_options(1));
    auto running_task = pool.apply_async(sleep_ms, 10'000);
    auto queued_task = pool.apply_async(sleep_ms, 10'000);
    const auto pids = pool.worker_pids();
    pool.terminate();
    BOOST_CHECK_THROW(running_task.get(patience), procpool::state_error);
    BOOST_CHECK_THROW(queued_task.get(patience), procpool::state_error);
    BOOST_CHECK_THROW(pool.apply_async(square, 1), procpool::state_error);
#ifndef PROCPOOL_TEST_MPI // MPI ranks stay; each finishes the task it runs
    for (int pid : pids)
        BOOST_TEST(!running(pid));
#endif
    pool.terminate(); // idempotent
    pool.join();      // allowed after terminate
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: MPI ranks outlive a pool
BOOST_AUTO_TEST_CASE(the_destructor_terminates_and_leaves_nothing_behind) {
    procpool::async_result<int> orphan;
    std::vector<int> pids;
    {
        procpool::pool pool(test_options(2));
        orphan = pool.apply_async(sleep_ms, 10'000);
        pids = pool.worker_pids();
        BOOST_TEST(pids.size() == 2u);
        BOOST_TEST(our_segments().size() == 1u);
    }
    BOOST_CHECK_THROW(orphan.get(patience), procpool::state_error);
    for (int pid : pids)
        BOOST_TEST(!running(pid));
    BOOST_TEST(our_segments().empty());
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: no segment with MPI
BOOST_AUTO_TEST_CASE(the_segment_has_mode_0600_and_an_unguessable_name) {
    procpool::pool a(1), b(1);
    const auto segments = our_segments();
    BOOST_REQUIRE(segments.size() == 2u);
    for (const auto& [name, mode] : segments) {
        BOOST_TEST(mode == 0600u);
        // procpool-<pid>-<16 hex digits of randomness>
        BOOST_TEST(name.size() ==
                   std::string("procpool-").size() + std::to_string(::getpid()).size() + 17);
    }
    BOOST_TEST(segments[0].first != segments[1].first);
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: spawn and forkserver only
BOOST_AUTO_TEST_CASE(workers_inherit_no_file_the_parent_opened) {
    const std::string path = "/tmp/procpool-test-fd-" + std::to_string(::getpid());
    const int fd = ::open(path.c_str(), O_CREAT | O_RDWR, 0600); // deliberately not O_CLOEXEC
    BOOST_REQUIRE(fd >= 0);
    for (const char* method : {"spawn", "forkserver"})
        BOOST_TEST_CONTEXT(method) {
            procpool::pool pool({.processes = 1, .context = procpool::get_context(method)});
            const auto files = pool.apply(open_files, 0);
            for (const auto& f : files)
                BOOST_TEST_MESSAGE(method << " worker has " << f << " open");
            // Exactly what a worker needs: its pool's segment, the parent's doorbell (an
            // eventfd), the listing's own descriptor, and a pidfd of the parent once its
            // watchdog thread has opened it (worker.cpp: it may not have yet). Not the parent's
            // file, nor the forkserver's socket, nor anything else.
            const auto segments = our_segments();
            BOOST_REQUIRE(segments.size() == 1u);
            const auto workers = pool.worker_pids();
            BOOST_REQUIRE(workers.size() == 1u);
            std::multiset<std::string> held(files.begin(), files.end());
            BOOST_TEST(held.count("anon_inode:[pidfd]") <= 1u);
            held.erase("anon_inode:[pidfd]");
            const std::multiset<std::string> expected{
                "/dev/shm/" + segments[0].first, "anon_inode:[eventfd]",
                "/proc/" + std::to_string(workers[0]) + "/fd"};
            BOOST_TEST((held == expected));
            BOOST_TEST(std::count(files.begin(), files.end(), path) == 0);
        }
    ::close(fd);
    std::filesystem::remove(path);
}
#endif

BOOST_AUTO_TEST_CASE(the_initializer_runs_in_every_worker_before_its_first_task) {
    procpool::pool pool(test_options(2, procpool::initializer(set_init_value, 41)));
    const auto values = pool.map(read_init_value, std::vector<int>(40, 0), 1);
    BOOST_TEST(values == std::vector<int>(40, 41));
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: uses maxtasksperchild
BOOST_AUTO_TEST_CASE(the_initializer_runs_once_in_every_worker_replacements_included) {
    // maxtasksperchild = 1: every task runs in a fresh worker, each of which must have run the
    // initializer exactly once, with its arguments, before the task.
    procpool::pool pool({.processes = 2,
                         .initializer = procpool::initializer(count_init, std::string("ready"), 7),
                         .maxtasksperchild = 1});
    const auto states = pool.map(init_state, std::vector<int>(12, 0), 1);
    std::set<int> pids;
    for (const auto& [runs, label, value, pid] : states) {
        BOOST_TEST(runs == 1);
        BOOST_TEST(label == "ready");
        BOOST_TEST(value == 7);
        pids.insert(pid);
    }
    BOOST_TEST(pids.size() == 12u);
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: a dead rank ends the MPI job
BOOST_AUTO_TEST_CASE(an_initializer_that_kills_its_worker_fails_the_pool_instead_of_respawning) {
    procpool::pool pool({.processes = 2, .initializer = procpool::initializer(die_by_signal, 9)});
    BOOST_CHECK_EXCEPTION(pool.apply(square, 1), procpool::error, [](const procpool::error& e) {
        return std::string(e.what()).find("workers keep dying before they are ready") !=
               std::string::npos;
    });
    BOOST_CHECK_THROW(pool.map(square, std::vector<int>{1, 2}), procpool::error);
    BOOST_CHECK_THROW(pool.imap(square, std::vector<int>{1, 2}), procpool::error);
    pool.terminate();
    BOOST_TEST(pool.worker_pids().empty());
    BOOST_TEST(our_segments().empty());
}
#endif

BOOST_AUTO_TEST_CASE(an_initializer_that_throws_fails_the_pool_with_its_message) {
    procpool::pool pool(test_options(2, procpool::initializer(throw_standard, 4)));
    BOOST_CHECK_EXCEPTION(pool.apply(square, 1), procpool::error, [](const procpool::error& e) {
        const std::string what = e.what();
        return what.find("initializer failed") != std::string::npos &&
               what.find("kind 4") != std::string::npos;
    });
    BOOST_CHECK_THROW(pool.apply_async(square, 2), procpool::error); // no respawn loop
    BOOST_CHECK_EXCEPTION(pool.map(square, std::vector<int>{1}), procpool::error,
                          [](const procpool::error& e) {
                              return std::string(e.what()).find("kind 4") != std::string::npos;
                          });
}

#ifndef PROCPOOL_TEST_MPI // spawn-only: spawn only
BOOST_AUTO_TEST_CASE(a_program_without_init_fails_with_a_clear_error_not_a_fork_bomb) {
    std::FILE* out = ::popen(PROCPOOL_HELPER_NO_INIT " 2>&1", "r");
    BOOST_REQUIRE(out != nullptr);
    std::string text;
    std::array<char, 4096> buffer;
    while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), out))
        text.append(buffer.data(), n);
    const int status = ::pclose(out);
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 2);
    BOOST_TEST(text.find("reached a pool constructor; call procpool::init(argc, argv) first") !=
               std::string::npos);
    BOOST_TEST(text.find("workers keep dying before they are ready") != std::string::npos);
    BOOST_TEST_MESSAGE(text);
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: maxtasksperchild is refused with MPI
BOOST_AUTO_TEST_CASE(maxtasksperchild_1_gives_every_task_a_distinct_worker) {
    procpool::pool pool({.processes = 2, .maxtasksperchild = 1});
    const auto pids = pool.map(worker_pid, std::vector<int>(20, 0), 1);
    BOOST_TEST(std::set<int>(pids.begin(), pids.end()).size() == 20u);
    BOOST_TEST(pool.worker_pids().size() <= 2u);
    BOOST_TEST(pool.apply(square, 11) == 121); // replacements keep serving
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: maxtasksperchild is refused with MPI
BOOST_AUTO_TEST_CASE(maxtasksperchild_counts_chunks_as_python_does_and_results_are_unaffected) {
    // Python counts a chunk of map as one task: a chunk of 5 runs in one worker even with a
    // limit of 2, and no worker runs more than 2 chunks.
    procpool::pool pool({.processes = 2, .maxtasksperchild = 2});
    const auto pids = pool.map(worker_pid, std::vector<int>(60, 0), 5);
    std::map<int, int> chunks_per_pid;
    for (std::size_t chunk = 0; chunk < 12; ++chunk) {
        const int pid = pids[chunk * 5];
        for (std::size_t i = 1; i < 5; ++i)
            BOOST_TEST(pids[chunk * 5 + i] == pid);
        ++chunks_per_pid[pid];
    }
    for (const auto& [pid, chunks] : chunks_per_pid)
        BOOST_TEST(chunks <= 2, "worker " << pid << " ran " << chunks << " chunks");
    BOOST_TEST(chunks_per_pid.size() >= 6u);

    // Every two chunks cost a replacement: under a sanitizer, where starting a worker costs
    // the sanitizer's start-up too, fewer items.
    const int n = sanitized ? 60 : 300;
    const auto input = iota_vector(n);
    const auto expected = squares(n);
    BOOST_TEST(pool.map(square, input, 1) == expected);
    BOOST_TEST(pool.map(square, input, 7) == expected);
    std::vector<int> streamed;
    for (int y : pool.imap(square, input, 3))
        streamed.push_back(y);
    BOOST_TEST(streamed == expected);
}
#endif

#ifndef PROCPOOL_TEST_MPI // spawn-only: forkserver only
BOOST_AUTO_TEST_CASE(the_forkserver_context_runs_every_method_and_forks_replacements) {
    procpool::pool pool({.processes = 2,
                         .initializer = procpool::initializer(set_init_value, 5),
                         .maxtasksperchild = 1,
                         .context = procpool::get_context("forkserver")});
    const auto values = pool.map(read_init_value, std::vector<int>(10, 0), 1);
    BOOST_TEST(values == std::vector<int>(10, 5));
    const auto pids = pool.map(worker_pid, std::vector<int>(10, 0), 1);
    BOOST_TEST(std::set<int>(pids.begin(), pids.end()).size() == 10u);
    // Forked with CLONE_PARENT: the workers are this process's children, not the server's.
    for (int pid : pool.worker_pids()) {
        std::ifstream status("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        while (std::getline(status, line))
            if (line.starts_with("PPid:"))
                BOOST_TEST(std::stoi(line.substr(5)) == static_cast<int>(::getpid()));
    }
    BOOST_TEST(pool.apply(add, 2, 3) == 5);
    pool.close();
    pool.join();
    BOOST_TEST(our_segments().empty());
}
#endif
