"""The Go runtime's memory, from the layout its design fixes.

Pure.  Go 1.x on 64-bit Linux (runtime/malloc.go, mallocinit) asks the kernel
for its heap at fixed hint addresses: 0x00c0<<32 | i<<40 for i = 0 .. 0x7f
(0xc000000000, 0x1c000000000, ... 0x7fc000000000; arm64 uses the same hints on
Linux).  The heap grows from the first hint upward in whole arenas of
heapArenaBytes (64 MiB on 64-bit Linux): mheap.sysAlloc reserves an arena
PROT_NONE at the hint (sysReserve) and makes the part it needs read-write
(sysMap); it never gives an arena back to the kernel, it only MADV_DONTNEEDs
free pages inside it.  A reservation that does not land on its hint is
dropped and the next hint tried, so the heap of one hint is one unbroken run
of anonymous mappings starting at the hint.  Goroutine stacks are spans of
that heap (runtime/stack.go allocates them from mheap), and so are the g0
stacks of the threads of a program without cgo.

What the rules cannot know from the maps: a mapping at a hint that Go did not
make (a C library asking for that very address).  So the arenas are heuristic.
On 32-bit the arenas go wherever the kernel puts them (the hints follow the
program's end): nothing there is claimed, and the memory keeps the kinds of
any process.

The runtime's own data off the heap (the arena index, heapArena metadata with
the GC bitmaps, the page allocator's summaries, persistentalloc chunks) is
anonymous memory the runtime maps wherever the kernel puts it; its sizes
change from one Go release to the next.  In a pure Go process (no libc, no
other allocator: CGO_ENABLED=0) only the runtime maps anonymous memory, so
what no other rule took is the runtime's; with cgo, libc maps memory too and
the two cannot be told apart, so it stays anonymous.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..model import Detail, Facts, HeapRange, Mapping, Runtime

# runtime/malloc.go (Go 1.11 to 1.22 at least): heapArenaBytes on 64-bit Linux.
ARENA_BYTES = 64 << 20
# The arena hints, 0x00c0<<32 | i<<40 for i in 0..0x7f (mallocinit, 64-bit).
HINT_LOW = 0x00C0 << 32
HINT_STEP = 1 << 40
HINT_COUNT = 0x80


def hint_of(address: int) -> int | None:
    """The arena hint whose window holds `address` (a window runs from one hint to the next)."""
    if address < HINT_LOW:
        return None
    i = (address - HINT_LOW) // HINT_STEP
    return HINT_LOW + i * HINT_STEP if i < HINT_COUNT else None


def early(maps: Sequence[Mapping], facts: Facts, runtime: Runtime) -> Iterable[HeapRange]:
    """The heap arenas: the run of anonymous mappings from each arena hint up, in whole arenas.

    The committed (rw-p) part is GO_HEAP_ARENA, the reserved (---p) part
    GO_HEAP_RESERVE.  O(number of mappings), one pass.
    """
    if facts.pointer_size != 8:
        return []  # 32-bit: the arenas have no fixed place
    out: list[HeapRange] = []
    run: list[Mapping] = []  # the run being followed, from a hint upward
    for m in maps:
        if run and m.start == run[-1].end and _arena_like(m):
            run.append(m)
            continue
        if run:
            _claim_run(run, out)
            run = []
        if _arena_like(m) and hint_of(m.start) == m.start:
            run.append(m)
    if run:
        _claim_run(run, out)
    return out


def _arena_like(m: Mapping) -> bool:
    return m.path is None and m.inode == 0 and m.perms in ("rw-p", "---p")


def _claim_run(run: list[Mapping], out: list[HeapRange]) -> None:
    """The whole arenas of a run: Go reserves whole arenas, so a tail past the last is not its."""
    base = run[0].start
    end = base + (run[-1].end - base) // ARENA_BYTES * ARENA_BYTES
    for m in run:
        if m.start >= end:
            break
        detail = Detail.GO_HEAP_ARENA if m.perms == "rw-p" else Detail.GO_HEAP_RESERVE
        out.append(HeapRange(m.start, min(m.end, end), "heap", detail, "go", True))


def late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterable[HeapRange]:
    """In a pure Go process, the anonymous private memory no other rule took: the runtime's data.

    Pure Go: every runtime found is Go's (no libc, hence no malloc and no
    pthread stacks).  A program that calls mmap itself (syscall.Mmap) makes
    memory this rule cannot tell from the runtime's: heuristic.
    """
    runtimes = facts.runtimes
    if not runtimes or any(r.name != "go" for r in runtimes):
        return []
    return [
        HeapRange(m.start, m.end, "mmap", Detail.GO_RUNTIME_DATA, "go", True)
        for i, m in enumerate(maps)
        if m.path is None and m.inode == 0 and m.perms[3] == "p" and free(i)
    ]
