// The non-template members of procpool::pool: thin forwards to the core.
#include <procpool/detail/core.hpp>
#include <procpool/detail/imap_channel.hpp>
#include <procpool/pool.hpp>

#include <stdexcept>

namespace procpool {

pool::pool()
    : pool(pool_options{}) {}

pool::pool(std::size_t processes)
    : pool(pool_options{.processes = processes}) {}

pool::pool(pool_options options)
    : core_(std::make_shared<detail::pool_core>(options)) {}

pool::~pool() {
    // Here, not in the core's destructor: an imap_result may hold the core a moment longer.
    core_->terminate();
}

void pool::close() {
    core_->close();
}
void pool::terminate() {
    core_->terminate();
}
void pool::join() {
    core_->join();
}
std::size_t pool::processes() const noexcept {
    return core_->processes();
}
std::vector<int> pool::worker_pids() const {
    return core_->worker_pids();
}

std::shared_ptr<detail::imap_channel> pool::open_stream(std::unique_ptr<detail::imap_source> source,
                                                        bool ordered) {
    auto channel =
        std::make_shared<detail::imap_channel>(core_, std::move(source), ordered, processes());
    channel->start();
    return channel;
}

void pool::submit(std::vector<char> frame, std::shared_ptr<detail::result_sink> sink) {
    std::vector<detail::outgoing_chunk> chunks;
    chunks.push_back({std::move(frame), std::move(sink), 0});
    core_->submit(std::move(chunks));
}

void pool::submit_waited(std::vector<char> frame, std::shared_ptr<detail::result_sink> sink) {
    core_->submit_one({std::move(frame), std::move(sink), 0});
}

std::weak_ptr<detail::result_driver> pool::driver() const noexcept {
    return core_;
}

void pool::submit(std::vector<std::vector<char>> frames, std::shared_ptr<detail::result_sink> sink,
                  std::size_t first_index) {
    std::vector<detail::outgoing_chunk> chunks;
    chunks.reserve(frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i)
        chunks.push_back({std::move(frames[i]), sink, first_index + i});
    core_->submit(std::move(chunks));
}

} // namespace procpool
