// A chunk's results kept past complete_chunk (result_sink.hpp), so that a thread other than
// the io thread may decode them: vector_result's waiters, and imap's consumer.
#pragma once

#include <procpool/detail/result_sink.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace procpool::detail {

/// A chunk's results kept past complete_chunk, for another thread to decode: in the buffer the
/// transport read them into, or a copy, and the bulk that came apart, moved along. A buffer
/// lent by the pool's spares goes back to them when this is dropped. Move-only.
class kept_results {
public:
    kept_results() = default;
    /// Copies `outcome.results` into a buffer of its own (not a spare), and moves its bulk
    /// along. May throw std::bad_alloc (the bulk is then left where it was).
    explicit kept_results(const chunk_outcome& outcome)
        : buffer_(outcome.results.begin(), outcome.results.end())
        , size_(outcome.results.size()) {
        take_bulk(outcome);
    }
    kept_results(kept_results&&) noexcept = default;
    kept_results& operator=(kept_results&& other) noexcept {
        give_back();
        buffer_ = std::move(other.buffer_);
        offset_ = other.offset_;
        size_ = other.size_;
        spares_ = std::move(other.spares_);
        bulk_ = std::move(other.bulk_);
        return *this;
    }
    ~kept_results() { give_back(); }

    /// Keeps `outcome.results` in a spare buffer: without a copy when the outcome offers its
    /// storage (the storage is swapped for a spare of the same room, which the transport reads
    /// on into), else copied into a spare. Called by the io thread, in complete_chunk. Nothing
    /// (and `outcome` untouched) when there are no spares or none large enough.
    static std::optional<kept_results> lend(const chunk_outcome& outcome) noexcept {
        if (outcome.spares == nullptr)
            return std::nullopt;
        kept_results kept;
        kept.size_ = outcome.results.size();
        if (std::vector<char>* storage = outcome.storage) {
            kept.offset_ = static_cast<std::size_t>(outcome.results.data() - storage->data());
            kept.buffer_ = outcome.spares->take_room(kept.offset_ + kept.size_);
            if (kept.buffer_.empty())
                return std::nullopt;
            storage->swap(kept.buffer_); // outcome.results now lies in kept.buffer_
        } else {
            kept.buffer_ = outcome.spares->take(kept.size_);
            if (kept.buffer_.capacity() < kept.size_)
                return std::nullopt;
            kept.buffer_.assign(outcome.results.begin(), outcome.results.end()); // no allocation
        }
        kept.spares_ = outcome.spares;
        kept.take_bulk(outcome);
        return kept;
    }

    std::span<const char> bytes() const noexcept {
        return std::span<const char>(buffer_).subspan(offset_, size_);
    }

    /// The bulk that came apart, for the decoder (which may take it), or null.
    std::vector<char>* bulk() noexcept { return bulk_.empty() ? nullptr : &bulk_; }

private:
    void take_bulk(const chunk_outcome& outcome) noexcept {
        if (outcome.bulk != nullptr)
            bulk_ = std::move(*outcome.bulk);
    }

    void give_back() noexcept {
        if (spares_)
            spares_->give(std::move(buffer_));
        spares_.reset();
    }

    std::vector<char> buffer_; // holds the results at [offset_, offset_ + size_)
    std::size_t offset_ = 0;
    std::size_t size_ = 0;
    std::shared_ptr<spare_buffers> spares_; // where buffer_ goes back, or null
    std::vector<char> bulk_;                // see chunk_outcome::bulk
};

} // namespace procpool::detail
