// ProcPool::mpi: the "mpi" context. The ranks of an mpirun job are the workers of rank 0's
// pool, reached through Boost.MPI. Linking this library is enough: a static initialiser
// registers the hooks that procpool::init and get_context("mpi") look for (transport.hpp).
//
// The job, rank by rank:
//   every rank   procpool::init(argc, argv) sees it runs under mpirun, initialises MPI
//                (MPI_THREAD_SERIALIZED: after init only the pool's io thread calls MPI, and
//                the exit handler after it) and gathers the ranks' pids on rank 0.
//   rank 0       returns from init and runs main(); each pool({.context = get_context("mpi")})
//                uses ranks 1..processes as its workers. At exit, a handler tells every rank to
//                leave, waits for each to say goodbye, and finalises MPI.
//   ranks 1..    never return from init: they run the frames rank 0 sends, with the same
//                executor as a shared-memory worker, and leave when rank 0 says so.
//
// Messages (MPI keeps the order of messages between two ranks):
//   rank 0 -> worker   tag_begin  (u64 pool epoch) once per pool, before the pool's frames
//                      tag_frame  a task frame, exactly as on a ring
//                      tag_cancel (u64 epoch) terminate(): the worker skips that pool's frames
//                                 it has not started (it probes for this tag before each frame)
//                      tag_stop   the program ends: say goodbye, finalise, exit
//   worker -> rank 0   result_tag(epoch)  a result frame; rank 0 drops those of earlier pools
//                      tag_bye
//
// A rank that dies: Open MPI ends the whole job (mpirun prints which rank died and how, and
// exits non-zero); a worker rank that dies in a task first prints which task context it was
// in. MPI gives no way to go on, so this transport never reports a worker exit.
#include "mpi_protocol.hpp"

#include "../detail/executor.hpp"
#include "../detail/transport.hpp"

#include "../detail/event.hpp"
#include <procpool/detail/exception_codec.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/errors.hpp>

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <boost/mpi/request.hpp>
#include <boost/mpi/status.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>

namespace procpool::detail {

namespace {

job* the_job = nullptr; // rank 0 of a running job, else null

// ---- rank 0: the end of the job ----

/// At exit on rank 0: every worker rank finishes what it runs, says goodbye, and MPI ends.
void finish_job() noexcept {
    job* j = the_job;
    if (j == nullptr)
        return;
    try {
        std::vector<mpi::request> stops;
        for (int rank = 1; rank < j->world.size(); ++rank)
            stops.push_back(j->world.isend(rank, tag_stop));
        int byes = 0;
        std::vector<char> junk;
        backoff naps;
        while (byes < j->world.size() - 1) {
            if (auto s = j->world.iprobe(mpi::any_source, mpi::any_tag)) {
                receive_probed(j->world, *s, junk);
                if (s->tag() == tag_bye)
                    ++byes;
                naps.reset();
            } else {
                j->reap_orphans();
                std::this_thread::sleep_for(naps.next());
            }
        }
        for (auto& r : stops)
            r.wait();
        for (auto& o : j->orphans)
            o.request.wait();
        j->orphans.clear();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "procpool: ending the MPI job: %s\n", e.what());
    }
    the_job = nullptr;
    delete j; // its environment: MPI_Finalize
}

// ---- rank 0: a pool's transport ----

class mpi_transport final : public transport {
public:
    explicit mpi_transport(transport_options options)
        : job_(the_job) {
        if (job_ == nullptr)
            throw error("procpool: the \"mpi\" context needs the program started by mpirun "
                        "(mpirun -np N ./app, N >= 2) with procpool::init(argc, argv) first in "
                        "main(); this process is not rank 0 of an MPI job");
        const std::size_t ranks = static_cast<std::size_t>(job_->world.size()) - 1;
        if (ranks == 0)
            throw error("procpool: the \"mpi\" context has no worker ranks: start the program "
                        "with mpirun -np N, N >= 2 (rank 0 runs the pool, the others are its "
                        "workers)");
        if (options.max_tasks != 0)
            throw std::invalid_argument("procpool::pool: maxtasksperchild cannot be used with "
                                        "the \"mpi\" context: MPI ranks are not respawned");
        if (options.max_rss != 0)
            throw std::invalid_argument("procpool::pool: max_memory_per_child cannot be used "
                                        "with the \"mpi\" context: MPI ranks are not "
                                        "respawned");
        const std::size_t n = options.processes.value_or(ranks);
        if (n > ranks)
            throw std::invalid_argument("procpool::pool: processes = " + std::to_string(n) +
                                        " asks for more workers than the MPI job has: mpirun -np " +
                                        std::to_string(ranks + 1) + " gives " +
                                        std::to_string(ranks) +
                                        " worker ranks (rank 0 runs the pool)");
        {
            std::lock_guard lock(job_->mutex);
            if (job_->pool_alive)
                throw error("procpool: an \"mpi\" pool already exists in this process: the "
                            "job's ranks serve one pool at a time");
            job_->pool_alive = true;
            epoch_ = ++job_->epoch;
        }
        initializer_ = options.initializer_frame;
        workers_.resize(n);
        epoch_bytes_ = std::make_shared<const std::uint64_t>(epoch_);
    }

