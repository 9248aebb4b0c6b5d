// A task that kills its worker: the caller gets procpool::worker_lost_error naming the worker
// and the signal, the other tasks complete, a replacement worker starts, and the pool goes on.
// (Python's Pool hangs forever in this case.)
#include <procpool/procpool.hpp>

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
    std::vector<procpool::async_result<int>> results;
    for (int x = 0; x < 6; ++x)
        results.push_back(pool.apply_async(fragile, x));

    for (int x = 0; x < 6; ++x) {
        try {
            const int value = results[x].get(std::chrono::seconds(60));
            std::cout << "task " << x << ": " << value << '\n';
        } catch (const procpool::worker_lost_error& e) {
            std::cout << "task " << x << ": lost, worker killed by signal "
                      << e.signal().value_or(0) << " (" << (e.signal() == SIGKILL ? "SIGKILL" : "?")
                      << ")\n";
        }
    }
    // The pool replaces the worker and takes new work.
    std::cout << "after the crash: " << pool.apply(fragile, 7) << '\n';
}
