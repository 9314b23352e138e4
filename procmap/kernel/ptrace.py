"""ptrace(2): start a program traced, let it run to its exit, and always let it go.

The child asks to be traced (PTRACE_TRACEME) and execs the program, which
stops it right after exec, before the dynamic linker has run.  With
PTRACE_O_TRACEEXIT the kernel stops it again at the start of do_exit(), when
everything it mapped is still mapped; PTRACE_O_EXITKILL makes the kernel
kill the program if procmap dies first, so it is never left stopped or traced.

ptrace goes through ctypes (the requests are the same numbers on every Linux
architecture); no gdb is needed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NamedTuple

from ..errors import PtraceDenied, RunFailed
from .signals import default_action, parse_sigset

PTRACE_TRACEME, PTRACE_CONT = 0, 7
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG, PTRACE_GETSIGINFO = 0x4200, 0x4201, 0x4202
PTRACE_GETREGSET = 0x4204
PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC, PTRACE_O_TRACEEXIT = 0x8, 0x10, 0x40
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC, PTRACE_EVENT_EXIT = 3, 4, 6
NT_PRSTATUS = 1  # PTRACE_GETREGSET: the general registers, as in a core's NT_PRSTATUS
WALL = 0x40000000  # __WALL: wait for threads as well as processes


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    return libc


def _ptrace(libc: ctypes.CDLL, request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    result: int = libc.ptrace(request, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def spawn_traced(path: str, argv: list[str], threads: bool = False) -> int:
    """Fork, PTRACE_TRACEME, exec: the PID of a child stopped right after exec.

    With `threads`, every thread it creates is traced too (PTRACE_O_TRACECLONE)
    and it is not stopped at its exit: `trace_to_end` drives it.

    The child reports its failures through a CLOEXEC pipe: ptrace refused
    (PtraceDenied) or exec failed (RunFailed); it is reaped then.
    """
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
    if report:
        os.waitpid(pid, 0)
        code = int(report[1:] or 0)
        if report[:1] == b"T":
            raise PtraceDenied(
                f"cannot trace {path}: ptrace is not permitted here ({os.strerror(code)}): "
                "procmap is itself traced (strace, gdb), or a seccomp filter or container "
                "policy forbids ptrace (docker: --cap-add SYS_PTRACE, or a seccomp profile "
                "that allows it), or kernel.yama.ptrace_scope is 3 (set it lower, as root)"
            )
        raise RunFailed(f"cannot run {path}: {os.strerror(code)}")
    # exec succeeded (the pipe closed with it): wait for the stop it causes.
    _, status = os.waitpid(pid, 0)
    if not os.WIFSTOPPED(status):
        raise RunFailed(f"{pid} ended before its first instruction ({describe_status(status)})")
    try:
        options = PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL
        options |= PTRACE_O_TRACECLONE if threads else PTRACE_O_TRACEEXIT
        _ptrace(libc, PTRACE_SETOPTIONS, pid, 0, options)
    except BaseException:
        reap(pid, kill=True)
        raise
    return pid


def run_to_exit(pid: int) -> int | None:
    """Let a traced child run, passing its signals on, until it stops at its exit.

    Returns its exit status (the code, or -N for signal N): the process is
    still whole, stopped at the start of do_exit().  Ctrl-C is passed to the
    program; a second one gives up on it (KeyboardInterrupt).
    """
    libc = _libc()
    with _forward_interrupt(pid):
        deliver = 0
        while True:
            _ptrace(libc, PTRACE_CONT, pid, 0, deliver)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                raise RunFailed(
                    f"the program ended ({describe_status(status)}) before procmap could stop it "
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
        return _status_of(code.value)


@contextmanager
def _forward_interrupt(pid: int) -> Iterator[None]:
    """Ctrl-C meanwhile goes to the program; a second one gives up on it (KeyboardInterrupt)."""
    interrupted = False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _is_group_stop(libc: ctypes.CDLL, pid: int) -> bool:
    try:
        return _siginfo(libc, pid) is None
    except OSError:
        return False  # gone: not a stop to keep running


def reap(pid: int, kill: bool = False) -> None:
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


def describe_status(status: int) -> str:
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"wait status 0x{status:x}"


# --- running a program to its end, stopping only where a signal would kill it ------------


class FatalStop(NamedTuple):
    """A thread stopped by ptrace with a signal that will end the process, not yet delivered."""

    pid: int
    tid: int
    signo: int
    action: str  # the signal's default action: "core" (a crash) or "term"
    siginfo: bytes  # siginfo_t, as PTRACE_GETSIGINFO gives it
    registers: bytes  # the thread's user_regs_struct (PTRACE_GETREGSET, NT_PRSTATUS)


def trace_to_end(pid: int, on_fatal: Callable[[FatalStop], None], registers_size: int = 512) -> int:
    """Run a child from `spawn_traced(threads=True)` to its end: its wait status.

    Every thread is traced, and stops only when a signal is about to be
    delivered (no system call stops: a program that does not crash runs at
    full speed).  A signal the program handles, ignores or that stops it is
    passed on; one that will kill it (its default action, and the program
    neither catches nor ignores it) calls `on_fatal` first, while the thread
    is stopped and everything it mapped is still mapped, then is delivered.
    Ctrl-C is passed to the program; a second one kills it.
    """
    libc = _libc()
    tracer = _Tracer(libc, pid)
    # SIGCHLD is held pending while blocked, so no stop is missed between a sweep
    # of the threads and the wait for the next one.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        with _forward_interrupt(pid):
            _ptrace(libc, PTRACE_CONT, pid)
            while True:
                status = tracer.sweep(on_fatal, registers_size)
                if status is not None:
                    return status
                signal.sigtimedwait({signal.SIGCHLD}, 0.5)
    except BaseException:
        tracer.kill()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class _Tracer:
    """The threads of one traced process, and what to do with each stop."""

    def __init__(self, libc: ctypes.CDLL, pid: int):
        self.libc = libc
        self.pid = pid
        self.threads = {pid}
        self.fresh: set[int] = set()  # new threads whose first SIGSTOP is still to come

    def sweep(self, on_fatal: Callable[[FatalStop], None], registers_size: int) -> int | None:
        """Handle every stop that is waiting: the leader's wait status once it is gone."""
        while True:
            handled = False
            for tid in list(self.threads):
                try:
                    got, status = os.waitpid(tid, os.WNOHANG | WALL)
                except ChildProcessError:
                    self.threads.discard(tid)  # gone in an exec by another thread
                    continue
                if not got:
                    continue
                handled = True
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    self.threads.discard(tid)
                    if tid == self.pid:
                        return status
                    continue
                self._stopped(tid, status, on_fatal, registers_size)
            if not handled:
                return None

    def _stopped(
        self, tid: int, status: int, on_fatal: Callable[[FatalStop], None], registers_size: int
    ) -> None:
        sig, event = os.WSTOPSIG(status), status >> 16
        deliver = 0
        if sig == signal.SIGTRAP and event == PTRACE_EVENT_CLONE:
            new = ctypes.c_ulong()
            _ptrace(self.libc, PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(new))
            self.threads.add(new.value)
            self.fresh.add(new.value)
        elif sig == signal.SIGTRAP and event:
            pass  # an exec: nothing to pass on
        elif tid in self.fresh and sig == signal.SIGSTOP:
            self.fresh.discard(tid)  # a new thread's first stop, made by ptrace
        else:
            info = _siginfo(self.libc, tid)
            if info is None:
                pass  # a group stop (SIGSTOP, SIGTSTP): keep it running, or we would hang
            else:
                deliver = sig
                action = _fatal_action(self.pid, sig)
                if action is not None:
                    regs = _registers(self.libc, tid, registers_size)
                    on_fatal(FatalStop(self.pid, tid, sig, action, info, regs))
        try:
            _ptrace(self.libc, PTRACE_CONT, tid, 0, deliver)
        except ProcessLookupError:
            pass  # killed meanwhile (another thread's fatal signal)

    def kill(self) -> None:
        """SIGKILL the process and reap every thread: none is left stopped or a zombie."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while self.threads:
            for tid in list(self.threads):
                try:
                    got, status = os.waitpid(tid, os.WNOHANG | WALL)
                except ChildProcessError:
                    self.threads.discard(tid)
                    continue
                if got and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
                    self.threads.discard(tid)
                elif got:
                    try:
                        _ptrace(self.libc, PTRACE_CONT, tid)
                    except OSError:
                        pass
            if self.threads:
                signal.sigtimedwait({signal.SIGCHLD}, 0.1)


def _siginfo(libc: ctypes.CDLL, tid: int) -> bytes | None:
    """The siginfo of a signal-delivery stop; None for a group stop (EINVAL)."""
    info = ctypes.create_string_buffer(128)
    try:
        _ptrace(libc, PTRACE_GETSIGINFO, tid, 0, ctypes.addressof(info))
    except OSError as err:
        if err.errno == errno.EINVAL:
            return None
        raise
    return info.raw


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _registers(libc: ctypes.CDLL, tid: int, size: int) -> bytes:
    """The thread's general registers: the kernel's user_regs_struct (empty if refused)."""
    buffer = ctypes.create_string_buffer(size)
    iov = _IoVec(ctypes.addressof(buffer), size)
    try:
        _ptrace(libc, PTRACE_GETREGSET, tid, NT_PRSTATUS, ctypes.addressof(iov))
    except OSError:
        return b""
    return buffer.raw[: iov.len]


def _fatal_action(pid: int, sig: int) -> str | None:
    """ "core" or "term" if `sig` will end the process now, None if it is handled or ignored.

    From /proc/PID/status: a caught (SigCgt) or ignored (SigIgn) signal is the
    program's business.  A fault signal that was blocked or ignored has already
    been reset to its default by the kernel (force_sig_info) when it stops here.
    """
    action = default_action(sig)
    if action not in ("core", "term"):
        return None
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return action
    for line in status.splitlines():
        field, _, value = line.partition(b":")
        if field in (b"SigCgt", b"SigIgn") and sig in parse_sigset(value.decode().strip()):
            return None
    return action
