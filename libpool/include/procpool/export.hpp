// PROCPOOL_API: what a shared libprocpool exports.
//
// Built with hidden visibility (CMake: PROCPOOL_HIDDEN_VISIBILITY with BUILD_SHARED_LIBS; b2:
// link=shared procpool-visibility=hidden), libprocpool.so exports only the declarations that
// carry PROCPOOL_API: the functions and classes defined in libpool/src that a program, or a
// template a program instantiates, reaches, and the error classes, whose type information a
// program's `catch` must share with the library that throws. Without hidden visibility, and in
// a static libprocpool, PROCPOOL_API changes nothing.
//
// Put it before a function's return type or after `class`/`struct`:
//     PROCPOOL_API void init(int argc, char** argv);
//     class PROCPOOL_API error : public std::runtime_error { ... };
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define PROCPOOL_API __attribute__((visibility("default")))
#else
#define PROCPOOL_API
#endif
