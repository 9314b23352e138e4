"""procmap's speed, as ratios against floors measured in the same run.

    make bench              # or: .venv/bin/python benchmarks/run.py [--quick]

Targets: processes with about 30 mappings (a lesson sample), 2,000, 20,000 and
60,000 (a helper that maps N pages and alternates their protection, so none
merge; 60,000 is near the kernel's default vm.max_map_count, 65,530).  The
60,000 case is timed over a third of the runs: one procmap --rss takes seconds.
`--only 60000` (or lesson, 2000, 20000) measures one target and nothing else.

Floors:
- `pmap -x PID`: the one-shot goal is procmap PID <= 4x pmap -x.
- the kernel's own read of /proc/PID/maps, timed in-process: the cost of the
  data procmap cannot avoid; procmap's in-process read_map() is compared to it.
- `python -S -c pass` with the venv's interpreter: the fixed cost of starting
  any Python program, which a C tool like pmap does not pay.

`benchmarks/sampler.py` measures one sample of a map as `--watch` takes it
(steady and churning) against the kernel's read, with the baselines, and the
memory of a long watch; `make bench` runs it last.

`procmap explain FILE --json` is measured against `readelf -hlSsW FILE` (GNU
readelf printing the same headers, sections and symbols) on the largest
library present (libLLVM, with ~46,000 dynamic symbols, where installed), on
libc and on a sample; the goal is at most 3x readelf.

Huge maps: `procmap --from FILE` on maps texts of 30,000 and 300,000 separate
mappings (benchmarks/huge_maps.py writes them; no process may hold 300,000),
piped and on a 120x50 terminal (a pseudo-terminal), against `--from FILE
--json` on the same text: the goal is the full view (picture, table, totals,
notes) at most 5x the JSON view.  `--only huge` measures these alone.

`benchmarks/crash.py` measures `procmap run`: its cost to a program of about a
second that does not crash (goal: at most 1.1x the program alone) and the time
from a fatal signal to the verdict (goal: under 300 ms); `--only crash`.

`benchmarks/shared.py` measures `procmap PID --shared --json` against
`procmap PID --json` without CAP_SYS_ADMIN, with forty samples alongside to
share libc with (goal: at most 2x); `--only shared`.

`benchmarks/system.py` measures `procmap system --json` against `smem -t` on
the same machine, with 40 lesson samples running (goal: at most 1.0x smem);
`--only system`.

Nothing here is asserted: the numbers are printed, and written as JSON to
benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PROCMAP = [PYTHON, "-m", "procmap"]

PAGES = str(ROOT / "samples/pages.py")  # N pages that never merge
# The mapping counts measured; the largest is cut to fit under vm.max_map_count.
SIZES = (2000, 20000, 60000)
HUGE = (30_000, 300_000)  # separate mappings in a maps text, shown with --from
# Room left under vm.max_map_count for the interpreter's own mappings (~60).
OWN_MAPPINGS = 500


def fitting(n: int) -> int:
    """n, or the largest count the kernel's limit on mappings per process allows."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
    except OSError:
        return n
    return min(n, limit - OWN_MAPPINGS)


