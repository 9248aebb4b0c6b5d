// The pool's shared-memory segment, on Boost.Interprocess: see detail/segment.hpp.
#include "segment.hpp"
#include "throw_error.hpp"
#include <procpool/detail/task_identity.hpp>
#include <procpool/errors.hpp>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <thread>
#include <unistd.h>

namespace procpool::detail {

namespace bip = boost::interprocess;

namespace {
constexpr const char* name_prefix = "procpool-";

/// create() with a name that exists.
struct name_taken : error {
    using error::error;
};

std::string random_name() {
    // getrandom(2) itself, not std::random_device: libstdc++'s random_device asks the CPU what
    // it supports first (cpuid), and on a virtual machine that traps, costing far more than
    // the system call (docs/performance.md: cpuid).
    std::uint64_t bits = 0;
    if (::getrandom(&bits, sizeof bits, 0) != static_cast<ssize_t>(sizeof bits)) {
        // Only a kernel without getrandom (before 3.17) gets here: the time is enough, as the
        // name is only checked for uniqueness (O_EXCL), never for secrecy.
        bits =
            static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    char name[64];
    std::snprintf(name, sizeof name, "%s%d-%016llx", name_prefix, static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(bits));
    return name;
}

/// posix_fallocate, retried on EINTR: 0 or an errno value. Without fallocate (EOPNOTSUPP,
/// ENODEV) the pages come at first touch, as with Boost.Interprocess's truncate.
int reserve_bytes(int fd, std::uint64_t offset, std::uint64_t bytes) noexcept {
    int ret = EINTR;
    while (ret == EINTR)
        ret = ::posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes));
    return ret == EOPNOTSUPP || ret == ENODEV ? 0 : ret;
}
} // namespace

struct segment::impl {
    /// `only` of the parent's segment, which maps every block.
    static constexpr std::uint32_t every_block = ~std::uint32_t{0};

    std::string name;
    bool owner = false;
    bool name_removed = false;
    bip::shared_memory_object object; // kept open: producers reserve their rings through it
    bip::mapped_region region;        // the parent's: all of it; a worker's: its block
    bip::mapped_region header_region; // a worker's: the header, read-only
    segment_layout layout;
    std::uint32_t only = every_block; // a worker's index

    std::byte* base() const noexcept { return static_cast<std::byte*>(region.get_address()); }
    int fd() const noexcept { return object.get_mapping_handle().handle; }

    /// Where the segment's byte `offset` is mapped in this process.
    std::byte* at(std::uint64_t offset) const noexcept {
        if (only == every_block)
            return base() + offset;
        if (offset < segment_layout::header_region_bytes())
            return static_cast<std::byte*>(header_region.get_address()) + offset;
        const std::uint64_t block = layout.block_offset(only);
        // A worker asking for another worker's memory is a bug in this library: it is not
        // mapped here, and a pointer to it would fault at some later, less telling place.
        if (offset < block || offset - block >= layout.block_bytes())
            std::abort();
        return base() + (offset - block);
    }

    /// ring_backing::reserve.
    static bool reserve(void* self, std::uint64_t offset, std::uint64_t bytes) noexcept {
        return reserve_bytes(static_cast<impl*>(self)->fd(), offset, bytes) == 0;
    }
    ring_backing backing(std::uint64_t ring_offset) noexcept {
        return {&impl::reserve, this, ring_offset, layout.ring_start_bytes()};
    }
};

segment::segment(std::unique_ptr<impl> p) noexcept
    : impl_(std::move(p)) {}
segment::segment() noexcept = default;
segment::segment(segment&&) noexcept = default;
segment& segment::operator=(segment&&) noexcept = default;

segment::~segment() {
    if (impl_ && impl_->owner) {
        remove_name();
        // The last unmapping gives the segment's memory back to /dev/shm, page by page
        // (docs/performance.md: the segment), which the pool's destructor need not wait for. Its
        // workers are reaped, so nothing else maps it.
        try {
            std::thread([region = std::move(impl_->region)] {}).detach();
        } catch (...) {
            // no thread: unmap here
        }
    }
}

segment segment::create(std::uint32_t workers, std::uint64_t ring_bytes) {
    for (int attempt = 0;; ++attempt) {
        try {
            return create(workers, ring_bytes, random_name());
        } catch (const name_taken&) {
            if (attempt == 8)
                throw;
            // 64 random bits collided: draw again.
        }
    }
}

