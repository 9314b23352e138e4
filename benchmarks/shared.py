"""`procmap PID --shared`: what naming the sharers costs over the plain JSON map.

Goal (issue 19): `procmap PID --shared --json` at most 2x `procmap PID --json`,
unprivileged: without CAP_SYS_ADMIN pagemap has no frame numbers, and sharers
come from every process's maps plus the exclusive bit.  As root (frames
compared, every sharer's pagemap read) it is measured too, for the record.

Forty lesson samples run alongside, so that libc and the dynamic linker have
forty sharers each, and the targets are:
- samples/bin/share (a parent and child that share in every way);
- a lesson sample;
- a process of 2,000 mappings (samples/pages.py): the copy-on-write index.

"Unprivileged" is root without CAP_SYS_ADMIN in its bounding set
(`setpriv --bounding-set -sys_admin`): the same processes are readable, but
pagemap's frame numbers are not.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from crash import wall  # benchmarks/crash.py: the median wall time of a command

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "samples/bin"
PROCMAP = [sys.executable, "-m", "procmap"]
UNPRIVILEGED = ["setpriv", "--bounding-set", "-sys_admin"]
NEIGHBOURS = 40


def _start(cmd: list[str], ready: str) -> subprocess.Popen:
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    while True:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"{cmd[0]} ended before {ready!r}")
        if line.startswith(ready):
            return p


def main(quick: bool = False) -> dict:
    runs = 5 if quick else 11
    results: dict = {"neighbours": NEIGHBOURS, "targets": []}
    if shutil.which("setpriv") is None:
        print("--shared: setpriv (util-linux) is missing: not measured")
        return results
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(NEIGHBOURS):
            started.append(_start([str(BIN / "lesson-pie")], "ready"))
        directory = stack.enter_context(tempfile.TemporaryDirectory())
        share = _start([str(BIN / "share"), f"{directory}/file"], "ready")
        pages = _start([sys.executable, str(ROOT / "samples/pages.py"), "1998"], "")
        started += [share, pages]

        def stop():
            for p in started:
                p.stdin.close()
                p.wait()

        stack.callback(stop)
        targets = [
            ("share (parent)", share.pid),
            ("lesson sample", started[0].pid),
            ("2,000 mappings", pages.pid),
        ]
        print(f"procmap PID --shared, with {NEIGHBOURS} lesson samples running alongside")
        for name, pid in targets:
            count = len(Path(f"/proc/{pid}/maps").read_bytes().splitlines())
            plain = wall([*UNPRIVILEGED, *PROCMAP, str(pid), "--json"], runs)
            shared = wall([*UNPRIVILEGED, *PROCMAP, str(pid), "--shared", "--json"], runs)
            frames = wall([*PROCMAP, str(pid), "--shared", "--json"], runs)
            row = {
                "target": name,
                "mappings": count,
                "json_ms": plain,
                "shared_json_ms": shared,
                "shared_json_frames_ms": frames,
                "ratio": shared / plain,
            }
            results["targets"].append(row)
            print(f"\n{name} ({count} mappings), without CAP_SYS_ADMIN")
            print(f"  procmap PID --json             {plain:8.2f} ms")
            print(
                f"  procmap PID --shared --json    {shared:8.2f} ms  = {shared / plain:5.2f}x "
                "(goal: at most 2x)"
            )
            print(f"  the same as root (frames)      {frames:8.2f} ms  = {frames / plain:5.2f}x")
    return results


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