def start_holder(n: int) -> subprocess.Popen:
    p = subprocess.Popen(
        [PYTHON, PAGES, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline() == "ready\n"
    return p


def start_sample() -> subprocess.Popen:
    p = subprocess.Popen(
        [str(ROOT / "samples/bin/lesson-pie")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    while p.stdout.readline().strip() != "ready":
        pass
    return p


def time_command(cmd: list[str], runs: int) -> float:
    """Median wall time of a command, in ms, output discarded."""
    env = dict(os.environ, NO_COLOR="1")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
        )
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def time_on_terminal(cmd: list[str], runs: int, rows: int = 50, cols: int = 120) -> float:
    """Median wall time of a command whose output is a terminal `cols` x `rows`, in ms."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    times = []
    for _ in range(runs):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

        def drain(fd: int = master) -> None:
            try:
                while os.read(fd, 1 << 16):
                    pass
            except OSError:  # EIO: the last writer closed the terminal
                pass

        reader = threading.Thread(target=drain)
        reader.start()
        t = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL, env=env
        )
        os.close(slave)
        proc.wait()
        times.append((time.perf_counter() - t) * 1000)
        reader.join()
        os.close(master)
        assert proc.returncode == 0, cmd
    return statistics.median(times)


def bench_huge(runs: int) -> list[dict]:
    """The full view against the JSON view of the same huge maps text."""
    from huge_maps import huge_maps  # benchmarks/huge_maps.py

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in HUGE:
            path = Path(tmp) / f"huge-{n}.maps"
            path.write_text(huge_maps(n, apart=True))
            n_runs = max(1, runs // 5) if n > 100_000 else runs
            base = [*PROCMAP, "--from", str(path)]
            json_ms = time_command([*base, "--json"], n_runs)
            piped_ms = time_command(base, n_runs)
            tty_ms = time_on_terminal(base, n_runs)
            rows.append(
                {
                    "mappings": n,
                    "json_ms": json_ms,
                    "full_piped_ms": piped_ms,
                    "full_terminal_ms": tty_ms,
                }
            )
            print(f"\n{n:,} separate mappings, from a maps text")
            print(f"  procmap --from FILE --json   {json_ms:8.0f} ms")
            print(
                f"  procmap --from FILE | cat    {piped_ms:8.0f} ms"
                f"  = {piped_ms / json_ms:5.1f}x the JSON view (goal: 5x)"
            )
            print(
                f"  procmap --from FILE, 120x50  {tty_ms:8.0f} ms"
                f"  = {tty_ms / json_ms:5.1f}x the JSON view (goal: 5x)"
            )
    return rows


def time_call(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def kernel_read(pid: int, name: str = "maps") -> None:
    fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


def explain_targets() -> list[Path]:
    libdir = Path("/usr/lib/x86_64-linux-gnu")
    llvm = sorted(libdir.glob("libLLVM-*.so*"), key=lambda p: p.stat().st_size)
    libc = [p for p in (libdir / "libc.so.6", Path("/lib64/libc.so.6")) if p.exists()][:1]
    return [*llvm[-1:], *libc, ROOT / "samples/bin/lesson-pie"]


def bench_explain(runs: int) -> list[dict]:
    rows = []
    print()
    for path in explain_targets():
        readelf_ms = time_command(["readelf", "-hlSsW", str(path)], runs)
        explain_ms = time_command([*PROCMAP, "explain", str(path), "--json"], runs)
        size = path.stat().st_size
        rows.append(
            {
                "file": str(path),
                "bytes": size,
                "readelf_ms": readelf_ms,
                "explain_json_ms": explain_ms,
            }
        )
        print(f"explain {path.name} ({size / 2**20:.1f} MiB)")
        print(f"  readelf -hlSsW               {readelf_ms:8.2f} ms")
        print(
            f"  procmap explain --json       {explain_ms:8.2f} ms"
            f"  = {explain_ms / readelf_ms:5.1f}x readelf (goal: 3x)"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument(
        "--only",
        choices=["lesson", *map(str, SIZES), "huge", "crash", "shared", "system"],
        help="measure this one target, nothing else (no explain, sampler or watch)",
    )
    args = parser.parse_args()
    runs = 5 if args.quick else 15

    sys.path.insert(0, str(ROOT))
    from procmap.live.capture import ElfCache, read_map
    from procmap.views.picture import map_picture

    startup = time_command([PYTHON, "-S", "-c", "pass"], runs)
    print(
        f"floor: python -S -c pass       {startup:8.2f} ms (interpreter start, paid by any Python tool)"
    )
    results = {"python_startup_ms": startup, "targets": []}
    if args.only == "crash":
        import crash  # benchmarks/crash.py: procmap run

        results["crash"] = crash.main(quick=args.quick)
        return
    if args.only == "shared":
        import shared  # benchmarks/shared.py: procmap PID --shared

        results["shared"] = shared.main(quick=args.quick)
        return
    if args.only == "system":
        import system  # benchmarks/system.py: procmap system against smem

        results["system"] = system.main(quick=args.quick)
        out = ROOT / "benchmarks/results"
        out.mkdir(exist_ok=True)
        (out / "only-system.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten to {out / 'only-system.json'}")
        return
    if args.only == "huge":
        results["huge"] = bench_huge(runs)
        out = ROOT / "benchmarks/results"
        out.mkdir(exist_ok=True)
        (out / "only-huge.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten to {out / 'only-huge.json'}")
        return
    targets = [("lesson", "lesson sample", start_sample, runs)] + [
        (
            str(n),
            f"{n:,} mappings",
            lambda n=n: start_holder(fitting(n) // 2 * 2 - 2),
            max(3, runs // 3) if n > 20000 else runs,
        )
        for n in SIZES
    ]
    for key, name, start, target_runs in targets:
        if args.only is not None and key != args.only:
            continue
        holder = start()
        try:
            pid = str(holder.pid)
            count = len(Path(f"/proc/{pid}/maps").read_bytes().splitlines())
            pmap_ms = time_command(["pmap", "-x", pid], target_runs)
            show_ms = time_command([*PROCMAP, pid, "--no-notes"], target_runs)
            json_ms = time_command([*PROCMAP, pid, "--json"], target_runs)
            floor_ms = time_call(lambda: kernel_read(holder.pid), target_runs * 4)
            pmap_big_x_ms = time_command(["pmap", "-X", pid], target_runs)
            rss_ms = time_command([*PROCMAP, pid, "--rss", "--no-notes"], target_runs)
            smaps_ms = time_call(lambda: kernel_read(holder.pid, "smaps"), target_runs * 2)
            rss_api_ms = time_call(lambda: read_map(holder.pid, rss=True), target_runs)
            diagram_ms = time_command([*PROCMAP, pid, "--diagram"], target_runs)
            svg_ms = time_command([*PROCMAP, pid, "--svg", "/tmp/procmap-bench.svg"], target_runs)
            pm = read_map(holder.pid)
            picture_ms = time_call(lambda: map_picture(pm), target_runs)
            cache = ElfCache()
            api_ms = time_call(lambda: read_map(holder.pid), target_runs)
            warm_ms = time_call(lambda: read_map(holder.pid, cache=cache), target_runs)
        finally:
            holder.stdin.close()
            holder.wait()
        row = {
            "target": name,
            "mappings": count,
            "pmap_x_ms": pmap_ms,
            "procmap_ms": show_ms,
            "procmap_json_ms": json_ms,
            "kernel_read_ms": floor_ms,
            "read_map_ms": api_ms,
            "read_map_warm_ms": warm_ms,
            "pmap_X_ms": pmap_big_x_ms,
            "procmap_rss_ms": rss_ms,
            "kernel_smaps_read_ms": smaps_ms,
            "read_map_rss_ms": rss_api_ms,
            "procmap_diagram_ms": diagram_ms,
            "procmap_svg_ms": svg_ms,
            "picture_ms": picture_ms,
        }
        results["targets"].append(row)
        print(f"\n{name} ({count} mappings)")
        print(f"  pmap -x PID                  {pmap_ms:8.2f} ms")
        print(
            f"  procmap PID --no-notes       {show_ms:8.2f} ms  = {show_ms / pmap_ms:5.1f}x pmap -x"
        )
        print(
            f"  procmap PID --json           {json_ms:8.2f} ms  = {json_ms / pmap_ms:5.1f}x pmap -x"
        )
        print(f"  kernel read of maps          {floor_ms:8.2f} ms")
        print(
            f"  read_map() in-process        {api_ms:8.2f} ms  = {api_ms / floor_ms:5.1f}x the kernel read"
        )
        print(
            f"  read_map(), ELF cache warm   {warm_ms:8.2f} ms  = {warm_ms / floor_ms:5.1f}x the kernel read"
        )
        print(
            f"  procmap PID --diagram        {diagram_ms:8.2f} ms  = {diagram_ms / pmap_ms:5.1f}x pmap -x"
        )
        print(
            f"  procmap PID --svg FILE       {svg_ms:8.2f} ms  = {svg_ms / pmap_ms:5.1f}x pmap -x"
        )
        print(
            f"  map_picture(pmap)            {picture_ms:8.2f} ms  = {picture_ms / api_ms:5.2f}x read_map()"
        )
        print(f"  pmap -X PID                  {pmap_big_x_ms:8.2f} ms")
        print(
            f"  procmap PID --rss            {rss_ms:8.2f} ms  = {rss_ms / pmap_big_x_ms:5.1f}x pmap -X"
        )
        print(f"  kernel read of smaps         {smaps_ms:8.2f} ms")
        print(
            f"  read_map(rss=True)           {rss_api_ms:8.2f} ms  = {rss_api_ms / smaps_ms:5.1f}x the kernel read"
        )
    out = ROOT / "benchmarks/results"
    if args.only is not None:
        out.mkdir(exist_ok=True)
        (out / f"only-{args.only}.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten to {out / f'only-{args.only}.json'}")
        return
    results["explain"] = bench_explain(runs)
    results["huge"] = bench_huge(runs)
    print()
    import sampler  # benchmarks/sampler.py: one sample of a map, for --watch

    results["sampler"] = sampler.main(quick=args.quick)
    print()
    import watch_rss  # benchmarks/watch_rss.py: a sample with --rss, and without

    results["watch_rss"] = watch_rss.main(quick=args.quick)
    print()
    import crash  # benchmarks/crash.py: procmap run, crashing and not

    results["crash"] = crash.main(quick=args.quick)
    print()
    import shared  # benchmarks/shared.py: procmap PID --shared, against --json

    results["shared"] = shared.main(quick=args.quick)
    print()
    import system  # benchmarks/system.py: procmap system against smem

    results["system"] = system.main(quick=args.quick)
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out / 'latest.json'}")


if __name__ == "__main__":
    main()
