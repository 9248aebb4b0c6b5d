// The non-template members of procpool::pool: each a call of the engine (detail/engine.hpp),
// the one layer between the pool and it.
#include "detail/engine.hpp"
#include "detail/imap_channel.hpp"

#include <procpool/pool.hpp>

#include <stdexcept>

namespace procpool {

pool::pool()
    : pool(pool_options{}) {}

pool::pool(std::size_t processes)
    : pool(pool_options{.processes = processes}) {}

pool::pool(pool_options options)
    : engine_(std::make_shared<detail::engine>(options)) {}

pool::~pool() {
    if (engine_->forked()) {
        // A forked child's copy: its threads are not here, and its workers and segment are the
        // parent's. Destroying it would join threads that do not exist and end what the
        // parent still uses, so it is left as it is (the child's copy of the memory).
        new std::shared_ptr<detail::engine>(std::move(engine_));
        return;
    }
    // Here, not in the engine's destructor: an imap_result may hold the engine a moment longer.
    engine_->terminate();
}

void pool::close() {
    engine_->close();
}
void pool::terminate() {
    engine_->terminate();
}
void pool::join() {
    engine_->join();
}
std::size_t pool::processes() const noexcept {
    return engine_->processes();
}
std::vector<int> pool::worker_pids() const {
    return engine_->worker_pids();
}

std::shared_ptr<detail::imap_stream> pool::open_stream(const task_options& options,
                                                       std::unique_ptr<detail::imap_source> source,
                                                       bool ordered) {
    auto channel = std::make_shared<detail::imap_channel>(engine_, std::move(source), ordered,
                                                          processes(), limits_of(options));
    channel->start();
    return channel;
}

detail::chunk_limits pool::limits_of(const task_options& options) const {
    return engine_->limits_of(options);
}

void pool::submit(std::vector<char> frame, std::shared_ptr<detail::result_sink> sink,
                  const detail::chunk_limits& limits) {
    std::vector<detail::outgoing_chunk> chunks;
    chunks.push_back({std::move(frame), std::move(sink), 0, limits});
    engine_->submit(std::move(chunks));
}

void pool::submit_waited(std::vector<char> frame, std::shared_ptr<detail::result_sink> sink,
                         const detail::chunk_limits& limits) {
    engine_->submit_one({std::move(frame), std::move(sink), 0, limits});
}

std::weak_ptr<detail::result_driver> pool::driver() const noexcept {
    return engine_;
}

std::weak_ptr<detail::chunk_canceller> pool::canceller() const noexcept {
    return engine_;
}

std::vector<char> pool::take_frame_buffer() noexcept {
    // In a forked child, not even the spares' mutex: a thread of the parent may have held it
    // at the fork. The call that follows the encoding throws state_error.
    if (engine_->forked())
        return {};
    return engine_->spares()->take();
}

void pool::submit(std::vector<std::vector<char>> frames, std::shared_ptr<detail::result_sink> sink,
                  std::size_t first_index, const detail::chunk_limits& limits) {
    std::vector<detail::outgoing_chunk> chunks;
    chunks.reserve(frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i)
        chunks.push_back({std::move(frames[i]), sink, first_index + i, limits});
    engine_->submit(std::move(chunks));
}

} // namespace procpool
