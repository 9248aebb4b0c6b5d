// Callbacks: apply_async and map_async call back in the parent when a result arrives, as
// Python's callback= and error_callback= do. Callbacks run on the pool's result thread: keep
// them short, and guard what they share with the rest of the program.
#include <procpool/procpool.hpp>

#include <iostream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

// Runs in a worker. Odd numbers are refused, to show the error callback.
int half(int x) {
    if (x % 2 != 0)
        throw std::invalid_argument(std::to_string(x) + " is odd");
    return x / 2;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    std::mutex mutex; // the callbacks run on the result thread, main() reads afterwards
    std::set<int> halves;
    std::set<std::string> errors;

    procpool::pool pool(2);
    std::vector<procpool::async_result<int>> pending;
    for (int x : {2, 3, 4, 7, 10})
        pending.push_back(pool.apply_async(
            half, std::tuple{x},
            [&](int h) { // callback: the value
                std::lock_guard lock(mutex);
                halves.insert(h);
            },
            [&](std::exception_ptr e) { // error_callback: what the task threw
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& error) {
                    std::lock_guard lock(mutex);
                    errors.insert(error.what());
                }
            }));
    for (auto& r : pending)
        r.wait(); // a callback has run before its result is ready

    // map_async: one callback with the whole vector, in input order.
    std::vector<int> all;
    auto job = pool.map_async(half, std::vector<int>{8, 6, 4}, 1, [&](const std::vector<int>& v) {
        std::lock_guard lock(mutex);
        all = v;
    });
    job.wait();

    std::lock_guard lock(mutex);
    std::cout << "halves:";
    for (int h : halves)
        std::cout << ' ' << h;
    std::cout << "\nerrors:";
    for (const auto& e : errors)
        std::cout << " [" << e << ']';
    std::cout << "\nmap_async:";
    for (int h : all)
        std::cout << ' ' << h;
    std::cout << '\n';
}