    ~mpi_transport() override { shutdown(); }

    std::uint32_t size() const noexcept override {
        return static_cast<std::uint32_t>(workers_.size());
    }

    int start(std::uint32_t index) override {
        const int rank = static_cast<int>(index) + 1;
        // The first message of this pool to the rank: which epoch its frames belong to.
        job_->orphans.push_back(
            {job_->world.isend(rank, tag_begin, reinterpret_cast<const char*>(epoch_bytes_.get()),
                               static_cast<int>(sizeof(std::uint64_t))),
             epoch_bytes_});
        return job_->pids.at(static_cast<std::size_t>(rank));
    }

    bool receive(std::uint32_t index, frame_handler on_frame) override {
        worker& w = workers_[index];
        const int rank = static_cast<int>(index) + 1;
        bool moved = false;
        for (;;) {
            if (!w.frames.empty() && w.frames.front().refused) {
                // A frame MPI could not carry: its failure comes back in order.
                std::vector<char> frame = std::move(w.frames.front().failure);
                w.frames.pop_front();
                on_frame(std::as_bytes(std::span(frame)), nullptr, nullptr);
                moved = true;
                continue;
            }
            auto s = job_->world.iprobe(rank, mpi::any_tag);
            if (!s)
                break;
            receive_probed(job_->world, *s, buffer_);
            moved = true;
            if (s->tag() != result_tag(epoch_))
                continue; // a result of an earlier, terminated pool
            if (!w.frames.empty()) {
                // The rank has received the frame it answers: its send is complete.
                w.frames.front().send.wait();
                w.frames.pop_front();
            }
            on_frame(std::as_bytes(std::span(buffer_)), nullptr, nullptr);
        }
        if (moved)
            job_->reap_orphans();
        return moved;
    }

    bool send(std::uint32_t index, frame_source next) override {
        worker& w = workers_[index];
        const int rank = static_cast<int>(index) + 1;
        bool moved = false;
        for (std::span<const std::byte> frame = next(); !frame.empty(); frame = next()) {
            moved = true;
            in_flight e;
            if (frame.size() > static_cast<std::size_t>(INT_MAX)) {
                e.refused = true;
                e.failure = refusal(frame);
            } else {
                e.send =
                    job_->world.isend(rank, tag_frame, reinterpret_cast<const char*>(frame.data()),
                                      static_cast<int>(frame.size()));
            }
            w.frames.push_back(std::move(e));
        }
        return moved;
    }

    bool has_input(std::uint32_t index) override {
        const worker& w = workers_[index];
        if (!w.frames.empty() && w.frames.front().refused)
            return true;
        return job_->world.iprobe(static_cast<int>(index) + 1, mpi::any_tag).has_value();
    }
    bool can_send(std::uint32_t) override { return true; }
    bool sending(std::uint32_t) const noexcept override { return false; }

    bool stop(std::uint32_t) override {
        return true; // the rank stays, for the next pool; it has answered every frame
    }

    last_words ended(std::uint32_t) override { return {}; }

