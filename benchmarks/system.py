"""`procmap system --json` against `smem -t`, on the same machine, in one run.

Goal (issue 19): at most 1.0x smem's time, while giving more: the split by
kind and the shared objects (smem -t gives each process's USS, PSS and RSS,
and their totals).  Both read every process's smaps; both are Python.

40 lesson samples are started first, so that there is something to read
whatever else runs; then 160, to see what each more process costs each tool
(the difference, divided by the 120 more processes).  The two commands are timed alternately (so that a burst
of load elsewhere falls on both), median of N runs each, output to
/dev/null, with a warm-up run of each first (the page cache, and Python's
compiled bytecode: PYTHONDONTWRITEBYTECODE is removed from procmap's
environment, as an installed package has its .pyc files).  Also measured:
the floors (`python -S -c pass`, the interpreter alone; the kernel's reads of
every smaps and smaps_rollup, in-process) and procmap's read in-process
(read_system(), without the interpreter's start and the imports).

    .venv/bin/python benchmarks/run.py --only system
    .venv/bin/python benchmarks/system.py [--quick] [--samples N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "samples/bin/lesson-pie")
# The installed command, as people run it (python -m procmap adds runpy's ~3 ms).
_SCRIPT = Path(sys.executable).parent / "procmap"
PROCMAP = [str(_SCRIPT) if _SCRIPT.exists() else sys.executable]
PROCMAP += ([] if _SCRIPT.exists() else ["-m", "procmap"]) + ["system", "--json"]
SMEM = ["smem", "-t"]


def start_samples(n: int) -> list[subprocess.Popen]:
    samples = [
        subprocess.Popen([SAMPLE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    for p in samples:
        while p.stdout.readline().strip() != "ready":
            pass
    return samples


def stop_samples(samples: list[subprocess.Popen]) -> None:
    for p in samples:
        p.stdin.close()
    for p in samples:
        p.wait()


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_once(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), check=True
    )
    return (time.perf_counter() - t) * 1000


def time_alternately(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """The median time of each command, in ms, the commands run in turn."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():
        time_once(cmd)  # warm-up: the page cache, the .pyc files
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(time_once(cmd))
    return {name: statistics.median(t) for name, t in times.items()}


def kernel_reads() -> float:
    """The kernel's cost of every process's smaps and smaps_rollup, read in-process, in ms."""
    t = time.perf_counter()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for name in ("smaps", "smaps_rollup"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    f.read()
            except OSError:
                pass
    return (time.perf_counter() - t) * 1000


def measure(samples: int, runs: int) -> dict:
    from procmap.views.system import read_system

    started = start_samples(samples)
    try:
        processes = len(read_system().processes)
        medians = time_alternately({"procmap": PROCMAP, "smem": SMEM}, runs)
        floor = statistics.median(kernel_reads() for _ in range(runs))
        in_process = []
        for _ in range(runs):
            t = time.perf_counter()
            read_system()
            in_process.append((time.perf_counter() - t) * 1000)
    finally:
        stop_samples(started)
    return {
        "samples": samples,
        "processes": processes,
        "kernel_smaps_ms": floor,
        "smem_ms": medians["smem"],
        "procmap_system_json_ms": medians["procmap"],
        "ratio": medians["procmap"] / medians["smem"],
        "read_system_ms": statistics.median(in_process),
    }


def main(quick: bool = False, samples: int = 40, more: int = 160) -> dict:
    sys.path.insert(0, str(ROOT))
    if shutil.which("smem") is None:
        print("system: smem is not installed (apt-get install smem): not measured")
        return {"skipped": "smem is not installed"}
    runs = 5 if quick else 15
    startup = statistics.median(
        time_once([sys.executable, "-S", "-c", "pass"]) for _ in range(runs)
    )
    imports = statistics.median(
        time_once([sys.executable, "-c", "import procmap.cli, procmap.views.system"])
        for _ in range(runs)
    )
    rows = [measure(n, runs) for n in (samples, more)]
    print(f"procmap system against smem -t ({' '.join(PROCMAP)})")
    print(f"  python -S -c pass                      {startup:8.1f} ms (the interpreter alone)")
    print(f"  python -c 'import procmap.cli, ...'    {imports:8.1f} ms (start-up: click, procmap)")
    for row in rows:
        print(f"  {row['processes']} processes ({row['samples']} lesson samples)")
        print(f"    kernel: every smaps + rollup         {row['kernel_smaps_ms']:8.1f} ms")
        print(f"    smem -t                              {row['smem_ms']:8.1f} ms")
        print(
            f"    procmap system --json                {row['procmap_system_json_ms']:8.1f} ms"
            f"  = {row['ratio']:4.2f}x smem -t (goal: 1.0x)"
        )
        print(f"    read_system() in-process             {row['read_system_ms']:8.1f} ms")
    few, many = rows
    extra = many["processes"] - few["processes"]
    each = {}
    if extra > 0:
        for key, tool in (("smem_ms", "smem"), ("procmap_system_json_ms", "procmap")):
            each[tool] = (many[key] - few[key]) / extra
        print(f"  each more process: smem {each['smem']:.2f} ms, procmap {each['procmap']:.2f} ms")
    return {
        "command": PROCMAP,
        "python_startup_ms": startup,
        "procmap_imports_ms": imports,
        "rows": rows,
        "per_process_ms": each,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--samples", type=int, default=40, help="lesson samples to start")
    parser.add_argument("--more", type=int, default=160, help="then this many")
    args = parser.parse_args()
    main(quick=args.quick, samples=args.samples, more=args.more)
