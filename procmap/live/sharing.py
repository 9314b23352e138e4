"""Who else maps a live process's memory: every readable process's maps, and pagemaps.

`read_sharing(pd, pmap)` gives each region of a map read with its figures
(rss=True) a Sharing (`sharing_of` does it for the regions a watch holds),
by classify.sharing.find_sharing: the maps of every other process the user
can read, and the pagemap entries of the ranges that overlap.  procmap
itself is never a sharer (it maps libc and Python's own files: what it
shares with a target is there only because procmap looks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..classify.sharing import Neighbour, find_sharing
from ..errors import AccessDenied, NoSuchProcess, ProcessExited
from ..kernel.maps import parse_maps
from ..kernel.procfs import ProcessDir, ProcFS, zero_page_frame
from ..kernel.smaps import page_entries
from ..model import (
    FileKey,
    Mapping,
    ProcessMap,
    Region,
    Resident,
    Sharing,
    SharingScope,
    total,
)
from ..units import plural

# A range of more pages than this is not compared page by page (8 bytes a page).
_MAX_PAGES = 1 << 21


def read_sharing(pd: ProcessDir, pmap: ProcessMap) -> tuple[list[Sharing], SharingScope]:
    """Each region's Sharing, and which processes were looked at."""
    if pmap.resident is None:
        raise ValueError("read_sharing needs a map read with its figures (rss=True)")
    program = next((im.key for im in pmap.images if im.role == "program"), None)
    return sharing_of(
        pd, pmap.mappings, _mapping_figures(pmap), pmap.regions, pmap.page_size, program
    )


def sharing_of(
    pd: ProcessDir,
    mappings: Sequence[Mapping],
    figures: Sequence[Resident],
    regions: Sequence[Region],
    page_size: int,
    program: FileKey | None,
) -> tuple[list[Sharing], SharingScope]:
    """The Sharing of `regions` (which tile `mappings`, with smaps' `figures`), and its scope."""
    procfs = pd.procfs
    me = os.getpid()
    others: list[Neighbour] = []
    denied: list[tuple[int, str]] = []
    for pid in procfs.pids():
        if pid in (pd.pid, me):
            continue
        neighbour = _neighbour(procfs, pid, denied)
        if neighbour is not None:
            others.append(neighbour)
    opened: dict[int, ProcessDir] = {pd.pid: pd}

    def read_pages(pid: int, start: int, end: int) -> Sequence[int] | None:
        if (end - start) // page_size > _MAX_PAGES:
            return None
        other = opened.get(pid)
        if other is None:
            try:
                other = opened[pid] = procfs.open(pid)
            except (NoSuchProcess, AccessDenied):
                return None
        raw = other.pagemap(start, end, page_size)
        return None if raw is None else page_entries(raw)

    try:
        sharing = find_sharing(
            pd.pid,
            pd.stat().ppid,
            mappings,
            figures,
            regions,
            others,
            read_pages,
            page_size,
            zero_page_frame(),
            program,
        )
    finally:
        for pid, other in opened.items():
            if pid != pd.pid:
                other.close()
    scope = SharingScope(
        processes_read=len(others),
        unreadable=tuple(denied),
        target_pids=_namespace_pids(pd.status().get("NSpid", "")),
        own_namespace=_in_child_namespace(),
    )
    return sharing, scope


def scope_notes(scope: SharingScope) -> list[str]:
    """What a reader of the sharers must know: who was not looked at."""
    notes = []
    if scope.unreadable:
        named = [f"{name} ({pid})" for pid, name in scope.unreadable[:8]]
        n = len(scope.unreadable)
        notes.append(
            f"sharers: {plural(n, 'process', 'processes')} could not be read (another "
            "user's: run as root, or as their owner, to see them), so none of them is named: "
            + ", ".join(named)
            + (", ..." if n > 8 else "")
        )
    if scope.own_namespace:
        notes.append(
            "sharers: procmap runs in a PID namespace of its own (a container), and sees "
            "only its processes: pages shared with processes outside it count as shared, "
            "unnamed"
        )
    if len(scope.target_pids) > 1:
        inner = scope.target_pids[-1]
        notes.append(
            f"sharers: the process is PID {inner} inside its own PID namespace; the PIDs "
            "here are as procmap's /proc numbers them"
        )
    return notes


def _namespace_pids(nspid: str) -> tuple[int, ...]:
    """/proc/PID/status NSpid: the PID in each namespace, outermost first (Linux 4.1+)."""
    return tuple(int(p) for p in nspid.split() if p.isdigit())


# include/linux/proc_ns.h: the initial PID namespace's inode number, fixed by the kernel.
_PROC_PID_INIT_INO = 0xEFFFFFFC


def _in_child_namespace() -> bool:
    """Whether procmap runs in a PID namespace other than the machine's first one.

    Its /proc then shows only that namespace's processes (and NSpid, read
    through it, has one PID): the namespace's inode number says it.
    """
    try:
        return os.stat("/proc/self/ns/pid").st_ino != _PROC_PID_INIT_INO
    except OSError:
        return False


def _neighbour(procfs: ProcFS, pid: int, denied: list[tuple[int, str]]) -> Neighbour | None:
    """Another process's maps; None for a kernel thread, a process gone, or one denied."""
    try:
        with procfs.open(pid) as other:
            stat = other.stat()
            if stat.is_kernel_thread or stat.is_zombie:
                return None
            try:
                data = other.maps()
            except AccessDenied:
                denied.append((pid, stat.comm))
                return None
            return Neighbour(pid, stat.comm, stat.ppid, parse_maps(data))
    except (NoSuchProcess, ProcessExited):
        return None
    except AccessDenied:
        denied.append((pid, "?"))
        return None


def _mapping_figures(pmap: ProcessMap) -> list[Resident]:
    """Each mapping's figures: the sum of its regions' (which share them out exactly)."""

    assert pmap.resident is not None
    out = []
    k, n = 0, len(pmap.regions)
    for m in pmap.mappings:
        group = []
        while k < n and pmap.regions[k].end <= m.end:
            group.append(pmap.resident[k])
            k += 1
        out.append(group[0] if len(group) == 1 else total(group))
    return out
