// Streaming with imap: an endless input, read only as fast as results are consumed, in
// constant memory. Prints the first five primes of the form n*n + 1 and stops.
#include <procpool/procpool.hpp>

#include <iostream>
#include <ranges>

// Runs in a worker: is n*n + 1 prime? Returns the number, or 0.
long prime_or_zero(long n) {
    const long candidate = n * n + 1;
    for (long d = 2; d * d <= candidate; ++d)
        if (candidate % d == 0)
            return 0;
    return candidate;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    procpool::pool pool(2);
    int found = 0;
    // std::views::iota(1L) never ends: imap reads it a few chunks ahead of this loop.
    for (long p : pool.imap(prime_or_zero, std::views::iota(1L), 16)) {
        if (p == 0)
            continue;
        std::cout << p << ' ';
        if (++found == 5)
            break; // leaving the loop drops the rest, promptly
    }
    std::cout << '\n';
}
