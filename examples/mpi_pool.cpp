// The "mpi" context: the same pool, with the ranks of an mpirun job as its workers.
//
//   mpirun -np 3 ./mpi_pool                        one machine: rank 0 + 2 worker ranks
//   mpirun --hostfile hosts -np 33 ./mpi_pool      32 worker ranks across the hosts listed
//
// Every rank runs main(); procpool::init keeps ranks 1..N-1 as workers (they never return
// from it), so only rank 0 goes on. Link ProcPool::mpi beside ProcPool::procpool.
#include <procpool/procpool.hpp>

#include <iostream>
#include <numeric>
#include <string>
#include <unistd.h>

long square(long x) {
    return x * x;
}

/// Where a task ran: the host name of its rank.
std::string host(int) {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return name;
}

int main(int argc, char** argv) {
    procpool::init(argc, argv); // on ranks 1..N-1: serve as a worker, never return

    procpool::pool pool({.context = procpool::get_context("mpi")}); // processes: N-1
    std::cout << "a pool of " << pool.processes() << " MPI ranks\n";

    // Every method works as with the default context: map, imap, apply_async, ...
    const auto squares = pool.map(square, std::views::iota(0L, 1000L));
    std::cout << "sum of squares of 0..999: " << std::reduce(squares.begin(), squares.end())
              << '\n';
    long total = 0;
    for (long y : pool.imap_unordered(square, std::views::iota(0L, 100L), 10))
        total += y;
    std::cout << "imap_unordered over 0..99: " << total << '\n';
    auto hello = pool.apply_async(host, 0);
    std::cout << "a task ran on a host named " << (hello.get().empty() ? "?" : "something") << '\n';
    // Leaving main ends the job: rank 0 tells every worker rank to finish and MPI ends.
}
