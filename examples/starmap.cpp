// starmap: each item is a tuple of arguments, unpacked into the call, as Python's
// pool.starmap(f, [(a, b), ...]). std::pair works too.
#include <procpool/procpool.hpp>

#include <iostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

// Runs in a worker: base raised to exp.
long power(long base, int exp) {
    long result = 1;
    while (exp-- > 0)
        result *= base;
    return result;
}

std::string repeat(std::string s, int times) {
    std::string out;
    while (times-- > 0)
        out += s;
    return out;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    procpool::pool pool(2);
    const std::vector<std::tuple<long, int>> args{{2, 10}, {3, 4}, {10, 3}};
    for (long p : pool.starmap(power, args))
        std::cout << p << ' ';
    std::cout << '\n';

    const std::vector<std::pair<std::string, int>> words{{"ab", 3}, {"-", 5}};
    for (const auto& s : pool.starmap(repeat, words))
        std::cout << s << ' ';
    std::cout << '\n';
}
