"""jemalloc, tcmalloc and mimalloc: their heaps, found by the shapes their designs give them.

Pure.  None of the three tells the kernel which mappings are its own, and
procmap reads none of their internal tables, so every range here is inferred
from layout (heuristic=True).  What each rule takes, among the anonymous
private mappings (no file, no name) that no stronger rule claimed:

- mimalloc (early): mappings in its aligned hint area, 2 TiB to 30 TiB (plus the
  1 GiB a hinted block may reach past it), in runs that start on a 4 MiB
  boundary.  mimalloc asks mmap() for each segment (and, from 2.1, each arena)
  at an address it counts up through that area, aligned to the segment size
  (4 MiB in 1.x, 32 MiB in 2.x); the kernel itself places nothing there unless
  asked (mimalloc src/os.c, mi_os_get_aligned_hint).
- mimalloc (late): elsewhere, runs that start on a 32 MiB boundary and hold at
  least 32 MiB: a 2.x segment whose hint was refused, or a block over 1 GiB
  (never hinted), which mimalloc aligns by mapping more and trimming.
- jemalloc (late): runs of at least 2 MiB.  With opt.retain (the default on
  64-bit Linux) jemalloc grows each arena by mapping runs of at least a huge
  page (2 MiB) and its metadata in huge-page blocks (src/extent.c,
  extent_grow_retained; src/base.c, base_block_alloc), and never unmaps them.
- tcmalloc (late): read-write runs of at least 1 MiB: what it maps when sbrk
  fails (or with TCMALLOC_SKIP_SBRK), its page heap in steps of at least
  kMinSystemAlloc (1 MiB) (gperftools src/system-alloc.cc, MmapSysAllocator;
  page_heap.cc, GrowHeap).  The page heap's steps are aligned to tcmalloc's
  8 KiB page, but its metadata's are only to the system's page, and the
  kernel merges the two into one mapping: alignment tells nothing.  Its brk
  heap is [heap], which the classifier already gives to the allocator that
  answers malloc (runtimes.brk_owner).

A run is consecutive mappings with no gap between them, each read-write or
no-access (the kernel splits one block into several mappings where an
allocator decommits part of it with PROT_NONE).  Read-write parts are the
allocator's heap, no-access parts its reserve (Detail.HEAP_RESERVE).  A run
of no-access mappings alone is taken only in mimalloc's hint area: elsewhere
it is anyone's reservation.

What no rule can tell: a program's own anonymous mmap() of the same shape (a
4 MiB buffer in a jemalloc process is taken as jemalloc's).  What the rules
leave: each allocator's small mappings (jemalloc with opt.retain off maps each
extent apart; mimalloc's per-thread data), which stay anonymous mmaps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..model import Detail, Facts, HeapRange, Mapping, Runtime

_MIB = 1 << 20
_TIB = 1 << 40

# mimalloc's hint area (src/os.c: MI_HINT_BASE, MI_HINT_MAX; a hinted block is
# at most 1 GiB, plus one segment of gap in a secure build).
_MI_HINT_START = 2 * _TIB
_MI_HINT_END = 30 * _TIB + (1 << 30) + 32 * _MIB
_MI_MIN_SEGMENT = 4 * _MIB  # mimalloc 1.x; 2.x segments are 32 MiB
_MI_SEGMENT = 32 * _MIB  # mimalloc 2.x (MI_SEGMENT_SHIFT = 9 + MI_SEGMENT_SLICE_SHIFT)
_JE_HUGEPAGE = 2 * _MIB  # the least jemalloc maps with opt.retain (LG_HUGEPAGE on x86-64)
_TC_MIN_SYSTEM_ALLOC = 1 * _MIB  # kMinSystemAlloc: kMaxPages (128) of 8 KiB pages

_RW, _NONE = "rw-p", "---p"
_ANY = frozenset((_RW, _NONE))
_RW_ONLY = frozenset((_RW,))


def _everything(i: int) -> bool:
    return True


def _runs(
    maps: Sequence[Mapping], free: Callable[[int], bool], perms: frozenset[str]
) -> Iterator[tuple[int, int]]:
    """(first, past last) indexes of runs of free anonymous private mappings with `perms`."""
    first = -1
    for i, m in enumerate(maps):
        ok = m.perms in perms and m.is_anonymous and free(i)
        if ok and first >= 0 and maps[i - 1].end == m.start:
            continue
        if first >= 0:
            yield first, i
        first = i if ok else -1
    if first >= 0:
        yield first, len(maps)


def _ranges(
    maps: Sequence[Mapping], first: int, last: int, detail: Detail, allocator: str
) -> Iterator[HeapRange]:
    """One range per mapping of a run: read-write ones `detail`, no-access ones reserve."""
    for m in maps[first:last]:
        d = detail if m.perms == _RW else Detail.HEAP_RESERVE
        yield HeapRange(m.start, m.end, "heap", d, allocator, True)


def _has_rw(maps: Sequence[Mapping], first: int, last: int) -> bool:
    return any(m.perms == _RW for m in maps[first:last])


def mimalloc_early(maps: Sequence[Mapping], facts: Facts, runtime: Runtime) -> Iterator[HeapRange]:
    """mimalloc's segments in its aligned hint area, above 2 TiB (64-bit only)."""
    if facts.pointer_size != 8:
        return
    for first, last in _runs(maps, _everything, _ANY):
        start, end = maps[first].start, maps[last - 1].end
        if start >= _MI_HINT_START and end <= _MI_HINT_END and start % _MI_MIN_SEGMENT == 0:
            yield from _ranges(maps, first, last, Detail.MIMALLOC_HEAP, "mimalloc")


def mimalloc_late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterator[HeapRange]:
    """mimalloc 2.x segments the kernel placed: 32 MiB-aligned runs of 32 MiB or more."""
    if facts.pointer_size != 8:
        return
    for first, last in _runs(maps, free, _ANY):
        start, end = maps[first].start, maps[last - 1].end
        if start % _MI_SEGMENT == 0 and end - start >= _MI_SEGMENT and _has_rw(maps, first, last):
            yield from _ranges(maps, first, last, Detail.MIMALLOC_HEAP, "mimalloc")


def jemalloc_late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterator[HeapRange]:
    """jemalloc's extents and metadata: runs of at least a huge page (2 MiB)."""
    for first, last in _runs(maps, free, _ANY):
        if maps[last - 1].end - maps[first].start >= _JE_HUGEPAGE and _has_rw(maps, first, last):
            yield from _ranges(maps, first, last, Detail.JEMALLOC_HEAP, "jemalloc")


def tcmalloc_late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterator[HeapRange]:
    """tcmalloc's mmap()ed page heap and metadata: read-write runs of 1 MiB or more."""
    for first, last in _runs(maps, free, _RW_ONLY):
        if maps[last - 1].end - maps[first].start >= _TC_MIN_SYSTEM_ALLOC:
            yield from _ranges(maps, first, last, Detail.TCMALLOC_HEAP, "tcmalloc")
