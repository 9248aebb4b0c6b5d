// How a worker finds the function the parent named, with no registration by the user.
//
// Code is named by (module, offset): `module` is a 64-bit key of the loaded ELF object (a hash
// of its GNU build-id, or of its path when it has none) and `offset` is the address minus the
// object's load base. The pair is valid in every process running the same binaries, whatever
// ASLR chose. Each task type has a trampoline (an instantiation of detail::invoker<...>::run)
// that registers itself at static initialisation, so a worker can check that an incoming
// trampoline address is one it knows: an address that is not a registered trampoline is an
// error, never a jump. A plain function pointer is checked to lie inside an executable segment
// of a module whose build-id matches the parent's.
#pragma once

#include <procpool/export.hpp>

#include <cstdint>

namespace procpool::detail {

struct task_call;

/// The signature of every trampoline: decode, run, encode. Runs in the worker.
using trampoline_fn = void (*)(task_call&);

/// A code address that survives exec: see the file comment.
struct code_address {
    std::uint64_t module = 0; ///< 0 means "no address"
    std::uint64_t offset = 0;

    friend bool operator==(const code_address&, const code_address&) = default;
};

/// The module-relative form of `code`. Throws procpool::error when `code` lies in no loaded
/// module. Thread-safe.
PROCPOOL_API code_address to_code_address(const void* code);

/// The address back in this process, or nullptr when no loaded module has that key or the
/// offset is outside the module's executable segments. Thread-safe, does not throw.
const void* from_code_address(code_address address) noexcept;

/// Records `fn` as a trampoline. Called from static initialisers. Thread-safe.
PROCPOOL_API void register_trampoline(trampoline_fn fn) noexcept;

/// The registered trampoline at `address`, or nullptr when none is registered there.
trampoline_fn find_trampoline(const void* address) noexcept;

/// The key of the main executable, checked by a worker when it attaches.
std::uint64_t main_module_key();

} // namespace procpool::detail
