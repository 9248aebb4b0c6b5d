// The worker process: what procpool::init runs when the process was started by a pool.
#pragma once

#include <string>
#include <vector>

namespace procpool::detail {

/// The first argument that marks a worker process.
inline constexpr const char* worker_flag = "--procpool-worker";

/// The arguments a pool passes to worker `index` of generation `generation`.
std::vector<std::string> worker_arguments(const std::string& segment_name, unsigned index,
                                          unsigned generation, int parent_pid);

/// Runs the worker loop; never returns. Exit status: 0 when the pool let it go or
/// maxtasksperchild was reached, 3 when it could not attach, 4 when its initializer failed.
[[noreturn]] void run_worker(int argc, char** argv);

} // namespace procpool::detail
