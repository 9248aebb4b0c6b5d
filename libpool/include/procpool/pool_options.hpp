// procpool::pool_options: Python's Pool(processes, initializer, initargs, maxtasksperchild,
// context), as designated initializers: pool({.processes = 4}).
#pragma once

#include <procpool/context.hpp>
#include <procpool/initializer.hpp>

#include <chrono>
#include <cstddef>
#include <optional>

namespace procpool {

struct pool_options {
    /// Number of workers; default std::thread::hardware_concurrency(). Zero is an error.
    std::optional<std::size_t> processes = {};
    /// Run once in every worker at start; default none.
    procpool::initializer initializer = {};
    /// A worker leaves after this many tasks (chunks, as Python counts) and is replaced;
    /// default: workers live as long as the pool.
    std::optional<std::size_t> maxtasksperchild = {};
    /// The start method; default get_context("spawn").
    std::optional<procpool::context> context = {};
    /// Every task (one apply, or one chunk of a map or imap) still running this long after it
    /// started fails with task_timeout_error, and its worker is killed and replaced; time spent
    /// queued does not count. Default: none. A call's task_options::timeout overrides it.
    std::optional<std::chrono::milliseconds> task_timeout = {};
    /// Bytes of resident memory: a worker whose RSS is above it after a task leaves once that
    /// task's result is sent, and is replaced (billiard's max_memory_per_child); results are
    /// unaffected. Default: none.
    std::optional<std::size_t> max_memory_per_child = {};
    /// Bytes of resident memory: the pool watches each worker's RSS while it has work (every
    /// few milliseconds) and kills one that goes past it; its task fails with
    /// memory_limit_error (limit(), rss()), or runs again if it has retries left. Default: none.
    std::optional<std::size_t> memory_limit_per_child = {};
    /// A task whose worker died under it (a signal, an exit) runs again, on a fresh worker, up
    /// to this many times before its worker_lost_error is given, which then says how many
    /// times it was tried. Timeouts, cancellations and exceptions are not retried. Default 0.
    std::size_t max_retries = 0;
}; // the "= {}" keep {.processes = 4} free of GCC 12's -Wmissing-field-initializers

/// Per call, overriding the pool's defaults: pool.apply_async(task_options{.timeout = 2s}, f, x),
/// and likewise for apply, map, map_async, imap, imap_unordered, starmap and starmap_async.
struct task_options {
    /// As pool_options::task_timeout, for this call's tasks; default: the pool's.
    std::optional<std::chrono::milliseconds> timeout = {};
    /// As pool_options::max_retries, for this call's tasks; default: the pool's.
    std::optional<std::size_t> max_retries = {};
};

} // namespace procpool
