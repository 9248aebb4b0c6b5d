#include "digest_scenario.hpp"

#include "sha512_digest.hpp" // examples/: the function digest_tree maps

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace perf {

namespace {

/// splitmix64: a small deterministic generator, so that every run writes the same tree.
std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
}

/// The regular files under `root`, sorted by path.
std::vector<std::string> files_under(const std::filesystem::path& root) {
    std::vector<std::string> paths;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root))
        if (entry.is_regular_file())
            paths.push_back(entry.path().string());
    std::sort(paths.begin(), paths.end());
    return paths;
}

} // namespace

generated_tree::generated_tree(std::size_t files) {
    std::string pattern = (std::filesystem::temp_directory_path() / "procpool-perf-digest-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr)
        throw std::runtime_error("cannot make a directory " + pattern + ": " +
                                 std::error_code(errno, std::generic_category()).message());
    root_ = pattern;
    try {
        std::vector<std::uint64_t> words;
        for (std::size_t i = 0; i < files; ++i) {
            char name[64];
            std::snprintf(name, sizeof name, "d%03zu/f%05zu.bin", i / 100, i);
            const std::filesystem::path file = root_ / name;
            if (i % 100 == 0)
                std::filesystem::create_directory(file.parent_path());
            std::uint64_t state = i;
            // 2^(11 + 7u) bytes for u uniform in [0, 1): 2 KiB to 256 KiB.
            const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1p-53;
            const auto size = static_cast<std::size_t>(2048.0 * std::exp2(7.0 * u));
            words.resize(size / sizeof(std::uint64_t) + 1);
            for (auto& w : words)
                w = splitmix64(state);
            std::ofstream out(file, std::ios::binary);
            out.write(reinterpret_cast<const char*>(words.data()),
                      static_cast<std::streamsize>(size));
            if (!out)
                throw std::runtime_error("cannot write " + file.string());
        }
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove_all(root_, ec);
        throw;
    }
}

generated_tree::~generated_tree() {
    std::error_code ec; // a tree left behind in the temporary directory is no reason to fail
    std::filesystem::remove_all(root_, ec);
}

std::size_t digest_tree_files(const settings& s) noexcept {
    return s.quick ? 300 : 3000;
}

void digest_scenario(const settings& s, const emit_fn& emit) {
    const std::vector<std::string> paths = files_under(s.digest_tree);
    if (paths.empty())
        throw std::runtime_error("digest: no files under " + s.digest_tree);
    long bytes = 0;
    for (const auto& p : paths)
        bytes += static_cast<long>(std::filesystem::file_size(p));
    // One digest made here, for the pool's to be checked against.
    const std::string first_digest = std::get<1>(digest(paths.front()));

    procpool::pool pool(pool_options(s));
    auto run = [&] {
        std::size_t results = 0;
        long digested = 0;
        bool first_seen = false;
        for (auto [path, sha512, size] : pool.imap_unordered(digest, paths, 8)) {
            ++results;
            digested += size;
            if (path == paths.front())
                first_seen = sha512 == first_digest;
        }
        if (results != paths.size() || digested != bytes || !first_seen)
            throw std::runtime_error("digest: wrong result");
    };
    run(); // untimed warm-up: see the note above tiny_map in scenarios.cpp
    std::vector<double> times;
    for (int r = 0; r < s.repeat; ++r) {
        const auto start = clock_type::now();
        run();
        times.push_back(seconds_since(start));
    }
    const double m = median(times);
    emit({{"scenario", "digest"},
          {"tasks", paths.size()},
          {"chunksize", 8},
          {"tree_bytes", bytes},
          {"median_s", m},
          {"tasks_per_s", static_cast<double>(paths.size()) / m},
          {"mb_per_s", static_cast<double>(bytes) / m / 1e6}});
}

} // namespace perf
