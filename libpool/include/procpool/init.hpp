// procpool::init: the one call a program makes for its workers.
#pragma once

#include <procpool/export.hpp>

namespace procpool {

/// Call first in main(), before anything else that has side effects.
///
/// In a worker process started by a pool (this same executable, started with a worker argument)
/// it runs the worker and never returns: the process exits when the pool no longer needs it.
/// In every other process it returns at once and does nothing else. Thread-safe, but meant to
/// be called once from main(). A worker that cannot attach to its pool exits with status 3
/// after printing why to stderr.
PROCPOOL_API void init(int argc, char** argv);

} // namespace procpool
