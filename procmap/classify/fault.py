"""Why a program died: a fatal signal, joined to the classified map, as a verdict.

Pure: what the kernel said (siginfo, the faulting thread's registers) and what
the process held (its classified map, its memory, as callables) in; a Fault
out, with a stable `cause` key and the lesson's words.  The same analysis runs
on a live process stopped by ptrace (views/crash.py) and on a core file
(views/core.py): each only fills a FaultInput.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..arch import Arch
from ..kernel.signals import Siginfo
from ..model import ProcessMap, Region, SymbolsOf


class FaultInput(NamedTuple):
    """Everything the analysis reads, however it was gathered."""

    arch: Arch
    siginfo: Siginfo
    registers: dict[str, int]  # the faulting thread's, by the names in `arch`
    tid: int
    thread_name: str | None
    pmap: ProcessMap
    symbols: SymbolsOf  # an image's symbol table, or None
    read_memory: Callable[[int, int], bytes | None]  # (address, size): None if unreadable
    file_size: Callable[[Region], int | None]  # a file mapping's file size now, if known
    mmap_min_addr: int = 65536  # /proc/sys/vm/mmap_min_addr
    source: str = "live"  # "live" (ptrace) or "core"
