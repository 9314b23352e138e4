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
from ..model import FileKey, Mapping, ProcessMap, Region, Resident, Sharing, total
from ..units import plural

# A range of more pages than this is not compared page by page (8 bytes a page).
_MAX_PAGES = 1 << 21


def read_sharing(pd: ProcessDir, pmap: ProcessMap) -> tuple[list[Sharing], list[str]]:
    """Each region's Sharing, and warnings (processes that could not be read)."""
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
) -> tuple[list[Sharing], list[str]]:
    """The Sharing of `regions` (which tile `mappings`, with smaps' `figures`), and warnings."""
    procfs = pd.procfs
    me = os.getpid()
    others: list[Neighbour] = []
    denied: list[str] = []
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
    warnings = []
    if denied:
        warnings.append(
            f"sharers: {plural(len(denied), 'process', 'processes')} could not be read (another "
            "user's: run as root, or as their owner, to see them), so none of them is named: "
            + ", ".join(denied[:8])
            + (", ..." if len(denied) > 8 else "")
        )
    return sharing, warnings


def _neighbour(procfs: ProcFS, pid: int, denied: list[str]) -> Neighbour | None:
    """Another process's maps; None for a kernel thread, a process gone, or one denied."""
    try:
        with procfs.open(pid) as other:
            stat = other.stat()
            if stat.is_kernel_thread or stat.is_zombie:
                return None
            try:
                data = other.maps()
            except AccessDenied:
                denied.append(f"{stat.comm} ({pid})")
                return None
            return Neighbour(pid, stat.comm, stat.ppid, parse_maps(data))
    except (NoSuchProcess, ProcessExited):
        return None
    except AccessDenied:
        denied.append(f"PID {pid}")
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
