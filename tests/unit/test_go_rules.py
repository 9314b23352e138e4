"""The Go rules on maps this machine does not make on demand (tests/data/go, see its README).

The live shapes (a pure Go and a cgo process on this machine) are in
tests/integration/test_heap_go.py; these are the others the runtime's design
allows: a fully committed arena (glibc's arena shape), the heap at the second
hint, arm64's hints, a run that does not end on an arena boundary, 32-bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from procmap.classify import classify, runtimes
from procmap.classify import go as go_rules
from procmap.classify.threads import describe_threads
from procmap.kernel.maps import parse_maps
from procmap.model import Detail, Facts, ProcessInfo, ProcessMap, Runtime, Task, ThreadFacts

DATA = Path(__file__).resolve().parents[1] / "data" / "go"
GO = Runtime("go", "/srv/app", False, "section")
GLIBC = Runtime("glibc", "/usr/lib/x86_64-linux-gnu/libc.so.6", True, "name")
PID, TID, GOROUTINE_TID = 100, 101, 102


def classified(name: str, facts: Facts) -> ProcessMap:
    mappings = parse_maps((DATA / name).read_bytes())
    result = classify(mappings, {}, facts)
    info = ProcessInfo(PID, "app", (), "root", 0, 3, "S")
    return ProcessMap(info, mappings, result.regions, result.images, runtimes=facts.runtimes or ())


def by_start(pmap: ProcessMap) -> dict[int, tuple[str, Detail, str | None, int]]:
    return {r.start: (r.kind, r.detail, r.allocator, r.end) for r in pmap.regions}


def test_hints():
    assert go_rules.is_hint(0xC000000000)
    assert go_rules.is_hint(0x1C000000000)
    assert go_rules.is_hint(0x7FC000000000)  # i = 0x7f, the last
    assert go_rules.is_hint(0x4000000000)  # arm64's
    assert go_rules.is_hint(0x7F4000000000)
    assert not go_rules.is_hint(0xC004000000)  # inside the first hint's heap
    assert not go_rules.is_hint(0xBFFFFFFFFF)
    assert not go_rules.is_hint(0x80C000000000)  # past the last hint


def test_a_full_arena_in_a_cgo_process_is_go_heap_not_a_glibc_arena():
    """With libc, glibc's arena rule runs: it takes the C thread's arena, never the Go one."""
    facts = Facts(
        runtimes=(GO, GLIBC),
        thread_sps={PID: 0xC004001F00, TID: 0x7F94385EE000, GOROUTINE_TID: 0xC000801000},
        thread_stack_size=8 << 20,
    )
    pmap = classified("cgo-full-arena.maps", facts)
    regions = by_start(pmap)
    assert regions[0xC000000000] == ("heap", Detail.GO_HEAP_ARENA, "go", 0xC004000000)
    assert regions[0xC004000000] == ("heap", Detail.GO_HEAP_ARENA, "go", 0xC004400000)
    assert regions[0xC004400000] == ("heap", Detail.GO_HEAP_RESERVE, "go", 0xC008000000)
    assert regions[0x7F9418000000][:3] == ("heap", Detail.MALLOC_ARENA, "glibc")
    assert regions[0x7F9418021000][:3] == ("heap", Detail.MALLOC_ARENA_RESERVE, "glibc")
    assert regions[0x7F9437DEF000][:2] == ("stack", Detail.THREAD_STACK)
    # With libc mapping memory too, nothing is called the runtime's data.
    assert not [r for r in pmap.regions if r.detail is Detail.GO_RUNTIME_DATA]

    tasks = (Task(PID, "app", "S"), Task(TID, "app", "S"), Task(GOROUTINE_TID, "app", "S"))
    rows = {t.tid: t for t in describe_threads(pmap, facts, ThreadFacts(tasks, None))}
    assert rows[PID].sp_in == "goroutine-stack" and rows[PID].stack.detail is Detail.MAIN_STACK
    assert rows[GOROUTINE_TID].sp_in == "goroutine-stack" and rows[GOROUTINE_TID].stack is None
    assert rows[TID].sp_in == "stack" and rows[TID].used is not None


def test_the_heap_at_the_second_hint():
    pmap = classified("second-hint.maps", Facts(runtimes=(GO,)))
    regions = by_start(pmap)
    assert regions[0xC000000000][1] is Detail.POSIX_SHM  # not Go's: not anonymous
    assert regions[0x1C000000000] == ("heap", Detail.GO_HEAP_ARENA, "go", 0x1C000400000)
    assert regions[0x1C000400000] == ("heap", Detail.GO_HEAP_RESERVE, "go", 0x1C004000000)
    # A pure Go process: the rest of its anonymous memory is the runtime's own.
    assert regions[0x7F8C00000000][:3] == ("mmap", Detail.GO_RUNTIME_DATA, "go")


def test_the_heap_on_arm64():
    """Go 1.19 on arm64 starts its heap at 0x4000000000, two arenas here."""
    pmap = classified("arm64.maps", Facts(runtimes=(GO,)))
    regions = by_start(pmap)
    assert regions[0x4000000000] == ("heap", Detail.GO_HEAP_ARENA, "go", 0x4004000000)
    assert regions[0x4004000000] == ("heap", Detail.GO_HEAP_ARENA, "go", 0x4004800000)
    assert regions[0x4004800000] == ("heap", Detail.GO_HEAP_RESERVE, "go", 0x4008000000)
    assert regions[0xFFFF8C000000][:3] == ("mmap", Detail.GO_RUNTIME_DATA, "go")


def test_only_whole_arenas_from_a_hint_are_claimed():
    pmap = classified("ragged.maps", Facts(runtimes=(GO,)))
    regions = by_start(pmap)
    assert regions[0xC000000000] == ("heap", Detail.GO_HEAP_ARENA, "go", 0xC004000000)
    assert regions[0xC004000000] == ("heap", Detail.GO_HEAP_RESERVE, "go", 0xC008000000)
    # The tail past the last whole arena: not the heap (its mapping is partly
    # claimed, so the pure-Go rule leaves it too).  A mapping that starts at no
    # hint: not the heap either, the runtime's data by the pure-Go rule.
    assert regions[0xC008000000][:3] == ("mmap", Detail.RESERVED, None)
    assert regions[0xC010000000][:3] == ("mmap", Detail.GO_RUNTIME_DATA, "go")


@pytest.mark.parametrize("name", ["cgo-full-arena.maps", "ragged.maps"])
def test_32_bit_has_no_fixed_arenas(name):
    """On 32-bit the hints follow the program's end: nothing is claimed as the Go heap."""
    pmap = classified(name, Facts(pointer_size=4, runtimes=(GO,)))
    assert not [r for r in pmap.regions if r.allocator == "go" and r.kind == "heap"]


