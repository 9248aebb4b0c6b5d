// procpool-perf: the throughput harness (DESIGN.md section 4). Runs the scenarios, prints a
// table (stdout) and JSON lines (--json), and with --peer python runs the same cases through
// CPython's multiprocessing.Pool (perf/peers/python_pool.py) and prints both side by side.
#include "digest_scenario.hpp"
#include "harness.hpp"

#include <procpool/procpool.hpp>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <ranges>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace po = boost::program_options;
using perf::clock_type;
using perf::emit_fn;
using perf::median;
using perf::pool_options;
using perf::seconds_since;
using perf::settings;

namespace {

long square(long x) {
    return x * x;
}
std::vector<char> identity(std::vector<char> v) {
    return v;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

/// Scenarios that start and stop processes themselves, which MPI ranks never do.
bool spawn_only(const std::string& scenario) {
    return scenario == "startup" || scenario == "respawn" || scenario == "idle";
}

// Warm-up. tiny_map, tiny_imap_unordered, payload and digest run each case once, untimed,
// before the --repeat timed runs, and the CPython peer does the same: they measure a pool in
// steady use.
// A first pass pays one-off costs that pool start (`startup`) and a program's first map pay
// once: glibc maps the first large result vector and only raises its mmap threshold when it is
// freed, so the first two maps of 2 000 000 longs fault in memory that later ones reuse
// (docs/performance.md: a program's first maps).
void tiny_map(const settings& s, const emit_fn& emit) {
    struct variant {
        std::size_t items;
        std::size_t chunksize; // 0: Python's default
    };
    std::vector<variant> variants = {{20'000, 1}, {2'000'000, 0}, {2'000'000, 1000}};
    if (s.quick)
        variants = {{20'000, 1}, {200'000, 0}, {200'000, 1000}};
    procpool::pool pool(pool_options(s));
    for (const variant& v : variants) {
        std::vector<long> input(v.items);
        std::iota(input.begin(), input.end(), 0L);
        pool.map(square, input, v.chunksize); // untimed warm-up: see the note above tiny_map
        std::vector<double> times;
        for (int r = 0; r < s.repeat; ++r) {
            const auto start = clock_type::now();
            const auto out = pool.map(square, input, v.chunksize);
            times.push_back(seconds_since(start));
            if (out.back() != square(input.back()))
                throw std::runtime_error("tiny_map: wrong result");
        }
        const double m = median(times);
        const std::size_t chunk =
            v.chunksize ? v.chunksize : procpool::detail::default_chunksize(v.items, s.processes);
        emit({{"scenario", "tiny_map"},
              {"tasks", v.items},
              {"chunksize", chunk},
              {"median_s", m},
              {"tasks_per_s", static_cast<double>(v.items) / m}});
    }
}

void tiny_imap_unordered(const settings& s, const emit_fn& emit) {
    const std::size_t items = 20'000;
    procpool::pool pool(pool_options(s));
    for (long y : pool.imap_unordered(square, std::views::iota(0L, static_cast<long>(items))))
        static_cast<void>(y); // untimed warm-up: see the note above tiny_map
    std::vector<double> times;
    for (int r = 0; r < s.repeat; ++r) {
        const auto start = clock_type::now();
        long sum = 0;
        for (long y : pool.imap_unordered(square, std::views::iota(0L, static_cast<long>(items))))
            sum += y;
        times.push_back(seconds_since(start));
        if (sum != static_cast<long>((items - 1) * items * (2 * items - 1) / 6))
            throw std::runtime_error("tiny_imap_unordered: wrong result");
    }
    const double m = median(times);
    emit({{"scenario", "tiny_imap_unordered"},
          {"tasks", items},
          {"chunksize", 1},
          {"median_s", m},
          {"tasks_per_s", static_cast<double>(items) / m}});
}

void latency(const settings& s, const emit_fn& emit, bool async_get) {
    const int trips = s.quick ? 500 : 2000;
    procpool::pool pool(pool_options(s));
    pool.apply(square, 1L); // warm: workers attached
    std::vector<double> runs, all_us;
    for (int r = 0; r < s.repeat; ++r) {
        const auto start = clock_type::now();
        for (int i = 0; i < trips; ++i) {
            const auto t0 = clock_type::now();
            long y =
                async_get ? pool.apply_async(square, long{i}).get() : pool.apply(square, long{i});
            all_us.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
            if (y != long{i} * i)
                throw std::runtime_error("latency: wrong result");
        }
        runs.push_back(seconds_since(start));
    }
    emit({{"scenario", async_get ? "latency_apply_async_get" : "latency_apply"},
          {"tasks", trips},
          {"median_s", median(runs)},
          {"tasks_per_s", trips / median(runs)},
          {"p50_us", percentile(all_us, 50)},
          {"p99_us", percentile(all_us, 99)}});
}

void payload(const settings& s, const emit_fn& emit) {
    procpool::pool pool(pool_options(s));
    for (std::size_t size : {std::size_t{1} << 10, std::size_t{64} << 10, std::size_t{1} << 20,
                             std::size_t{16} << 20}) {
        // About 256 MiB each way per run (64 MiB with --quick), at least 8 tasks.
        const std::size_t budget = s.quick ? (std::size_t{64} << 20) : (std::size_t{256} << 20);
        const std::size_t tasks = std::clamp<std::size_t>(budget / size, 8, 20'000);
        const std::vector<std::vector<char>> input(tasks, std::vector<char>(size, 'x'));
        pool.map(identity, input, 1); // untimed warm-up: see the note above tiny_map
        std::vector<double> times;
        for (int r = 0; r < s.repeat; ++r) {
            const auto start = clock_type::now();
            const auto out = pool.map(identity, input, 1);
            times.push_back(seconds_since(start));
            if (out.size() != tasks || out.back().size() != size)
                throw std::runtime_error("payload: wrong result");
        }
        const double m = median(times);
        emit({{"scenario", "payload"},
              {"tasks", tasks},
              {"chunksize", 1},
              {"payload_bytes", size},
              {"median_s", m},
              {"tasks_per_s", static_cast<double>(tasks) / m},
              {"mb_per_s", 2.0 * static_cast<double>(tasks * size) / m / 1e6}});
    }
}

void startup(const settings& s, const emit_fn& emit) {
    std::vector<double> times;
    const int runs = std::max(s.repeat, 5);
    for (int r = 0; r < runs; ++r) {
        const auto start = clock_type::now();
        {
            procpool::pool pool(2);
            if (pool.apply(square, 3L) != 9)
                throw std::runtime_error("startup: wrong result");
        }
        times.push_back(seconds_since(start));
    }
    emit({{"scenario", "startup"}, {"processes", 2}, {"tasks", 1}, {"median_s", median(times)}});
}

void respawn(const settings& s, const emit_fn& emit) {
    const std::size_t items = s.quick ? 200 : 2000;
    std::vector<long> input(items);
    std::iota(input.begin(), input.end(), 0L);
    for (const char* method : {"spawn", "forkserver"}) {
        procpool::pool pool({.processes = s.processes,
                             .maxtasksperchild = 1,
                             .context = procpool::get_context(method)});
        pool.apply(square, 1L); // the forkserver is started
        // One run: a steady state of thousands of process starts already (CPython's spawn
        // takes minutes for three).
        const auto start = clock_type::now();
        const auto out = pool.map(square, input, 1);
        const double m = seconds_since(start);
        if (out.back() != square(input.back()))
            throw std::runtime_error("respawn: wrong result");
        emit({{"scenario", "respawn"},
              {"start_method", method},
              {"tasks", items},
              {"chunksize", 1},
              {"median_s", m},
              {"tasks_per_s", static_cast<double>(items) / m}});
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
double process_cpu_seconds(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i)
        if (i == 14 || i == 15) // utime, stime
            ticks += std::stod(field);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

void idle(const settings&, const emit_fn& emit) {
    const double seconds = 2.0;
    procpool::pool pool(2);
    pool.apply(square, 1L); // started and attached
    const auto pids = pool.worker_pids();
    auto cpu = [&] {
        double total = self_cpu_seconds();
        for (int pid : pids)
            total += process_cpu_seconds(pid);
        return total;
    };
    const double before = cpu();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const double used = cpu() - before;
    emit({{"scenario", "idle"},
          {"processes", 2},
          {"tasks", 0},
          {"median_s", seconds},
          {"cpu_s", used},
          {"core_percent", 100.0 * used / seconds}});
}

void serial_loop(const settings& s, const emit_fn& emit) {
    const std::size_t items = s.quick ? 200'000 : 2'000'000;
    std::vector<long> input(items);
    std::iota(input.begin(), input.end(), 0L);
    std::vector<double> times;
    for (int r = 0; r < s.repeat; ++r) {
        const auto start = clock_type::now();
        std::vector<long> out;
        out.reserve(items);
        for (long x : input)
            out.push_back(square(x));
        times.push_back(seconds_since(start));
        if (out.back() != square(input.back()))
            throw std::runtime_error("serial_loop: wrong result");
    }
    const double m = median(times);
    emit({{"scenario", "serial_loop"},
          {"processes", 1},
          {"tasks", items},
          {"median_s", m},
          {"tasks_per_s", static_cast<double>(items) / m}});
}

/// How a case is compared: its key, the figure, and whether higher is better.
struct figure {
    std::string label;
    std::string name;
    double value;
    bool higher_is_better;
};

std::string case_label(const boost::json::object& o) {
    std::string label = o.at("scenario").as_string().c_str();
    if (o.contains("start_method")) {
        label += ' ';
        label += o.at("start_method").as_string().c_str();
    }
    if (o.contains("payload_bytes")) {
        label += ' ';
        label += std::to_string(o.at("payload_bytes").to_number<long>());
        label += 'B';
    } else if (o.contains("chunksize")) {
        label += " n=";
        label += std::to_string(o.at("tasks").to_number<long>());
        label += " c=";
        label += std::to_string(o.at("chunksize").to_number<long>());
    }
    return label;
}

double number(const boost::json::object& o, const char* key) {
    return o.contains(key) ? boost::json::value_to<double>(o.at(key)) : -1.0;
}

/// The figures a case is judged by (two for the latency scenarios: p50 and p99).
std::vector<figure> figures_of(const boost::json::object& o) {
    const std::string scenario = o.at("scenario").as_string().c_str();
    const std::string label = case_label(o);
    if (scenario.starts_with("latency"))
        return {{label + " p50", "p50 us", number(o, "p50_us"), false},
                {label + " p99", "p99 us", number(o, "p99_us"), false}};
    if (scenario == "startup")
        return {{label, "ms", 1e3 * number(o, "median_s"), false}};
    if (scenario == "idle")
        return {{label, "% core", number(o, "core_percent"), false}};
    if (scenario == "payload" || scenario == "digest")
        return {{label, "MB/s", number(o, "mb_per_s"), true}};
    return {{label, "tasks/s", number(o, "tasks_per_s"), true}};
}

std::string cell(double v, const char* fmt) {
    if (v < 0)
        return "-";
    char b[32];
    std::snprintf(b, sizeof b, fmt, v);
    return b;
}

void print_row(const boost::json::object& o) {
    std::printf(
        "%-34s %10s %10s %12s %10s %10s %10s\n", case_label(o).c_str(),
        cell(number(o, "median_s"), "%.4f").c_str(), cell(number(o, "tasks_per_s"), "%.0f").c_str(),
        cell(number(o, "mb_per_s"), "%.1f").c_str(), cell(number(o, "p50_us"), "%.1f").c_str(),
        cell(number(o, "p99_us"), "%.1f").c_str(), cell(number(o, "core_percent"), "%.3f").c_str());
    std::fflush(stdout);
}

/// ProcPool's figure over CPython's, oriented so that above 1 means ProcPool is ahead.
double advantage(const figure& ours, const figure& theirs) {
    if (ours.value <= 0 || theirs.value <= 0)
        return -1;
    return ours.higher_is_better ? ours.value / theirs.value : theirs.value / ours.value;
}

/// This program's path; empty when /proc/self/exe cannot be read.
std::filesystem::path this_program() {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : exe;
}

/// The peer script beside an installed procpool-perf (BINDIR/../share/procpool/peers), else
/// the one in the source tree it was built from.
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
/// Replaces this process with procpool-perf-mpi from the same directory, same arguments (each
/// rank of an mpirun job does so before MPI starts). Returns only on failure.
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

/// Runs the CPython peer with the same cases; returns its JSON objects.
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

/// Runs one scenario in a fresh process of this program (--child) and returns its JSON objects.
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

/// A bar chart of the run, drawn by gnuplot: ProcPool's advantage per case when the peer
/// ran, otherwise tasks/s.
void plot(const std::string& png, const std::vector<boost::json::object>& ours,
          const std::vector<boost::json::object>& theirs) {
    const std::string data = png + ".dat";
    std::ofstream d(data);
    bool ratio = !theirs.empty();
    for (const auto& o : ours)
        for (const figure& f : figures_of(o)) {
            double y = -1;
            if (ratio) {
                for (const auto& t : theirs)
                    for (const figure& g : figures_of(t))
                        if (g.label == f.label)
                            y = advantage(f, g);
            } else if (f.name == "tasks/s" || f.name == "MB/s") {
                y = f.value;
            }
            if (y > 0)
                d << '"' << f.label << "\" " << y << "\n";
        }
    d.close();
    const std::string script = png + ".gp";
    std::ofstream g(script);
    g << "set terminal pngcairo size 1200,700 noenhanced\n"
      << "set output '" << png << "'\n"
      << "set style data histograms\nset style fill solid 0.8\nset boxwidth 0.8\n"
      << "set logscale y\nset grid ytics\nset xtics rotate by -40 font ',9'\n"
      << "set key off\nset bmargin 12\n"
      << (ratio ? "set title 'ProcPool over CPython multiprocessing.Pool (x, higher is better)'\n"
                  "set ylabel 'advantage (x)'\n"
                : "set title 'ProcPool throughput'\nset ylabel 'per second'\n")
      << "plot '" << data << "' using 2:xtic(1) lc rgb '#2a6f97'"
      << (ratio ? ", 1 with lines lc rgb 'red' lw 2" : "") << "\n";
    g.close();
    const std::string command = "gnuplot '" + script + "'";
    const int rc = std::system(command.c_str());
    std::remove(script.c_str());
    std::remove(data.c_str());
    if (rc != 0)
        throw std::runtime_error("gnuplot failed (is gnuplot-nox installed?)");
}

/// A progress bar on stderr, drawn only when stderr is a terminal (and this is no --child).
class progress {
public:
    progress(std::size_t total, bool enabled)
        : total_(total)
        , enabled_(enabled && ::isatty(2) != 0) {}
    void step(const std::string& what) {
        if (!enabled_)
            return;
        const std::size_t width = 30;
        const std::size_t filled = total_ ? done_ * width / total_ : width;
        std::fprintf(stderr, "\r[%s%s] %zu/%zu %-28s", std::string(filled, '#').c_str(),
                     std::string(width - filled, ' ').c_str(), done_, total_, what.c_str());
        std::fflush(stderr);
        ++done_;
    }
    void finish() {
        if (enabled_)
            std::fprintf(stderr, "\r%80s\r", "");
    }

private:
    std::size_t total_;
    std::size_t done_ = 0;
    bool enabled_;
};

} // namespace

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    settings s;
    std::vector<std::string> scenarios;
    std::string json_path, plot_path, peer, peer_script = default_peer_script();
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
        return exec_mpi_build(argv);
#endif
    for (const auto& name : scenarios)
        if (mpi && spawn_only(name)) {
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

    const std::vector<std::pair<std::string, std::function<void(const emit_fn&)>>> all = {
        {"tiny_map", [&](const emit_fn& e) { tiny_map(s, e); }},
        {"tiny_imap_unordered", [&](const emit_fn& e) { tiny_imap_unordered(s, e); }},
        {"latency_apply_async_get", [&](const emit_fn& e) { latency(s, e, true); }},
        {"latency_apply", [&](const emit_fn& e) { latency(s, e, false); }},
        {"payload", [&](const emit_fn& e) { payload(s, e); }},
        {"startup", [&](const emit_fn& e) { startup(s, e); }},
        {"respawn", [&](const emit_fn& e) { respawn(s, e); }},
        {"idle", [&](const emit_fn& e) { idle(s, e); }},
        {"serial_loop", [&](const emit_fn& e) { serial_loop(s, e); }},
        {"digest", [&](const emit_fn& e) { perf::digest_scenario(s, e); }},
    };
    for (const auto& name : scenarios)
        if (std::none_of(all.begin(), all.end(), [&](const auto& a) { return a.first == name; })) {
            std::cerr << "procpool-perf: unknown scenario '" << name << "'\n" << options;
            return 2;
        }
    std::vector<std::string> chosen;
    for (const auto& [name, run] : all)
        if ((scenarios.empty() && !(mpi && spawn_only(name))) ||
            std::find(scenarios.begin(), scenarios.end(), name) != scenarios.end())
            chosen.push_back(name);

    std::ofstream json_file;
    std::ostream* json = nullptr;
    if (json_path == "-")
        json = &std::cout;
    else if (!json_path.empty()) {
        json_file.open(json_path);
        if (!json_file) {
            std::cerr << "procpool-perf: cannot write " << json_path << "\n";
            return 2;
        }
        json = &json_file;
    }
    const bool table = json != &std::cout;
    if (table)
        std::printf("%-34s %10s %10s %12s %10s %10s %10s\n", "procpool case", "median_s", "tasks/s",
                    "MB/s", "p50_us", "p99_us", "%core");

    // Each scenario runs in a fresh process of its own, and the peer's run of it follows at
    // once: a scenario then starts from the same state whatever ran before it (a large payload
    // leaves the allocator and the scheduler in states that slow the next scenario's pool starts:
    // docs/performance.md, pool starts after a large payload), and both sides of a case meet the
    // same phase of a noisy host. MPI ranks run everything in one process, as mpirun started them.
    const bool own_processes = !child && !mpi;
    progress bar(chosen.size() * (peer.empty() ? 1 : 2), !child);
    std::vector<boost::json::object> ours, theirs;
    std::optional<perf::generated_tree> tree; // the files of `digest`, removed at the end
    auto record = [&](boost::json::object o) {
        if (json)
            *json << boost::json::serialize(o) << std::endl;
        if (table)
            print_row(o);
        ours.push_back(std::move(o));
    };
    try {
        for (const auto& [name, run] : all) {
            if (std::find(chosen.begin(), chosen.end(), name) == chosen.end())
                continue;
            bar.step(name);
            if (name == "digest" && s.digest_tree.empty())
                s.digest_tree = tree.emplace(perf::digest_tree_files(s)).path().string();
            if (own_processes) {
                for (auto& o : run_in_child(s, name))
                    record(std::move(o));
            } else {
                run([&](boost::json::object o) {
                    o.emplace("impl", "procpool");
                    // startup, respawn and idle start their own pools, whatever --context says.
                    if (name != "serial_loop" && !spawn_only(name))
                        o.emplace("context", s.context);
                    if (!o.contains("processes"))
                        o.emplace("processes", s.processes);
                    record(std::move(o));
                });
            }
            if (!peer.empty()) {
                bar.step(name + " (CPython)");
                for (auto& o : run_python_peer(peer_script, s, {name})) {
                    if (json)
                        *json << boost::json::serialize(o) << std::endl;
                    theirs.push_back(std::move(o));
                }
            }
        }
        bar.finish();
        if (!theirs.empty() && table) {
            std::printf("\n%-40s %8s %14s %14s %10s\n", "side by side", "unit", "procpool",
                        "python", "advantage");
            for (const auto& o : ours)
                for (const figure& f : figures_of(o))
                    for (const auto& t : theirs)
                        for (const figure& g : figures_of(t))
                            if (g.label == f.label) {
                                const double a = advantage(f, g);
                                std::printf("%-40s %8s %14s %14s %9sx\n", f.label.c_str(),
                                            f.name.c_str(), cell(f.value, "%.3f").c_str(),
                                            cell(g.value, "%.3f").c_str(), cell(a, "%.1f").c_str());
                            }
        }
        if (!plot_path.empty())
            plot(plot_path, ours, theirs);
    } catch (const std::exception& e) {
        bar.finish();
        std::cerr << "procpool-perf: " << e.what() << "\n";
        return 1;
    }
}
