// procpool::imap_result: the lazily filled result of imap and imap_unordered (Python:
// IMapIterator), an input range.
#pragma once

#include <procpool/detail/codec.hpp>
#include <procpool/detail/decode_value.hpp>
#include <procpool/detail/imap_stream.hpp>
#include <procpool/detail/result_sink.hpp>
#include <procpool/errors.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace procpool {

class pool;

/// The results of imap (input order) or imap_unordered (completion order), produced as the
/// input is read: a single-pass input range, so range-for works.
///
/// The input is read lazily in the thread that iterates: 4 chunks per worker are outstanding
/// (submitted and not yet returned by next()); when chunks prove quick and small, up to about
/// 1 ms of work and 1 MiB per worker, never more than 64 chunks. So the input may be infinite.
/// A task's exception is thrown by next() (or the iterator) at that item's position, after
/// the items before it. With chunksize 1 the iteration then goes on with the next item; with a
/// larger chunksize the rest of the failed chunk never ran, so the iteration ends there, as
/// in Python. An input whose iterator throws delivers what it read, then that exception, then
/// ends.
///
/// Destroying an unfinished imap_result is safe and prompt: it stops reading the input and
/// drops the results still to come (chunks already submitted finish in the workers). Move-only.
/// Any thread may call next(); calls are serialised. The pool's join() reads the input left of
/// every open imap_result (as Python's does) and its results wait here for next().
template <class T>
class imap_result {
    class reader;

public:
    /// An input iterator; copies share the position (as std::istream_iterator's do).
    class iterator {
    public:
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using iterator_concept = std::input_iterator_tag;
        using iterator_category = std::input_iterator_tag;
        using reference = T&;
        using pointer = T*;

        iterator() = default;

        T& operator*() const { return *reader_->current; }
        T* operator->() const { return &*reader_->current; }
        iterator& operator++() {
            reader_->current = reader_->next(nullptr);
            return *this;
        }
        void operator++(int) { ++*this; }

        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
            return it.reader_ == nullptr || !it.reader_->current;
        }

    private:
        friend class imap_result;
        explicit iterator(reader* r) noexcept
            : reader_(r) {}
        reader* reader_ = nullptr;
    };

    /// An empty handle: next() throws state_error.
    imap_result() = default;
    imap_result(imap_result&&) noexcept = default;
    imap_result& operator=(imap_result&&) noexcept = default;

    /// The next result; nullopt once every result has been returned. Blocks until it is there;
    /// throws the task's exception at its position, or the pool's (worker_lost_error,
    /// state_error when the pool was terminated).
    std::optional<T> next() { return get().next(nullptr); }

    /// As next(), but throws timeout_error when no result comes within `timeout`; the
    /// iteration stays usable and loses nothing.
    template <class Rep, class Period>
    std::optional<T> next(std::chrono::duration<Rep, Period> timeout) {
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
        return get().next(&deadline);
    }

    /// Stops the imap: no more of its input is read, the workers running its items are killed
    /// and replaced, and next() throws cancelled_error from now on (a next() waiting in
    /// another thread too). Results not yet returned are dropped. Does not block on workers;
    /// idempotent. Throws state_error for an empty handle.
    void cancel() { get().cancel(); }

    /// Fetches the first result (or the next one, when iteration has begun: single pass).
    iterator begin() {
        reader& r = get();
        r.current = r.next(nullptr);
        return iterator(&r);
    }
    std::default_sentinel_t end() const noexcept { return {}; }

private:
    friend class pool;
    /// `error_ends_iteration`: a task error ends the iteration (chunksize > 1: the rest of its
    /// chunk never ran).
    imap_result(std::shared_ptr<detail::imap_stream> stream, bool error_ends_iteration)
        : reader_(std::make_unique<reader>(std::move(stream), error_ends_iteration)) {}

    reader& get() const {
        if (!reader_)
            throw state_error("imap_result: this handle refers to no imap");
        return *reader_;
    }

    /// Decodes the chunks of one imap in the consumer's thread, one item per next().
    class reader {
    public:
        reader(std::shared_ptr<detail::imap_stream> channel, bool error_ends_iteration)
            : channel_(std::move(channel))
            , error_ends_(error_ends_iteration) {}

        ~reader() {
            drop_chunk();
            // In a forked child the channel is a copy of the parent's, its mutexes perhaps held
            // by threads that were not forked: it is left alone.
            if (!forked())
                channel_->abandon();
        }

        reader(const reader&) = delete;
        reader& operator=(const reader&) = delete;

        std::optional<T> next(const std::chrono::steady_clock::time_point* deadline) {
            // Before the mutex, which a thread of the parent may have held at the fork.
            if (forked())
                throw state_error("procpool: this imap belongs to a pool of the process this "
                                  "one was forked from: it can never complete here");
            std::unique_lock lock(mutex_, std::defer_lock);
            if (deadline == nullptr)
                lock.lock();
            else if (!lock.try_lock_until(*deadline))
                throw timeout_error("procpool: imap_result::next: no result within the timeout");
            for (;;) {
                if (cancelled_.load(std::memory_order_acquire))
                    throw cancelled_error("procpool: the imap was cancelled");
                if (finished_)
                    return std::nullopt;
                if (left_ > 0) {
                    --left_;
                    try {
                        return detail::decode_value<T>(*decoder_);
                    } catch (...) {
                        finish(); // the rest of the chunk cannot be found
                        throw;
                    }
                }
                if (chunk_ && chunk_->error) {
                    const std::exception_ptr error = chunk_->error;
                    drop_chunk();
                    if (error_ends_)
                        finish();
                    std::rethrow_exception(error);
                }
                drop_chunk();
                std::optional<detail::imap_chunk> chunk = channel_->next(deadline);
                if (!chunk) {
                    finish();
                    return std::nullopt;
                }
                chunk_.emplace(std::move(*chunk));
                left_ = chunk_->ok_count;
                if (left_ > 0) {
                    decoder_.emplace(chunk_->results.bytes(), chunk_->results.bulk());
                }
            }
        }

        /// imap_result::cancel; any thread, without the mutex a waiting next() holds.
        void cancel() noexcept {
            if (forked())
                return;
            cancelled_.store(true, std::memory_order_release);
            channel_->cancel();
        }

        /// The value an iterator points at.
        std::optional<T> current;

    private:
        void drop_chunk() noexcept {
            decoder_.reset();
            chunk_.reset();
            left_ = 0;
        }
        void finish() noexcept {
            drop_chunk();
            finished_ = true;
            channel_->abandon();
        }

        bool forked() const noexcept { return detail::fork_generation() != born_; }

        std::shared_ptr<detail::imap_stream> channel_;
        const bool error_ends_;
        const unsigned born_ = detail::fork_generation();
        std::timed_mutex mutex_;
        std::atomic<bool> cancelled_{false};
        bool finished_ = false;
        std::optional<detail::imap_chunk> chunk_;
        std::optional<detail::value_decoder<T>> decoder_;
        std::uint64_t left_ = 0;
    };

    std::unique_ptr<reader> reader_;
};

} // namespace procpool
