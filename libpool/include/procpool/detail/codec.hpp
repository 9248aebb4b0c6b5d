// The codec: how values cross the rings.
//
// Plain values (arithmetic types, enums, std::string, std::vector of arithmetic or enum
// elements, and std::array, std::pair and std::tuple of plain values) are written as their
// bytes, a string or vector preceded by its u64 length, by plain_writer and read back by
// plain_reader. Everything else goes through Boost.Serialization binary archives. A binary
// archive writes exactly these bytes for such values too, but constructing one builds a
// std::locale (twice per side per task), which dominated the cost of a small task
// (docs/performance.md: a Boost archive).
// Which codec a frame uses is decided at compile time from the types alone, so both ends agree.
//
// Archives are made with no header and no codecvt (both sides are the same binary, and a header
// would cost 40 bytes per task) on two small streambufs, one that appends to a
// std::vector<char> and one that reads a span, so no std::ostream or std::istream is built.
#pragma once

#include <procpool/detail/tuple_serialization.hpp>

#include <boost/archive/basic_archive.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace procpool::detail {

/// Flags of every archive the pool makes; see the file comment for why.
inline constexpr unsigned archive_flags = boost::archive::no_header | boost::archive::no_codecvt;

/// A streambuf that appends everything written to a caller's vector.
/// Not thread-safe: one archive on one thread.
class vector_sink final : public std::streambuf {
public:
    explicit vector_sink(std::vector<char>& out) noexcept
        : out_(out) {}

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        out_.insert(out_.end(), s, s + n);
        return n;
    }
    int_type overflow(int_type c) override {
        if (!traits_type::eq_int_type(c, traits_type::eof()))
            out_.push_back(traits_type::to_char_type(c));
        return traits_type::not_eof(c);
    }

private:
    std::vector<char>& out_;
};

/// A streambuf that reads a span without copying it. Reading past the end reports end of
/// file, which Boost.Serialization turns into an archive_exception.
class span_source final : public std::streambuf {
public:
    explicit span_source(std::span<const char> in) noexcept {
        // std::streambuf wants char*; nothing here ever writes through it.
        char* begin = const_cast<char*>(in.data());
        setg(begin, begin, begin + in.size());
    }
    /// Bytes consumed so far.
    std::size_t consumed() const noexcept { return static_cast<std::size_t>(gptr() - eback()); }
};

template <class T>
struct is_plain : std::bool_constant<std::is_arithmetic_v<T> || std::is_enum_v<T>> {};
template <>
struct is_plain<std::string> : std::true_type {};
template <class T>
struct is_plain<std::vector<T>>
    : std::bool_constant<(std::is_arithmetic_v<T> || std::is_enum_v<T>)&&!std::is_same_v<T, bool>> {
};
template <class T, std::size_t N>
struct is_plain<std::array<T, N>> : is_plain<T> {};
template <class A, class B>
struct is_plain<std::pair<A, B>> : std::bool_constant<is_plain<A>::value && is_plain<B>::value> {};
template <class... Ts>
struct is_plain<std::tuple<Ts...>> : std::bool_constant<(is_plain<Ts>::value && ...)> {};

/// A value the pool encodes as its bytes, without an archive; see the file comment.
template <class T>
concept plain_value = is_plain<T>::value;

/// A plain value whose encoding is its object representation: copied in one piece.
template <class T>
struct is_bytes : std::bool_constant<(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) ||
                                     std::is_enum_v<T>> {};
template <class T, std::size_t N>
struct is_bytes<std::array<T, N>> : is_bytes<T> {};

/// A plain value whose encoding ends with one run of bytes it holds (a std::string, or a
/// std::vector of is_bytes elements): those bytes may be sent from the value itself instead of
/// being copied into the frame (plain_writer::write_detachable).
template <class T>
struct is_detachable : std::false_type {};
template <>
struct is_detachable<std::string> : std::true_type {};
template <class T>
struct is_detachable<std::vector<T>> : is_bytes<T> {};

