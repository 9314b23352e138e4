"""V8's memory (node, and any program that embeds V8), found by the shapes its design gives it.

Pure.  procmap reads none of V8's tables, so every range here is inferred
from layout (heuristic=True), and only in a process where runtime "v8" was
identified.  What V8 (11.x, node 20; x86-64) does that the rules rest on:

- Heap pages.  V8 allocates its heap in pages of MemoryChunk::kPageSize =
  1 << kPageSizeBits, 256 KiB (kPageSizeBits = 18, src/base/build_config.h),
  each page aligned to its size, so that a page is found from an object's
  address by masking.  Without pointer compression (node's default build)
  each page is its own mmap() at a random hint (MemoryAllocator::
  AllocateAlignedMemory; OS::GetRandomMmapAddr, src/base/platform/
  platform-posix.cc), which on x86-64 is masked with 0x3FFFFFFFF000, below
  64 TiB: an address the kernel, placing memory top-down from near
  0x7fff..., gives to nobody unasked.  A large object gets a page of its own,
  256 KiB-aligned and of the object's size; the read-only space is made
  read-only after start-up (r--p) and its pages trimmed to what they hold.
  The late rule takes the read-write and read-only anonymous private
  mappings below 64 TiB that start on a 256 KiB boundary and that no
  stronger rule took.
- The code range.  On 64-bit, code pages come from one reservation of
  kMaximalCodeRangeSize (src/common/globals.h: on x86-64, 512 MiB; 128 MiB
  with pointer compression and no external code space), based on a 256 KiB
  boundary (CodeRange::InitReservation, page_size = MemoryChunk::kPageSize).
  A code page is a read-write header, a guard page, the code itself (rwx, or
  r-x where V8 write-protects code) and a guard page; V8 copies (remaps) its
  embedded builtins, the binary's own code, near the top of the range
  (CodeRange::RemapEmbeddedBuiltins), a file mapping of the binary.  The
  early rule starts from anonymous executable memory and finds, below it, a
  mapping on a 256 KiB boundary with, above it, a mapping that ends exactly
  the range's size higher, all contiguous.  It claims that range: code as
  JavaScript JIT code, no-access parts as the range's reserve, the page
  headers as V8's heap, the remapped builtins as such.
- The pointer-compression cage (Electron, Chrome, node built with pointer
  compression): one reservation of kPtrComprCageReservationSize, 4 GiB,
  aligned to kPtrComprCageBaseAlignment, 4 GiB (include/v8-internal.h),
  whose pages V8 commits 256 KiB at a time.  The early rule claims the first
  4 GiB of a run of anonymous mappings that starts on a 4 GiB boundary, is at
  least 4 GiB long and holds a read-write page on a 256 KiB boundary.  The
  sandbox (V8_ENABLE_SANDBOX, Chrome) puts the cage inside a 1 TiB
  reservation behind a guard region: that layout is not recognised (its
  pages below 64 TiB are still taken one by one).  Worked out from the
  source, checked only on hand-made maps.

What no rule can tell: a program's own anonymous mapping at a 256 KiB-aligned
address below 64 TiB in a V8 process (asked for with a hint of its own), or
WebAssembly memory V8 reserved at a random hint that happens to start on a
256 KiB boundary.  What the rules leave: the sandbox's and WebAssembly's
reservations, and node's own memory, which comes from glibc's malloc.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..model import Detail, Facts, HeapRange, Mapping, Runtime, strip_deleted

_MIB = 1 << 20
PAGE = 1 << 18  # MemoryChunk::kPageSize: 1 << kPageSizeBits (18)
HINT_END = 0x3FFFFFFFF000 + 0x1000  # OS::GetRandomMmapAddr's mask on x86-64, 46 bits
# kMaximalCodeRangeSize on x86-64: the first without pointer compression (or with an
# external code space), the second with pointer compression and none.
CODE_RANGE_SIZES = (512 * _MIB, 128 * _MIB)
CAGE = 1 << 32  # kPtrComprCageReservationSize, and kPtrComprCageBaseAlignment

_HEAP_PERMS = frozenset(("rw-p", "r--p"))
_CODE_PERMS = frozenset(("rwxp", "r-xp"))
_CAGE_PERMS = frozenset(("rw-p", "r--p", "---p"))
_RANGE_PERMS = frozenset(("rw-p", "r--p", "---p", "rwxp", "r-xp"))


def early(maps: Sequence[Mapping], facts: Facts, runtime: Runtime) -> Iterator[HeapRange]:
    """The code range and the pointer-compression cage: reservations of a size V8 fixes."""
    if facts.pointer_size != 8:
        return
    yield from code_range(maps, runtime)
    yield from cage(maps)


def code_range(maps: Sequence[Mapping], runtime: Runtime) -> Iterator[HeapRange]:
    """The code range that holds each run of anonymous executable memory.

    The range's start is the start of a mapping below the code, on a 256 KiB
    boundary, such that a mapping of the run ends exactly one code range size
    above it: a run can go on below the range (a glibc arena the kernel put
    right under it), so the highest such start is taken.  A range whose last
    no-access part merged with a no-access mapping above it has no such end,
    and is not found.  O(run length) for each run.
    """
    done = 0  # the end of the last run looked at
    for i, m in enumerate(maps):
        if m.start < done or not (m.is_anonymous and m.perms in _CODE_PERMS):
            continue
        last = i
        while last + 1 < len(maps) and maps[last + 1].start == maps[last].end:
            if not _in_range(maps[last + 1], runtime):
                break
            last += 1
        done = maps[last].end
        ends = {x.end for x in maps[i : last + 1]}
        found = None
        j = i
        while found is None and j >= 0:
            start = maps[j].start
            if start % PAGE == 0:
                found = next(((j, start + s) for s in CODE_RANGE_SIZES if start + s in ends), None)
            if j == 0 or maps[j - 1].end != start or not _in_range(maps[j - 1], runtime):
                break
            j -= 1
        if found is not None:
            yield from _code_range_ranges(maps, found[0], maps[found[0]].start, found[1])


def _in_range(m: Mapping, runtime: Runtime) -> bool:
    """An anonymous private mapping a code range is made of, or the remapped builtins."""
    if m.is_anonymous:
        return m.perms in _RANGE_PERMS
    return m.perms == "r-xp" and strip_deleted(m.path or "") == runtime.object


def _code_range_ranges(
    maps: Sequence[Mapping], first: int, start: int, end: int
) -> Iterator[HeapRange]:
    for m in maps[first:]:
        if m.start >= end:
            break
        lo, hi = m.start, min(m.end, end)
        if not m.is_anonymous:
            yield HeapRange(lo, hi, "text", Detail.V8_EMBEDDED_BUILTINS, "v8", True)
        elif m.perms in _CODE_PERMS:
            yield HeapRange(lo, hi, "text", Detail.V8_CODE, "v8", True)
        elif m.perms == "---p":
            yield HeapRange(lo, hi, "text", Detail.V8_CODE_RESERVE, "v8", True)
        else:  # a code page's header: the page's metadata, V8's heap
            yield HeapRange(lo, hi, "heap", Detail.V8_HEAP, "v8", True)


def cage(maps: Sequence[Mapping]) -> Iterator[HeapRange]:
    """The first 4 GiB of a 4 GiB-aligned run of anonymous memory with a V8 page in it."""
    i = 0
    while i < len(maps):
        m = maps[i]
        if not (m.is_anonymous and m.perms in _CAGE_PERMS and m.start % CAGE == 0):
            i += 1
            continue
        last = i
        while last + 1 < len(maps) and maps[last + 1].start == maps[last].end:
            nxt = maps[last + 1]
            if not (nxt.is_anonymous and nxt.perms in _CAGE_PERMS):
                break
            last += 1
        end = m.start + CAGE
        inside = [x for x in maps[i : last + 1] if x.start < end]
        if maps[last].end >= end and any(x.perms == "rw-p" and x.start % PAGE == 0 for x in inside):
            for x in inside:
                detail = Detail.HEAP_RESERVE if x.perms == "---p" else Detail.V8_HEAP
                yield HeapRange(x.start, min(x.end, end), "heap", detail, "v8", True)
        i = last + 1


def late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterator[HeapRange]:
    """V8's heap pages: read-write (or read-only) anonymous mappings at a 256 KiB boundary
    below the hint limit, that no other rule took.  Each mapping is judged alone."""
    if facts.pointer_size != 8:
        return
    for i, m in enumerate(maps):
        if m.start >= HINT_END:
            break  # maps are in address order
        if m.start % PAGE or m.perms not in _HEAP_PERMS or not m.is_anonymous or not free(i):
            continue
        yield HeapRange(m.start, m.end, "heap", Detail.V8_HEAP, "v8", True)
