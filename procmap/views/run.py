"""`explain --run`: start a program under ptrace, stop it, read its real map, tie it back.

The program stops right after exec, before the dynamic linker has run (`--stop-at
entry`, after which it is killed), or at the start of its exit, when everything
it mapped is still mapped (`--stop-at exit`, after which it finishes exiting).
Either way it is never left stopped or traced (kernel/ptrace.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

from ..elf import align_down, align_up
from ..errors import BadFile
from ..kernel.ptrace import reap, run_to_exit, spawn_traced
from ..live.capture import read_map
from ..model import JSONDict, ProcessMap, Region, hex_address
from .explain import Explanation


class Landing(NamedTuple):
    """Where one PT_LOAD of the plan landed in the live process."""

    number: int  # the program header's index
    plan_start: int
    plan_end: int
    start: int
    end: int
    kinds: tuple[str, ...]  # kinds in the plan
    live_kinds: tuple[str, ...]  # kinds procmap finds in the live map

    def to_dict(self) -> JSONDict:
        return {
            "segment": self.number,
            "plan_start": hex_address(self.plan_start),
            "plan_end": hex_address(self.plan_end),
            "start": hex_address(self.start),
            "end": hex_address(self.end),
            "kinds": list(self.kinds),
            "live_kinds": list(self.live_kinds),
        }


class RunResult(NamedTuple):
    argv: list[str]
    pid: int
    stop_at: str
    map: ProcessMap
    exit_status: int | None  # exit code, or -N for signal N
    bias: int | None  # None if the file was not found loaded
    landings: list[Landing]
    differences: list[str]  # plan vs live, in words

    def to_dict(self) -> JSONDict:
        return {
            "argv": self.argv,
            "pid": self.pid,
            "stop_at": self.stop_at,
            "exit_status": self.exit_status,
            "bias": None if self.bias is None else hex_address(self.bias),
            "landings": [x.to_dict() for x in self.landings],
            "differences": self.differences,
            "map": self.map.to_dict(),
        }


def run_and_stop(path: str, args: list[str], exp: Explanation, stop_at: str = "exit") -> RunResult:
    """Run `path` with `args`, stop it at `stop_at` ("exit" or "entry"), and read its map."""
    if stop_at not in ("exit", "entry"):
        raise ValueError(stop_at)
    if not os.access(path, os.X_OK):
        raise BadFile(f"{path}: not executable (no execute permission for this user)")
    argv = [path, *args]
    pid = spawn_traced(path, argv)
    try:
        status = None if stop_at == "entry" else run_to_exit(pid)
        pmap = read_map(pid)
    except BaseException:  # an error, or a second Ctrl-C: the program goes too
        reap(pid, kill=True)
        raise
    # At entry the program has run none of its own code: killed, not let go, since
    # running it now would put its output and side effects after a map that no
    # longer holds.  At exit it is let go to finish exiting.
    reap(pid, kill=stop_at == "entry")
    bias, landings, differences = tie_back(exp, pmap)
    return RunResult(argv, pid, stop_at, pmap, status, bias, landings, differences)


# --- plan against reality --------------------------------------------------------------


def tie_back(exp: Explanation, pmap: ProcessMap) -> tuple[int | None, list[Landing], list[str]]:
    """Where each PT_LOAD of the plan landed, and how the live regions differ from it."""
    image = next((im for im in pmap.images if im.layout == exp.layout), None)
    if image is None or exp.loader is None:
        return None, [], ["the file is not loaded in the process (it ran another program?)"]
    bias, page = image.bias, exp.page_size
    live = [r for r in pmap.regions if image.start <= r.start < image.end]
    landings = []
    for plan in exp.loads:
        seg = plan.segment
        lo, hi = align_down(seg.vaddr, page), align_up(seg.vaddr + seg.memsz, page)
        live_kinds = _kinds(r for r in live if r.start < hi + bias and r.end > lo + bias)
        landings.append(Landing(plan.number, lo, hi, lo + bias, hi + bias, plan.kinds, live_kinds))
    differences = []
    for r in exp.regions:
        now = [x for x in live if x.start < r.end + bias and x.end > r.start + bias]
        for x in now:
            if (x.kind, x.detail) != (r.kind, r.detail) or x.perms[:3] != r.perms[:3]:
                differences.append(
                    f"0x{x.start:x}-0x{x.end:x}: planned {r.perms[:3]} {r.kind} "
                    f"({r.description}), live {x.perms[:3]} {x.kind} ({x.description})"
                )
        if not now:
            differences.append(f"planned 0x{r.start:x}-0x{r.end:x} ({r.kind}) is not mapped")
    return bias, landings, differences


def _kinds(regions: Iterable[Region]) -> tuple[str, ...]:
    out: list[str] = []
    for r in regions:
        if r.kind not in out:
            out.append(r.kind)
    return tuple(out)
