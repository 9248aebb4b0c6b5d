// In a ThreadSanitizer build only (PROCPOOL_SANITIZE=thread, libpool/CMakeLists.txt): neither
// GCC 12's nor LLVM 16's ThreadSanitizer intercepts pthread_mutex_clocklock, which libstdc++'s
// std::timed_mutex::try_lock_until calls for a steady_clock deadline (imap_result::next with a
// timeout). The sanitizer then misses the lock, and reports "unlock of an unlocked mutex" and
// races on what the mutex guards. This definition, in libprocpool, comes before libc's in
// symbol lookup and forwards to pthread_mutex_timedlock, which the sanitizer intercepts, with
// the deadline carried over to CLOCK_REALTIME.
#include <cerrno>
#include <pthread.h>
#include <time.h>

extern "C" __attribute__((visibility("default"))) int
pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock,
                        const timespec* deadline) noexcept {
    if (clock == CLOCK_REALTIME)
        return pthread_mutex_timedlock(mutex, deadline);
    timespec now{}, real{};
    if (clock_gettime(clock, &now) != 0 || clock_gettime(CLOCK_REALTIME, &real) != 0)
        return EINVAL;
    constexpr long long ns_per_s = 1'000'000'000;
    const long long left =
        (deadline->tv_sec - now.tv_sec) * ns_per_s + (deadline->tv_nsec - now.tv_nsec);
    const long long at = real.tv_sec * ns_per_s + real.tv_nsec + (left > 0 ? left : 0);
    const timespec real_deadline{static_cast<time_t>(at / ns_per_s),
                                 static_cast<long>(at % ns_per_s)};
    return pthread_mutex_timedlock(mutex, &real_deadline);
}
