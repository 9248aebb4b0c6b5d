// The codec: Boost.Serialization binary archives over plain memory. Archives are made with
// no header and no codecvt (both sides are the same binary, and a header would cost 40 bytes
// and a locale per task) on two small streambufs, one that appends to a std::vector<char>
// and one that reads a span, so no std::ostream or std::istream is built per task.
#pragma once

#include <procpool/detail/tuple_serialization.hpp>

#include <boost/archive/basic_archive.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <cstddef>
#include <cstring>
#include <span>
#include <streambuf>
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

/// Appends the bytes of a trivially copyable object (a wire header) to `out`.
template <class Pod>
void append_pod(std::vector<char>& out, const Pod& pod) {
    static_assert(std::is_trivially_copyable_v<Pod>);
    const auto* p = reinterpret_cast<const char*>(&pod);
    out.insert(out.end(), p, p + sizeof(Pod));
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
