// maxtasksperchild: a worker leaves after that many tasks and a fresh one takes its place, as
// in Python. Use it to bound what a leaky task (a library that never frees, a cache that only
// grows) can accumulate. A chunk counts as one task.
#include <procpool/procpool.hpp>

#include <iostream>
#include <set>
#include <unistd.h>

// Runs in a worker: which process ran this item?
int whoami(int) {
    return static_cast<int>(::getpid());
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    // 2 workers, each replaced after 2 tasks: 10 tasks of chunksize 1 need 5 processes.
    procpool::pool pool({.processes = 2, .maxtasksperchild = 2});
    const auto pids = pool.map(whoami, std::views::iota(0, 10), 1);
    std::cout << "tasks: " << pids.size()
              << ", worker processes: " << std::set<int>(pids.begin(), pids.end()).size() << '\n';

    // The forkserver start method makes each replacement a fork rather than a new program.
    procpool::pool forked(
        {.processes = 2, .maxtasksperchild = 2, .context = procpool::get_context("forkserver")});
    const auto again = forked.map(whoami, std::views::iota(0, 10), 1);
    std::cout << "with forkserver: " << std::set<int>(again.begin(), again.end()).size()
              << " worker processes\n";
}
