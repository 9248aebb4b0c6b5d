// The README's quick start: a pool of 4 workers computes x*x for 0..9.
#include <procpool/procpool.hpp>

#include <iostream>

int square(int x) {
    return x * x;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv); // in a worker, runs the worker and never returns

    procpool::pool pool(4);
    for (int y : pool.map(square, std::views::iota(0, 10)))
        std::cout << y << ' ';
    std::cout << '\n';
}
