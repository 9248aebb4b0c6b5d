// The `digest` scenario: the classic example as a workload, SHA-512 of every file of a tree
// through imap_unordered(digest, paths, 8) (examples/digest_tree.cpp), beside CPython's
// hashlib.sha512 over the same files with Pool.imap_unordered(..., chunksize=8).
#pragma once

#include "harness.hpp"

#include <cstddef>
#include <filesystem>

namespace perf {

/// A directory of generated files, removed with this object. The procpool-perf the user
/// started makes one and passes it (--digest-tree) to the scenario's --child and to the
/// CPython peer, so both read the same files, from the page cache.
class generated_tree {
public:
    /// Writes `files` files of 2 KiB to 256 KiB (log-uniform, about 52 KiB on average) with
    /// deterministic contents, 100 to a subdirectory, under a fresh directory in the system's
    /// temporary directory. Blocks while it writes. Throws std::runtime_error or
    /// std::filesystem::filesystem_error when a file cannot be made.
    explicit generated_tree(std::size_t files);
    generated_tree(const generated_tree&) = delete;
    generated_tree& operator=(const generated_tree&) = delete;
    /// Removes the directory and everything in it; does not throw.
    ~generated_tree();

    const std::filesystem::path& path() const noexcept { return root_; }

private:
    std::filesystem::path root_;
};

/// The number of files the scenario's tree has: 3 000, 300 with --quick.
std::size_t digest_tree_files(const settings& s) noexcept;

/// Runs the scenario over the files under s.digest_tree, sorted by path: one untimed run, then
/// --repeat timed runs. Emits one case; its mb_per_s counts the bytes digested. Throws
/// std::runtime_error when a result is wrong.
void digest_scenario(const settings& s, const emit_fn& emit);

} // namespace perf
