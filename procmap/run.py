"""`explain --run`: start a program under ptrace, stop it, and read its real map.

The child asks to be traced (PTRACE_TRACEME) and execs the program, which
stops it right after exec, before the dynamic linker has run: that is
`--stop-at entry`, after which the program is killed.  For `--stop-at exit`
the tracer sets PTRACE_O_TRACEEXIT and lets the program run, passing its
signals on, until the kernel stops it at the start of do_exit(), when
everything it mapped is still mapped (ptrace(2), PTRACE_O_TRACEEXIT).
PTRACE_O_EXITKILL makes the kernel kill the program if procmap dies first,
so it is never left stopped or traced.

ptrace goes through ctypes (the requests are the same numbers on every Linux
architecture); no gdb is needed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

from .elf import align_down, align_up
from .errors import BadFile, PtraceDenied, RunFailed
from .explain import Explanation
from .process import ProcessMap, read_map

PTRACE_TRACEME, PTRACE_CONT = 0, 7
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG, PTRACE_GETSIGINFO = 0x4200, 0x4201, 0x4202
PTRACE_O_TRACEEXEC, PTRACE_O_TRACEEXIT, PTRACE_O_EXITKILL = 0x10, 0x40, 0x100000
PTRACE_EVENT_EXEC, PTRACE_EVENT_EXIT = 4, 6


class Landing:
    """Where one PT_LOAD of the plan landed in the live process."""

    __slots__ = ("index", "plan_start", "plan_end", "start", "end", "kinds", "live_kinds")

    def __init__(self, index, plan_start, plan_end, start, end, kinds, live_kinds):
        self.index: int = index  # program header index
        self.plan_start, self.plan_end = plan_start, plan_end
        self.start, self.end = start, end
        self.kinds: tuple[str, ...] = kinds  # kinds in the plan
        self.live_kinds: tuple[str, ...] = live_kinds  # kinds procmap finds in the live map

    def to_dict(self) -> dict:
        return {
            "segment": self.index,
            "plan_start": self.plan_start,
            "plan_end": self.plan_end,
            "start": self.start,
            "end": self.end,
            "kinds": list(self.kinds),
            "live_kinds": list(self.live_kinds),
        }


class RunResult:
    __slots__ = ("argv", "pid", "stop_at", "map", "exit_status", "bias", "landings", "differences")

    def __init__(self, argv, pid, stop_at, pmap, exit_status, bias, landings, differences):
        self.argv: list[str] = argv
        self.pid: int = pid
        self.stop_at: str = stop_at
        self.map: ProcessMap = pmap
        self.exit_status: int | None = exit_status  # exit code, or -N for signal N
        self.bias: int | None = bias  # None if the file was not found loaded
        self.landings: list[Landing] = landings
        self.differences: list[str] = differences  # plan vs live, in words

    def to_dict(self) -> dict:
        return {
            "argv": self.argv,
            "pid": self.pid,
            "stop_at": self.stop_at,
            "exit_status": self.exit_status,
            "bias": self.bias,
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
    pid = _spawn_traced(path, argv)
    try:
        pmap, status = _trace(pid, stop_at)
    except BaseException:  # an error, or a second Ctrl-C: the program goes too
        _reap(pid, kill=True)
        raise
    # At entry the program has run none of its own code: killed, not let go, since
    # running it now would put its output and side effects after a map that no
    # longer holds.  At exit it is let go to finish exiting.
    _reap(pid, kill=stop_at == "entry")
    bias, landings, differences = tie_back(exp, pmap)
    return RunResult(argv, pid, stop_at, pmap, status, bias, landings, differences)


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    return libc


def _ptrace(libc, request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    result = libc.ptrace(request, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _spawn_traced(path: str, argv: list[str]) -> int:
    """Fork, PTRACE_TRACEME, exec; report the child's failures through a CLOEXEC pipe."""
    libc = _libc()
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec
        try:
            os.close(r)
            if libc.ptrace(PTRACE_TRACEME, 0, None, None) == -1:
                os.write(w, b"T%d" % ctypes.get_errno())
                os._exit(127)
            os.execv(path, argv)
        except OSError as err:
            os.write(w, b"E%d" % (err.errno or 0))
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        report = pipe.read()
    if not report:
        return pid  # exec succeeded: the pipe closed with it
    os.waitpid(pid, 0)
    code = int(report[1:] or 0)
    if report[:1] == b"T":
        raise PtraceDenied(
            f"cannot trace {path}: ptrace is not permitted here ({os.strerror(code)}); "
            "a seccomp filter, a container's policy, kernel.yama.ptrace_scope=3, or "
            "procmap itself being traced (strace, gdb) forbids it"
        )
    raise RunFailed(f"cannot run {path}: {os.strerror(code)}")


