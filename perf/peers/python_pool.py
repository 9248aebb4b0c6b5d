#!/usr/bin/env python3
"""CPython's multiprocessing.Pool on procpool-perf's workloads (DESIGN.md section 4).

procpool-perf --peer python runs this script and prints its figures beside ProcPool's. It
prints one JSON object per case on stdout, with the same scenario names, sizes, chunksizes and
fields as procpool-perf, and "impl": "python". The pool uses CPython's default start method
("fork" on Linux) unless a scenario names one.
"""
import argparse
import hashlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time


def square(x):
    return x * x


def identity(v):
    return v


def digest(path):
    """The classic: the SHA-512 and size of one file, read in blocks of 64 KiB (as
    examples/sha512_digest.hpp does)."""
    h = hashlib.sha512()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 16):
            h.update(block)
            size += len(block)
    return path, h.hexdigest(), size


def emit(obj, processes):
    obj.setdefault("processes", processes)
    obj["impl"] = "python"
    print(json.dumps(obj), flush=True)


def timed(fn, repeat, warm_up=False):
    """Median of `repeat` timed runs; with warm_up, after one untimed run (as procpool-perf
    does for tiny_map, tiny_imap_unordered, payload and digest)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def default_chunksize(items, processes):
    chunksize, extra = divmod(items, processes * 4)
    return chunksize + 1 if extra else max(chunksize, 1)


def tiny_map(a):
    variants = [(20_000, 1), (2_000_000, 0), (2_000_000, 1000)]
    if a.quick:
        variants = [(20_000, 1), (200_000, 0), (200_000, 1000)]
    with mp.Pool(a.processes) as pool:
        for items, chunksize in variants:
            data = list(range(items))
            chunk = chunksize or default_chunksize(items, a.processes)
            m = timed(lambda: pool.map(square, data, chunk), a.repeat, warm_up=True)
            emit({"scenario": "tiny_map", "tasks": items, "chunksize": chunk, "median_s": m,
                  "tasks_per_s": items / m}, a.processes)


def tiny_imap_unordered(a):
    items = 20_000
    with mp.Pool(a.processes) as pool:
        m = timed(lambda: sum(pool.imap_unordered(square, range(items))), a.repeat,
                  warm_up=True)
        emit({"scenario": "tiny_imap_unordered", "tasks": items, "chunksize": 1, "median_s": m,
              "tasks_per_s": items / m}, a.processes)


def latency(a, async_get):
    trips = 500 if a.quick else 2000
    with mp.Pool(a.processes) as pool:
        pool.apply(square, (1,))
        runs, samples = [], []
        for _ in range(a.repeat):
            start = time.perf_counter()
            for i in range(trips):
                t0 = time.perf_counter()
                if async_get:
                    pool.apply_async(square, (i,)).get()
                else:
                    pool.apply(square, (i,))
                samples.append((time.perf_counter() - t0) * 1e6)
            runs.append(time.perf_counter() - start)
        samples.sort()
        pick = lambda p: samples[min(len(samples) - 1, int(p / 100 * (len(samples) - 1) + 0.5))]
        m = statistics.median(runs)
        emit({"scenario": "latency_apply_async_get" if async_get else "latency_apply",
              "tasks": trips, "median_s": m, "tasks_per_s": trips / m,
              "p50_us": pick(50), "p99_us": pick(99)}, a.processes)


def payload(a):
    with mp.Pool(a.processes) as pool:
        for size in (1 << 10, 64 << 10, 1 << 20, 16 << 20):
            budget = (64 << 20) if a.quick else (256 << 20)
            tasks = min(max(budget // size, 8), 20_000)
            data = [b"x" * size for _ in range(tasks)]
            m = timed(lambda: pool.map(identity, data, 1), a.repeat, warm_up=True)
            emit({"scenario": "payload", "tasks": tasks, "chunksize": 1, "payload_bytes": size,
                  "median_s": m, "tasks_per_s": tasks / m,
                  "mb_per_s": 2.0 * tasks * size / m / 1e6}, a.processes)


def startup(a):
    def once():
        with mp.Pool(2) as pool:
            pool.apply(square, (3,))
    m = timed(once, max(a.repeat, 5))
    emit({"scenario": "startup", "processes": 2, "tasks": 1, "median_s": m}, a.processes)


def respawn(a):
    items = 200 if a.quick else 2000
    for method in ("spawn", "forkserver"):
        ctx = mp.get_context(method)
        with ctx.Pool(a.processes, maxtasksperchild=1) as pool:
            pool.apply(square, (1,))
            # One run, as procpool-perf does: thousands of process starts already.
            m = timed(lambda: pool.map(square, range(items), 1), 1)
            emit({"scenario": "respawn", "start_method": method, "tasks": items, "chunksize": 1,
                  "median_s": m, "tasks_per_s": items / m}, a.processes)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle(a):
    seconds = 2.0
    with mp.Pool(2) as pool:
        pool.apply(square, (1,))
        pids = [p.pid for p in pool._pool]
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        workers0 = sum(cpu_seconds(p) for p in pids)
        time.sleep(seconds)
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        workers1 = sum(cpu_seconds(p) for p in pids)
    cpu = (self1.ru_utime - self0.ru_utime + self1.ru_stime - self0.ru_stime) + (workers1 - workers0)
    emit({"scenario": "idle", "processes": 2, "tasks": 0, "median_s": seconds, "cpu_s": cpu,
          "core_percent": 100.0 * cpu / seconds}, a.processes)


def serial_loop(a):
    items = 200_000 if a.quick else 2_000_000
    data = list(range(items))
    m = timed(lambda: [square(x) for x in data], a.repeat)
    emit({"scenario": "serial_loop", "processes": 1, "tasks": items, "median_s": m,
          "tasks_per_s": items / m}, a.processes)


def digest_scenario(a):
    if not a.digest_tree:
        sys.exit("python_pool.py: the digest scenario needs --digest-tree DIR "
                 "(procpool-perf makes one)")
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(a.digest_tree) for f in files)
    total = sum(os.path.getsize(p) for p in paths)

    def run():
        results = digested = 0
        for _, _, size in pool.imap_unordered(digest, paths, chunksize=8):
            results += 1
            digested += size
        if results != len(paths) or digested != total:
            raise RuntimeError("digest: wrong result")

    with mp.Pool(a.processes) as pool:
        m = timed(run, a.repeat, warm_up=True)
    emit({"scenario": "digest", "tasks": len(paths), "chunksize": 8, "tree_bytes": total,
          "median_s": m, "tasks_per_s": len(paths) / m, "mb_per_s": total / m / 1e6},
         a.processes)


SCENARIOS = {
    "tiny_map": tiny_map,
    "tiny_imap_unordered": tiny_imap_unordered,
    "latency_apply_async_get": lambda a: latency(a, True),
    "latency_apply": lambda a: latency(a, False),
    "payload": payload,
    "startup": startup,
    "respawn": respawn,
    "idle": idle,
    "serial_loop": serial_loop,
    "digest": digest_scenario,
}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--digest-tree", help="the files of the digest scenario")
    a = p.parse_args()
    for name, run in SCENARIOS.items():
        if not a.scenario or name in a.scenario:
            run(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