/// Writes plain values to the end of a vector. Not thread-safe.
///
/// Small values are copied in at a cursor into room grown ahead of them (zeroed at most 64 KiB
/// at a time, so the zeroes are still in the cache when they are overwritten): a value of a few
/// bytes costs a compare and a copy, not a call to vector::insert. So the vector may be longer
/// than what was written until flush() or the writer's end cuts it back. A large value that
/// does not fit the room is appended with vector::insert instead, copied once and never zeroed.
class plain_writer {
public:
    explicit plain_writer(std::vector<char>& out) noexcept
        : out_(out)
        , used_(out.size()) {}
    plain_writer(const plain_writer&) = delete;
    plain_writer& operator=(const plain_writer&) = delete;
    ~plain_writer() { flush(); }

    template <plain_value T>
    plain_writer& operator<<(const T& value) {
        if constexpr (std::is_arithmetic_v<T> || is_bytes<T>::value) {
            bytes(&value, sizeof value);
        } else if constexpr (std::is_same_v<T, std::string>) {
            sequence(value.size(), value.data(), value.size());
        } else if constexpr (requires { typename T::allocator_type; }) { // std::vector
            sequence(value.size(), value.data(), value.size() * sizeof(typename T::value_type));
        } else { // array, pair, tuple
            std::apply([this](const auto&... element) { ((*this << element), ...); }, value);
        }
        return *this;
    }

    /// Writes `count` values whose encoding is their bytes (is_bytes), as `count` writes of one
    /// would, in one copy.
    template <class T>
    void write_run(const T* first, std::size_t count) {
        static_assert(is_bytes<T>::value);
        bytes(first, count * sizeof(T));
    }

    /// Writes `value` (is_detachable) as operator<< would, but for its bytes when there are
    /// `min_bytes` or more: it writes only their length then, and returns them, for the caller
    /// to send right after what this writer wrote, from the value itself. Anything written
    /// afterwards would come between: the value must be the last. Returns an empty span when
    /// it wrote all of it.
    template <class T>
    std::span<const char> write_detachable(const T& value, std::size_t min_bytes) {
        static_assert(is_detachable<T>::value);
        const std::size_t n = value.size() * sizeof(typename T::value_type);
        if (n < min_bytes || n == 0) {
            *this << value;
            return {};
        }
        const auto length = static_cast<std::uint64_t>(value.size());
        bytes(&length, sizeof length);
        return {reinterpret_cast<const char*>(value.data()), n};
    }

    /// Bytes in the vector that were written, by this writer or before it.
    std::size_t size() const noexcept { return used_; }

    /// Cuts the vector back to what was written; the writer may go on writing afterwards. Only
    /// ever shrinks: a vector taken away since (moved from, so empty) is left alone.
    void flush() noexcept {
        if (out_.size() > used_)
            out_.resize(used_); // shrinking never allocates
    }

private:
    /// Values from this size on are appended with insert when they do not fit the room.
    static constexpr std::size_t large = 1024;

    /// A u64 element count, then the elements' `n` bytes.
    void sequence(std::size_t count, const void* p, std::size_t n) {
        const auto length = static_cast<std::uint64_t>(count);
        if (n >= large && sizeof length + n > out_.size() - used_) {
            append(&length, sizeof length);
            append(p, n);
        } else {
            bytes(&length, sizeof length);
            bytes(p, n);
        }
    }
    void bytes(const void* p, std::size_t n) {
        if (n > out_.size() - used_) [[unlikely]] {
            if (n >= large)
                return append(p, n);
            grow(n);
        }
        if (n != 0) // an empty vector's data() may be null: no memcpy then
            std::memcpy(out_.data() + used_, p, n);
        used_ += n;
    }
    /// Makes room for n more bytes past used_, and as many again as the vector holds, up to
    /// 64 KiB. Growing beyond the capacity doubles it, as push_back would.
    void grow(std::size_t n) {
        constexpr std::size_t max_step = std::size_t{64} << 10;
        const std::size_t step = std::clamp<std::size_t>(out_.size(), 64, max_step);
        out_.resize(std::max(used_ + n, out_.size() + step));
    }
    /// Appends n bytes with insert, in place of the room (growth is geometric there too).
    void append(const void* p, std::size_t n) {
        out_.resize(used_); // shrinking never allocates
        const auto* c = static_cast<const char*>(p);
        out_.insert(out_.end(), c, c + n);
        used_ += n;
    }

