"""One process's map, sampled again and again, and what changed between samples.

A sample costs little more than the kernel's own printing of /proc/PID/maps,
because most of a maps file is the same from one sample to the next:

- The file is read into one reused buffer; unchanged bytes cost one memcmp and
  nothing is parsed.
- Changed bytes are found by memcmp (common prefix and suffix, in galloping
  steps), and changes far apart by looking for an old line in the new text
  (bytes.find): only the changed lines are parsed (diff.py).
- Only the mappings around a change are classified again: the changed ones, the
  whole ELF image or file they belong to, and enough neighbours that the result
  is what classifying the whole map would give (the tests check that it is).
- ELF layouts are read once per (device, inode), thread stack pointers once per
  thread.

Each change becomes events in the kernel's terms (events.py).  Reads go through
the kernel readers; no click, no rich.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable

from ..classify import classify
from ..classify.runtimes import reads_runs, run_bounds
from ..errors import ProcessExited
from ..kernel.maps import parse_maps
from ..kernel.procfs import ProcessDir, ProcFS
from ..model import KINDS, Facts, FileKey, LoadedImage, Mapping, ProcessInfo, ProcessMap, Region
from .capture import (
    ElfCache,
    check_alive,
    process_info,
    read_facts,
    read_layouts,
    read_thread_stacks,
)
from .diff import Hunk, diff_maps
from .events import Change, Event, diff_events

Group = tuple[Region, ...]  # the regions of one mapping
# A hunk parsed: (old index lo, old index hi, the new mappings between them).
_Piece = tuple[int, int, list[Mapping]]

# --- the sampler ------------------------------------------------------------------------

# How far a mapping's kind can depend on its neighbours: a thread stack on the
# guard page below it, and that guard on an arena's claims below it, and on
# the stack above it (Sampler._margin).  classify() is given CONTEXT
# neighbours beyond the mappings classified again, so that those are right.
CONTEXT = 2
_RETRY_THREADS = 1.0  # seconds between retries of a thread whose stack pointer is unknown


class PidReused(ProcessExited):
    """The process exited and another one now has its PID."""


class Sampler:
    """Samples one process's map; `sample()` returns what changed since the last call.

    Holds the /proc/PID directory open (see procfs.py), so a PID reused by
    another process is never mistaken for the one being watched: reads through
    the old directory fail once its process is gone, and `sample()` raises
    ProcessExited, or PidReused when another process now has the PID.
    """

    def __init__(self, pid: int, procfs: ProcFS | None = None, cache: ElfCache | None = None):
        self.procfs = procfs or ProcFS()
        self.pd: ProcessDir = self.procfs.open(pid)
        self.cache = cache or ElfCache()
        self._buffer = bytearray(1 << 16)
        self.samples = 0
        try:
            stat = check_alive(self.pd)
            self.start_time = stat.start_time
            self._exec_marks = stat.exec_marks
            self.info: ProcessInfo = process_info(self.pd, stat)
            self._task_links = self._count_threads()
            self._full_read(self._read_maps())
        except BaseException:
            self.pd.close()
            raise

    @property
    def pid(self) -> int:
        return self.pd.pid

    def close(self) -> None:
        self.pd.close()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------

    def _read_maps(self) -> bytes:
        """The maps file, read into one reused buffer (no allocation per read())."""
        try:
            data = self.pd.read_into("maps", self._buffer)
        except ProcessExited:
            raise self.gone() from None
        if not data:
            # A zombie or an exiting process has no mm left to print.
            raise self.gone()
        return data

    def gone(self) -> ProcessExited:
        """The error to raise when the process is gone: it exited, or its PID is reused."""
        # Was the PID given to another process meanwhile?  Its start time says.
        other = self.procfs.stat_of(self.pid)
        if other is not None and other.start_time != self.start_time:
            return PidReused(
                f"PID {self.pid} exited and now belongs to another process "
                f"({other.comm}); the watch ends here"
            )
        return ProcessExited(f"PID {self.pid} ({self.info.name}) exited")

    def _count_threads(self) -> int:
        # The task directory's link count: a few us, against a listdir.
        try:
            return self.pd.task_links()
        except ProcessExited:
            raise self.gone() from None

    # --- the full read, at the start and when everything changed -----------------------

    def _full_read(self, data: bytes) -> None:
        mappings, data = _parse_canonical(data)
        self.warnings: list[str] = []
        self.facts: Facts = read_facts(self.pd, mappings, self.cache, self.warnings)
        self._runs_matter = reads_runs(self.facts)
        self.tids: list[int] = self._task_ids()
        if len(self.tids) > 1:
            self.facts = read_thread_stacks(self.pd, self.facts, self.tids, self.warnings)
        self._last_thread_retry = time.monotonic()
        self.text = data
        self.mappings = mappings
        self.starts = [m.start for m in mappings]
        result = classify(mappings, self.cache.layouts, self.facts, self.cache.unreadable)
        self.groups: list[tuple[Region, ...]] = _group(mappings, result.regions)
        self._set_images(result.images)
        self.warnings.extend(w for w in result.warnings if w not in self.warnings)
        self.key_starts: dict[FileKey, list[int]] = {}  # a file's mappings, by start
        for m in mappings:
            if _is_file(m):
                self.key_starts.setdefault(m.file_key, []).append(m.start)
        self._unread: list[Mapping] = []  # mappings of files whose layout is not yet read
        self.by_kind: Counter[str] = Counter()
        for group in self.groups:
            for r in group:
                self.by_kind[r.kind] += r.size
        self.total = sum(m.end - m.start for m in mappings)

    def _task_ids(self) -> list[int]:
        try:
            return self.pd.task_ids()
        except ProcessExited as err:
            raise self.gone() from err

    # --- one sample -----------------------------------------------------------------

    def sample(self) -> Change:
        """Read the map again; what changed since the last sample (falsy if nothing)."""
        data = self._read_maps()
        links = self._count_threads()
        self.samples += 1
        tids = None
        if links > 3 or self._task_links > 3:
            # Several threads: one can end and another start between two samples,
            # the count unchanged, so list them (~6 us).  One thread at both
            # samples leaves nothing to miss.
            tids = self._task_ids()
            threads_changed = tids != self.tids
        else:
            threads_changed = links != self._task_links
        if data == self.text and not threads_changed and not self.facts.unknown_threads:
            return Change([], [], [])  # a new one each time: callers may fill it
        return self._update(data, threads_changed, links, tids)

    def _update(
        self, data: bytes, threads_changed: bool, links: int, tids: list[int] | None = None
    ) -> Change:
        dirty: list[tuple[int, int, tuple[FileKey, ...]]] = []  # to classify again
        started: list[int] = []
        ended: list[int] = []
        if threads_changed or (
            self.facts.unknown_threads
            and time.monotonic() - self._last_thread_retry > _RETRY_THREADS
        ):
            self._task_links = links
            started, ended, moved = self._update_threads(tids)
            dirty.extend((sp, sp + 1, ()) for sp in moved)
        if data == self.text:
            self._reclassify(dirty)
            return Change([], started, ended)
        pieces = self._parse_hunks(data, diff_maps(self.text, data))
        if pieces is None:
            return self._replace_all(data, started, ended)
        if self._touches_program(pieces) and self._execed():
            return self._replace_all(data, started, ended, exec=True)
        if self._maps_the_program(pieces):
            return self._replace_all(data, started, ended)
        changes = self._splice(data, pieces)
        for old_maps, _, a, b in changes:
            lo = old_maps[0].start if old_maps else self._start_at(a)
            hi = old_maps[-1].end if old_maps else lo + 1
            if b > a:
                lo, hi = min(lo, self.mappings[a].start), max(hi, self.mappings[b - 1].end)
            dirty.append((lo, hi, tuple(m.file_key for m in old_maps if _is_file(m))))
        self._reclassify(dirty)
        events: list[Event] = []
        maps = self.mappings
        for old_maps, old_groups, a, b in changes:
            # A hunk can hold a line or two that did not change: leave those out.
            i, j = 0, len(old_maps)
            while i < j and a < b and old_maps[i] == maps[a]:
                i += 1
                a += 1
            while i < j and a < b and old_maps[j - 1] == maps[b - 1]:
                j -= 1
                b -= 1
            if i < j or a < b:
                events.extend(
                    diff_events(old_maps[i:j], old_groups[i:j], maps[a:b], self.groups[a:b])
                )
        return Change(events, started, ended)

    def _execed(self) -> bool:
        """Whether the process has run a program since the last full read.

        Another program file is told by /proc/PID/exe.  The same file run anew
        (a shell exec'ing itself, a server re-exec'ing to upgrade) by the
        addresses the kernel sets at exec, in /proc/PID/stat.
        """
        if self.pd.file_key("exe") != self.facts.exe_key:
            return True
        try:
            marks = self.pd.stat().exec_marks
        except ProcessExited:
            raise self.gone() from None
        return marks != self._exec_marks

    def _maps_the_program(self, pieces: list[_Piece]) -> bool:
        """Whether the dynamic linker, run as a command (`ld.so PROGRAM`), has just
        loaded a file that may be the program: then the facts are read again.

        Only while exe has no PT_INTERP and no program other than exe is known,
        for a new executable mapping of a file that names an interpreter.
        """
        exe_key = self.facts.exe_key
        if self.facts.program_key is not None or exe_key is None:
            return False
        exe = self.cache.layouts.get(exe_key)
        if exe is None or exe.interpreter is not None:
            return False
        fresh = [m for _, _, new in pieces for m in new if _is_file(m) and "x" in m.perms]
        if not fresh:
            return False
        read_layouts(self.pd, fresh, exe_key, self.cache, self.warnings)
        return any(
            (layout := self.cache.layouts.get(m.file_key)) is not None
            and layout.interpreter is not None
            for m in fresh
        )

    def _start_at(self, i: int) -> int:
        """An address at mapping index i: where a removed stretch was."""
        if i < len(self.mappings):
            return self.mappings[i].start
        return self.mappings[-1].end

    def _replace_all(
        self, data: bytes, started: list[int], ended: list[int], exec: bool = False
    ) -> Change:
        """Read everything again: after an exec, or when the text cannot be spliced."""
        old_maps, old_groups = self.mappings, self.groups
        if exec:
            stat = self.pd.stat()
            self.info = process_info(self.pd, stat)
            self._exec_marks = stat.exec_marks
        self._full_read(data)
        events = diff_events(old_maps, old_groups, self.mappings, self.groups)
        return Change(events, started, ended, exec=exec)

    def _update_threads(
        self, tids: list[int] | None = None
    ) -> tuple[list[int], list[int], list[int]]:
        """Take the thread list (read again unless given); returns (started, ended,
        stack pointers to look at)."""
        if tids is None:
            tids = self._task_ids()
        facts = self.facts
        before, now = set(self.tids), set(tids)
        started = sorted(now - before)
        ended = sorted(before - now)
        moved = [facts.thread_sps[t] for t in ended if t in facts.thread_sps]
        was_unknown = bool(facts.unknown_threads)
        facts = facts._replace(
            thread_sps={t: sp for t, sp in facts.thread_sps.items() if t in now},
            unknown_threads=tuple(t for t in facts.unknown_threads if t in now),
        )
        asked = started + list(facts.unknown_threads)
        facts = self.facts = read_thread_stacks(self.pd, facts, asked, self.warnings)
        self._last_thread_retry = time.monotonic()
        moved.extend(facts.thread_sps[t] for t in asked if t in facts.thread_sps)
        self.tids = tids
        self.info = self.info._replace(threads=len(tids))
        if bool(facts.unknown_threads) != was_unknown:
            # Stacks found by shape depend on whether any thread is unknown: look at all.
            moved.extend(self.starts)
        return started, ended, moved

    def _parse_hunks(self, data: bytes, hunks: list[Hunk]) -> list[_Piece] | None:
        """Each hunk as (old index lo, old index hi, its new mappings).

        None if a line was printed twice (the kernel does that when a mapping
        changes between two read() calls of one file): then the text cannot be
        spliced line for line.
        """
        maps = self.mappings
        pieces = []
        for h in hunks:
            i0 = self._index_at_offset(h.old_start)
            i1 = self._index_at_offset(h.old_end)
            fresh = parse_maps(data[h.new_start : h.new_end])
            if fresh and (
                data.count(b"\n", h.new_start, h.new_end) != len(fresh)
                or (i0 > 0 and fresh[0].start < maps[i0 - 1].end)
                or (i1 < len(maps) and fresh[-1].end > maps[i1].start)
            ):
                return None
            pieces.append((i0, i1, fresh))
        return pieces

    def _touches_program(self, pieces: list[_Piece]) -> bool:
        """Whether a change removes or alters a mapping of the program: maybe an exec."""
        starts = self.key_starts.get(self.facts.exe_key) if self.facts.exe_key else None
        if not starts:
            return True
        for i0, i1, _ in pieces:
            if i1 > i0:
                k = bisect.bisect_left(starts, self.mappings[i0].start)
                if k < len(starts) and starts[k] < self.mappings[i1 - 1].end:
                    return True
        return False

    def _splice(
        self, data: bytes, pieces: list[_Piece]
    ) -> list[tuple[list[Mapping], list[Group], int, int]]:
        """Put the changed lines, parsed, in place of the old ones.

        Returns [(old mappings, their regions, new index lo, new index hi)], one
        per hunk.
        """
        maps = self.mappings
        changes = []
        for i0, i1, fresh in reversed(pieces):  # from the top, so lower indexes hold
            old_maps, old_groups = maps[i0:i1], self.groups[i0:i1]
            for m, group in zip(old_maps, old_groups):
                self._forget(m, group)
            for m in fresh:
                self._remember(m)
            maps[i0:i1] = fresh
            self.starts[i0:i1] = [m.start for m in fresh]
            self.groups[i0:i1] = [()] * len(fresh)
            changes.append((old_maps, old_groups, len(fresh)))
        changes.reverse()
        self.text = data
        out, shift = [], 0
        for (i0, i1, _), (old_maps, old_groups, count) in zip(pieces, changes):
            out.append((old_maps, old_groups, i0 + shift, i0 + shift + count))
            shift += count - (i1 - i0)
        return out

    def _index_at_offset(self, offset: int) -> int:
        """Index of the mapping whose line starts at byte `offset` of the last text."""
        text = self.text
        if offset >= len(text):
            return len(self.mappings)
        return bisect.bisect_left(self.starts, int(text[offset : text.index(b"-", offset)], 16))

    def _forget(self, m: Mapping, group: Group) -> None:
        self.total -= m.end - m.start
        for r in group:
            self.by_kind[r.kind] -= r.size
        if _is_file(m):
            starts = self.key_starts[m.file_key]
            starts.remove(m.start)
            if not starts:
                del self.key_starts[m.file_key]

    def _remember(self, m: Mapping) -> None:
        self.total += m.end - m.start
        if _is_file(m):
            bisect.insort(self.key_starts.setdefault(m.file_key, []), m.start)
            if m.file_key not in self.cache.layouts:
                self._unread.append(m)

    # --- classifying again, around the changes --------------------------------------

    def _reclassify(self, dirty: list[tuple[int, int, tuple[FileKey, ...]]]) -> None:
        """Classify again every mapping whose kind can depend on the dirty address ranges.

        A file mapping's kind depends only on the other mappings of its file
        and the image they make; an anonymous one's also on its neighbours (the
        guard below a stack, the arena pair, bss after data) and the image
        around it.  So the window is: the changed mappings, closed over their
        files and images, plus the anonymous neighbours that depend on them
        (_margin).  classify() sees CONTEXT more neighbours, also closed, so
        the window's edges are right; only the window's regions are taken.
        """
        if not dirty:
            return
        if self._unread:
            read_layouts(self.pd, self._unread, self.facts.exe_key, self.cache, self.warnings)
            self._unread = []
        cores = []
        for lo_addr, hi_addr, keys in dirty:
            lo = max(bisect.bisect_right(self.starts, lo_addr) - 1, 0)
            hi = max(bisect.bisect_left(self.starts, hi_addr), lo + 1)
            cores.append((*self._closure(lo, hi, keys, lo_addr, hi_addr), lo_addr, hi_addr))
        if len(cores) > 1:
            # Changes whose windows meet are classified in one go.
            merged: list[list[int]] = []  # [window lo, window hi, core lo, core hi, addresses]
            for w_lo, w_hi, lo, hi, lo_addr, hi_addr in sorted(
                (*self._closure(*self._margin(lo, hi)), lo, hi, lo_addr, hi_addr)
                for lo, hi, lo_addr, hi_addr in cores
            ):
                if merged and w_lo <= merged[-1][1]:
                    last = merged[-1]
                    last[1:] = (
                        max(last[1], w_hi),
                        min(last[2], lo),
                        max(last[3], hi),
                        min(last[4], lo_addr),
                        max(last[5], hi_addr),
                    )
                else:
                    merged.append([w_lo, w_hi, lo, hi, lo_addr, hi_addr])
            cores = [(w[2], w[3], w[4], w[5]) for w in merged]
        for lo, hi, lo_addr, hi_addr in cores:
            self._classify_window(lo, hi, lo_addr, hi_addr)

    def _margin(self, lo: int, hi: int) -> tuple[int, int]:
        """Widen [lo, hi) by the neighbours whose kind can depend on what is in it.

        From classify's rules.  Below: a guard page (---p) of a stack, or an
        arena's rw-p part whose reserve is here; and under a stack (rw-p) that
        an arena here may claim, that stack's guard.  Above: a stack (rw-p)
        over a guard, bss after data, an arena reserve (---p), and past such a
        ---p mapping the stack it guards (whose guard's free part may be set
        here).  Nothing further depends on [lo, hi): a mapping two away
        depends only on the claims of the one between, and those change only
        in the shapes above.  Where a runtime's rules judge whole runs of
        anonymous mappings (Go's arenas, jemalloc's extents), the window holds
        each run it meets whole.
        """
        maps, n = self.mappings, len(self.mappings)
        if lo > 0 and maps[lo - 1].is_plain_anonymous:
            lo -= 1
            if maps[lo].perms == "rw-p" and lo > 0 and maps[lo - 1].perms == "---p":
                lo -= maps[lo - 1].is_plain_anonymous
        if hi < n and maps[hi].is_plain_anonymous:
            hi += 1
            if maps[hi - 1].perms == "---p" and hi < n and maps[hi].is_plain_anonymous:
                hi += 1
        if self._runs_matter:
            lo, hi = run_bounds(maps, lo, hi)
        return lo, hi

    def _closure(
        self, lo: int, hi: int, keys: Iterable[FileKey] = (), a: int = -1, b: int = 0
    ) -> tuple[int, int]:
        """Widen [lo, hi) over every mapping of each file and image that has one in it.

        [a, b) is an address range to close over too: where mappings went away,
        an image that had them may have its span there and nothing left in it.
        """
        maps, starts = self.mappings, self.starts
        seen: set[FileKey] = set()
        pending = list(keys)
        scan_lo, scan_hi = lo, hi  # the indexes not yet looked at
        if a < 0:
            a, b = maps[lo].start, maps[hi - 1].end
        while True:
            for i in range(scan_lo, scan_hi):
                m = maps[i]
                if m.inode and m.path is not None and m.path[:1] != "[":  # _is_file
                    pending.append(m.file_key)
            a, b = min(a, maps[lo].start), max(b, maps[hi - 1].end)
            for key in pending:
                if key not in seen:
                    seen.add(key)
                    ks = self.key_starts.get(key)
                    if ks:
                        a, b = min(a, ks[0]), max(b, ks[-1] + 1)
            pending.clear()
            for image in self._images_meeting(a, b):
                a, b = min(a, image.start), max(b, image.end)
            new_lo = min(lo, max(bisect.bisect_right(starts, a) - 1, 0))
            new_hi = max(hi, bisect.bisect_left(starts, b))
            if new_lo == lo and new_hi == hi:
                return lo, hi
            # Look only at what was added, below and above.
            for i in range(new_lo, lo):
                m = maps[i]
                if m.inode and m.path is not None and m.path[:1] != "[":
                    pending.append(m.file_key)
            scan_lo, scan_hi = hi, new_hi
            lo, hi = new_lo, new_hi

    def _images_meeting(self, a: int, b: int) -> list[LoadedImage]:
        """The loaded images whose span meets [a, b)."""
        images = self.images
        if not images:
            return []
        # Images are sorted by start and none is longer than _longest_image.
        i = bisect.bisect_right(self._image_starts, a - self._longest_image)
        j = bisect.bisect_left(self._image_starts, b)
        return [im for im in images[i:j] if im.start < b and im.end > a]

    def _is_known(self, image: LoadedImage) -> bool:
        """Whether an image with this file and span was already loaded."""
        return any(
            im.key == image.key and im.start == image.start and im.end == image.end
            for im in self._images_meeting(image.start, image.end)
        )

    def _set_images(self, images: list[LoadedImage]) -> None:
        self.images = sorted(images, key=lambda im: im.start)
        self._image_starts = [im.start for im in self.images]
        self._longest_image = max((im.end - im.start for im in images), default=0)

    def _classify_window(self, lo: int, hi: int, lo_addr: int, hi_addr: int) -> None:
        """Classify again the mappings that can depend on mappings [lo, hi).

        [lo, hi) is where mappings or their images changed, closed.  The window
        classified again is that with its margins, closed too; classify() sees
        CONTEXT more neighbours.  An image found now claims memory over its
        whole span: where that reaches past [lo, hi), widen it, and again.
        The address range is where the change was: an image whose mappings all
        went away lies there, outside every mapping left.
        """
        maps, starts = self.mappings, self.starts
        while True:
            w_lo, w_hi = self._closure(*self._margin(lo, hi))
            c0, c1 = self._closure(max(w_lo - CONTEXT, 0), min(w_hi + CONTEXT, len(maps)))
            result = classify(maps[c0:c1], self.cache.layouts, self.facts, self.cache.unreadable)
            a, b = maps[w_lo].start, maps[w_hi - 1].end
            found = [im for im in result.images if im.start < b and im.end > a]
            new_lo, new_hi = lo, hi
            for im in found:
                if not self._is_known(im):
                    i = max(bisect.bisect_right(starts, im.start) - 1, 0)
                    if maps[i].end <= im.start:
                        i += 1
                    new_lo, new_hi = min(new_lo, i), max(new_hi, bisect.bisect_left(starts, im.end))
            if new_lo == lo and new_hi == hi:
                break
            lo, hi = self._closure(new_lo, new_hi)
        fresh = _group(maps[c0:c1], result.regions)[w_lo - c0 : w_hi - c0]
        by_kind = self.by_kind
        for group in self.groups[w_lo:w_hi]:
            for r in group:
                by_kind[r.kind] -= r.size
        for group in fresh:
            for r in group:
                by_kind[r.kind] += r.size
        self.groups[w_lo:w_hi] = fresh
        gone = self._images_meeting(min(a, lo_addr), max(b, hi_addr))
        if gone or found:
            self._set_images([im for im in self.images if im not in gone] + found)
        for w in result.warnings:
            if w not in self.warnings:
                self.warnings.append(w)

    # --- what the views need ----------------------------------------------------------

    @property
    def regions(self) -> list[Region]:
        return [r for group in self.groups for r in group]

    def snapshot(self) -> ProcessMap:
        """The map as it stands, as `read_map` would give it."""
        return ProcessMap(
            info=self.info,
            mappings=list(self.mappings),
            regions=self.regions,
            images=list(self.images),
            warnings=self.warnings,
            page_size=self.facts.page_size,
            runtimes=self.facts.runtimes or (),
        )

    def totals(self) -> dict[str, int]:
        """Bytes by kind, every kind present (zeros included), from running sums."""
        return {k: self.by_kind.get(k, 0) for k in KINDS}


def _is_file(m: Mapping) -> bool:
    """A mapping of a file: its kind depends only on the file's other mappings.

    The same test as classify's find_images, which groups mappings into images.
    """
    return bool(m.inode) and m.path is not None and m.path[:1] != "["


def _parse_canonical(data: bytes) -> tuple[list[Mapping], bytes]:
    """Parse, and drop from the text any line the kernel printed twice across reads.

    The text kept is then exactly the mappings' lines, one each, which the
    next sample's diff relies on.
    """
    mappings = parse_maps(data)
    if data.count(b"\n") == len(mappings):
        return mappings, data
    kept = []
    k = 0
    for line in data.split(b"\n"):
        if not line or k == len(mappings):
            continue
        start = int(line[: line.index(b"-")], 16)
        if start == mappings[k].start:
            kept.append(line + b"\n")
            k += 1
    return mappings, b"".join(kept)


def _group(mappings: list[Mapping], regions: list[Region]) -> list[Group]:
    """Regions by mapping: regions tile the mappings in order."""
    groups: list[Group] = []
    k = 0
    for m in mappings:
        r = regions[k]
        if r.end == m.end:  # most mappings are one region
            groups.append((r,))
            k += 1
            continue
        group = []
        while k < len(regions) and regions[k].end <= m.end:
            group.append(regions[k])
            k += 1
        groups.append(tuple(group))
    return groups
