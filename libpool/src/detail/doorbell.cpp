// eventfd and epoll calls behind detail/doorbell.hpp.
#include "doorbell.hpp"
#include "throw_error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace procpool::detail {

void ring_doorbell(int fd, const std::atomic<std::uint32_t>& sleepers) noexcept {
    // seq_cst fence: the publish half of the Dekker pair in doorbell.hpp. The caller's data
    // stores come before it; the sleepers load after it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // relaxed: ordered by the fence above.
    if (sleepers.load(std::memory_order_relaxed) == 0)
        return;
    const std::uint64_t one = 1;
    // EAGAIN (a count near 2^64, never reached) still leaves the eventfd readable: the edge
    // that wakes the parent came with an earlier write.
    [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
}

doorbell::doorbell() {
    event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (event_fd_ < 0)
        throw_system_error("eventfd");
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
        const int err = errno;
        ::close(event_fd_);
        throw_system_error("epoll_create1", err);
    }
    // Edge-triggered: each write is one wake-up, and the count need never be read back.
    epoll_event event{};
    event.events = EPOLLIN | EPOLLET;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &event) != 0) {
        const int err = errno;
        ::close(epoll_fd_);
        ::close(event_fd_);
        throw_system_error("epoll_ctl", err);
    }
}

doorbell::~doorbell() {
    ::close(epoll_fd_);
    ::close(event_fd_);
}

void doorbell::sleep(std::chrono::steady_clock::time_point deadline) noexcept {
    epoll_event event{};
    int timeout_ms = -1; // no limit
    if (deadline != std::chrono::steady_clock::time_point::max()) {
        // Rounded up: waking before the deadline would only make the caller sleep again.
        const auto left = deadline - std::chrono::steady_clock::now();
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        timeout_ms = static_cast<int>(std::clamp<std::int64_t>(ms, 0, 1 << 30));
    }
    // EINTR means "look again", as does any return.
    ::epoll_wait(epoll_fd_, &event, 1, timeout_ms);
}

} // namespace procpool::detail
