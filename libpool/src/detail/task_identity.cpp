// Module table and trampoline registry behind detail/task_identity.hpp.
#include <procpool/detail/task_identity.hpp>
#include <procpool/errors.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <link.h>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace procpool::detail {

namespace {

struct segment_range {
    std::uintptr_t begin;
    std::uintptr_t end;
};

struct module_info {
    std::uint64_t key;
    std::uintptr_t base;
    std::vector<segment_range> executable; // PT_LOAD segments with PF_X
    bool main;
};

std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t hash = 14695981039346656037ULL) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        hash ^= p[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}

/// The GNU build-id note of a module, hashed; 0 when it has none.
std::uint64_t build_id_key(const dl_phdr_info& info) {
    for (int i = 0; i < info.dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info.dlpi_phdr[i];
        if (ph.p_type != PT_NOTE)
            continue;
        const auto* p = reinterpret_cast<const char*>(info.dlpi_addr + ph.p_vaddr);
        const char* end = p + ph.p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const char* name = p + sizeof(ElfW(Nhdr));
            const char* desc = name + ((note->n_namesz + 3) & ~3u);
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0 && desc + note->n_descsz <= end)
                return fnv1a(desc, note->n_descsz) | 1; // never 0: 0 means "no address"
            p = desc + ((note->n_descsz + 3) & ~3u);
        }
    }
    return 0;
}

class module_table {
public:
    static module_table& instance() {
        static module_table table; // constructed on first use, so safe from static initialisers
        return table;
    }

    std::optional<code_address> find(std::uintptr_t address) {
        std::lock_guard lock(mutex_);
        for (int attempt = 0; attempt < 2; ++attempt) {
            for (const module_info& m : modules_)
                for (const segment_range& r : m.executable)
                    if (address >= r.begin && address < r.end)
                        return code_address{m.key, address - m.base};
            rescan(); // a library loaded since the last scan
        }
        return std::nullopt;
    }

    const void* resolve(code_address a) {
        std::lock_guard lock(mutex_);
        for (int attempt = 0; attempt < 2; ++attempt) {
            for (const module_info& m : modules_) {
                if (m.key != a.module)
                    continue;
                const std::uintptr_t address = m.base + a.offset;
                for (const segment_range& r : m.executable)
                    if (address >= r.begin && address < r.end)
                        return reinterpret_cast<const void*>(address);
                return nullptr;
            }
            rescan();
        }
        return nullptr;
    }

    std::uint64_t main_key() {
        std::lock_guard lock(mutex_);
        if (modules_.empty())
            rescan();
        for (const module_info& m : modules_)
            if (m.main)
                return m.key;
        return 0;
    }

private:
    void rescan() {
        modules_.clear();
        dl_iterate_phdr(
            [](dl_phdr_info* info, std::size_t, void* self) -> int {
                auto& modules = static_cast<module_table*>(self)->modules_;
                module_info m{};
                m.base = info->dlpi_addr;
                m.main = modules.empty(); // the first object listed is the main program
                m.key = build_id_key(*info);
                if (m.key == 0) {
                    // No build-id: fall back to the path, which still tells modules apart.
                    const char* name = info->dlpi_name ? info->dlpi_name : "";
                    m.key = fnv1a(name, std::strlen(name), 0x9e3779b97f4a7c15ULL) | 1;
                }
                for (int i = 0; i < info->dlpi_phnum; ++i) {
                    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
                        m.executable.push_back({info->dlpi_addr + ph.p_vaddr,
                                                info->dlpi_addr + ph.p_vaddr + ph.p_memsz});
                }
                modules.push_back(std::move(m));
                return 0;
            },
            this);
    }

    std::mutex mutex_;
    std::vector<module_info> modules_;
};

class trampoline_registry {
public:
    static trampoline_registry& instance() {
        static trampoline_registry registry;
        return registry;
    }
    void add(trampoline_fn fn) {
        const auto* address = reinterpret_cast<const void*>(fn);
        std::lock_guard lock(mutex_);
        auto it = std::lower_bound(entries_.begin(), entries_.end(), address, std::less<>());
        if (it == entries_.end() || *it != address)
            entries_.insert(it, address);
    }
    trampoline_fn find(const void* address) {
        std::lock_guard lock(mutex_);
        auto it = std::lower_bound(entries_.begin(), entries_.end(), address, std::less<>());
        if (it != entries_.end() && *it == address)
            return reinterpret_cast<trampoline_fn>(const_cast<void*>(address));
        return nullptr;
    }

private:
    std::mutex mutex_;
    std::vector<const void*> entries_; // sorted, std::less gives pointers a total order
};

} // namespace

code_address to_code_address(const void* code) {
    if (auto a = module_table::instance().find(reinterpret_cast<std::uintptr_t>(code)))
        return *a;
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%p", code);
    throw error(std::string("procpool: the task function at ") + buffer +
                " lies in no loaded module, so a worker cannot find it");
}

const void* from_code_address(code_address address) noexcept {
    try {
        return module_table::instance().resolve(address);
    } catch (...) { // std::bad_alloc while rescanning
        return nullptr;
    }
}

void register_trampoline(trampoline_fn fn) noexcept {
    try {
        trampoline_registry::instance().add(fn);
    } catch (...) {
        // Out of memory before main(): the trampoline stays unknown, and a task that needs it
        // fails with a clear error rather than jumping anywhere.
    }
}

trampoline_fn find_trampoline(const void* address) noexcept {
    return trampoline_registry::instance().find(address);
}

std::uint64_t main_module_key() {
    return module_table::instance().main_key();
}

} // namespace procpool::detail