    std::vector<char>& out_;
    std::size_t used_; // bytes of out_ written; out_.size() may be larger until flush()
};

/// Reads what plain_writer wrote, from a span it does not copy. Throws std::length_error when
/// the input ends early. Not thread-safe.
///
/// The bytes of the last value may come apart from the span (write_detachable's bytes, read
/// into a vector of their own: frame_reader::bulk): when the span ends right after a string's
/// or vector's length and `apart` holds exactly its bytes, they are read from there, and a
/// std::vector<char> takes `apart` itself, without a copy.
class plain_reader {
public:
    explicit plain_reader(std::span<const char> in, std::vector<char>* apart = nullptr) noexcept
        : in_(in)
        , apart_(apart) {}

    template <plain_value T>
    plain_reader& operator>>(T& value) {
        if constexpr (std::is_same_v<T, bool>) {
            unsigned char byte = 0;
            bytes(&byte, 1);
            value = byte != 0;
        } else if constexpr (is_bytes<T>::value) {
            bytes(&value, sizeof value);
        } else if constexpr (std::is_same_v<T, std::string>) {
            const run r = sequence(1);
            value.assign(r.data, r.count);
        } else if constexpr (std::is_same_v<T, std::vector<char>>) {
            const run r = sequence(1);
            if (r.apart != nullptr)
                value = std::move(*r.apart);
            else
                value.assign(r.data, r.data + r.count); // copied once, not zeroed first
        } else if constexpr (requires { typename T::allocator_type; }) { // std::vector
            using element = typename T::value_type;
            const run r = sequence(sizeof(element));
            if constexpr (sizeof(element) == 1) {
                // Copied once, not zeroed first.
                const auto* first = reinterpret_cast<const element*>(r.data);
                value.assign(first, first + r.count);
            } else {
                value.resize(r.count);
                if (r.count != 0)
                    std::memcpy(value.data(), r.data, r.count * sizeof(element));
            }
        } else { // array, pair, tuple
            std::apply([this](auto&... element) { ((*this >> element), ...); }, value);
        }
        return *this;
    }

    /// Bytes consumed so far.
    std::size_t consumed() const noexcept { return used_; }

private:
    std::size_t left() const noexcept { return in_.size() - used_; }
    [[noreturn]] static void truncated() {
        throw std::length_error("input stream error: the value is truncated");
    }

    /// A string's or vector's elements: `count` of them at `data`, in the span or in `apart`
    /// (then also given, to be taken).
    struct run {
        std::size_t count = 0;
        const char* data = nullptr;
        std::vector<char>* apart = nullptr;
    };
    /// Reads a u64 element count and finds that many elements of `size` bytes after it: in the
    /// span, or in the bytes apart (see the class comment), which are then used up.
    run sequence(std::size_t size) {
        std::uint64_t n = 0;
        bytes(&n, sizeof n);
        if (apart_ != nullptr && left() == 0 && n != 0 && apart_->size() / size == n &&
            apart_->size() % size == 0) {
            std::vector<char>* apart = std::exchange(apart_, nullptr);
            return {static_cast<std::size_t>(n), apart->data(), apart};
        }
        if (n > left() / size)
            truncated();
        const run r{static_cast<std::size_t>(n), in_.data() + used_, nullptr};
        used_ += r.count * size;
        return r;
    }
    void bytes(void* p, std::size_t n) {
        if (n > left())
            truncated();
        if (n != 0)
            std::memcpy(p, in_.data() + used_, n);
        used_ += n;
    }

