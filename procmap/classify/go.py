"""The Go runtime's memory, from the layout its design fixes.

Pure.  Go on 64-bit Linux (runtime/malloc.go, mallocinit) asks the kernel for
its heap at fixed hint addresses: 0x00c0<<32 | i<<40 for i = 0 .. 0x7f
(0xc000000000, 0x1c000000000, ... 0x7fc000000000); on arm64, as of Go 1.19,
0x0040<<32 | i<<40 (0x4000000000 ...: below 0xc000000000, which a kernel with
39-bit addresses cannot give).  The heap grows from the first hint upward in
whole arenas of heapArenaBytes (64 MiB on 64-bit Linux): mheap.sysAlloc
reserves arenas PROT_NONE at the hint (sysReserve) and mheap.grow makes the
part it needs read-write (sysMap), in multiples of 4 MiB; it never gives an
arena back to the kernel, it only MADV_DONTNEEDs free pages inside it (the
kernel may also split a run at 2 MiB steps, where the runtime changes its
huge-page advice).  A reservation that does not land on its hint is
dropped and the next hint tried, so the heap of one hint is one unbroken run
of anonymous mappings starting at the hint.  Goroutine stacks are spans of
that heap (runtime/stack.go allocates them from mheap), and so are the g0
stacks of the threads of a program without cgo.

What the rules cannot know from the maps: a mapping at a hint that Go did not
make (a C library asking for that very address), or which architecture's
hints apply (both are accepted: a run must start exactly at one).  So the
arenas are heuristic.  A program built with the race detector uses hints
0x00c0<<32 | i<<32 instead: its heap starts at 0xc000000000 as well.
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

# heapArenaBytes on 64-bit Linux: arenas came with Go 1.11; read in Go 1.19's malloc.go.
ARENA_BYTES = 64 << 20
# The arena hints, base | i<<40 for i in 0..0x7f (mallocinit, 64-bit): base
# 0x00c0<<32 on amd64 and most others, 0x0040<<32 on arm64 (Go 1.19).
HINT_BASES = frozenset((0x00C0 << 32, 0x0040 << 32))
HINT_STEP_BITS = 40
HINT_COUNT = 0x80


def is_hint(address: int) -> bool:
    """Whether `address` is one of the runtime's arena hints on 64-bit Linux."""
    return (address >> HINT_STEP_BITS) < HINT_COUNT and (
        address & ((1 << HINT_STEP_BITS) - 1)
    ) in HINT_BASES


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
        if run and m.start == run[-1].end and m.is_plain_anonymous:
            run.append(m)
            continue
        if run:
            _claim_run(run, out)
            run = []
        if m.is_plain_anonymous and is_hint(m.start):
            run.append(m)
    if run:
        _claim_run(run, out)
    return out


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
        if m.is_anonymous and m.perms[3] == "p" and free(i)
    ]