segment segment::create(std::uint32_t workers, std::uint64_t ring_bytes, const std::string& name) {
    if (ring_bytes < segment_layout::page || (ring_bytes & (ring_bytes - 1)) != 0)
        throw std::invalid_argument("procpool: a ring's size must be a power of two of at least "
                                    "a page (each worker maps its own rings, page-aligned)");
    auto p = std::make_unique<impl>();
    p->layout = segment_layout{workers, ring_bytes};
    p->name = name;
    const std::uint64_t size = p->layout.total_bytes();
    bip::permissions mode(0600);
    try {
        // create_only is O_CREAT | O_EXCL: an existing name is never reused.
        p->object =
            bip::shared_memory_object(bip::create_only, p->name.c_str(), bip::read_write, mode);
        try {
            // Sized, but only the header, the slots and the start of each ring are backed now;
            // each ring's producer reserves the rest when it first needs it (ring_backing). A
            // pool that never moves much never pays for its rings' pages: backing them all was
            // most of a pool's constructor (docs/performance.md: the segment).
            if (::ftruncate(p->fd(), static_cast<off_t>(size)) != 0)
                throw_system_error("ftruncate");
            struct statvfs fs {};
            if (::fstatvfs(p->fd(), &fs) == 0 && std::uint64_t{fs.f_bavail} * fs.f_frsize < size)
                throw error("/dev/shm has only " +
                            std::to_string(std::uint64_t{fs.f_bavail} * fs.f_frsize) +
                            " bytes free");
            const std::uint64_t ring_start = p->layout.ring_start_bytes();
            int ret = reserve_bytes(p->fd(), 0, segment_layout::header_region_bytes());
            for (std::uint32_t i = 0; ret == 0 && i < workers; ++i) {
                ret = reserve_bytes(p->fd(), p->layout.slot_offset(i),
                                    segment_layout::slot_region_bytes());
                if (ret == 0)
                    ret = reserve_bytes(p->fd(), p->layout.inbox_offset(i), ring_start);
                if (ret == 0)
                    ret = reserve_bytes(p->fd(), p->layout.outbox_offset(i), ring_start);
            }
            if (ret != 0)
                throw error(std::string("posix_fallocate: ") + std::strerror(ret));
            p->region = bip::mapped_region(p->object, bip::read_write, 0, size);
        } catch (...) {
            bip::shared_memory_object::remove(p->name.c_str());
            throw;
        }
        p->owner = true;
    } catch (const bip::interprocess_exception& e) {
        if (e.get_error_code() == bip::already_exists_error)
            throw name_taken("procpool: shared-memory segment /dev/shm/" + p->name +
                             " already exists; a pool never opens an existing name");
        throw error("procpool: cannot create the shared-memory segment /dev/shm/" + p->name +
                    " of " + std::to_string(size) + " bytes: " + e.what());
    } catch (const std::exception& e) {
        throw error("procpool: cannot create the shared-memory segment /dev/shm/" + p->name +
                    " of " + std::to_string(size) + " bytes: " + e.what());
    }
    // A fresh object is zero-filled: every atomic starts at 0. Construct the header in place.
    auto* header = new (p->base()) segment_header{};
    header->magic = segment_magic;
    header->layout_version = segment_layout_version;
    header->worker_count = workers;
    header->header_bytes = segment_layout::header_bytes();
    header->slot_bytes = sizeof(worker_slot);
    header->ring_bytes = ring_bytes;
    header->segment_bytes = size;
    header->module_key = main_module_key();
    header->owner_pid = ::getpid();
    for (std::uint32_t i = 0; i < workers; ++i)
        new (p->base() + p->layout.slot_offset(i)) worker_slot{};
    return segment(std::move(p));
}

segment segment::attach(const std::string& name, std::uint32_t index) {
    auto p = std::make_unique<impl>();
    p->name = name;
    p->only = index;
    constexpr std::uint64_t header_region = segment_layout::header_region_bytes();
    bip::offset_t size = 0;
    try {
        // read_write: the worker's own block is mapped writable, and its producer reserves its
        // ring's pages through this descriptor. The header is mapped read-only.
        p->object = bip::shared_memory_object(bip::open_only, name.c_str(), bip::read_write);
        if (!p->object.get_size(size) || size < static_cast<bip::offset_t>(header_region))
            throw error("procpool: shared-memory segment " + name + " is too small to be a pool's");
        p->header_region = bip::mapped_region(p->object, bip::read_only, 0, header_region);
    } catch (const bip::interprocess_exception& e) {
        throw error("procpool: cannot open the pool's shared-memory segment " + name + ": " +
                    e.what());
    }
    const auto& h = *static_cast<const segment_header*>(p->header_region.get_address());
    if (std::string why = segment_header_problem(h, static_cast<std::uint64_t>(size)); !why.empty())
        throw error("procpool: shared-memory segment " + name + " refused: " + why);
    if (index >= h.worker_count)
        throw std::invalid_argument("procpool: worker index " + std::to_string(index) +
                                    " is out of range for segment " + name + " of " +
                                    std::to_string(h.worker_count) + " workers");
    p->layout = segment_layout{h.worker_count, h.ring_bytes};
    try {
        p->region = bip::mapped_region(p->object, bip::read_write,
                                       static_cast<bip::offset_t>(p->layout.block_offset(index)),
                                       p->layout.block_bytes());
    } catch (const bip::interprocess_exception& e) {
        throw error("procpool: cannot map worker " + std::to_string(index) +
                    "'s block of the shared-memory segment " + name + ": " + e.what());
    }
    return segment(std::move(p));
}

