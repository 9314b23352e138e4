"""Signals as the kernel reports them: siginfo_t, the si_code names, default actions.

Pure: bytes in, records out.  The same siginfo_t comes from PTRACE_GETSIGINFO
on a live process and from a core's NT_SIGINFO note.  Signal numbers are the
generic Linux ones (x86, arm, arm64, riscv, loongarch share them).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH",
    29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip
SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV = 4, 5, 6, 7, 8, 11

# signal(7): the default action of each signal.  "core" is what the kernel
# counts as a crash: it would write a core file.
_IGNORED = {17, 18, 23, 28}
_STOPS = {19, 20, 21, 22}
_CORE = {3, 4, 5, 6, 7, 8, 11, 24, 25, 31}

# si_code (include/uapi/asm-generic/siginfo.h).  Codes <= 0 say who sent it.
SI_KERNEL = 0x80
_SENT = {0: "SI_USER", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ", -4: "SI_ASYNCIO",
         -5: "SI_SIGIO", -6: "SI_TKILL", SI_KERNEL: "SI_KERNEL"}  # fmt: skip
_CODES = {
    SIGSEGV: ("SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI",
              "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"),
    SIGBUS: ("BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"),
    SIGILL: ("ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC",
             "ILL_PRVREG", "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"),
    SIGFPE: ("FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND",
             "FPE_FLTRES", "FPE_FLTINV", "FPE_FLTSUB", "FPE_DECOVF", "FPE_DECDIV",
             "FPE_DECERR", "FPE_INVASC", "FPE_INVDEC", "FPE_FLTUNK", "FPE_CONDTRAP"),
    SIGTRAP: ("TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK",
              "TRAP_PERF"),
}  # fmt: skip
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BUS_ADRERR = 2
# The signals whose siginfo carries a faulting address (si_addr).
_FAULTS = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP}

SIGINFO_SIZE = 128


class Siginfo(NamedTuple):
    signo: int
    errno: int
    code: int
    addr: int | None  # si_addr, for a fault raised by the kernel
    pid: int | None  # the sender, for a signal sent by a process (kill, raise, abort)
    uid: int | None

    @property
    def name(self) -> str:
        return signal_name(self.signo)

    @property
    def code_name(self) -> str:
        return code_name(self.signo, self.code)

    @property
    def sent(self) -> bool:
        """Sent by a process (kill, tgkill, raise, abort, sigqueue), not raised by a fault."""
        return self.code <= 0


def signal_name(signo: int) -> str:
    if signo in SIGNALS:
        return SIGNALS[signo]
    if 34 <= signo <= 64:
        return f"SIGRTMIN+{signo - 34}"
    return f"signal {signo}"


def code_name(signo: int, code: int) -> str:
    if code in _SENT:
        return _SENT[code]
    names = _CODES.get(signo, ())
    if 1 <= code <= len(names):
        return names[code - 1]
    return str(code)


def default_action(signo: int) -> str:
    """signal(7)'s default: "core", "term", "ignore" or "stop"."""
    if signo in _CORE:
        return "core"
    if signo in _IGNORED:
        return "ignore"
    if signo in _STOPS:
        return "stop"
    return "term"


def parse_siginfo(data: bytes, pointer_size: int = 8, endian: str = "<") -> Siginfo:
    """A siginfo_t (128 bytes) from PTRACE_GETSIGINFO or a core's NT_SIGINFO."""
    if len(data) < 16:
        raise ValueError(f"a siginfo_t is {SIGINFO_SIZE} bytes, not {len(data)}")
    signo, errno, code = struct.unpack_from(f"{endian}3i", data)
    # The union starts after the three ints, aligned to a pointer.
    union = 16 if pointer_size == 8 else 12
    addr = pid = uid = None
    if code <= 0 or code == SI_KERNEL and signo not in _FAULTS:
        pid, uid = struct.unpack_from(f"{endian}iI", data, union)
    elif signo in _FAULTS:
        fmt = "Q" if pointer_size == 8 else "I"
        (addr,) = struct.unpack_from(f"{endian}{fmt}", data, union)
    return Siginfo(signo, errno, code, addr, pid, uid)


def parse_sigset(text: str) -> set[int]:
    """/proc/PID/status's SigCgt, SigIgn, SigBlk (hex, bit N-1 for signal N)."""
    mask = int(text, 16)
    return {n + 1 for n in range(64) if mask >> n & 1}
