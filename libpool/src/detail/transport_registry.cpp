// The transport factory and the "mpi" context's registry: which transport a pool gets.
// ProcPool::mpi is a library of its own (users without MPI do not link it); linking it runs a
// static initialiser that registers its hooks here. See transport.hpp.
#include "transport.hpp"

#include <procpool/errors.hpp>

#include <utility>

namespace procpool::detail {

namespace {

constinit mpi_hooks mpi_registry{}; // set from a static initialiser of ProcPool::mpi

} // namespace

void register_mpi(const mpi_hooks& hooks) noexcept {
    mpi_registry = hooks;
}

const mpi_hooks& registered_mpi() noexcept {
    return mpi_registry;
}

std::unique_ptr<transport> make_transport(transport_options options) {
    if (options.method != start_method::mpi)
        return make_shm_transport(std::move(options));
    if (mpi_registry.make == nullptr)
        throw error("procpool: the \"mpi\" context needs the ProcPool::mpi library: link "
                    "ProcPool::mpi (built when CMake finds MPI; option PROCPOOL_WITH_MPI)");
    return mpi_registry.make(std::move(options));
}

} // namespace procpool::detail
