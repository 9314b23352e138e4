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
from types import FrameType

from ..errors import PtraceDenied, RunFailed

PTRACE_TRACEME, PTRACE_CONT = 0, 7
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG, PTRACE_GETSIGINFO = 0x4200, 0x4201, 0x4202
PTRACE_O_TRACEEXEC, PTRACE_O_TRACEEXIT, PTRACE_O_EXITKILL = 0x10, 0x40, 0x100000
PTRACE_EVENT_EXEC, PTRACE_EVENT_EXIT = 4, 6


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


def spawn_traced(path: str, argv: list[str]) -> int:
    """Fork, PTRACE_TRACEME, exec: the PID of a child stopped right after exec.

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
                f"cannot trace {path}: ptrace is not permitted here ({os.strerror(code)}); "
                "a seccomp filter, a container's policy, kernel.yama.ptrace_scope=3, or "
                "procmap itself being traced (strace, gdb) forbids it"
            )
        raise RunFailed(f"cannot run {path}: {os.strerror(code)}")
    # exec succeeded (the pipe closed with it): wait for the stop it causes.
    _, status = os.waitpid(pid, 0)
    if not os.WIFSTOPPED(status):
        raise RunFailed(f"{pid} ended before its first instruction ({describe_status(status)})")
    try:
        options = PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL
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
    interrupted = False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
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
    finally:
        signal.signal(signal.SIGINT, previous)


def _is_group_stop(libc: ctypes.CDLL, pid: int) -> bool:
    info = ctypes.create_string_buffer(128)  # siginfo_t
    try:
        _ptrace(libc, PTRACE_GETSIGINFO, pid, 0, ctypes.addressof(info))
    except OSError as err:
        return err.errno == errno.EINVAL
    return False


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
