// The work of digest_tree, shared with procpool-perf's `digest` scenario: the SHA-512 of one
// file through OpenSSL's EVP interface, as Python's hashlib.sha512(...).hexdigest() gives it.
#pragma once

#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

/// The SHA-512 digest (128 lowercase hex digits) and size of the file at `path`. Runs in a
/// worker: a path travels as a std::string, and the result as a tuple, plain values that cross
/// shared memory as bytes. Reads in blocks of 64 KiB. Throws std::runtime_error when the file
/// cannot be opened or read, or OpenSSL fails. Thread-safe.
inline std::tuple<std::string, std::string, long> digest(std::string path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot open " + path);
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                      &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha512(), nullptr) != 1)
        throw std::runtime_error("OpenSSL cannot start a SHA-512 digest");
    char buffer[1 << 16];
    long size = 0;
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        if (EVP_DigestUpdate(ctx.get(), buffer, static_cast<std::size_t>(in.gcount())) != 1)
            throw std::runtime_error("OpenSSL failed to digest " + path);
        size += in.gcount();
    }
    if (in.bad())
        throw std::runtime_error("cannot read " + path);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx.get(), md, &length) != 1)
        throw std::runtime_error("OpenSSL failed to finish the digest of " + path);
    static constexpr char hex_digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
        hex += hex_digits[md[i] >> 4];
        hex += hex_digits[md[i] & 0xf];
    }
    return {path, hex, size};
}
