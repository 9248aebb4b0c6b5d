// What the engine delivers for each chunk it ran, and to whom: the contract between the engine
// and the result states (result_state.hpp; imap's channel in the library), which know nothing else
// of it.
#pragma once

#include <procpool/export.hpp>

#include <procpool/detail/spare_buffers.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <vector>

namespace procpool::detail {

/// What a call asks of each of its chunks, its task_options resolved against the pool's.
struct chunk_limits {
    std::chrono::milliseconds timeout{0}; ///< how long a chunk may run; 0: no limit
    std::size_t max_retries = 0;          ///< runs again after its worker died, at most
};

/// What came back for one chunk (one task frame).
struct chunk_outcome {
    std::span<const char> results; ///< the ok_count results, encoded (codec.hpp)
    std::uint64_t ok_count = 0;    ///< items 0..ok_count-1 of the chunk succeeded
    std::exception_ptr error;      ///< set when item ok_count failed, or the chunk was lost
    std::uint64_t exec_ns = 0;     ///< the worker's time on the chunk (0 when lost)
    /// The pool's spare buffers, when a sink may keep `results` to decode them later on another
    /// thread (see vector_result); null otherwise.
    std::shared_ptr<spare_buffers> spares;
    /// With `spares`: the buffer holding `results`, when a sink may take it by swapping in a
    /// spare (frame_reader::storage); null when it must copy them out instead.
    std::vector<char>* storage = nullptr;
    /// The last result's bytes, when they came apart from `results` (frame_reader::bulk): the
    /// decoder reads them from here (codec.hpp's plain_reader), and a sink that keeps the
    /// results moves them along. Null when `results` hold everything.
    std::vector<char>* bulk = nullptr;
};

/// Receives the outcome of chunks. The engine calls complete_chunk exactly once per chunk,
/// from one thread at a time (the result thread, or the thread ending the pool).
class PROCPOOL_API result_sink {
public:
    virtual ~result_sink() = default;
    virtual void complete_chunk(std::size_t chunk, const chunk_outcome& outcome) noexcept = 0;
};

/// Who can stop the chunks of a sink: the engine (async_result::cancel, imap_result::cancel).
class PROCPOOL_API chunk_canceller {
public:
    /// Stops every chunk of `sink` not yet answered: each completes with cancelled_error (on
    /// the io thread, soon after), running ones have their workers killed. Thread-safe,
    /// asynchronous; nothing in a forked child.
    virtual void cancel_chunks(std::shared_ptr<result_sink> sink) noexcept = 0;

protected:
    ~chunk_canceller() = default;
};

/// How many forks made this process, counted since the library was first used in it: a value
/// that differs from the one recorded with an object means "this is a forked child's copy".
/// Lock-free; a load after the first call.
PROCPOOL_API unsigned fork_generation() noexcept;

/// What a thread waiting for a result can ask of the pool that will complete it: to move its
/// frames itself while it waits, instead of sleeping until the io thread wakes it (the engine).
class PROCPOOL_API result_driver {
public:
    /// Moves frames until `done` is true, `deadline` passes, or a short spin ends, when `mine`
    /// is the only sink with work in the pool and nothing else needs the io thread. Returns
    /// `done`, false also when it did nothing: the caller then waits as usual.
    virtual bool drive(const result_sink& mine, const std::atomic<bool>& done,
                       std::chrono::steady_clock::time_point deadline) noexcept = 0;

protected:
    ~result_driver() = default;
};

} // namespace procpool::detail
