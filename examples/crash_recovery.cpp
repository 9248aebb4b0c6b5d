// A task that kills its worker: the caller gets procpool::worker_lost_error naming the worker
// and the signal, the other tasks complete, a replacement worker starts, and the pool goes on.
// (Python's Pool hangs forever in this case.)
#include <procpool/procpool.hpp>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <vector>

// Runs in a worker: item 3 crashes the whole process, as a segfault in a C library would.
int fragile(int x) {
    if (x == 3)
        std::raise(SIGKILL);
    return x * 10;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    procpool::pool pool(2);
    const std::vector<int> first_workers = pool.worker_pids();
    std::vector<procpool::async_result<int>> results;
    for (int x = 0; x < 6; ++x)
        results.push_back(pool.apply_async(fragile, x));

    int lost_worker = 0;
    for (int x = 0; x < 6; ++x) {
        try {
            const int value = results[x].get(std::chrono::seconds(60));
            std::cout << "task " << x << ": " << value << '\n';
        } catch (const procpool::worker_lost_error& e) {
            lost_worker = e.pid();
            std::cout << "task " << x << ": lost, worker killed by signal "
                      << e.signal().value_or(0) << " (" << (e.signal() == SIGKILL ? "SIGKILL" : "?")
                      << ")\n";
        }
    }
    // The pool replaces the worker and takes new work.
    std::cout << "after the crash: " << pool.apply(fragile, 7) << '\n';

    // The replacement is a new process: the lost worker's pid has left the pool, and one pid
    // that was not there at the start has joined it.
    const std::vector<int> workers = pool.worker_pids();
    const auto was_there = [&](int pid) {
        return std::find(first_workers.begin(), first_workers.end(), pid) != first_workers.end();
    };
    const bool lost_one_gone =
        std::find(workers.begin(), workers.end(), lost_worker) == workers.end();
    const auto new_ones =
        std::count_if(workers.begin(), workers.end(), [&](int pid) { return !was_there(pid); });
    std::cout << "workers: " << workers.size() << ", "
              << (lost_one_gone && was_there(lost_worker) && new_ones == 1
                      ? "the lost one replaced by a new process"
                      : "the lost one NOT replaced")
              << '\n';
}
