// Tasks that go wrong the way native code does, and what the pool makes of them: one that
// never ends (a timeout), one that is no longer wanted (a cancel), and one that leaks memory
// (max_memory_per_child). Each time only that task is affected; the pool goes on.
#include <procpool/procpool.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

// Runs in a worker: a stuck computation.
int spin_forever(int) {
    for (;;)
        std::this_thread::sleep_for(1s);
}

int slow_square(int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * x));
    return x * x;
}

// Leaks `mib` MiB for good, as a buggy library would, and says which worker it ran in.
int leak(int mib) {
    static std::vector<std::vector<char>> kept;
    kept.emplace_back(static_cast<std::size_t>(mib) << 20, '\1');
    return static_cast<int>(::getpid());
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    // 1. A timeout: the stuck task fails after 250 ms, its worker is killed and replaced.
    {
        procpool::pool pool(2);
        try {
            pool.apply(procpool::task_options{.timeout = 250ms}, spin_forever, 0);
        } catch (const procpool::task_timeout_error& e) {
            std::cout << "timeout: task_timeout_error after " << e.timeout().count()
                      << " ms; the pool goes on: " << pool.apply(slow_square, 3) << '\n';
        }
    }

    // 2. A cancel: a job of slow tasks is no longer wanted.
    {
        procpool::pool pool(2);
        auto job = pool.map_async(slow_square, std::vector<int>(8, 50), 1);
        const bool cancelled = job.cancel();
        try {
            job.get();
        } catch (const procpool::cancelled_error&) {
            std::cout << "cancel: " << (cancelled ? "cancelled" : "too late")
                      << ", get() throws cancelled_error; next: " << pool.apply(slow_square, 2)
                      << '\n';
        }
    }

    // 3. A leak: each task leaks 64 MiB; past 48 MiB a worker is replaced after its task.
    {
        procpool::pool pool({.processes = 1, .max_memory_per_child = std::size_t{48} << 20});
        std::vector<int> pids;
        for (int i = 0; i < 3; ++i)
            pids.push_back(pool.apply(leak, 64));
        const bool all_fresh = pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2];
        std::cout << "memory: 3 leaking tasks ran in " << (all_fresh ? "3 fresh" : "reused")
                  << " workers, every result came back\n";
    }
}
