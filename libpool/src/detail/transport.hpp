// The transport seam: how the pool's io thread reaches its workers.
//
// The engine (engine.cpp) and its scheduler (scheduler.cpp) own everything that is pool logic:
// the queue of chunks, which worker gets which, the window, task ids, outcomes,
// close/join/terminate, and what a lost worker means for its tasks. A transport only moves frames
// (task_header | payload one way, result_header | payload the other) and starts, stops and watches
// workers:
//   shm_transport (shm_transport.cpp)   child processes and ring buffers in a shared segment
//   mpi_transport (libpool/src/mpi/)    the ranks of an mpirun job, through Boost.MPI
//
// Threads: the constructor and start() of the first workers run on the thread that builds the
// pool; then every call comes from the io thread, except wake() and the on_exit callback (any
// thread), pids() (a caller, under the engine's mutex, never during or after shutdown()), and
// shutdown(), made by the thread that ends the pool once the io thread has been joined.
// A transport whose callers_may_drive() is true also takes the io thread's calls from a caller
// holding the engine's io role (io_role.hpp): one thread at a time, ordered by the role.
#pragma once

#include <procpool/export.hpp>

#include "function_ref.hpp"

#include <procpool/pool_options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace procpool::detail {

class bulk_source;

/// How a worker ended, as the transport learnt it.
struct worker_exit {
    std::uint32_t index = 0;
    int pid = 0;
    int status = 0; ///< a waitpid status
};

/// What a transport knows of a worker that ended, read after its exit was reported.
struct last_words {
    std::uint64_t running_task = 0; ///< the task id it was running, 0 if none
    bool was_ready = false;         ///< it got past its initializer
    bool left_cleanly = false;      ///< it was told to leave (or reached maxtasksperchild)
};

/// What the engine asks for when it makes a transport.
struct transport_options {
    std::optional<std::size_t> processes; ///< as the user gave it
    std::uint64_t max_tasks = 0;          ///< maxtasksperchild, 0: none
    std::uint64_t max_rss = 0;            ///< max_memory_per_child in bytes, 0: none
    /// The initializer's frame (null: none), shared so that a transport that sends it
    /// asynchronously can keep it alive.
    std::shared_ptr<const std::vector<char>> initializer_frame;
    start_method method = start_method::spawn;
    /// Called (from any thread) when a worker ends. Only transports whose workers can end
    /// while the pool runs call it.
    std::function<void(const worker_exit&)> on_exit;
};

class PROCPOOL_API transport {
public:
    /// Gets a frame; the buffer holding it at its start when the handler may take it
    /// (swapping in another, as frame_reader::storage() allows), or null; and the frame's bulk
    /// when it came apart (frame_reader::bulk(): the last result's bytes, which the handler may
    /// move out), or null: then the frame is whole.
    using frame_handler =
        function_ref<void(std::span<const std::byte>, std::vector<char>*, std::vector<char>*)>;
    using frame_source = function_ref<std::span<const std::byte>()>;

    virtual ~transport() = default;

    /// The number of workers.
    virtual std::uint32_t size() const noexcept = 0;

    /// Starts worker `index`: the first time, or again after it ended. Returns its pid.
    /// Throws procpool::error when it cannot.
    virtual int start(std::uint32_t index) = 0;

    /// Passes every complete frame worker `index` sent to `on_frame`, oldest first; the bytes
    /// are valid during the call only, unless the handler took the buffer holding them.
    /// Returns true when anything moved.
    virtual bool receive(std::uint32_t index, frame_handler on_frame) = 0;

    /// Sends frames to worker `index` until it would block: first the rest of a frame it holds,
    /// then what `next()` returns (an empty span: nothing more). A frame's bytes must stay
    /// valid until the worker answered it, or until adopt(). Returns true when anything moved.
    virtual bool send(std::uint32_t index, frame_source next) = 0;

    /// Where receive() gets buffers for the bulks it reads apart (frame_reader::bulk), from
    /// now on; `bulk_buffers` outlives the transport. A transport that reads no bulk apart ignores
    /// it.
    virtual void take_bulk_buffers_from(bulk_source* bulk_buffers) noexcept { (void)bulk_buffers; }

    /// Worker `index` has a frame, or part of one, for receive().
    virtual bool has_input(std::uint32_t index) = 0;
    /// send() to worker `index` would move something now.
    virtual bool can_send(std::uint32_t index) = 0;
    /// A frame handed over by send() is still partly unsent.
    virtual bool sending(std::uint32_t index) const noexcept = 0;

    /// Asks worker `index` to leave once it has answered every frame. Returns true when it is
    /// gone already (no exit will be reported), false when its exit will come through on_exit.
    virtual bool stop(std::uint32_t index) = 0;

    /// Ends worker `index` at once, alone (it sent a corrupt frame); its exit comes through
    /// on_exit as usual. False when the transport cannot end one worker without the others
    /// (the pool then fails instead). Never throws.
    virtual bool kill(std::uint32_t index) noexcept {
        (void)index;
        return false;
    }

