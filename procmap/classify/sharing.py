"""Who else maps each region of a process, and which of its pages are shared.

Two ways for two processes to share memory, and two questions for each region:

- The same object: a file (a shared library's code, a data file), POSIX or
  SysV shared memory, a memfd, a shared anonymous mapping inherited across
  fork.  maps names it by device and inode; every process that maps an
  overlapping part of it is a sharer.  One that maps it shared and writable
  is a writer: its stores reach this region (even a private mapping's pages
  show the file's changes until this process writes them itself).
- The same private pages, copy-on-write: after fork, parent and child hold
  the same frames for their private memory (heap, stacks, data, bss) at the
  same addresses, until one of them writes a page and gets its own copy.

How many of a region's resident pages are mapped more than once, and how many
by this process alone, is smaps' Shared_*/Private_* split (the kernel's
mapcount, exact per mapping); a mapping split into several regions shares its
counts out by pagemap's "exclusively mapped" bit, page by page.

Naming the processes that share the pages takes more:

- FRAMES: with CAP_SYS_ADMIN pagemap gives page frame numbers; a page is
  shared with a process that maps the same frame, at the same file offset
  (an object) or at the same address (copy-on-write).  Exact.
- EXCLUSIVE_BIT: without it only the flags are there.  Sharers of an object
  still come from maps (exact); copy-on-write sharers are inferred: a parent,
  child or sibling that runs the same program and holds, at the same address,
  pages that neither process maps alone.  Their page counts are an upper
  bound: the kernel's zero page (read, never written) looks the same.
- MAPS_ONLY: pagemap not readable: object sharers, by size.

Pure: the live layer gives the maps of the other processes and a reader of
anyone's pagemap entries.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..kernel.smaps import PM_EXCLUSIVE, PM_FILE, PM_FRAME, PM_PRESENT
from ..model import (
    EXCLUSIVE_BIT,
    FRAMES,
    MAPS_ONLY,
    VIA_COPY_ON_WRITE,
    VIA_OBJECT,
    FileKey,
    JSONDict,
    Mapping,
    Region,
    Resident,
    Sharer,
    Sharing,
    hex_address,
)
from ..units import plural
from .resident import largest_remainder

# (pid, start, end) -> the pagemap entries of [start, end), one per page; None if unreadable.
PageReader = Callable[[int, int, int], "Sequence[int] | None"]


class Neighbour(NamedTuple):
    """Another process, as its maps and stat show it."""

    pid: int
    name: str
    ppid: int
    mappings: list[Mapping]


def find_sharing(
    pid: int,
    ppid: int,
    mappings: Sequence[Mapping],
    figures: Sequence[Resident],
    regions: Sequence[Region],
    others: Sequence[Neighbour],
    read_pages: PageReader,
    page_size: int,
    zero_frame: int | None,
    program: FileKey | None = None,
) -> list[Sharing]:
    """Each region's Sharing (same order as `regions`, which tile `mappings`).

    `zero_frame`: the zero page's frame number when frames are readable
    (FRAMES), else None.  `program`: the process's program file, which a
    copy-on-write sharer must map too when frames are hidden.
    """
    finder = _Finder(pid, ppid, others, read_pages, page_size, zero_frame, program)
    out: list[Sharing] = []
    k, n = 0, len(regions)
    for m, f in zip(mappings, figures):
        group = []
        while k < n and regions[k].end <= m.end:
            group.append(regions[k])
            k += 1
        out.extend(finder.mapping(m, f, group))
    return out


class _Finder:
    def __init__(
        self,
        pid: int,
        ppid: int,
        others: Sequence[Neighbour],
        read_pages: PageReader,
        page_size: int,
        zero_frame: int | None,
        program: FileKey | None,
    ):
        self.pid = pid
        self.read_pages = read_pages
        self.page_size = page_size
        self.zero = zero_frame
        self.names = {o.pid: o.name for o in others}
        self.by_object: dict[FileKey, list[tuple[int, Mapping]]] = {}
        anonymous: list[tuple[int, int, Mapping]] = []
        for o in others:
            if o.pid == pid:
                continue
            for om in o.mappings:
                if om.inode:
                    self.by_object.setdefault(om.file_key, []).append((o.pid, om))
                elif om.perms[3:] == "p":
                    anonymous.append((om.start, o.pid, om))
        anonymous.sort(key=lambda t: t[0])
        self.anonymous = anonymous
        self.anonymous_starts = [t[0] for t in anonymous]
        self.longest = max((om.size for _, _, om in anonymous), default=0)
        # Without frames, copy-on-write sharers are guessed among relatives that
        # run the same program (no exec since the fork).
        self.relatives: set[int] | None = None
        if zero_frame is None:
            parents = {o.pid: o.ppid for o in others}
            parents[pid] = ppid
            same_program = {
                o.pid
                for o in others
                if program is not None and any(om.file_key == program for om in o.mappings)
            }
            self.relatives = {
                o.pid for o in others if o.pid in same_program and _related(pid, o.pid, parents)
            }
        self.method = FRAMES if zero_frame is not None else EXCLUSIVE_BIT
        self._entries: dict[tuple[int, int, int], Sequence[int] | None] = {}

    def entries(self, pid: int, start: int, end: int) -> Sequence[int] | None:
        key = (pid, start, end)
        if key not in self._entries:
            self._entries[key] = self.read_pages(pid, start, end)
        return self._entries[key]

    def mapping(self, m: Mapping, f: Resident, group: list[Region]) -> list[Sharing]:
        page = self.page_size
        shared, exclusive = (f.shared_clean + f.shared_dirty) // page, f.private // page
        mine = self.entries(self.pid, m.start, m.end) if (f.rss or len(group) > 1) else None
        method = self.method if mine is not None or not f.rss else MAPS_ONLY
        # Pages (indices into m) each sharer shares, or None where unknown.
        marks: list[tuple[Sharer, bytearray | None]] = []
        if m.inode:
            if mine is None and not f.rss and self.zero is not None:
                mine = [0] * (m.size // page)  # nothing resident: no page is shared
            marks.extend(self._object_sharers(m, mine))
        elif m.perms[3:] == "p" and mine is not None and shared:
            marks.extend(self._copy_on_write_sharers(m, mine))
        if len(group) == 1:
            counts = [(shared, exclusive)]
        else:
            counts = _split(shared, exclusive, m, group, mine, page)
        out = []
        for r, (s, e) in zip(group, counts):
            first, last = (r.start - m.start) // page, (r.end - 1 - m.start) // page + 1
            sharers = []
            for sharer, pages in marks:
                n = None if pages is None else pages.count(1, first, last)
                if sharer.via == VIA_COPY_ON_WRITE and not n:
                    continue
                sharers.append(sharer._replace(pages=n))
            out.append(Sharing(tuple(sharers), s, e, method))
        return out

    def _object_sharers(
        self, m: Mapping, mine: Sequence[int] | None
    ) -> list[tuple[Sharer, bytearray | None]]:
        """The processes mapping an overlapping part of m's file or shared memory."""
        page = self.page_size
        lo, hi = m.offset, m.offset + m.size
        found: dict[int, tuple[Sharer, bytearray | None]] = {}
        for pid, om in self.by_object.get(m.file_key, ()):
            a, b = max(lo, om.offset), min(hi, om.offset + om.size)
            if a >= b:
                continue
            writable = om.perms[1] == "w" and om.perms[3] == "s"
            pages = None
            if self.zero is not None and mine is not None:
                theirs = self.entries(pid, om.start + (a - om.offset), om.start + (b - om.offset))
                if theirs is not None:
                    pages = self._same_frames(mine, (a - lo) // page, theirs)
            before = found.get(pid)
            if before is not None:  # the process maps it more than once
                s0, p0 = before
                writable = writable or s0.writable
                if pages is not None and p0 is not None:
                    pages = bytearray(x | y for x, y in zip(pages, p0))
                else:
                    pages = pages if pages is not None else p0
            sharer = Sharer(pid, self.names.get(pid, "?"), VIA_OBJECT, writable, None)
            found[pid] = (sharer, pages)
        return [found[pid] for pid in sorted(found)]

    def _copy_on_write_sharers(
        self, m: Mapping, mine: Sequence[int]
    ) -> list[tuple[Sharer, bytearray | None]]:
        """The processes holding m's private pages at the same addresses, still shared."""
        page = self.page_size
        found: dict[int, bytearray] = {}
        # Those starting below m's end, and not so far below that they end before it.
        lo = bisect.bisect_left(self.anonymous_starts, m.start - self.longest + 1)
        hi = bisect.bisect_left(self.anonymous_starts, m.end)
        for start, pid, om in self.anonymous[lo:hi]:
            if om.end <= m.start or start >= m.end:
                continue
            if self.relatives is not None and pid not in self.relatives:
                continue
            a, b = max(m.start, om.start), min(m.end, om.end)
            theirs = self.entries(pid, a, b)
            if theirs is None:
                continue
            offset = (a - m.start) // page
            if self.zero is not None:
                pages = self._same_frames(mine, offset, theirs)
            else:
                pages = _both_shared(mine, offset, theirs)
            if pid in found:
                found[pid] = bytearray(x | y for x, y in zip(found[pid], pages))
            else:
                found[pid] = pages
        return [
            (Sharer(pid, self.names.get(pid, "?"), VIA_COPY_ON_WRITE, False, None), found[pid])
            for pid in sorted(found)
            if any(found[pid])
        ]

    def _same_frames(self, mine: Sequence[int], offset: int, theirs: Sequence[int]) -> bytearray:
        """1 for each of my pages whose frame is theirs too (at `offset` pages in)."""
        out = bytearray(len(mine))
        zero = self.zero
        for j, t in enumerate(theirs):
            if not t & PM_PRESENT:
                continue
            frame = t & PM_FRAME
            i = offset + j
            if i < len(mine) and frame and frame != zero and (mine[i] & PM_FRAME) == frame:
                out[i] = mine[i] >> 63  # present: the frame is set only then
        return out


def _both_shared(mine: Sequence[int], offset: int, theirs: Sequence[int]) -> bytearray:
    """1 for each of my anonymous pages not mine alone, where theirs is not theirs alone."""
    out = bytearray(len(mine))
    for j, t in enumerate(theirs):
        i = offset + j
        if i >= len(mine):
            break
        e = mine[i]
        if _anonymous_shared(e) and _anonymous_shared(t):
            out[i] = 1
    return out


def _anonymous_shared(entry: int) -> bool:
    return bool(entry & PM_PRESENT) and not entry & (PM_EXCLUSIVE | PM_FILE)


def _related(a: int, b: int, parents: dict[int, int]) -> bool:
    """Parent and child (at any depth), or children of one parent other than init."""

    def ancestors(p: int) -> list[int]:
        chain = []
        seen = set()
        while p in parents and p not in seen:
            seen.add(p)
            p = parents[p]
            chain.append(p)
        return chain

    up_a, up_b = ancestors(a), ancestors(b)
    if a in up_b or b in up_a:
        return True
    pa, pb = parents.get(a), parents.get(b)
    return pa is not None and pa == pb and pa > 1


def _split(
    shared: int,
    exclusive: int,
    m: Mapping,
    group: list[Region],
    mine: Sequence[int] | None,
    page: int,
) -> list[tuple[int, int]]:
    """A split mapping's shared and exclusive page counts, shared out among its regions.

    By the pages of each region that pagemap finds resident and mapped more
    than once, or once; by size when pagemap was not read.  Whole pages, by
    largest remainder, adding up to the mapping's counts.
    """
    if mine is None:
        sizes = [r.size for r in group]
        return list(zip(largest_remainder(shared, sizes), largest_remainder(exclusive, sizes)))
    many, once = [], []
    for r in group:
        first, last = (r.start - m.start) // page, (r.end - 1 - m.start) // page + 1
        s = e = 0
        for entry in mine[first:last]:
            if entry & PM_PRESENT:
                if entry & PM_EXCLUSIVE:
                    e += 1
                else:
                    s += 1
        many.append(s)
        once.append(e)
    sizes = [r.size for r in group]
    return list(
        zip(
            largest_remainder(shared, many if any(many) else sizes),
            largest_remainder(exclusive, once if any(once) else sizes),
        )
    )


# --- sharing as a watch sees it change ------------------------------------------------


class SharingChange(NamedTuple):
    """How a region's sharing changed between two reads of a watch."""

    start: int
    end: int
    kind: str
    path: str | None
    joined: tuple[Sharer, ...]  # new sharers
    left: tuple[Sharer, ...]  # sharers gone (their figures as last seen)
    shared_pages: tuple[int, int]  # before, after
    exclusive_pages: tuple[int, int]

    def to_dict(self) -> JSONDict:
        return {
            "start": hex_address(self.start),
            "end": hex_address(self.end),
            "kind": self.kind,
            "path": self.path,
            "joined": [s.to_dict() for s in self.joined],
            "left": [s.to_dict() for s in self.left],
            "shared_pages": list(self.shared_pages),
            "exclusive_pages": list(self.exclusive_pages),
        }


Shared = dict[tuple[int, int], tuple[Region, Sharing]]  # by (start, end)


def sharing_changes(before: Shared, after: Shared) -> list[SharingChange]:
    """What changed in the regions of both reads, in address order.

    Only memory processes share on purpose or by fork: shared memory and
    shared files (sharers joining and leaving) and private memory (its pages
    copied on write).  An ELF image's file is mapped by every process that
    runs it, which come and go all the time: its sharers are not news.
    """
    out = []
    for key in sorted(after.keys() & before.keys()):
        r, new = after[key]
        _, old = before[key]
        if r.object is not None:
            continue
        was = {s.pid: s for s in old.sharers}
        now = {s.pid: s for s in new.sharers}
        joined = tuple(now[p] for p in sorted(now.keys() - was.keys()))
        left = tuple(was[p] for p in sorted(was.keys() - now.keys()))
        pages_changed = (old.shared_pages, old.exclusive_pages) != (
            new.shared_pages,
            new.exclusive_pages,
        )
        if joined or left or (pages_changed and (was or now)):
            out.append(
                SharingChange(
                    r.start,
                    r.end,
                    r.kind,
                    r.path,
                    joined,
                    left,
                    (old.shared_pages, new.shared_pages),
                    (old.exclusive_pages, new.exclusive_pages),
                )
            )
    return out


def change_sentences(c: SharingChange) -> list[str]:
    """A watch's lines for one change: "heap at 0x55..: now shared with sh 812 (copy-on-write)"."""
    where = f"{c.kind} at {c.start:#x}"
    lines = []
    for s in c.joined:
        how = [
            w
            for w, on in (
                ("it can write it", s.writable),
                ("copy-on-write", s.via == VIA_COPY_ON_WRITE),
            )
            if on
        ]
        lines.append(
            f"{where}: now shared with {s.name} {s.pid}" + (f" ({', '.join(how)})" if how else "")
        )
    for s in c.left:
        lines.append(f"{where}: no longer shared with {s.name} {s.pid}")
    (s0, s1), (e0, e1) = c.shared_pages, c.exclusive_pages
    if (s0, e0) != (s1, e1):
        if s1 < s0 and e1 > e0:
            n = min(s0 - s1, e1 - e0)
            why = "their sharer is gone" if c.left else "copied on write"
            lines.append(f"{where}: {plural(n, 'page')} now its own, {why} ({s1} still shared)")
        else:
            lines.append(f"{where}: shared pages {s0} -> {s1}, its own {e0} -> {e1}")
    return lines