def test_without_the_go_runtime_nothing_is_go():
    """The rules are Go's: a process with no Go image keeps today's kinds at the same addresses."""
    pmap = classified("cgo-full-arena.maps", Facts(runtimes=(GLIBC,)))
    assert by_start(pmap)[0xC000000000][:3] == ("heap", Detail.MALLOC_ARENA, "glibc")
    assert not [r for r in pmap.regions if r.allocator == "go"]


def test_a_window_that_cuts_the_heap_is_widened_to_its_hint():
    """The sampler classifies windows: one inside the heap's run must reach back to its hint."""
    maps = parse_maps((DATA / "cgo-full-arena.maps").read_bytes())
    starts = [m.start for m in maps]
    first, middle, reserve = (starts.index(a) for a in (0xC000000000, 0xC004000000, 0xC004400000))
    assert runtimes.run_bounds(maps, middle, middle + 1) == (first, reserve + 1)
    assert runtimes.run_bounds(maps, reserve, reserve + 1) == (first, reserve + 1)
    # A window alone is not the heap: widened, it is.
    alone = go_rules.early(maps[middle : middle + 1], Facts(runtimes=(GO,)), GO)
    assert not list(alone)
    lo, hi = runtimes.run_bounds(maps, middle, middle + 1)
    widened = go_rules.early(maps[lo:hi], Facts(runtimes=(GO,)), GO)
    assert [r.start for r in widened] == [0xC000000000, 0xC004000000, 0xC004400000]
    # Outside any run: unchanged.
    assert runtimes.run_bounds(maps, 0, 1) == (0, 1)
    assert runtimes.run_bounds(maps, len(maps) - 1, len(maps)) == (len(maps) - 1, len(maps))
