// The processes procpool-perf runs: each scenario in a fresh process of this program
// (--child), the CPython peer (perf/peers/python_pool.py), and, for --context mpi, the build
// linked with ProcPool::mpi (procpool-perf-mpi).
#pragma once

#include "harness.hpp"

#include <boost/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace perf {

/// This program's path; empty when /proc/self/exe cannot be read. Does not throw.
std::filesystem::path this_program();

/// The peer script beside an installed procpool-perf (BINDIR/../share/procpool/peers), else
/// the one in the source tree it was built from (PROCPOOL_PEER_SCRIPT). Does not throw.
std::string default_peer_script();

#ifndef PROCPOOL_PERF_MPI
/// Replaces this process with procpool-perf-mpi from the same directory, with the same
/// arguments (each rank of an mpirun job does so before MPI starts). Returns only on failure,
/// with the exit status for main after a message on stderr: 2 when procpool-perf-mpi is not
/// there, 1 when it cannot be run.
int exec_mpi_build(char** argv);
#endif

/// Runs one scenario in a fresh process of this program (--child, with s's settings) and
/// returns the JSON objects it printed. Blocks until that process ends. Throws
/// std::runtime_error when it cannot be started or fails.
std::vector<boost::json::object> run_in_child(const settings& s, const std::string& scenario);

/// Runs the CPython peer `script` with the same cases (s's settings, these scenarios) and
/// returns its JSON objects. Blocks until it ends. Throws std::runtime_error when it cannot be
/// started or fails.
std::vector<boost::json::object> run_python_peer(const std::string& script, const settings& s,
                                                 const std::vector<std::string>& scenarios);

} // namespace perf
