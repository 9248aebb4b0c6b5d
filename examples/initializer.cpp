// Per-worker state, opened once: Python's Pool(initializer=..., initargs=...). The initializer
// runs in every worker before its first task (replacement workers too), so a task can use
// what it set up (a table, a file, a connection) without paying for it on every call.
#include <procpool/procpool.hpp>

#include <iostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {
// Worker-side state: each worker process has its own copy.
std::vector<long> table;
int opened = 0;
} // namespace

// Runs once per worker: builds a table of powers of `base`.
void open_table(long base, int size) {
    table.assign(static_cast<std::size_t>(size), 1);
    for (int i = 1; i < size; ++i)
        table[static_cast<std::size_t>(i)] = table[static_cast<std::size_t>(i) - 1] * base;
    ++opened;
}

// Runs per task: a lookup in the worker's table, and how many times this worker has opened
// its table (always 1).
std::pair<long, int> lookup(int i) {
    return {table.at(static_cast<std::size_t>(i)), opened};
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    procpool::pool pool({.processes = 2, .initializer = procpool::initializer(open_table, 3L, 10)});
    std::set<int> opened_counts;
    std::cout << "powers of 3:";
    for (auto [value, count] : pool.map(lookup, std::views::iota(0, 10), 1)) {
        std::cout << ' ' << value;
        opened_counts.insert(count);
    }
    std::cout << "\neach worker opened its table "
              << (opened_counts == std::set<int>{1} ? "once" : "more than once") << '\n';
}