    void wait(function_ref<bool()> ready, wait_hint hint) override {
        if (!hint.in_flight) {
            // Only a caller can make work now, and it wakes us.
            wait_for(event_, ready, std::chrono::microseconds(0));
            return;
        }
        // MPI cannot wake a sleeper: spin a little, then nap on our own event, which a caller
        // still ends early, and look at MPI between naps.
        if (wait_for(event_, ready, spin_time, spin_time))
            return;
        backoff naps;
        while (!wait_for(event_, ready, std::chrono::microseconds(0), naps.next())) {
        }
    }

    void wake() noexcept override { notify(event_); }

    void adopt(std::vector<std::vector<char>> frames) override {
        for (auto& f : frames)
            job_->orphan_frames.push_back(std::move(f));
    }

    void kill_all() noexcept override {
        // Ranks cannot be killed without ending the job: each skips this pool's frames it has
        // not started, and the task it runs finishes on its own.
        try {
            for (std::uint32_t i = 0; i < size(); ++i)
                job_->orphans.push_back(
                    {job_->world.isend(static_cast<int>(i) + 1, tag_cancel,
                                       reinterpret_cast<const char*>(epoch_bytes_.get()),
                                       static_cast<int>(sizeof(std::uint64_t))),
                     epoch_bytes_});
        } catch (...) {
        }
    }

    void shutdown() noexcept override {
        if (job_ == nullptr)
            return;
        for (worker& w : workers_) {
            for (in_flight& e : w.frames)
                if (!e.refused)
                    job_->orphans.push_back({std::move(e.send), initializer_});
            w.frames.clear();
        }
        try {
            job_->reap_orphans();
        } catch (...) {
        }
        std::lock_guard lock(job_->mutex);
        job_->pool_alive = false;
        job_ = nullptr;
    }

    std::vector<int> pids() const override {
        if (job_ == nullptr)
            return {};
        return {job_->pids.begin() + 1,
                job_->pids.begin() + 1 + static_cast<std::ptrdiff_t>(workers_.size())};
    }

private:
    /// A frame on its way: the send of a task frame (or the initializer), or the failure that
    /// stands for a frame MPI could not carry.
    struct in_flight {
        mpi::request send;
        bool refused = false;
        std::vector<char> failure;
    };

    struct worker {
        std::deque<in_flight> frames;
    };

    /// The result frame of a task frame over MPI's 2 GiB message limit.
    static std::vector<char> refusal(std::span<const std::byte> frame) {
        return refused_result(frame, ("procpool: a task frame of " + std::to_string(frame.size()) +
                                      " bytes is over MPI's message limit of 2 GiB")
                                         .c_str());
    }

    job* job_;
    std::uint64_t epoch_ = 0;
    std::shared_ptr<const std::uint64_t> epoch_bytes_;
    std::shared_ptr<const std::vector<char>> initializer_;
    std::vector<worker> workers_;
    std::vector<char> buffer_;
    event_word event_;
};

// ---- procpool::init in an mpirun job ----

void init_job(int argc, char** argv) {
    if (!launched_by_mpirun() || the_job != nullptr)
        return;
    auto environment =
        std::make_unique<mpi::environment>(argc, argv, mpi::threading::serialized, true);
    if (environment->thread_level() < mpi::threading::serialized) {
        std::fprintf(stderr, "procpool: this MPI library does not offer MPI_THREAD_SERIALIZED, "
                             "which the \"mpi\" context needs\n");
        mpi::environment::abort(1);
    }
    mpi::communicator world;
    std::vector<int> pids;
    mpi::gather(world, static_cast<int>(::getpid()), pids, 0);
    if (world.rank() != 0)
        serve(environment.release(), world);
    auto j = std::make_unique<job>();
    j->pids = std::move(pids);
    j->environment = std::move(environment);
    the_job = j.release();
    std::atexit(finish_job);
}

std::unique_ptr<transport> make_mpi_transport(transport_options options) {
    return std::make_unique<mpi_transport>(std::move(options));
}

} // namespace

} // namespace procpool::detail

/// Linking ProcPool::mpi pulls this object in (its usage requirements name this symbol), and
/// with it the registration below.
extern "C" {
int procpool_mpi_linked = 1;
}

namespace {
const bool registered = [] {
    procpool::detail::register_mpi(
        {&procpool::detail::make_mpi_transport, &procpool::detail::init_job});
    return true;
}();
} // namespace
