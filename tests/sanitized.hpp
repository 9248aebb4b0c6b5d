// Whether the tests are built with a sanitizer, for the few checks that cannot hold there.
#pragma once

// GCC says so with __SANITIZE_ADDRESS__ and __SANITIZE_THREAD__, Clang with __has_feature.
#if defined(__has_feature)
#define PROCPOOL_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define PROCPOOL_TEST_HAS_FEATURE(x) 0
#endif

namespace testing {

/// Built with ThreadSanitizer. Its runtime cannot start threads in a child forked from a process
/// with threads ("dup thread with used id": the child's copy of its thread registry still holds
/// the parent's), so a forked child there makes no pool of its own.
#if defined(__SANITIZE_THREAD__) || PROCPOOL_TEST_HAS_FEATURE(thread_sanitizer)
inline constexpr bool thread_sanitized = true;
#else
inline constexpr bool thread_sanitized = false;
#endif

/// Built with AddressSanitizer or ThreadSanitizer (scripts/sanitize.sh). Their allocators hold
/// freed memory back (a quarantine, shadow memory), so a bound on this process's resident
/// memory says nothing there: the tests that assert one skip that check, and only that check.
/// And their runtimes need descriptors of their own (see test_faults' descriptor test).
#if defined(__SANITIZE_ADDRESS__) || PROCPOOL_TEST_HAS_FEATURE(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = thread_sanitized;
#endif

} // namespace testing
