// What rank 0 (mpi_transport.cpp) and the worker ranks (mpi_worker.cpp) of the "mpi" context
// share: the message tags, how both sides wait for MPI, and the job's state on rank 0. The
// protocol itself is described at the top of mpi_transport.cpp.
#pragma once

#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <boost/mpi/request.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace procpool::detail {

namespace mpi = boost::mpi;

inline constexpr int tag_begin = 1;
inline constexpr int tag_frame = 2;
inline constexpr int tag_cancel = 3;
inline constexpr int tag_stop = 4;
inline constexpr int tag_bye = 5;
inline constexpr int first_result_tag = 16;
inline constexpr std::uint64_t result_tags = 30000; // MPI guarantees tags up to 32767

inline int result_tag(std::uint64_t epoch) {
    return first_result_tag + static_cast<int>(epoch % result_tags);
}

/// Receives the message `probed` describes into `into`, resized to its length. An empty message
/// is received without a buffer: Boost.MPI's array receive dereferences its pointer even for no
/// elements, and an empty vector's is null (UndefinedBehaviorSanitizer's finding).
inline void receive_probed(const mpi::communicator& world, const mpi::status& probed,
                           std::vector<char>& into) {
    into.resize(static_cast<std::size_t>(probed.count<char>().value_or(0)));
    if (into.empty())
        world.recv(probed.source(), probed.tag());
    else
        world.recv(probed.source(), probed.tag(), into.data(), static_cast<int>(into.size()));
}

inline constexpr auto spin_time = std::chrono::microseconds(50);
inline constexpr auto longest_nap = std::chrono::milliseconds(1);

/// Sleeps a little longer each call, up to longest_nap: how both sides wait for MPI, which
/// has no way to wake a sleeping thread.
class backoff {
public:
    void reset() noexcept { nap_ = std::chrono::microseconds(0); }
    std::chrono::microseconds next() noexcept {
        nap_ = std::min<std::chrono::microseconds>(
            longest_nap, nap_.count() == 0 ? std::chrono::microseconds(10) : nap_ * 2);
        return nap_;
    }

private:
    std::chrono::microseconds nap_{0};
};

/// A send still in flight, and what must live until it completes.
struct pending_send {
    mpi::request request;
    std::shared_ptr<const void> keep; ///< the bytes it sends, when they are not the engine's
};

/// The process's MPI state, made by procpool::init in an mpirun job.
struct job {
    std::unique_ptr<mpi::environment> environment;
    mpi::communicator world;
    std::vector<int> pids; ///< by rank
    std::uint64_t epoch = 0;
    bool pool_alive = false;
    std::mutex mutex; // pool_alive, epoch: pools may be made from any thread

    // Sends of ended pools that may still be in flight, and the frames they read.
    std::list<pending_send> orphans;
    std::vector<std::vector<char>> orphan_frames;

    void reap_orphans() {
        orphans.remove_if([](pending_send& s) { return s.request.test().has_value(); });
        if (orphans.empty())
            orphan_frames.clear();
    }
};

inline bool launched_by_mpirun() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
        if (std::getenv(name) != nullptr)
            return true;
    return false;
}

/// A worker rank's life: runs the frames rank 0 sends until it says stop, then finalises MPI
/// and exits.
[[noreturn]] void serve(mpi::environment* environment, const mpi::communicator& world);

} // namespace procpool::detail
