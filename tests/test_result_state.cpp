// The result states (libpool/include/procpool/detail/*_result.hpp) driven directly, without a
// pool: the hand-offs between the thread that completes a result and the one waiting for it.
#define PROCPOOL_TEST_SUITE_NAME "result_state"
#include "test_main.hpp"

#include <procpool/detail/vector_result.hpp>

#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <memory>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace procpool::detail;

namespace {

/// Spare buffers that keep nothing; ready_bulk runs a hook once (the test's other thread, at
/// the moment the waiter has let its mutex go).
class hooked_spares final : public spare_buffers {
public:
    std::function<void()> on_ready_bulk;

    std::vector<char> take(std::size_t) noexcept override { return {}; }
    std::vector<char> take_room(std::size_t) noexcept override { return {}; }
    void give(std::vector<char>&&) noexcept override {}
    bool ready_bulk(std::size_t, std::size_t) noexcept override {
        if (auto hook = std::exchange(on_ready_bulk, nullptr))
            hook();
        return false;
    }
};

/// True when `body` returns within `seconds`, run in a child process (a hang cannot stall the
/// test: the child is killed).
template <class Body>
bool returns_within(int seconds, Body body) {
    const pid_t child = ::fork();
    if (child == 0) {
        body();
        ::_exit(0);
    }
    for (int i = 0; i < seconds * 100; ++i) {
        int status = 0;
        if (::waitpid(child, &status, WNOHANG) == child)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_map_that_ends_while_its_waiter_readies_a_bulk_buffer_wakes_it) {
    // The waiter of a map of large results readies buffers for the bulks to come with its
    // mutex let go; the last chunk completing just then must not leave it asleep (a payload
    // run of 1 MiB results once hung so, about once in 80).
    BOOST_TEST(returns_within(10, [] {
        auto result = std::make_shared<vector_result<int>>(2, 1);
        auto spares = std::make_shared<hooked_spares>();
        std::vector<char> big(spare_buffers::min_bulk_bytes); // a large bulk: arms the waiter
        const int values[2] = {7, 8};
        chunk_outcome first;
        first.results = std::span<const char>(reinterpret_cast<const char*>(&values[0]), 4);
        first.ok_count = 1;
        first.spares = spares;
        first.bulk = &big;
        result->complete_chunk(0, first);
        spares->on_ready_bulk = [&] {
            chunk_outcome last;
            last.results = std::span<const char>(reinterpret_cast<const char*>(&values[1]), 4);
            last.ok_count = 1;
            result->complete_chunk(1, last); // the end of the result, with nobody asleep yet
        };
        const std::vector<int> got = result->take(); // waits with no deadline
        if (got != std::vector<int>{7, 8})
            ::_exit(2);
    }));
}
