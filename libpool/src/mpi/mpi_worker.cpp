// The worker ranks of the "mpi" context: ranks 1..N-1 of an mpirun job never return from
// procpool::init; they run the frames rank 0 sends with the same executor as a shared-memory
// worker (see mpi_transport.cpp for the protocol).
#include "mpi_protocol.hpp"

#include "../detail/executor.hpp"

#include <procpool/detail/wire.hpp>

#include <boost/mpi/status.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <thread>
#include <unistd.h>
#include <vector>

namespace procpool::detail {

namespace {

std::atomic<int> running_rank{-1}; // this rank, while it runs a task; for the messages below

void say_lost(const char* how) noexcept {
    char text[200];
    const int n = std::snprintf(text, sizeof text,
                                "procpool: MPI worker rank %d (pid %d) %s while running a task; "
                                "Open MPI ends the job\n",
                                running_rank.load(), static_cast<int>(::getpid()), how);
    if (n > 0) [[maybe_unused]]
        auto w = ::write(STDERR_FILENO, text, static_cast<std::size_t>(n));
}

struct sigaction previous_actions[32];

extern "C" void on_fatal_signal(int sig) {
    if (running_rank.load() >= 0) {
        say_lost(sig == SIGSEGV   ? "crashed with SIGSEGV"
                 : sig == SIGABRT ? "aborted (SIGABRT)"
                 : sig == SIGBUS  ? "crashed with SIGBUS"
                 : sig == SIGFPE  ? "crashed with SIGFPE"
                                  : "crashed with SIGILL");
    }
    ::sigaction(sig, &previous_actions[sig], nullptr); // Open MPI's own handler, or default
    ::raise(sig);
}

void watch_for_death() {
    for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) {
        struct sigaction action {};
        action.sa_handler = on_fatal_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESETHAND;
        ::sigaction(sig, &action, &previous_actions[sig]);
    }
    std::atexit([] {
        if (running_rank.load() >= 0)
            say_lost("called exit()");
    });
}

/// Waits for a message from rank 0: spins a little, then naps.
mpi::status wait_for_message(const mpi::communicator& world) {
    backoff naps;
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        if (auto s = world.iprobe(0, mpi::any_tag))
            return *s;
        if (std::chrono::steady_clock::now() - start > spin_time)
            std::this_thread::sleep_for(naps.next());
    }
}

std::uint64_t receive_u64(const mpi::communicator& world, int tag) {
    std::uint64_t value = 0;
    world.recv(0, tag, reinterpret_cast<char*>(&value), static_cast<int>(sizeof value));
    return value;
}

} // namespace

[[noreturn]] void serve(mpi::environment* environment, const mpi::communicator& world) {
    watch_for_death();
    frame_executor executor;
    std::vector<char> input;
    std::vector<char> output;
    std::uint64_t epoch = 0;
    std::uint64_t cancelled = 0; // pools up to this epoch were terminated
    auto check_cancel = [&] {
        while (world.iprobe(0, tag_cancel))
            cancelled = std::max(cancelled, receive_u64(world, tag_cancel));
    };
    for (;;) {
        const mpi::status s = wait_for_message(world);
        switch (s.tag()) {
        case tag_begin:
            epoch = receive_u64(world, tag_begin);
            break;
        case tag_cancel:
            check_cancel();
            break;
        case tag_frame: {
            receive_probed(world, s, input);
            check_cancel();
            if (epoch <= cancelled)
                break; // its pool was terminated: skipped, and nobody waits for it
            running_rank.store(world.rank());
            frame_bulk bulk;
            const result_header result =
                executor.run(std::as_bytes(std::span(input)), output, bulk, [](std::uint64_t) {});
            // One message per frame: a large last result is copied in after the rest.
            output.insert(output.end(), bulk.bytes.begin(), bulk.bytes.end());
            bulk = {};
            running_rank.store(-1);
            world.send(0, result_tag(epoch), output.data(), static_cast<int>(output.size()));
            // As a shared-memory worker leaves when its initializer fails: this pool gets
            // nothing more from this rank (the pool fails), the next pool does.
            if (result.kind == frame_kind::initializer_done && result.failed)
                cancelled = std::max(cancelled, epoch);
            break;
        }
        case tag_stop:
            world.recv(0, tag_stop);
            world.send(0, tag_bye);
            std::fflush(nullptr);
            delete environment; // MPI_Finalize
            // _exit: main() never ran here, so neither may the program's static destructors.
            ::_exit(0);
        default: {
            // Not ours: take it off the queue so the loop goes on.
            std::vector<char> junk;
            receive_probed(world, s, junk);
        }
        }
    }
}

} // namespace procpool::detail
