// The classic: a map from every file under a directory to its digest, computed in parallel.
// Python's version is `dict(pool.imap_unordered(digest, paths, chunksize=8))`; here the
// paths are read lazily from a directory walk, and results come back as workers finish.
//
// Usage: digest_tree [DIRECTORY]   (default: the current directory)
// Prints "crc32  size  path" for every regular file, sorted by path.
#include <procpool/procpool.hpp>

#include <boost/crc.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <ranges>
#include <string>
#include <tuple>

namespace fs = std::filesystem;

// Runs in a worker: the CRC-32 and size of one file. A path travels as a std::string, and
// the result as a tuple: both are plain values that cross shared memory as bytes.
std::tuple<std::string, unsigned, long> digest(std::string path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot open " + path);
    boost::crc_32_type crc;
    char buffer[1 << 16];
    long size = 0;
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        crc.process_bytes(buffer, static_cast<std::size_t>(in.gcount()));
        size += in.gcount();
    }
    return {path, crc.checksum(), size};
}

int main(int argc, char** argv) {
    procpool::init(argc, argv); // in a worker, runs the worker and never returns
    const fs::path root = argc > 1 ? argv[1] : ".";

    // Every regular file under root, as strings, produced lazily by the directory walk.
    auto paths =
        fs::recursive_directory_iterator(root) |
        std::views::filter([](const fs::directory_entry& e) { return e.is_regular_file(); }) |
        std::views::transform([](const fs::directory_entry& e) { return e.path().string(); });

    procpool::pool pool; // one worker per core
    std::map<std::string, std::tuple<unsigned, long>> digests;
    // Chunks of 8 paths per task: fewer round trips than one file at a time.
    for (auto [path, crc, size] : pool.imap_unordered(digest, paths, 8))
        digests[fs::path(path).lexically_relative(root).generic_string()] = {crc, size};

    for (const auto& [path, value] : digests)
        std::printf("%08x  %ld  %s\n", std::get<0>(value), std::get<1>(value), path.c_str());
}
