// A program for the MPI fault tests (mpi_rank_death.sh): an "mpi" pool whose task ends its own
// rank in the way argv[1] names. Open MPI then ends the whole job; the test checks that it does
// so with a message and a non-zero status, never a hang.
//
//   kill | segv | exit   under mpiexec: the task dies so; rank 0 must never print "survived"
//   not_mpirun           started directly: the "mpi" context must refuse with a clear error
#include <procpool/procpool.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace {

int end_rank(int how) {
    if (how == 0)
        ::kill(::getpid(), SIGKILL);
    if (how == 1)
        std::raise(SIGSEGV);
    if (how == 2)
        std::exit(3);
    return how;
}

} // namespace

int main(int argc, char** argv) {
    procpool::init(argc, argv);
    const std::string mode = argc > 1 ? argv[1] : "";
    try {
        procpool::pool pool({.context = procpool::get_context("mpi")});
        const int how = mode == "kill" ? 0 : mode == "segv" ? 1 : mode == "exit" ? 2 : -1;
        std::printf("rank 0: pool of %zu ranks, first task %d\n", pool.processes(),
                    pool.apply(end_rank, 7));
        std::fflush(stdout);
        auto doomed = pool.apply_async(end_rank, how);
        std::printf("survived: %d\n", doomed.get(std::chrono::seconds(60)));
        return 0;
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 2;
    }
}
