// What procpool-perf's scenarios share (DESIGN.md section 4): the run's settings, the way a
// scenario reports a case, and the timing helpers. Each scenario is a function
// `void NAME(const settings&, const emit_fn&)`.
#pragma once

#include <procpool/procpool.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace perf {

using clock_type = std::chrono::steady_clock;

struct settings {
    std::size_t processes = 2;
    int repeat = 3;
    bool quick = false;
    std::string context = "spawn"; ///< start method of the measured pools
    std::string digest_tree;       ///< the files `digest` reads (see digest_scenario.hpp)
};

/// Reports one case: a JSON object with the fields of DESIGN.md section 4.
using emit_fn = std::function<void(boost::json::object)>;

/// The pool a scenario measures: --processes workers, started the --context way.
inline procpool::pool_options pool_options(const settings& s) {
    return {.processes = s.processes, .context = procpool::get_context(s.context)};
}

inline double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace perf
