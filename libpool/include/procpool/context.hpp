// Start methods (Python: multiprocessing.get_context).
#pragma once

#include <procpool/export.hpp>

#include <string_view>

namespace procpool {

/// How a pool starts its workers.
enum class start_method {
    spawn,      ///< each worker is this executable, started afresh (the default)
    forkserver, ///< a helper started once forks workers on demand
    mpi,        ///< the ranks of an mpirun job are the workers
};

/// A start method, as get_context returns it. Cheap to copy.
class PROCPOOL_API context {
public:
    /// The method's name: "spawn", "forkserver" or "mpi".
    std::string_view name() const noexcept;
    start_method method() const noexcept { return method_; }

private:
    friend PROCPOOL_API context get_context(std::string_view method);
    explicit context(start_method method) noexcept
        : method_(method) {}
    start_method method_;
};

/// The context of the start method named `method`: "spawn", "forkserver" or "mpi".
/// Does not block. Throws std::invalid_argument for any other name. Thread-safe.
PROCPOOL_API context get_context(std::string_view method = "spawn");

} // namespace procpool
