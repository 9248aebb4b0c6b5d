// The synthetic scenarios: small items (tiny_map, tiny_imap_unordered), round trips
// (latency_apply, latency_apply_async_get), large items (payload), process starts (startup,
// respawn), an idle pool (idle) and the loop without a pool (serial_loop).
#include "scenarios.hpp"

#include "digest_scenario.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <iterator>
#include <numeric>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace perf {

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

} // namespace

const std::vector<scenario>& all_scenarios() {
    static const std::vector<scenario> all = {
        {"tiny_map", tiny_map},
        {"tiny_imap_unordered", tiny_imap_unordered},
        {"latency_apply_async_get",
         [](const settings& s, const emit_fn& e) { latency(s, e, true); }},
        {"latency_apply", [](const settings& s, const emit_fn& e) { latency(s, e, false); }},
        {"payload", payload},
        {"startup", startup},
        {"respawn", respawn},
        {"idle", idle},
        {"serial_loop", serial_loop},
        {"digest", digest_scenario},
    };
    return all;
}

bool spawn_only(const std::string& name) noexcept {
    return name == "startup" || name == "respawn" || name == "idle";
}

} // namespace perf
