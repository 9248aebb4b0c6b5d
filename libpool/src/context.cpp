#include <procpool/context.hpp>

#include <stdexcept>
#include <string>

namespace procpool {

std::string_view context::name() const noexcept {
    switch (method_) {
    case start_method::spawn:
        return "spawn";
    case start_method::forkserver:
        return "forkserver";
    case start_method::mpi:
        return "mpi";
    }
    return "spawn";
}

context get_context(std::string_view method) {
    if (method == "spawn")
        return context(start_method::spawn);
    if (method == "forkserver")
        return context(start_method::forkserver);
    if (method == "mpi")
        return context(start_method::mpi);
    throw std::invalid_argument("procpool::get_context: unknown start method '" +
                                std::string(method) +
                                "' (expected \"spawn\", \"forkserver\" or \"mpi\")");
}

} // namespace procpool
