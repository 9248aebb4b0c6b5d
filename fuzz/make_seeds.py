#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target (fuzz/corpus/<target>/): well-formed inputs, as
the pool's own writers lay them out (libpool/include/procpool/detail/wire.hpp, codec.hpp,
exception_codec.cpp, libpool/src/detail/segment.hpp), from which libFuzzer mutates. Rerun it
after a wire format changes, and commit what it writes; scripts/fuzz.sh never changes it."""
import os
import struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def u64(v):
    return struct.pack("<Q", v)


def u32(v):
    return struct.pack("<I", v)


def record(tag, type_name, message, tail=b""):
    """An error record: u8 tag | u32 length | type name | u32 length | message | tail."""
    t, m = type_name.encode(), message.encode()
    return bytes([tag]) + u32(len(t)) + t + u32(len(m)) + m + tail


RUNTIME_ERROR, REMOTE, POOL_ERROR, SYSTEM_ERROR, FS_ERROR, IOS_FAILURE, FUTURE_ERROR = (
    7, 0, 12, 16, 17, 18, 19)
GENERIC, SYSTEM, IOSTREAM, FUTURE = 1, 2, 3, 4
records = {
    "runtime_error": record(RUNTIME_ERROR, "std::runtime_error", "boom"),
    "remote": record(REMOTE, "my::error", "custom"),
    "pool_error": record(POOL_ERROR, "procpool::error", "procpool: failed"),
    "system_error": record(SYSTEM_ERROR, "std::system_error", "open", bytes([SYSTEM]) + u32(2)),
    "filesystem_error": record(FS_ERROR, "std::filesystem::filesystem_error", "copy",
                               bytes([GENERIC]) + u32(17) + u32(4) + b"/a/b" + u32(2) + b"/c"),
    "ios_failure": record(IOS_FAILURE, "std::ios_base::failure", "read",
                          bytes([IOSTREAM]) + u32(1)),
    "future_error": record(FUTURE_ERROR, "std::future_error", "", bytes([FUTURE]) + u32(2)),
}
for name, r in records.items():
    write("fuzz_exception_record", name, b"\x00" + r)  # decode mode
for kind in range(9):
    write("fuzz_exception_record", f"round_trip_{kind}", bytes([0x80 | kind]) + b"a message")


def frame(body, bulk=b""):
    """A frame as frame_writer sends it: u64 length, or with its bulk apart the length with
    the top bit set and the bulk's length."""
    if bulk:
        return u64((len(body) + len(bulk)) | (1 << 63)) + u64(len(bulk)) + body + bulk
    return u64(len(body)) + body


stream = frame(b"first frame") + frame(b"x" * 300) + frame(b"head", b"B" * 100) + frame(b"")
write("fuzz_frame_reader", "three_frames", bytes([7, 4, 0]) + stream)
write("fuzz_frame_reader", "bulk_source", bytes([63, 11, 1]) + stream)
write("fuzz_frame_reader", "over_limit", bytes([5, 0, 0]) + frame(b"y" * 400))


def result(task_id, ok_count, payload=b"", error=None, kind=3):
    """A result frame: result_header (task id, kind, failed, ok_count, error_offset, exec_ns)
    then the results, then the error record when it failed."""
    failed = 1 if error is not None else 0
    head = u64(task_id) + u32(kind) + u32(failed) + u64(ok_count) + u64(len(payload)) + u64(1000)
    return head + payload + (error or b"")


def framed(frames):
    """The target's input: each frame as u8 length, u8 flags (1: patch in the next task id)."""
    out = b""
    for data in frames:
        assert len(data) < 256
        out += bytes([len(data), 1]) + data
    return out


ok = [result(0, 1, u64(42)) for _ in range(3)]
write("fuzz_result_frame", "three_answers", framed(ok))
write("fuzz_result_frame", "one_failed",
      framed([ok[0], result(0, 0, b"", records["runtime_error"]), ok[2]]))
write("fuzz_result_frame", "too_many_results", framed([result(0, 5, u64(1) * 5)]))
write("fuzz_result_frame", "unknown_kind", framed([result(0, 1, u64(1), kind=9)]))
write("fuzz_result_frame", "short", bytes([10, 0]) + b"0123456789")

codec = {
    "int32": (0, struct.pack("<ii", -5, 7)),
    "double": (1, struct.pack("<dd", 2.5, -0.0)),
    "string": (3, u64(5) + b"hello" + u64(0)),
    "vector_char": (4, u64(3) + b"abc" + u64(2) + b"de"),
    "vector_int32": (5, u64(2) + struct.pack("<ii", 1, 2) + u64(0)),
    "vector_double": (6, u64(1) + struct.pack("<d", 3.0) + u64(1) + struct.pack("<d", 4.0)),
    "pair": (7, struct.pack("<q", 9) + u64(2) + b"hi" + struct.pack("<q", 8) + u64(0)),
    "tuple": (8, struct.pack("<id", 1, 1.5) + u64(1) + b"z" + struct.pack("<id", 2, 0.5) + u64(0)),
    "array": (9, struct.pack("<10H", *range(10))),
    "pair_vector": (10, u64(1) + b"k" + u64(2) + struct.pack("<ff", 1, 2) + u64(0) + u64(0)),
}
for name, (kind, data) in codec.items():
    write("fuzz_plain_codec", name, bytes([kind, 0]) + data)
# A string's bytes handed apart (the last 5 bytes of the input).
write("fuzz_plain_codec", "string_apart", bytes([3, 5]) + u64(2) + b"ab" + u64(5) + b"world")

MAGIC, VERSION = 0x4C4F4F5050434F52, 3
header = (u64(MAGIC) + u32(VERSION) + u32(2) + u64(0) + u64(0) + u64(1 << 16) + u64(0) + u64(0) +
          u64(1234) + u64(0) + u32(0) + u32(0))
# Flags 63: every field this build checks set to what it writes, the mapped size to the
# segment's.
write("fuzz_segment_header", "valid", bytes([63]) + u64(0) + header)
write("fuzz_segment_header", "too_small", bytes([31]) + u64(4096) + header)
write("fuzz_segment_header", "bad_ring", bytes([63]) + u64(0) + header[:32] + u64(5000) +
      header[40:])
write("fuzz_segment_header", "raw", bytes([0]) + u64(1 << 20) + header)
