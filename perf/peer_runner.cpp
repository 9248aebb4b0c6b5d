#include "peer_runner.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace perf {

namespace {

/// Runs `command` and returns the JSON objects it prints, one a line; `what` names it in errors.
std::vector<boost::json::object> json_lines_of(const std::string& command,
                                               const std::string& what) {
    std::FILE* out = ::popen(command.c_str(), "r");
    if (out == nullptr)
        throw std::runtime_error("cannot run " + command);
    std::vector<boost::json::object> rows;
    std::string line;
    char buffer[4096];
    while (std::fgets(buffer, sizeof buffer, out) != nullptr) {
        line += buffer;
        if (line.empty() || line.back() != '\n')
            continue;
        rows.push_back(boost::json::parse(line).as_object());
        line.clear();
    }
    if (::pclose(out) != 0)
        throw std::runtime_error(what + " failed: " + command);
    return rows;
}

} // namespace

std::filesystem::path this_program() {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : exe;
}

std::string default_peer_script() {
    const std::filesystem::path exe = this_program();
    if (!exe.empty()) {
        std::error_code ec;
        const auto installed =
            exe.parent_path().parent_path() / "share" / "procpool" / "peers" / "python_pool.py";
        if (std::filesystem::exists(installed, ec))
            return installed.string();
    }
    return PROCPOOL_PEER_SCRIPT;
}

#ifndef PROCPOOL_PERF_MPI
int exec_mpi_build(char** argv) {
    const std::filesystem::path exe = this_program();
    const std::filesystem::path sibling = exe.parent_path() / "procpool-perf-mpi";
    std::error_code ec;
    if (exe.empty() || !std::filesystem::exists(sibling, ec)) {
        std::cerr << "procpool-perf: --context mpi needs procpool-perf-mpi beside this binary "
                     "(built when Boost.MPI is found; PROCPOOL_WITH_MPI in CMake)\n";
        return 2;
    }
    ::execv(sibling.c_str(), argv);
    std::cerr << "procpool-perf: cannot run " << sibling << ": " << std::strerror(errno) << "\n";
    return 1;
}
#endif

std::vector<boost::json::object> run_in_child(const settings& s, const std::string& scenario) {
    const std::filesystem::path exe = this_program();
    if (exe.empty())
        throw std::runtime_error("cannot find this program (/proc/self/exe)");
    std::string command = "'";
    command += exe.string();
    command += "' --child --json - --scenario " + scenario;
    command += " --processes " + std::to_string(s.processes);
    command += " --repeat " + std::to_string(s.repeat);
    command += " --context " + s.context;
    if (s.quick)
        command += " --quick";
    if (!s.digest_tree.empty())
        command += " --digest-tree '" + s.digest_tree + "'";
    return json_lines_of(command, "scenario " + scenario);
}

std::vector<boost::json::object> run_python_peer(const std::string& script, const settings& s,
                                                 const std::vector<std::string>& scenarios) {
    std::string command = "python3 '" + script + "' --processes " + std::to_string(s.processes) +
                          " --repeat " + std::to_string(s.repeat);
    if (s.quick)
        command += " --quick";
    for (const auto& name : scenarios)
        command += " --scenario " + name;
    if (!s.digest_tree.empty())
        command += " --digest-tree '" + s.digest_tree + "'";
    return json_lines_of(command, "the python peer");
}

} // namespace perf
