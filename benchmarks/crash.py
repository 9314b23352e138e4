"""`procmap run`: what tracing costs a program that does not crash, and how fast a crash is told.

Goals (issue 18): `procmap run` on a CPU-bound program of about a second costs
at most 1.1x the program alone; from the fatal stop to the verdict, under
300 ms on a lesson sample.

- the program alone: `samples/bin/crash spin S`, S chosen to take about 1 s;
- `procmap run -o FILE crash spin S`: the whole command, Python's start-up
  and procmap's imports included;
- traced alone, in-process (spawn_traced + trace_to_end): what ptrace costs
  the program, without procmap's start-up;
- fault to report, in-process: from the signal-delivery stop to the verdict
  (map read, symbols, decoding, stack scan), on each crash of a few modes;
- `procmap run crash MODE`, whole, against `python -S -c pass`.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRASH = str(ROOT / "samples/bin/crash")
PROCMAP = [sys.executable, "-m", "procmap"]


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


@contextlib.contextmanager
def _quiet():
    """Standard output and error on /dev/null, for the children procmap starts in-process."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(devnull)


def main(quick: bool = False) -> dict:
    sys.path.insert(0, str(ROOT))
    from procmap.arch import host_arch
    from procmap.kernel.ptrace import spawn_traced, trace_to_end
    from procmap.views.crash import run_program

    runs = 3 if quick else 7
    # About a second of arithmetic on this machine.
    probe = wall([CRASH, "spin", "0.5"], 3) / 1000
    seconds = f"{0.5 / max(probe, 0.01):.2f}"
    alone = wall([CRASH, "spin", seconds], runs)
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.txt")
        whole = wall([*PROCMAP, "run", "-o", report, CRASH, "spin", seconds], runs)
    arch = host_arch()
    assert arch is not None
    traced = []
    with _quiet():  # the program's own output
        for _ in range(runs):
            t = time.perf_counter()
            pid = spawn_traced(CRASH, [CRASH, "spin", seconds], threads=True)
            trace_to_end(pid, lambda stop: None, arch.regs_size)
            traced.append(time.perf_counter() - t)
    traced_ms = statistics.median(traced) * 1000
    print(f"procmap run, no crash (crash spin {seconds}):")
    print(f"  the program alone            {alone:8.1f} ms")
    print(f"  traced (in-process)          {traced_ms:8.1f} ms  = {traced_ms / alone:5.3f}x alone")
    print(f"  procmap run -o FILE          {whole:8.1f} ms  = {whole / alone:5.3f}x alone")

    startup = wall([sys.executable, "-S", "-c", "pass"], runs)
    report_ms = {}
    with _quiet():  # the sample's "addr ..." line, glibc's "double free" message
        for mode in ("null-read", "write-rodata", "double-free", "thread-stack-overflow"):
            times = []
            for _ in range(runs):
                r = run_program(CRASH, [mode])
                assert r.fault is not None and r.report_seconds is not None
                times.append(r.report_seconds)
            report_ms[mode] = statistics.median(times) * 1000
    whole_crash = wall([*PROCMAP, "run", "--no-picture", CRASH, "write-rodata"], runs)
    print("procmap run, a crash (fault to report, in-process):")
    for mode, ms in report_ms.items():
        print(f"  {mode:<28} {ms:8.1f} ms")
    print(f"  python -S -c pass            {startup:8.1f} ms")
    print(
        f"  procmap run crash write-rodata {whole_crash:6.1f} ms  = {whole_crash / startup:5.1f}x "
        "Python's start-up"
    )
    return {
        "spin_seconds": float(seconds),
        "alone_ms": alone,
        "traced_ms": traced_ms,
        "procmap_run_ms": whole,
        "traced_ratio": traced_ms / alone,
        "run_ratio": whole / alone,
        "fault_to_report_ms": report_ms,
        "python_startup_ms": startup,
        "run_crash_ms": whole_crash,
    }


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