    /// kill() and terminate() end one worker alone: the pool may then time tasks out.
    virtual bool kills_one_worker() const noexcept { return false; }

    /// Asks worker `index` to end now (SIGTERM), alone; kill() follows if it does not. Its
    /// exit comes through on_exit. False as for kill(). Never throws.
    virtual bool terminate(std::uint32_t index) noexcept { return kill(index); }

    /// What worker `index` says it is running: a task id (0: none) and when it began, as the
    /// worker wrote them. Untrusted: the caller matches the id against that worker's own
    /// tasks. A transport that cannot tell says none.
    struct task_start {
        std::uint64_t task = 0;
        std::chrono::steady_clock::time_point since = {};
        /// False while the worker has the task but may still skip it (skip()).
        bool confirmed = true;
    };
    virtual task_start running(std::uint32_t index) const noexcept {
        (void)index;
        return {};
    }

    /// Asks worker `index` not to run its `seq`-th task frame (counted from 0 since it started),
    /// sent but perhaps not started: it answers it with a `skipped` frame instead, unless it
    /// started it already. Then running(index) tells which (a Dekker pair: segment.hpp). False
    /// when the transport cannot (the frame may run; its answer is dropped).
    virtual bool skip(std::uint32_t index, std::uint64_t seq) noexcept {
        (void)index;
        (void)seq;
        return false;
    }
    /// The answer to frame `seq` came: its skip() mark may go.
    virtual void unskip(std::uint32_t index, std::uint64_t seq) noexcept {
        (void)index;
        (void)seq;
    }

    /// Worker `index`'s resident memory in bytes, as the system counts it; 0 when unknown.
    virtual std::size_t resident_bytes(std::uint32_t index) const noexcept {
        (void)index;
        return 0;
    }

    /// Read after worker `index`'s exit was reported, before start() reuses its slot.
    virtual last_words ended(std::uint32_t index) = 0;

    /// A frame is partly sent to a worker or partly received from one: io state, so asked by
    /// the holder of the io role (the io thread before it lets the role go to wait).
    virtual bool mid_frame() const noexcept { return false; }

    /// What the io thread knew when it went to sleep, learnt while it held the io role: the
    /// io state may change under a caller holding the role during wait(), which reads only
    /// this and what `ready()` reads.
    struct wait_hint {
        bool in_flight = false; ///< workers have work
        bool mid_frame = false; ///< mid_frame() was true
        /// When the scheduler wants to look again (a task's timeout, say); max(): never.
        std::chrono::steady_clock::time_point deadline =
            std::chrono::steady_clock::time_point::max();
    };
    /// The io thread sleeps until `ready()`, wake(), or the hint's deadline.
    virtual void wait(function_ref<bool()> ready, wait_hint hint) = 0;

    /// A caller waiting for its result may make the io thread's calls itself (see engine.cpp).
    virtual bool callers_may_drive() const noexcept { return false; }
    /// While on, a thread spins on receive() and the workers need not wake wait(); after
    /// setting it off, the caller calls has_input() once more (what was published meanwhile
    /// woke nobody). Only with callers_may_drive().
    virtual void set_polling(bool on) noexcept { (void)on; }

    /// Ends a wait() early. Thread-safe, never throws.
    virtual void wake() noexcept = 0;

    /// Frames the engine drops while the workers may still be reading them (terminate): a
    /// transport that sends asynchronously keeps them until it is done with them.
    virtual void adopt(std::vector<std::vector<char>> frames) { (void)frames; }

    /// Ends the workers at once, as far as the transport can. Never throws.
    virtual void kill_all() noexcept = 0;
    /// After the io thread ended: no worker is left running, nothing is left behind.
    /// Idempotent, never throws.
    virtual void shutdown() noexcept = 0;

    /// The pids of the workers now running.
    virtual std::vector<int> pids() const = 0;
};

/// Makes the transport for `options.method`. Throws std::invalid_argument for options the
/// method cannot honour, procpool::error when it is not available.
std::unique_ptr<transport> make_transport(transport_options options);

/// Shared memory and child processes: "spawn" and "forkserver".
std::unique_ptr<transport> make_shm_transport(transport_options options);

/// What ProcPool::mpi registers when it is linked (a static initializer in libprocpool_mpi).
struct mpi_hooks {
    /// Makes a pool's transport over the job's ranks.
    std::unique_ptr<transport> (*make)(transport_options options) = nullptr;
    /// procpool::init calls it: in an mpirun job it initialises MPI, and on ranks 1..N-1
    /// serves as a worker and never returns.
    void (*init)(int argc, char** argv) = nullptr;
};
PROCPOOL_API void register_mpi(const mpi_hooks& hooks) noexcept;
/// The hooks registered, or empty ones.
const mpi_hooks& registered_mpi() noexcept;

} // namespace procpool::detail