std::string segment_header_problem(const segment_header& h, std::uint64_t mapped_bytes) {
    if (h.magic != segment_magic)
        return "bad magic (not a ProcPool segment)";
    if (h.layout_version != segment_layout_version)
        return "layout version " + std::to_string(h.layout_version) + ", this build speaks " +
               std::to_string(segment_layout_version);
    if (h.header_bytes != segment_layout::header_bytes() || h.slot_bytes != sizeof(worker_slot))
        return "header or slot size differs from this build's";
    if (h.worker_count == 0 || h.worker_count > segment_layout::max_workers)
        return "worker count " + std::to_string(h.worker_count) + " is out of range";
    if (h.ring_bytes < segment_layout::page || (h.ring_bytes & (h.ring_bytes - 1)) != 0 ||
        h.ring_bytes > segment_layout::max_ring_bytes)
        return "ring size " + std::to_string(h.ring_bytes) + " is not a power of two in range";
    const segment_layout layout{h.worker_count, h.ring_bytes};
    if (h.segment_bytes != layout.total_bytes() || h.segment_bytes > mapped_bytes)
        return "segment size " + std::to_string(h.segment_bytes) + " does not match its layout";
    if (h.module_key != main_module_key())
        return "the worker's executable is not the parent's (build-id differs: was the program "
               "rebuilt while the pool ran?)";
    return {};
}

segment_header& segment::header() const noexcept {
    return *reinterpret_cast<segment_header*>(impl_->at(0));
}
worker_slot& segment::slot(std::uint32_t i) const noexcept {
    return *reinterpret_cast<worker_slot*>(impl_->at(impl_->layout.slot_offset(i)));
}
ring_producer segment::inbox_producer(std::uint32_t i) const noexcept {
    const std::uint64_t offset = impl_->layout.inbox_offset(i);
    return {&slot(i).inbox, impl_->at(offset), impl_->layout.ring_bytes, impl_->backing(offset)};
}
ring_consumer segment::inbox_consumer(std::uint32_t i) const noexcept {
    return {&slot(i).inbox, impl_->at(impl_->layout.inbox_offset(i)), impl_->layout.ring_bytes};
}
ring_producer segment::outbox_producer(std::uint32_t i) const noexcept {
    const std::uint64_t offset = impl_->layout.outbox_offset(i);
    return {&slot(i).outbox, impl_->at(offset), impl_->layout.ring_bytes, impl_->backing(offset)};
}
ring_consumer segment::outbox_consumer(std::uint32_t i) const noexcept {
    return {&slot(i).outbox, impl_->at(impl_->layout.outbox_offset(i)), impl_->layout.ring_bytes};
}
const std::string& segment::name() const noexcept {
    return impl_->name;
}

void segment::remove_name() noexcept {
    if (impl_ && !impl_->name_removed) {
        remove_segment_name(impl_->name.c_str());
        impl_->name_removed = true; // a pool's shutdown paths each call this: one syscall
    }
}

void remove_segment_name(const char* name) noexcept {
    // shm_unlink is async-signal-safe; ENOENT (already removed) is fine.
    ::shm_unlink(name);
}

void sweep_orphaned_segments() noexcept {
    DIR* dir = ::opendir("/dev/shm");
    if (dir == nullptr)
        return;
    const std::size_t prefix = std::strlen(name_prefix);
    while (dirent* entry = ::readdir(dir)) {
        if (std::strncmp(entry->d_name, name_prefix, prefix) != 0)
            continue;
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name + prefix, &end, 10);
        if (pid <= 0 || end == nullptr || *end != '-')
            continue;
        // ESRCH: no such process, so nobody owns the segment. EPERM means it runs (as
        // another user): leave it.
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
            ::shm_unlink(entry->d_name);
    }
    ::closedir(dir);
}

} // namespace procpool::detail
