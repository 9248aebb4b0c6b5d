// The consumer of the package tests: a pool from an installed (or vendored) ProcPool.
#include <procpool/procpool.hpp>
#include <procpool/version.hpp>

#include <iostream>
#include <string>

long square(long x) {
    return x * x;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);
    procpool::pool pool(2);
    long sum = 0;
    for (long y : pool.map(square, std::views::iota(0L, 100L)))
        sum += y;
    std::cout << "consumer: " << CONSUMED_BY << ", procpool " << PROCPOOL_VERSION_STRING
              << ", sum of squares " << sum << ", " << pool.apply(square, 12L) << '\n';
}
