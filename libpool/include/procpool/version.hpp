// The library version, as macros for the preprocessor and constants for C++.
#pragma once

#define PROCPOOL_VERSION_MAJOR 0
#define PROCPOOL_VERSION_MINOR 1
#define PROCPOOL_VERSION_PATCH 0
#define PROCPOOL_VERSION_STRING "0.1.0"
/// MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons.
#define PROCPOOL_VERSION                                                                           \
    (PROCPOOL_VERSION_MAJOR * 10000 + PROCPOOL_VERSION_MINOR * 100 + PROCPOOL_VERSION_PATCH)

namespace procpool {
inline constexpr int version_major = PROCPOOL_VERSION_MAJOR;
inline constexpr int version_minor = PROCPOOL_VERSION_MINOR;
inline constexpr int version_patch = PROCPOOL_VERSION_PATCH;
inline constexpr const char* version_string = PROCPOOL_VERSION_STRING;
} // namespace procpool
