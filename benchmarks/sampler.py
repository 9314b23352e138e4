"""The cost of one sample of a process's map, as ratios against the kernel's read of it.

    .venv/bin/python benchmarks/sampler.py [--quick] [--runs N]

For `procmap PID --watch`.  Floor: the kernel's own cost of producing
/proc/PID/maps (open, read() until EOF, close, timed in-process, as
kernel_read() in run.py), measured in the same loop as what it is compared to.

Goals, at 2,000 and at 20,000 mappings:
- steady: `Sampler(pid).sample()` with nothing changing in the target,
  <= 1.25x the floor;
- churning: the target's map changes before every sample (one page's
  protection flips, so it merges with its neighbours or splits from them
  again), <= 1.6x the floor measured after the same change.

Baselines, on the same targets: a naive Python split parser,
psutil.Process(pid).memory_maps(grouped=False) (which reads smaps), and
procmaps.from_pid(pid) (PyPI "procmaps", Rust; `pip install -e '.[bench]'`).

Method: a target process per size maps N pages, alternating protection so
none merge (as run.py's holder).  In each loop every method is timed once per
iteration, in an order that rotates, so machine noise hits floor and sampler
alike; medians, with p10 and p90.  Churning: the benchmark asks the target for
a change and waits for its ack (untimed), then times the floor and one sample,
the two in alternating order; every churning sample must report events (an
AssertionError otherwise), and every steady one none.  Garbage collection
stays on, as in procmap itself.

Nothing about speed is asserted: the goals are printed as met or NOT met, and
main() returns everything as a JSON-able dict.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

SIZES = (200, 2000, 20000)  # mappings, about: the target adds its own interpreter's
GOAL_SIZES = (2000, 20000)
STEADY_GOAL = 1.25
CHURN_GOAL = 1.6
# Iterations of each loop are `runs` at 20,000 mappings, more where a sample is cheaper.
SCALE = {200: 8, 2000: 4, 20000: 1}
RUNS, QUICK_RUNS = 250, 40
PSUTIL_RUNS, QUICK_PSUTIL_RUNS = 20, 5  # psutil reads smaps: ~0.4 s a call at 20,000
WARMUP = 5

# The target, samples/pages.py: N pages, none merged; each byte on stdin merges
# the middle page with its neighbours or splits them again, and is answered "k".
PAGES = str(ROOT / "samples/pages.py")


class Target:
    """A process holding `pages` pages that merge or split one page on request."""

    def __init__(self, pages: int):
        self.pages = pages
        self.proc = subprocess.Popen(
            [PYTHON, PAGES, str(pages)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.pid = self.proc.pid
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        ready = b""
        while not ready.endswith(b"\n"):
            got = os.read(self._out, 64)
            if not got:
                raise RuntimeError(f"the target with {pages} pages exited before it was ready")
            ready += got
        assert ready == b"ready\n", ready

    def change(self) -> None:
        """Merge the middle page with its neighbours, or split it off again; wait for it."""
        os.write(self._in, b"x")
        if os.read(self._out, 1) != b"k":
            raise RuntimeError(f"target {self.pid} did not acknowledge a change")

    def mappings(self) -> int:
        with open(f"/proc/{self.pid}/maps", "rb") as f:
            return f.read().count(b"\n")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()


# --- what is timed ------------------------------------------------------------------------


def kernel_read(pid: int) -> None:
    """The floor: exactly run.py's kernel_read()."""
    fd = os.open(f"/proc/{pid}/maps", os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


def naive_parse(pid: int) -> list[tuple]:
    """What people write: read the file, split each line, int(..., 16) the addresses."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f.read().splitlines():
            fields = line.split()
            start, end = fields[0].split("-")
            out.append(
                (
                    int(start, 16),
                    int(end, 16),
                    fields[1],
                    int(fields[2], 16),
                    fields[3],
                    int(fields[4]),
                    fields[5] if len(fields) > 5 else None,
                )
            )
    return out


def psutil_maps(pid: int):
    import psutil

    return psutil.Process(pid).memory_maps(grouped=False)


def procmaps_info() -> dict:
    """Whether the procmaps package can be used, its version, or why not."""
    try:
        import procmaps  # noqa: F401
    except ImportError as err:
        return {
            "available": False,
            "reason": f"procmaps is not installed ({err}); pip install procmaps, "
            "or pip install -e '.[bench]'",
        }
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("procmaps")
    except PackageNotFoundError:
        v = None
    return {"available": True, "version": v}


def procmaps_maps(pid: int):
    import procmaps

    return procmaps.from_pid(pid)


# --- statistics -----------------------------------------------------------------------------


def summary(times_s: list[float]) -> dict:
    ms = [t * 1000 for t in times_s]
    if len(ms) >= 2:
        q = statistics.quantiles(ms, n=10)
        p10, p90 = q[0], q[-1]
    else:
        p10 = p90 = ms[0]
    return {"median_ms": statistics.median(ms), "p10_ms": p10, "p90_ms": p90, "n": len(ms)}


def paired_ratio(times: list[float], floors: list[float]) -> float:
    """Median of per-iteration ratios: each sample against the floor timed next to it."""
    return statistics.median(t / f for t, f in zip(times, floors))


def timed(fn: Callable, *args):
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


# --- the loops ------------------------------------------------------------------------------


def steady_loop(target: Target, sampler, runs: int, psutil_runs: int, use_procmaps: bool):
    """Every method once per iteration, in rotating order; nothing changes in the target."""
    pid = target.pid
    methods: list[tuple[str, Callable, tuple]] = [
        ("floor_steady", kernel_read, (pid,)),
        ("sampler_steady", sampler.sample, ()),
        ("naive_split", naive_parse, (pid,)),
    ]
    if use_procmaps:
        methods.append(("procmaps", procmaps_maps, (pid,)))
    times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    times["psutil_smaps"] = []
    psutil_every = max(1, runs // max(psutil_runs, 1))
    for _, fn, args in methods:
        for _ in range(WARMUP):
            fn(*args)
    psutil_maps(pid)
    changed = 0
    gc.collect()
    for i in range(runs):
        k = i % len(methods)
        for name, fn, args in methods[k:] + methods[:k]:
            dt, result = timed(fn, *args)
            times[name].append(dt)
            if name == "sampler_steady" and result:
                changed += 1
        if i % psutil_every == 0 and len(times["psutil_smaps"]) < psutil_runs:
            times["psutil_smaps"].append(timed(psutil_maps, pid)[0])
    assert changed == 0, (
        f"{changed} of {runs} steady samples of PID {pid} reported changes: "
        "the target was not steady, so this did not measure the steady path"
    )
    return times


def churn_loop(target: Target, sampler, runs: int):
    """Change, wait for the ack (untimed), then time the floor and one sample, alternating."""
    pid = target.pid
    floors: list[float] = []
    samples: list[float] = []
    first: list[bool] = []  # whether the sample was timed before its floor
    events: Counter[str] = Counter()
    for _ in range(WARMUP):
        target.change()
        assert sampler.sample(), "a change the sampler did not see (warm-up)"
    gc.collect()
    for i in range(runs):
        target.change()
        if i % 2:
            floors.append(timed(kernel_read, pid)[0])
            dt, change = timed(sampler.sample)
        else:
            dt, change = timed(sampler.sample)
            floors.append(timed(kernel_read, pid)[0])
        samples.append(dt)
        first.append(not i % 2)
        assert change, (
            f"churning sample {i} of PID {pid} reported no events: the target's change "
            "was not seen, so this did not measure the churning path"
        )
        events.update(e.event for e in change.events)
    return floors, samples, first, events


def by_order(times: list[float], first: list[bool]) -> dict:
    """Medians of the timings taken first and second of their pair (a check on order effects)."""
    return {
        "median_ms_timed_first": statistics.median(t for t, f in zip(times, first) if f) * 1000,
        "median_ms_timed_second": statistics.median(t for t, f in zip(times, first) if not f)
        * 1000,
    }


# --- the run ------------------------------------------------------------------------------

LABELS = {
    "floor_steady": "floor: kernel read of maps",
    "sampler_steady": "Sampler.sample(), steady",
    "naive_split": "naive split parser",
    "psutil_smaps": "psutil memory_maps(grouped=False)",
    "procmaps": "procmaps.from_pid()",
    "floor_churn": "floor: kernel read, after a change",
    "sampler_churn": "Sampler.sample(), churning",
}


def own_mappings() -> int:
    """Mappings of a target with 2 pages, less those 2: its interpreter's own."""
    target = Target(2)
    try:
        return target.mappings() - 2
    finally:
        target.close()


def measure_size(size: int, base: int, runs: int, psutil_runs: int, pm: dict) -> dict:
    from procmap.live.sampler import Sampler

    pages = max(2, (size - base) // 2 * 2)
    target = Target(pages)
    try:
        count = target.mappings()
        t = time.perf_counter()
        sampler = Sampler(target.pid)
        init_ms = (time.perf_counter() - t) * 1000
        try:
            steady = steady_loop(target, sampler, runs, psutil_runs, pm["available"])
            floor_churn, sampler_churn, first, events = churn_loop(target, sampler, runs)
        finally:
            sampler.close()
    finally:
        target.close()
    times = dict(steady, floor_churn=floor_churn, sampler_churn=sampler_churn)
    floors = {"floor_steady": steady["floor_steady"], "floor_churn": floor_churn}
    rows = []
    for method in LABELS:
        if method == "procmaps" and not pm["available"]:
            rows.append(
                {
                    "method": method,
                    "label": LABELS[method],
                    "available": False,
                    "reason": pm["reason"],
                }
            )
            continue
        floor = "floor_churn" if method.endswith("_churn") else "floor_steady"
        row = {"method": method, "label": LABELS[method], **summary(times[method])}
        row["floor"] = floor
        row["ratio"] = row["median_ms"] / statistics.median(floors[floor]) / 1000
        if method == "sampler_churn":
            row.update(by_order(sampler_churn, first))
        elif method == "floor_churn":
            row.update(by_order(floor_churn, [not f for f in first]))
        if method in ("sampler_steady", "sampler_churn"):
            row["paired_ratio"] = paired_ratio(times[method], floors[floor])
            if size in GOAL_SIZES:
                row["goal"] = STEADY_GOAL if method == "sampler_steady" else CHURN_GOAL
                row["met"] = row["ratio"] <= row["goal"]
        rows.append(row)
    return {
        "size": size,
        "mappings": count,
        "pages": pages,
        "iterations": runs,
        "sampler_init_ms": init_ms,
        "churn_events": dict(events),
        "rows": rows,
    }


def print_size(result: dict) -> None:
    print(
        f"\n{result['mappings']:,} mappings (target ~{result['size']:,}; "
        f"{result['iterations']} iterations, Sampler() took {result['sampler_init_ms']:.1f} ms; "
        f"churn events seen: {', '.join(f'{k} {v}' for k, v in sorted(result['churn_events'].items()))})"
    )
    for row in result["rows"]:
        if not row.get("available", True):
            print(f"  {row['label']:<36} unavailable: {row['reason']}")
            continue
        goal = ""
        if "goal" in row:
            goal = f"goal <= {row['goal']}x: {'met' if row['met'] else 'NOT met'}"
        line = (
            f"  {row['label']:<36} {row['median_ms']:9.3f} {row['p10_ms']:9.3f} "
            f"{row['p90_ms']:9.3f} {row['n']:6d} {row['ratio']:7.2f}x  {goal}"
        )
        print(line.rstrip())


# Runs a command with its stdout to the file descriptor in PEAK_RSS_OUT; prints its peak RSS.
_PEAK_RSS = r"""
import os, subprocess, sys
out = int(os.environ["PEAK_RSS_OUT"])
proc = subprocess.Popen(sys.argv[1:], stdout=out)
_, status, usage = os.wait4(proc.pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
print(usage.ru_maxrss)
"""


def measure_memory(counts=(2000, 20000)) -> dict:
    """Peak RSS of the whole `procmap PID --watch --json --interval 0 --count N` command.

    The goal: 20,000 samples of a churning process peak at most 1.3x the memory
    of 2,000 (the history is kept in ring buffers).
    """
    churner = subprocess.Popen(
        [sys.executable, PAGES, "64", "--churn"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    rows = []
    try:
        assert churner.stdout.readline() == b"ready\n"
        for count in counts:
            cmd = [sys.executable, "-m", "procmap", str(churner.pid), "--watch", "--json"]
            cmd += ["--interval", "0", "--count", str(count)]
            with tempfile.TemporaryFile() as out:
                started = time.perf_counter()
                # Started from a small Python, not from this one: a child's peak RSS
                # counts the memory of the process it was forked from (kept across exec).
                runner = subprocess.run(
                    [sys.executable, "-c", _PEAK_RSS, *cmd],
                    stdout=subprocess.PIPE,
                    stderr=out,
                    cwd=ROOT,
                    check=True,
                    env=dict(os.environ, PEAK_RSS_OUT=str(out.fileno())),
                    pass_fds=(out.fileno(),),
                )
                seconds = time.perf_counter() - started
                maxrss = int(runner.stdout)
                out.seek(0)
                changes = sum(1 for line in out if line.startswith(b'{"type":"change"'))
            rows.append(
                {
                    "samples": count,
                    "changes": changes,
                    "peak_rss_kib": maxrss,
                    "seconds": seconds,
                }
            )
    finally:
        churner.kill()
        churner.wait()
    ratio = rows[-1]["peak_rss_kib"] / rows[0]["peak_rss_kib"]
    print("\nmemory of procmap PID --watch --json --interval 0 --count N, a churning target")
    for row in rows:
        print(
            f"  {row['samples']:>6,} samples  peak RSS {row['peak_rss_kib'] / 1024:6.1f} MiB"
            f"  ({row['changes']:,} samples saw a change, {row['seconds']:.1f} s)"
        )
    met = ratio <= 1.3
    print(
        f"  {counts[-1]:,} against {counts[0]:,}: {ratio:.3f}x  goal <= 1.3x: {'met' if met else 'NOT met'}"
    )
    return {"rows": rows, "ratio": ratio, "goal": 1.3, "met": met}


def main(runs: int | None = None, quick: bool = False) -> dict:
    """Run the benchmark, print its table, return the results (JSON-able).

    runs: iterations of each loop at 20,000 mappings (x4 at 2,000, x8 at 200);
    by default 250, or 40 with quick.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if runs is None:
        runs = QUICK_RUNS if quick else RUNS
    psutil_runs = QUICK_PSUTIL_RUNS if quick else PSUTIL_RUNS
    pm = procmaps_info()
    started = time.perf_counter()
    base = own_mappings()
    print(
        "one sample of /proc/PID/maps, in-process: median, p10, p90 in ms, n timings, "
        "and the ratio of medians to the floor timed in the same loop"
    )
    print(f"  {'':<36} {'median':>9} {'p10':>9} {'p90':>9} {'n':>6} {'x floor':>8}")
    sizes = []
    for size in SIZES:
        result = measure_size(size, base, runs * SCALE[size], psutil_runs, pm)
        print_size(result)
        sizes.append(result)
    goals = []
    for result in sizes:
        for row in result["rows"]:
            if "goal" in row:
                kind = "steady" if row["method"] == "sampler_steady" else "churning"
                goals.append(
                    {
                        "goal": f"{kind} <= {row['goal']}x at {result['size']:,} mappings",
                        "mappings": result["mappings"],
                        "ratio": row["ratio"],
                        "paired_ratio": row["paired_ratio"],
                        "met": row["met"],
                    }
                )
    memory = measure_memory((200, 2000) if quick else (2000, 20000))
    elapsed = time.perf_counter() - started
    print()
    for g in goals:
        print(
            f"  {g['goal']:<36} {g['ratio']:6.3f}x  {'met' if g['met'] else 'NOT met'}"
            f"  (median of paired ratios {g['paired_ratio']:.3f}x)"
        )
    print(f"\n{elapsed:.1f} s")
    return {
        "benchmark": "sampler",
        "quick": quick,
        "runs": runs,
        "psutil_runs": psutil_runs,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "gc_enabled": gc.isenabled(),
        "target_own_mappings": base,
        "procmaps": pm,
        "sizes": sizes,
        "goals": goals,
        "memory": memory,
        "all_goals_met": all(g["met"] for g in goals) and memory["met"],
        "seconds": elapsed,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (~20 s at most)")
    parser.add_argument("--runs", type=int, help="iterations of each loop at 20,000 mappings")
    args = parser.parse_args()
    main(args.runs, args.quick)
