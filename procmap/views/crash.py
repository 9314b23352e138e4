"""`procmap run PROG`: run a program traced, and if a signal kills it, say why.

The program runs with its standard streams untouched, stopped by ptrace only
when a signal is about to be delivered (kernel/ptrace.py `trace_to_end`).  When
that signal will kill it, everything is read while the faulting thread is
stopped and the process whole: siginfo, the thread's registers, the classified
map, the instruction at the program counter, the stack; classify/fault.py gives
the verdict.  Then the signal is delivered and the program dies as it would
have; procmap's exit status is the one a shell would show for it.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ..arch import Arch, host_arch
from ..errors import BadFile, ProcmapError, RunFailed
from ..kernel.ptrace import FatalStop, spawn_traced, trace_to_end
from ..kernel.signals import Siginfo, parse_siginfo, signal_name

# The classifier, the ELF reader and the decoder are imported at the first fatal
# stop: a program that does not crash pays only for the tracer (benchmarks/crash.py).
if TYPE_CHECKING:
    from ..classify.fault import Fault
    from ..kernel.procfs import ProcessDir
    from ..model import ProcessMap, Region


class RunReport(NamedTuple):
    argv: list[str]
    pid: int
    wait_status: int
    fault: Fault | None  # a crash: a signal whose default action dumps core
    map: ProcessMap | None  # the map at the fault
    killed_by: Siginfo | None  # any signal that ended it (a crash's too)
    warnings: list[str]
    report_seconds: float | None  # from the fatal stop to the verdict

    @property
    def exit_code(self) -> int:
        """What a shell shows: the program's code, or 128 + the signal that killed it."""
        if os.WIFSIGNALED(self.wait_status):
            return 128 + os.WTERMSIG(self.wait_status)
        return os.WEXITSTATUS(self.wait_status)

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.wait_status) if os.WIFSIGNALED(self.wait_status) else None

    def summary(self) -> str:
        """One line: how the program ended."""
        name = os.path.basename(self.argv[0])
        if self.signal is None:
            return f"{name} (PID {self.pid}) exited with status {self.exit_code}"
        how = f"{name} (PID {self.pid}) was killed by {signal_name(self.signal)}"
        info = self.killed_by
        if info is not None and info.sent and info.pid:
            by = "itself" if info.pid == self.pid else f"PID {info.pid}"
            how += f", sent by {by} ({info.code_name})"
        return f"{how}; exit status {self.exit_code}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "pid": self.pid,
            "exit_status": self.exit_code,
            "exit_code": None if self.signal is not None else self.exit_code,
            "signal": None if self.signal is None else signal_name(self.signal),
            "summary": self.summary(),
            "fault": self.fault.to_dict() if self.fault else None,
            "map": self.map.to_dict() if self.map else None,
            "warnings": self.warnings,
        }


def find_program(prog: str) -> str:
    """PROG as a shell finds it: a path if it has a slash, else searched in $PATH."""
    path = prog if "/" in prog else shutil.which(prog)
    if path is None:
        raise BadFile(f"{prog}: no such program in $PATH")
    if not os.path.exists(path):
        raise BadFile(f"{prog}: no such file")
    if os.path.isdir(path):
        raise BadFile(f"{prog}: a directory, not a program")
    if not os.access(path, os.X_OK):
        raise BadFile(f"{prog}: not executable (no execute permission for this user)")
    return path


def run_program(prog: str, args: list[str]) -> RunReport:
    """Run `prog` with `args` to its end; explain the signal that kills it, if one does."""
    arch = host_arch()
    if arch is None:
        raise RunFailed(f"procmap run does not know this machine ({os.uname().machine}) yet")
    path = find_program(prog)
    argv = [prog, *args]
    pid = spawn_traced(path, argv, threads=True)
    found: list[tuple[Fault | None, ProcessMap | None, Siginfo, float]] = []
    warnings: list[str] = []

    def on_fatal(stop: FatalStop) -> None:
        started = time.perf_counter()
        info = parse_siginfo(stop.siginfo, arch.pointer_size)
        fault = pmap = None
        if stop.action == "core":
            try:
                fault, pmap = _explain_stop(arch, stop, info)
            except ProcmapError as err:  # it died under us: say so, let it go
                warnings.append(f"the fault could not be explained: {err}")
        found.append((fault, pmap, info, time.perf_counter() - started))

    status = trace_to_end(pid, on_fatal, arch.regs_size)
    if not found or not os.WIFSIGNALED(status):
        return RunReport(argv, pid, status, None, None, None, warnings, None)
    # The last fatal stop is the one that killed it: an earlier one may have been
    # overtaken (two threads faulting at once).
    killer = os.WTERMSIG(status)
    fault, pmap, info, seconds = next(
        (x for x in reversed(found) if x[2].signo == killer), (None, None, None, None)
    )
    return RunReport(argv, pid, status, fault, pmap, info, warnings, seconds)


def _explain_stop(arch: Arch, stop: FatalStop, info: Siginfo) -> tuple[Fault, ProcessMap]:
    from ..classify.fault import FaultInput, analyze
    from ..kernel.procfs import ProcFS, mmap_min_addr
    from ..live.capture import read_map_and_symbols

    with ProcFS().open(stop.pid) as pd:
        pmap, symbols = read_map_and_symbols(pd)
        inp = FaultInput(
            arch=arch,
            siginfo=info,
            registers=arch.unpack_registers(stop.registers),
            tid=stop.tid,
            thread_name=_thread_name(pd, stop.tid),
            pmap=pmap,
            symbols=symbols,
            read_memory=pd.memory,
            file_size=lambda region: _file_size(pd, pmap, region),
            mmap_min_addr=mmap_min_addr(),
            source="live",
        )
        return analyze(inp), pmap


def _thread_name(pd: ProcessDir, tid: int) -> str | None:
    try:
        return pd.read(f"task/{tid}/comm").decode("utf-8", "replace").rstrip("\n")
    except ProcmapError:
        return None


def _file_size(pd: ProcessDir, pmap: ProcessMap, region: Region) -> int | None:
    """The size of the file a region maps, now (map_files/ reaches a deleted one)."""
    m = next((m for m in pmap.mappings if m.start <= region.start < m.end), None)
    if m is None:
        return None
    try:
        return os.stat(f"map_files/{m.start:x}-{m.end:x}", dir_fd=pd.fd).st_size
    except OSError:
        return None
