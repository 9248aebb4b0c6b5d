// The classic: a map from every file under a directory to its digest, computed in parallel.
// Python's version is `dict(pool.imap_unordered(digest, paths, chunksize=8))`; here the
// paths are read lazily from a directory walk, and results come back as workers finish.
//
// Usage: digest_tree [DIRECTORY]   (default: the current directory)
// Prints "sha512  size  path" for every regular file, sorted by path, the digest as Python's
// hashlib.sha512(data).hexdigest() prints it (and as sha512sum does).
#include "sha512_digest.hpp"

#include <procpool/procpool.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <ranges>
#include <string>
#include <tuple>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    procpool::init(argc, argv); // in a worker, runs the worker and never returns
    const fs::path root = argc > 1 ? argv[1] : ".";

    // Every regular file under root, as strings, produced lazily by the directory walk.
    auto paths =
        fs::recursive_directory_iterator(root) |
        std::views::filter([](const fs::directory_entry& e) { return e.is_regular_file(); }) |
        std::views::transform([](const fs::directory_entry& e) { return e.path().string(); });

    procpool::pool pool; // one worker per core
    std::map<std::string, std::tuple<std::string, long>> digests;
    // digest (sha512_digest.hpp) runs in the workers, in chunks of 8 paths per task: fewer
    // round trips than one file at a time.
    for (auto [path, sha512, size] : pool.imap_unordered(digest, paths, 8))
        digests[fs::path(path).lexically_relative(root).generic_string()] = {sha512, size};

    for (const auto& [path, value] : digests)
        std::printf("%s  %ld  %s\n", std::get<0>(value).c_str(), std::get<1>(value), path.c_str());
}
