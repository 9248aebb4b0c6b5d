// procpool-perf: the throughput harness (DESIGN.md section 4). This first version runs the
// scenarios the pool supports so far; the CPython peer, the plot and the progress bar come
// with the perf issue.
#include <procpool/procpool.hpp>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <ranges>
#include <string>
#include <vector>

namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;

namespace {

long square(long x) {
    return x * x;
}
std::vector<char> identity(std::vector<char> v) {
    return v;
}

double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

struct settings {
    std::size_t processes = 2;
    int repeat = 3;
    bool quick = false;
};

/// One measured case: runs `body` `repeat` times; body returns extra fields of one run.
struct case_result {
    boost::json::object fields;
};

using emit_fn = std::function<void(boost::json::object)>;

void tiny_map(const settings& s, const emit_fn& emit) {
    struct variant {
        std::size_t items;
        std::size_t chunksize; // 0: Python's default
    };
    std::vector<variant> variants = {{20'000, 1}, {2'000'000, 0}, {2'000'000, 1000}};
    if (s.quick)
        variants = {{20'000, 1}, {200'000, 0}, {200'000, 1000}};
    procpool::pool pool(s.processes);
    for (const variant& v : variants) {
        std::vector<long> input(v.items);
        std::iota(input.begin(), input.end(), 0L);
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
    procpool::pool pool(s.processes);
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
    procpool::pool pool(s.processes);
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
    procpool::pool pool(s.processes);
    for (std::size_t size : {std::size_t{1} << 10, std::size_t{64} << 10, std::size_t{1} << 20,
                             std::size_t{16} << 20}) {
        // About 256 MiB each way per run (64 MiB with --quick), at least 8 tasks.
        const std::size_t budget = s.quick ? (std::size_t{64} << 20) : (std::size_t{256} << 20);
        const std::size_t tasks = std::clamp<std::size_t>(budget / size, 8, 20'000);
        const std::vector<std::vector<char>> input(tasks, std::vector<char>(size, 'x'));
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
        std::vector<double> times;
        for (int r = 0; r < s.repeat; ++r) {
            const auto start = clock_type::now();
            const auto out = pool.map(square, input, 1);
            times.push_back(seconds_since(start));
            if (out.back() != square(input.back()))
                throw std::runtime_error("respawn: wrong result");
        }
        const double m = median(times);
        emit({{"scenario", "respawn"},
              {"start_method", method},
              {"tasks", items},
              {"chunksize", 1},
              {"median_s", m},
              {"tasks_per_s", static_cast<double>(items) / m}});
    }
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

} // namespace

int main(int argc, char** argv) {
    procpool::init(argc, argv);

    settings s;
    std::vector<std::string> scenarios;
    std::string json_path;
    po::options_description options("procpool-perf options");
    options.add_options()("help,h", "show this help")(
        "quick", po::bool_switch(&s.quick), "smaller inputs, for a first look in seconds")(
        "scenario", po::value(&scenarios)->composing(),
        "run only this scenario (repeatable): tiny_map, tiny_imap_unordered, latency_apply, "
        "latency_apply_async_get, "
        "payload, startup, respawn, serial_loop")(
        "processes", po::value(&s.processes)->default_value(2), "workers per pool")(
        "repeat", po::value(&s.repeat)->default_value(3), "runs per case; the median is reported")(
        "json", po::value(&json_path), "write one JSON object per case to FILE, or - for stdout");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, options), vm);
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

    const std::vector<std::pair<std::string, std::function<void(const emit_fn&)>>> all = {
        {"tiny_map", [&](const emit_fn& e) { tiny_map(s, e); }},
        {"tiny_imap_unordered", [&](const emit_fn& e) { tiny_imap_unordered(s, e); }},
        {"latency_apply_async_get", [&](const emit_fn& e) { latency(s, e, true); }},
        {"latency_apply", [&](const emit_fn& e) { latency(s, e, false); }},
        {"payload", [&](const emit_fn& e) { payload(s, e); }},
        {"startup", [&](const emit_fn& e) { startup(s, e); }},
        {"respawn", [&](const emit_fn& e) { respawn(s, e); }},
        {"serial_loop", [&](const emit_fn& e) { serial_loop(s, e); }},
    };
    for (const auto& name : scenarios)
        if (std::none_of(all.begin(), all.end(), [&](const auto& a) { return a.first == name; })) {
            std::cerr << "procpool-perf: unknown scenario '" << name << "'\n" << options;
            return 2;
        }

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
        std::printf("%-24s %9s %9s %10s %12s %10s %10s %10s\n", "scenario", "tasks", "chunk",
                    "median_s", "tasks/s", "MB/s", "p50_us", "p99_us");

    for (const auto& [name, run] : all) {
        if (!scenarios.empty() &&
            std::find(scenarios.begin(), scenarios.end(), name) == scenarios.end())
            continue;
        run([&](boost::json::object o) {
            o.emplace("impl", "procpool");
            if (!o.contains("processes"))
                o.emplace("processes", s.processes);
            if (json)
                *json << boost::json::serialize(o) << std::endl;
            if (table) {
                auto num = [&](const char* key) {
                    return o.contains(key) ? boost::json::value_to<double>(o.at(key)) : -1.0;
                };
                auto cell = [](double v, const char* fmt) {
                    char b[32];
                    if (v < 0)
                        return std::string("-");
                    std::snprintf(b, sizeof b, fmt, v);
                    return std::string(b);
                };
                std::string label = name;
                if (o.contains("start_method")) {
                    label += ' ';
                    label += o.at("start_method").as_string().c_str();
                }
                if (o.contains("payload_bytes")) {
                    label += ' ';
                    label += std::to_string(o.at("payload_bytes").to_number<long>());
                    label += 'B';
                }
                std::printf(
                    "%-24s %9s %9s %10s %12s %10s %10s %10s\n", label.c_str(),
                    cell(num("tasks"), "%.0f").c_str(), cell(num("chunksize"), "%.0f").c_str(),
                    cell(num("median_s"), "%.4f").c_str(), cell(num("tasks_per_s"), "%.0f").c_str(),
                    cell(num("mb_per_s"), "%.1f").c_str(), cell(num("p50_us"), "%.1f").c_str(),
                    cell(num("p99_us"), "%.1f").c_str());
                std::fflush(stdout);
            }
        });
    }
}
