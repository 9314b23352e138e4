"""The cost of `procmap PID --watch --rss`: a sample with the memory figures, and without.

    .venv/bin/python benchmarks/watch_rss.py [--quick] [--runs N]

A sample of a watch reads /proc/PID/maps (Sampler.sample()); with --rss it
also reads smaps_rollup, or statm when that is slow (ResidentWatch.update()),
and now and then the whole smaps (at most once a second and a tenth of the
time).  Measured in-process on samples/pages.py targets (N pages, none
merged, nothing changing), each method once per iteration in rotating order;
medians in ms:

- the kernel's reads alone: maps, smaps_rollup, statm, smaps;
- parse_smaps of the smaps text, and a whole full read as the watch does it
  (read, parse, match to the sampler's mappings, pagemap, attribute);
- a sample without --rss, and with it (sample() + update() with the full
  read not due): the steady per-sample cost and its ratio;
- the share of one CPU the watch keeps busy, sampling every 0.05 s and
  every 0.5 s, without --rss and with it (full reads included).

Nothing is asserted; main() returns everything as a JSON-able dict.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sampler import Target, own_mappings  # noqa: E402  (benchmarks/sampler.py)

SIZES = (200, 2000, 20000)
SCALE = {200: 8, 2000: 4, 20000: 1}  # iterations: `runs` times this
RUNS, QUICK_RUNS = 60, 12
WARMUP = 3
INTERVALS = (0.05, 0.5)


def read(pid: int, name: str) -> bytes:
    """The kernel's read of /proc/PID/<name>: open, read() until EOF, close."""
    fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def measure_size(size: int, base: int, runs: int) -> dict:
    from procmap.kernel.smaps import parse_smaps
    from procmap.live.sampler import Sampler
    from procmap.live.watch import ResidentWatch

    pages = max(2, (size - base) // 2 * 2)
    target = Target(pages)
    pid = target.pid
    try:
        count = target.mappings()
        with Sampler(pid) as sampler:
            rw = ResidentWatch(sampler, INTERVALS[0])
            smaps_text = read(pid, "smaps")
            not_due = 0.5  # watch time before the second full read (due at 1 s or later)

            def with_rss():
                rw.update(not_due, sampler.sample())

            methods = {
                "maps_read": lambda: read(pid, "maps"),
                "rollup_read": lambda: read(pid, "smaps_rollup"),
                "statm_read": lambda: read(pid, "statm"),
                "smaps_read": lambda: read(pid, "smaps"),
                "smaps_parse": lambda: parse_smaps(smaps_text),
                "full_read": lambda: rw._read_regions(not_due),
                "sample": sampler.sample,
                "sample_rss": with_rss,
            }
            # The slow ones (a full read is ~0.3 s at 20,000 mappings) less often.
            every = {"smaps_read": 4, "smaps_parse": 4, "full_read": 4} if size > 2000 else {}
            times: dict[str, list[float]] = {name: [] for name in methods}
            for fn in methods.values():
                for _ in range(WARMUP):
                    fn()
            names = list(methods)
            gc.collect()
            for i in range(runs):
                k = i % len(names)
                for name in names[k:] + names[:k]:
                    if i % every.get(name, 1):
                        continue
                    t = time.perf_counter()
                    methods[name]()
                    times[name].append(time.perf_counter() - t)
            assert rw.statm_reads == 0 or rw.rollup_cost > INTERVALS[0] / 4
    finally:
        target.close()
    ms = {name: median_ms(t) for name, t in times.items()}
    full_s = ms["full_read"] / 1000
    period = max(1.0, 10 * full_s)  # full reads no sooner than this apart
    busy = {}
    for interval in INTERVALS:
        # The share of one CPU the watch keeps busy, sampling every `interval` s.
        without = ms["sample"] / 1000 / interval
        with_rss = ms["sample_rss"] / 1000 / interval + full_s / period
        busy[str(interval)] = {"without": without, "with_rss": with_rss}
    return {
        "size": size,
        "mappings": count,
        "iterations": runs,
        "median_ms": ms,
        "n": {name: len(t) for name, t in times.items()},
        "steady_ratio": ms["sample_rss"] / ms["sample"],
        "full_read_every_s": period,
        "busy": busy,
    }


LABELS = {
    "maps_read": "kernel read of maps",
    "rollup_read": "kernel read of smaps_rollup",
    "statm_read": "kernel read of statm",
    "smaps_read": "kernel read of smaps",
    "smaps_parse": "parse_smaps() of that text",
    "full_read": "full read as --rss does it",
    "sample": "a sample, without --rss",
    "sample_rss": "a sample with --rss (no full read)",
}


def print_size(r: dict) -> None:
    print(f"\n{r['mappings']:,} mappings ({r['iterations']} iterations)")
    for name, label in LABELS.items():
        print(f"  {label:<36} {r['median_ms'][name]:9.3f} ms  (n {r['n'][name]})")
    print(f"  {'with --rss / without, steady':<36} {r['steady_ratio']:9.2f}x")
    print(f"  {'full reads at most every':<36} {r['full_read_every_s']:9.2f} s")
    for interval, share in r["busy"].items():
        label = f"CPU busy at --interval {interval}"
        print(f"  {label:<36} {share['with_rss']:9.1%} with --rss, {share['without']:.1%} without")


def main(runs: int | None = None, quick: bool = False) -> dict:
    if runs is None:
        runs = QUICK_RUNS if quick else RUNS
    started = time.perf_counter()
    base = own_mappings()
    print("the cost of --watch --rss, in-process, medians")
    sizes = []
    for size in SIZES:
        result = measure_size(size, base, runs * SCALE[size])
        print_size(result)
        sizes.append(result)
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.1f} s")
    return {
        "benchmark": "watch_rss",
        "quick": quick,
        "runs": runs,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sizes": sizes,
        "seconds": elapsed,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--runs", type=int, help="iterations at 20,000 mappings")
    args = parser.parse_args()
    main(args.runs, args.quick)
