// procpool-perf's scenarios, by name, in the order a run takes them: the synthetic ones of
// scenarios.cpp and `digest` (digest_scenario.hpp).
#pragma once

#include "harness.hpp"

#include <functional>
#include <string>
#include <vector>

namespace perf {

/// One scenario: its name, as --scenario spells it, and how it runs.
struct scenario {
    std::string name;
    std::function<void(const settings&, const emit_fn&)> run;
};

/// Every scenario, in the order a run takes them: tiny_map, tiny_imap_unordered,
/// latency_apply_async_get, latency_apply, payload, startup, respawn, idle, serial_loop,
/// digest. Each one blocks while it runs and throws std::runtime_error when a result is wrong.
/// Does not throw; may be called from any thread.
const std::vector<scenario>& all_scenarios();

/// Whether `name` starts and stops processes itself (startup, respawn, idle), which MPI ranks
/// never do; such a scenario also ignores --context.
bool spawn_only(const std::string& name) noexcept;

} // namespace perf