def _trace(pid: int, stop_at: str) -> tuple[ProcessMap, int | None]:
    libc = _libc()
    _, status = os.waitpid(pid, 0)
    if not os.WIFSTOPPED(status):
        raise RunFailed(f"{pid} ended before its first instruction ({_describe(status)})")
    _ptrace(
        libc, PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL
    )
    if stop_at == "entry":
        return read_map(pid), None
    interrupted = False

    def on_interrupt(signum, frame):
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: give up on the program
            raise KeyboardInterrupt
        interrupted = True
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        deliver = 0
        while True:
            _ptrace(libc, PTRACE_CONT, pid, 0, deliver)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                raise RunFailed(
                    f"the program ended ({_describe(status)}) before procmap could stop it "
                    "at its exit"
                )
            sig, event = os.WSTOPSIG(status), status >> 16
            deliver = 0
            if sig == signal.SIGTRAP and event == PTRACE_EVENT_EXIT:
                break
            if sig == signal.SIGTRAP and event:
                continue  # an exec event: nothing to pass on
            if _is_group_stop(libc, pid):
                continue  # SIGSTOP/SIGTSTP: keep it running, a stopped program would hang us
            deliver = sig
        code = ctypes.c_ulong()
        _ptrace(libc, PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(code))
        pmap = read_map(pid)
        return pmap, _status_of(code.value)
    finally:
        signal.signal(signal.SIGINT, previous)


def _is_group_stop(libc, pid: int) -> bool:
    info = ctypes.create_string_buffer(128)  # siginfo_t
    try:
        _ptrace(libc, PTRACE_GETSIGINFO, pid, 0, ctypes.addressof(info))
    except OSError as err:
        return err.errno == errno.EINVAL
    return False


def _reap(pid: int, kill: bool = False) -> None:
    """Leave no stopped, traced or zombie child behind: let it finish, or kill it.

    A killed tracee still stops at its exit (PTRACE_O_TRACEEXIT holds even for
    SIGKILL on Linux 6.x), so every stop is continued until the child is gone.
    """
    libc = _libc()
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            _ptrace(libc, PTRACE_CONT, pid)
        except OSError:
            pass  # not in a ptrace stop: running, dying, or already gone
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return
        except KeyboardInterrupt:  # Ctrl-C while it finishes: finish it now
            os.kill(pid, signal.SIGKILL)
            continue
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return


def _status_of(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _describe(status: int) -> str:
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"wait status 0x{status:x}"


# --- plan against reality --------------------------------------------------------------


def tie_back(exp: Explanation, pmap: ProcessMap):
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
        landings.append(Landing(plan.index, lo, hi, lo + bias, hi + bias, plan.kinds, live_kinds))
    differences = []
    for r in exp.regions:
        now = [x for x in live if x.start < r.end + bias and x.end > r.start + bias]
        for x in now:
            if (x.kind, x.detail) != (r.kind, r.detail) or x.perms[:3] != r.perms[:3]:
                differences.append(
                    f"0x{x.start:x}-0x{x.end:x}: planned {r.perms[:3]} {r.kind} ({r.detail}), "
                    f"live {x.perms[:3]} {x.kind} ({x.detail})"
                )
        if not now:
            differences.append(f"planned 0x{r.start:x}-0x{r.end:x} ({r.kind}) is not mapped")
    return bias, landings, differences


def _kinds(regions) -> tuple[str, ...]:
    out: list[str] = []
    for r in regions:
        if r.kind not in out:
            out.append(r.kind)
    return tuple(out)
