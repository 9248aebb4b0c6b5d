// What a run of procpool-perf reports: a table on stdout, one JSON object a line (--json),
// ProcPool beside the CPython peer when the peer ran (--peer), and a bar chart (--plot).
#pragma once

#include <boost/json.hpp>

#include <cstddef>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace perf {

/// The cases of one run, and where they go: each case, ProcPool's ("ours") and the peer's
/// ("theirs"), as a JSON line to the --json output; ProcPool's also as a row of the table on
/// stdout, unless the JSON lines go there. Not thread-safe: one thread reports.
class report {
public:
    /// Opens the JSON output: none when `path` is empty, stdout when it is "-", else the file
    /// (truncated). Returns false when the file cannot be opened for writing. Does not throw.
    bool open_json(const std::string& path);

    /// Prints the table's header row, when there is a table.
    void header() const;

    /// Reports one case of ProcPool's: its JSON line (flushed) and its table row.
    void ours(boost::json::object o);

    /// Reports one case of the peer's: its JSON line (flushed).
    void theirs(boost::json::object o);

    /// When the peer ran and there is a table: each figure of ProcPool's beside the peer's
    /// one for the same case, and ProcPool's advantage (above 1: ProcPool is ahead).
    void side_by_side() const;

    /// Draws the run into `png` with gnuplot: the advantage per case when the peer ran,
    /// otherwise tasks/s and MB/s. Blocks while gnuplot runs. Throws std::runtime_error when
    /// gnuplot fails.
    void plot(const std::string& png) const;

private:
    bool table() const noexcept { return json_ != &std::cout; }

    std::ofstream json_file_;
    std::ostream* json_ = nullptr; ///< nullptr: no JSON lines
    std::vector<boost::json::object> ours_;
    std::vector<boost::json::object> theirs_;
};

/// A progress bar on stderr, drawn only when it is enabled and stderr is a terminal. Not
/// thread-safe.
class progress {
public:
    progress(std::size_t total, bool enabled);
    /// Draws the bar with `what` as the step now starting.
    void step(const std::string& what);
    /// Clears the bar's line.
    void finish();

private:
    std::size_t total_;
    std::size_t done_ = 0;
    bool enabled_;
};

} // namespace perf
