"""The errors procmap reports to its users.

Every error a user can cause (a wrong PID, a file that is not ELF...) is a
ProcmapError with a one-line message and its own exit code; the command layer
prints the message and exits with the code.  Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class ProcmapError(Exception):
    """Base class: a problem with the user's input or the system, not a bug."""

    exit_code = 1


class NoSuchProcess(ProcmapError):
    exit_code = 3


class AccessDenied(ProcmapError):
    exit_code = 4


class KernelThread(ProcmapError):
    exit_code = 5


class ZombieProcess(ProcmapError):
    exit_code = 6


class ProcessExited(ProcmapError):
    """The process went away while procmap was reading it."""

    exit_code = 7


class AmbiguousProcess(ProcmapError):
    """A process name matched more than one process."""

    exit_code = 8

    def __init__(self, message: str, candidates: list[str]):
        super().__init__(message)
        self.candidates = candidates


class BadAddress(ProcmapError):
    exit_code = 9


class BadFile(ProcmapError):
    """Missing, a directory, a device, a FIFO: not a regular file procmap can read."""

    exit_code = 10


class NotAnELF(ProcmapError):
    exit_code = 11


class CorruptELF(ProcmapError):
    """An ELF file whose headers are truncated or inconsistent."""

    exit_code = 12

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail or message  # what is wrong, without the file's name


class MapsFormatError(ProcmapError):
    """Text that is not in the format of /proc/PID/maps."""

    exit_code = 13


class PtraceDenied(ProcmapError):
    """ptrace is not permitted: seccomp, a container's policy, Yama, an existing tracer."""

    exit_code = 14


class RunFailed(ProcmapError):
    """The program given to `explain --run` could not be started or stopped."""

    exit_code = 15


class BadSnapshot(ProcmapError):
    """A file given to --from that is not a snapshot procmap can read: damaged or newer."""

    exit_code = 16


class OutputFailed(ProcmapError):
    """Standard output cannot be written: closed, a full disk, an I/O error (not a broken pipe)."""

    exit_code = 17


class BadCore(ProcmapError):
    """A file given as a core that procmap cannot read: not a core, truncated, another
    machine's, without the notes that tie its memory to files and threads."""

    exit_code = 18


class MissingExtra(ProcmapError):
    """An optional part of procmap is not installed: prometheus_client, for
    `system --openmetrics` and `--serve` (pip install 'procmap[metrics]')."""

    exit_code = 19


class ServeFailed(ProcmapError):
    """`system --serve` cannot listen: the port is in use or needs privileges, or
    the address given to --bind is not one of this machine's."""

    exit_code = 20