    std::span<const char> in_;
    std::size_t used_ = 0;
    std::vector<char>* apart_; // the last value's bytes, when they came apart; null once used
};

/// Writes values to the end of a vector: as plain bytes, or (Plain false) into one Boost binary
/// archive for the encoder's life. The vector holds exactly what was written after flush() and
/// at the encoder's end. Neither copyable nor movable (the archive refers to the streambuf
/// beside it).
template <bool Plain>
class encoder {
public:
    explicit encoder(std::vector<char>& out) noexcept
        : writer_(out) {}
    encoder(const encoder&) = delete;
    encoder& operator=(const encoder&) = delete;
    template <class T>
    void write(const T& value) {
        writer_ << value;
    }
    /// Writes `count` values of an is_bytes type in one copy.
    template <class T>
    void write_run(const T* first, std::size_t count) {
        writer_.write_run(first, count);
    }
    /// See plain_writer::write_detachable.
    template <class T>
    std::span<const char> write_detachable(const T& value, std::size_t min_bytes) {
        return writer_.write_detachable(value, min_bytes);
    }
    /// Leaves the vector holding exactly what was written (see plain_writer).
    void flush() noexcept { writer_.flush(); }

private:
    plain_writer writer_;
};
template <>
class encoder<false> {
public:
    explicit encoder(std::vector<char>& out)
        : sink_(out)
        , archive_(sink_, archive_flags) {}
    encoder(const encoder&) = delete;
    encoder& operator=(const encoder&) = delete;
    template <class T>
    void write(const T& value) {
        archive_ << value;
    }
    /// The vector always holds exactly what was written.
    void flush() noexcept {}

private:
    vector_sink sink_;
    boost::archive::binary_oarchive archive_;
};

/// Reads what encoder<Plain> wrote, from a span it does not copy, and the last value's bytes
/// from `apart` when they came apart (see plain_reader; only plain values come so). Neither
/// copyable nor movable.
template <bool Plain>
class decoder {
public:
    explicit decoder(std::span<const char> in, std::vector<char>* apart = nullptr) noexcept
        : reader_(in, apart) {}
    decoder(const decoder&) = delete;
    decoder& operator=(const decoder&) = delete;
    template <class T>
    void read(T& value) {
        reader_ >> value;
    }

private:
    plain_reader reader_;
};
template <>
class decoder<false> {
public:
    /// `apart`: never given for values an archive holds (they are not plain).
    explicit decoder(std::span<const char> in, std::vector<char>* apart = nullptr)
        : source_(in)
        , archive_(source_, archive_flags) {
        (void)apart;
    }
    decoder(const decoder&) = delete;
    decoder& operator=(const decoder&) = delete;
    template <class T>
    void read(T& value) {
        archive_ >> value;
    }

private:
    span_source source_;
    boost::archive::binary_iarchive archive_;
};

/// The codec values of type T call for.
template <class T>
using value_encoder = encoder<plain_value<T>>;
template <class T>
using value_decoder = decoder<plain_value<T>>;

/// Appends the bytes of a trivially copyable object (a wire header) to `out`.
template <class Pod>
void append_pod(std::vector<char>& out, const Pod& pod) {
    static_assert(std::is_trivially_copyable_v<Pod>);
    const std::size_t used = out.size();
    out.resize(used + sizeof(Pod));
    std::memcpy(out.data() + used, &pod, sizeof(Pod));
}

/// Reads a trivially copyable object from the start of `in`; the caller checks the size.
template <class Pod>
Pod read_pod(std::span<const char> in) noexcept {
    static_assert(std::is_trivially_copyable_v<Pod>);
    Pod pod;
    std::memcpy(&pod, in.data(), sizeof(Pod));
    return pod;
}

} // namespace procpool::detail
