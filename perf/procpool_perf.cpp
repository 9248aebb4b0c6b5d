// procpool-perf: the throughput harness. Runs the scenarios (scenarios.hpp), each in a fresh
// process of its own (peer_runner.hpp), prints a table on stdout and JSON lines (--json), and
// with --peer python runs the same cases through CPython's multiprocessing.Pool
// (perf/peers/python_pool.py) and prints both side by side (report.hpp).
#include "digest_scenario.hpp"
#include "harness.hpp"
#include "peer_runner.hpp"
#include "report.hpp"
#include "scenarios.hpp"

#include <procpool/procpool.hpp>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace po = boost::program_options;

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    perf::settings s;
    std::vector<std::string> scenarios;
    std::string json_path, plot_path, peer, peer_script = perf::default_peer_script();
    po::options_description options("procpool-perf options");
    options.add_options()("help,h", "show this help")("quick", po::bool_switch(&s.quick),
                                                      "smaller inputs: the whole set in seconds")(
        "scenario", po::value(&scenarios)->composing(),
        "run only this scenario (repeatable): tiny_map, tiny_imap_unordered, "
        "latency_apply_async_get, latency_apply, payload, startup, respawn, idle, serial_loop, "
        "digest")("processes", po::value(&s.processes)->default_value(2),
                  "workers per pool (with --context mpi: every rank but rank 0, unless given)")(
        "context", po::value(&s.context)->default_value(s.context),
        "start method of the pools: spawn, forkserver, or mpi (run under mpirun; measures "
        "tiny_map, tiny_imap_unordered, latency_apply_async_get, latency_apply, payload)")(
        "repeat", po::value(&s.repeat)->default_value(3),
        "runs per case; the median is reported (tiny_map, tiny_imap_unordered, payload and digest "
        "run each case once untimed first)")(
        "json", po::value(&json_path), "write one JSON object per case to FILE, or - for stdout")(
        "plot", po::value(&plot_path), "draw the run into FILE.png with gnuplot")(
        "peer", po::value(&peer), "also run the same cases with a peer: python")(
        "peer-script", po::value(&peer_script)->default_value(peer_script),
        "the CPython peer script");
    // Not in --help: how the harness runs each scenario in a process of its own.
    bool child = false;
    po::options_description internal;
    internal.add_options()("child", po::bool_switch(&child),
                           "run the scenarios in this process, without a progress bar")(
        "digest-tree", po::value(&s.digest_tree), "the files of the digest scenario");
    po::options_description all_options;
    all_options.add(options).add(internal);
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, all_options), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "procpool-perf: " << e.what() << "\n" << options;
        return 2;
    }
    if (vm.count("help")) {
        std::cout << options;
        return 0;
    }
    if (s.processes == 0 || s.repeat < 1) {
        std::cerr << "procpool-perf: --processes and --repeat must be at least 1\n";
        return 2;
    }
    if (s.context != "spawn" && s.context != "forkserver" && s.context != "mpi") {
        std::cerr << "procpool-perf: unknown context '" << s.context
                  << "' (expected spawn, forkserver or mpi)\n";
        return 2;
    }
    const bool mpi = s.context == "mpi";
#ifndef PROCPOOL_PERF_MPI
    // This build does not link Open MPI, so that the workers it spawns do not load it
    // (docs/performance.md: dynamic linking of Open MPI's libraries): --context mpi runs the
    // sibling build that does.
    if (mpi)
        return perf::exec_mpi_build(argv);
#endif
    for (const auto& name : scenarios)
        if (mpi && perf::spawn_only(name)) {
            std::cerr << "procpool-perf: scenario '" << name
                      << "' starts processes, which MPI ranks never do: not with --context mpi\n";
            return 2;
        }
    if (mpi && vm["processes"].defaulted()) {
        try {
            // Every worker rank: the default of an "mpi" pool.
            s.processes = procpool::pool({.context = procpool::get_context("mpi")}).processes();
        } catch (const std::exception& e) {
            std::cerr << "procpool-perf: " << e.what() << "\n";
            return 1;
        }
    }
    if (!peer.empty() && peer != "python") {
        std::cerr << "procpool-perf: unknown peer '" << peer << "' (expected python)\n";
        return 2;
    }

    const auto& all = perf::all_scenarios();
    for (const auto& name : scenarios)
        if (std::none_of(all.begin(), all.end(), [&](const auto& a) { return a.name == name; })) {
            std::cerr << "procpool-perf: unknown scenario '" << name << "'\n" << options;
            return 2;
        }
    std::vector<std::string> chosen;
    for (const auto& [name, run] : all)
        if ((scenarios.empty() && !(mpi && perf::spawn_only(name))) ||
            std::find(scenarios.begin(), scenarios.end(), name) != scenarios.end())
            chosen.push_back(name);

    perf::report report;
    if (!report.open_json(json_path)) {
        std::cerr << "procpool-perf: cannot write " << json_path << "\n";
        return 2;
    }
    report.header();

    // Each scenario runs in a fresh process of its own, and the peer's run of it follows at
    // once: a scenario then starts from the same state whatever ran before it (a large payload
    // leaves the allocator and the scheduler in states that slow the next scenario's pool starts:
    // docs/performance.md, pool starts after a large payload), and both sides of a case meet the
    // same phase of a noisy host. MPI ranks run everything in one process, as mpirun started them.
    const bool own_processes = !child && !mpi;
    perf::progress bar(chosen.size() * (peer.empty() ? 1 : 2), !child);
    std::optional<perf::generated_tree> tree; // the files of `digest`, removed at the end
    try {
        for (const auto& [name, run] : all) {
            if (std::find(chosen.begin(), chosen.end(), name) == chosen.end())
                continue;
            bar.step(name);
            if (name == "digest" && s.digest_tree.empty())
                s.digest_tree = tree.emplace(perf::digest_tree_files(s)).path().string();
            if (own_processes) {
                for (auto& o : perf::run_in_child(s, name))
                    report.ours(std::move(o));
            } else {
                run(s, [&](boost::json::object o) {
                    o.emplace("impl", "procpool");
                    // startup, respawn and idle start their own pools, whatever --context says.
                    if (name != "serial_loop" && !perf::spawn_only(name))
                        o.emplace("context", s.context);
                    if (!o.contains("processes"))
                        o.emplace("processes", s.processes);
                    report.ours(std::move(o));
                });
            }
            if (!peer.empty()) {
                bar.step(name + " (CPython)");
                for (auto& o : perf::run_python_peer(peer_script, s, {name}))
                    report.theirs(std::move(o));
            }
        }
        bar.finish();
        report.side_by_side();
        if (!plot_path.empty())
            report.plot(plot_path);
    } catch (const std::exception& e) {
        bar.finish();
        std::cerr << "procpool-perf: " << e.what() << "\n";
        return 1;
    }
}
