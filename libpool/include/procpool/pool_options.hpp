// procpool::pool_options: Python's Pool(processes, initializer, initargs, maxtasksperchild,
// context), as designated initializers: pool({.processes = 4}).
#pragma once

#include <procpool/context.hpp>
#include <procpool/initializer.hpp>

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
}; // the "= {}" keep {.processes = 4} free of GCC 12's -Wmissing-field-initializers

} // namespace procpool
