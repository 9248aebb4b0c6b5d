#include "detail/transport.hpp"

#include "detail/launch.hpp"
#include "detail/worker.hpp"
#include <procpool/init.hpp>

#include <cstring>

namespace procpool {

void init(int argc, char** argv) {
    if (argc >= 2 && argv != nullptr && argv[1] != nullptr) {
        if (std::strcmp(argv[1], detail::worker_flag) == 0)
            detail::run_worker(argc, argv);
        if (std::strcmp(argv[1], detail::forkserver_flag) == 0)
            detail::run_forkserver(argc, argv);
    }
    // With ProcPool::mpi linked, in an mpirun job: ranks 1..N-1 serve here and never return.
    if (const auto hook = detail::registered_mpi().init)
        hook(argc, argv);
}

} // namespace procpool
