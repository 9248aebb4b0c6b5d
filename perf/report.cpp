#include "report.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <unistd.h>

namespace perf {

namespace {

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
/// Calls f(mine, other) for each figure of `ours` and each figure of `theirs` with its label.
template <class F>
void for_each_pair(const std::vector<boost::json::object>& ours,
                   const std::vector<boost::json::object>& theirs, F f) {
    for (const auto& o : ours)
        for (const figure& mine : figures_of(o))
            for (const auto& t : theirs)
                for (const figure& other : figures_of(t))
                    if (other.label == mine.label)
                        f(mine, other);
}

} // namespace

bool report::open_json(const std::string& path) {
    if (path == "-") {
        json_ = &std::cout;
    } else if (!path.empty()) {
        json_file_.open(path);
        if (!json_file_)
            return false;
        json_ = &json_file_;
    }
    return true;
}

void report::header() const {
    if (table())
        std::printf("%-34s %10s %10s %12s %10s %10s %10s\n", "procpool case", "median_s", "tasks/s",
                    "MB/s", "p50_us", "p99_us", "%core");
}

void report::ours(boost::json::object o) {
    if (json_)
        *json_ << boost::json::serialize(o) << std::endl;
    if (table())
        print_row(o);
    ours_.push_back(std::move(o));
}

void report::theirs(boost::json::object o) {
    if (json_)
        *json_ << boost::json::serialize(o) << std::endl;
    theirs_.push_back(std::move(o));
}

void report::side_by_side() const {
    if (theirs_.empty() || !table())
        return;
    std::printf("\n%-40s %8s %14s %14s %10s\n", "side by side", "unit", "procpool", "python",
                "advantage");
    for_each_pair(ours_, theirs_, [](const figure& f, const figure& g) {
        std::printf("%-40s %8s %14s %14s %9sx\n", f.label.c_str(), f.name.c_str(),
                    cell(f.value, "%.3f").c_str(), cell(g.value, "%.3f").c_str(),
                    cell(advantage(f, g), "%.1f").c_str());
    });
}

void report::plot(const std::string& png) const {
    const std::string data = png + ".dat";
    std::ofstream d(data);
    const bool ratio = !theirs_.empty();
    for (const auto& o : ours_)
        for (const figure& f : figures_of(o)) {
            double y = -1;
            if (ratio) {
                for (const auto& t : theirs_)
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

progress::progress(std::size_t total, bool enabled)
    : total_(total)
    , enabled_(enabled && ::isatty(2) != 0) {}

void progress::step(const std::string& what) {
    if (!enabled_)
        return;
    const std::size_t width = 30;
    const std::size_t filled = total_ ? done_ * width / total_ : width;
    std::fprintf(stderr, "\r[%s%s] %zu/%zu %-28s", std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), done_, total_, what.c_str());
    std::fflush(stderr);
    ++done_;
}

void progress::finish() {
    if (enabled_)
        std::fprintf(stderr, "\r%80s\r", "");
}

} // namespace perf
