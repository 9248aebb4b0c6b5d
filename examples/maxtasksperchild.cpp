// maxtasksperchild: a worker leaves after that many tasks and a fresh one takes its place, as
// in Python. Use it to bound what a leaky task (a library that never frees, a cache that only
// grows) can accumulate. A chunk counts as one task.
#include <procpool/procpool.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <unistd.h>
#include <vector>

// Runs in a worker: which process ran this item?
int whoami(int) {
    return static_cast<int>(::getpid());
}

/// The most tasks any one worker process ran.
int most_per_process(const std::vector<int>& pids) {
    std::map<int, int> per_pid;
    int most = 0;
    for (int pid : pids)
        most = std::max(most, ++per_pid[pid]);
    return most;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    // 2 workers, each replaced after 2 tasks: 10 tasks of chunksize 1 take at least 5 processes
    // (more when a worker's second task went to another one).
    procpool::pool pool({.processes = 2, .maxtasksperchild = 2});
    const auto pids = pool.map(whoami, std::views::iota(0, 10), 1);
    std::cout << "tasks: " << pids.size() << ", at most " << most_per_process(pids)
              << " per worker process\n";

    // The forkserver start method makes each replacement a fork rather than a new program.
    procpool::pool forked(
        {.processes = 2, .maxtasksperchild = 2, .context = procpool::get_context("forkserver")});
    const auto again = forked.map(whoami, std::views::iota(0, 10), 1);
    std::cout << "with forkserver: at most " << most_per_process(again) << " per worker process\n";
}
