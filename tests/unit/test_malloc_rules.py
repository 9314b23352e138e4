"""jemalloc's, tcmalloc's and mimalloc's heaps, found by shape (classify.mallocs).

Two kinds of input: the maps of samples/mallocs.c saved from real processes
(tests/data/mallocs/NAME.maps, with NAME.threads: each thread's TID and stack
pointer as /proc/PID/task/TID/syscall gave them), and small maps texts written
here, each on the edge of one rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from procmap.classify import classify, mallocs
from procmap.kernel.maps import parse_maps
from procmap.model import Detail, Facts, Location, Mapping, Region, Runtime

DATA = Path(__file__).resolve().parents[1] / "data" / "mallocs"
MIB = 1 << 20
TIB = 1 << 40
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def runtimes(name: str, malloc: bool = True) -> tuple[Runtime, ...]:
    """glibc's libc, and `name` answering malloc (or, malloc=False, glibc answering it)."""
    return (
        Runtime("glibc", LIBC, not malloc, "name"),
        Runtime(name, f"/usr/lib/x86_64-linux-gnu/lib{name}.so.2", malloc, "name"),
    )


def saved(name: str, allocator: str, malloc: bool = True) -> list[Region]:
    """The saved maps of a sample, classified as procmap classifies the live process
    (with no ELF file readable: images by names and permissions)."""
    maps = parse_maps((DATA / f"{name}.maps").read_bytes())
    threads = (DATA / f"{name}.threads").read_text().split("\n")
    sps = {int(tid): int(sp, 16) for tid, sp in (line.split() for line in threads if line)}
    facts = Facts(thread_sps=sps, thread_stack_size=8 * MIB, runtimes=runtimes(allocator, malloc))
    return classify(maps, {}, facts).regions


def anonymous(regions: list[Region]) -> list[tuple[int, int, str, str, str | None, bool]]:
    """The regions of anonymous memory (no file, no kernel name), with what they were found to be."""
    return [
        (r.start, r.end, r.kind, r.detail.value, r.allocator, r.heuristic)
        for r in regions
        if r.path is None and r.kind != "bss"
    ]


def test_jemalloc_saved_sample() -> None:
    """The four runs jemalloc grew (56, 9, 50 and 13 MiB: its stats.mapped plus
    stats.retained, 128 MiB) are its heap; the second thread's stack and guard stay
    a stack; the small ones (ld.so's, the threads' TLS) stay mmaps."""
    assert anonymous(saved("jemalloc", "jemalloc")) == [
        (0x7F5951800000, 0x7F5955000000, "heap", "jemalloc-heap", "jemalloc", True),
        (0x7F5955100000, 0x7F5955A00000, "heap", "jemalloc-heap", "jemalloc", True),
        (0x7F5955BFF000, 0x7F5955C00000, "stack", "guard-page", None, False),
        (0x7F5955C00000, 0x7F5956400000, "stack", "thread-stack", None, False),
        (0x7F5956400000, 0x7F5959600000, "heap", "jemalloc-heap", "jemalloc", True),
        (0x7F5959700000, 0x7F595A400000, "heap", "jemalloc-heap", "jemalloc", True),
        (0x7F595A717000, 0x7F595A71E000, "mmap", "anonymous", None, False),
        (0x7F595ACF6000, 0x7F595ACF8000, "mmap", "anonymous", None, False),
    ]


def test_jemalloc_prefixed_beside_glibc() -> None:
    """jemalloc linked in with the je_ prefix (as redis): glibc answers malloc, so its
    arena rule may run, and jemalloc's runs are still jemalloc's."""
    regions = saved("jemalloc-prefixed", "jemalloc", malloc=False)
    heaps = [r for r in regions if r.kind == "heap" and r.path is None]
    assert [(r.size // MIB, r.allocator) for r in heaps] == [
        (56, "jemalloc"),
        (9, "jemalloc"),
        (50, "jemalloc"),
        (13, "jemalloc"),
    ]
    assert not any(r.detail is Detail.MALLOC_ARENA for r in regions)


def test_tcmalloc_saved_sample_without_sbrk() -> None:
    """tcmalloc run with TCMALLOC_SKIP_SBRK=true maps its page heap: two runs, one each
    side of the second thread's stack, and its [heap] is its own brk heap."""
    regions = saved("tcmalloc-mmap", "tcmalloc")
    assert anonymous(regions) == [
        (0x7F5B9E6FE000, 0x7F5BA10F6000, "heap", "tcmalloc-heap", "tcmalloc", True),
        (0x7F5BA10F7000, 0x7F5BA10F8000, "stack", "guard-page", None, False),
        (0x7F5BA10F8000, 0x7F5BA18F8000, "stack", "thread-stack", None, False),
        (0x7F5BA18F8000, 0x7F5BA42F0000, "heap", "tcmalloc-heap", "tcmalloc", True),
        (0x7F5BA461B000, 0x7F5BA461E000, "mmap", "anonymous", None, False),
        (0x7F5BA4A50000, 0x7F5BA4A54000, "mmap", "anonymous", None, False),
    ]
    (brk,) = [r for r in regions if r.path == "[heap]"]
    assert (brk.detail, brk.allocator, brk.description) == (
        Detail.BRK_HEAP,
        "tcmalloc",
        "brk heap (tcmalloc)",
    )


def test_mimalloc_saved_sample() -> None:
    """mimalloc's segments, in its hint area above 2 TiB: committed parts its heap, the
    no-access part of the second thread's segment its reserve."""
    assert anonymous(saved("mimalloc", "mimalloc")) == [
        (0x57932000000, 0x57936C00000, "heap", "mimalloc-heap", "mimalloc", True),
        (0x57938000000, 0x57938600000, "heap", "mimalloc-heap", "mimalloc", True),
        (0x57938600000, 0x5793A000000, "heap", "heap-reserve", "mimalloc", True),
        (0x5793A000000, 0x5793CC00000, "heap", "mimalloc-heap", "mimalloc", True),
        (0x7FCB745C8000, 0x7FCB745C9000, "stack", "guard-page", None, False),
        (0x7FCB745C9000, 0x7FCB74DC9000, "stack", "thread-stack", None, False),
        (0x7FCB74DC9000, 0x7FCB74DCC000, "mmap", "anonymous", None, False),
        (0x7FCB75017000, 0x7FCB75019000, "mmap", "anonymous", None, False),
        (0x7FCB75019000, 0x7FCB7501B000, "mmap", "anonymous", None, False),
    ]
    reserve = [r for r in saved("mimalloc", "mimalloc") if r.detail is Detail.HEAP_RESERVE]
    assert reserve[0].description == "mimalloc heap, reserved, not yet committed"


# --- rules on the edge ---------------------------------------------------------------


def line(start: int, end: int, perms: str = "rw-p", path: str = "") -> bytes:
    inode = "0" if not path.startswith("/") else "42"
    dev = "00:00" if inode == "0" else "fe:00"
    return f"{start:x}-{end:x} {perms} 00000000 {dev} {inode} {path}\n".encode()


def heaps(text: bytes, allocator: str, malloc: bool = True, **facts: object) -> list[tuple]:
    """(start, end, detail, allocator) of each heap region the whole classifier finds."""
    f = Facts(runtimes=runtimes(allocator, malloc), thread_stack_size=8 * MIB, **facts)  # type: ignore[arg-type]
    regions = classify(parse_maps(text), {}, f).regions
    return [(r.start, r.end, r.detail.value, r.allocator) for r in regions if r.kind == "heap"]


BASE = 0x7F0000000000


def test_jemalloc_takes_runs_of_a_huge_page_and_more() -> None:
    text = (
        line(BASE, BASE + 2 * MIB - 4096)  # under 2 MiB: the program's, or ld.so's
        + line(BASE + 4 * MIB, BASE + 6 * MIB)  # 2 MiB: the least jemalloc grows by
        + line(BASE + 8 * MIB, BASE + 9 * MIB)  # two mappings, one run of 3 MiB,
        + line(BASE + 9 * MIB, BASE + 11 * MIB, "---p")  # part of it decommitted
        + line(BASE + 12 * MIB, BASE + 16 * MIB, "---p")  # no access alone: anyone's
        + line(BASE + 16 * MIB + 4096, BASE + 20 * MIB, "rw-s")  # shared: not a heap
        + line(BASE + 20 * MIB, BASE + 24 * MIB, "rw-p", "/data/file")  # a file
        + line(BASE + 24 * MIB, BASE + 28 * MIB, "rw-p", "[anon:buffer]")  # a name
    )
    assert heaps(text, "jemalloc") == [
        (BASE + 4 * MIB, BASE + 6 * MIB, "jemalloc-heap", "jemalloc"),
        (BASE + 8 * MIB, BASE + 9 * MIB, "jemalloc-heap", "jemalloc"),
        (BASE + 9 * MIB, BASE + 11 * MIB, "heap-reserve", "jemalloc"),
    ]


def test_no_arena_where_jemalloc_answers_malloc() -> None:
    """A glibc arena's exact shape (64 MiB-aligned, read-write then no access) in a
    process whose malloc is jemalloc is jemalloc's; with glibc's malloc, glibc's."""
    arena = 0x7F0004000000
    text = line(arena, arena + 1 * MIB) + line(arena + 1 * MIB, arena + 64 * MIB, "---p")
    assert heaps(text, "jemalloc") == [
        (arena, arena + MIB, "jemalloc-heap", "jemalloc"),
        (arena + MIB, arena + 64 * MIB, "heap-reserve", "jemalloc"),
    ]
    assert [h[2] for h in heaps(text, "jemalloc", malloc=False)] == [
        "malloc-arena",
        "malloc-arena-reserve",
    ]


def test_thread_stacks_are_claimed_first() -> None:
    """A thread's 8 MiB stack has jemalloc's shape: its stack pointer makes it a stack;
    with no thread's stack pointer known, the shape of guard + stack does."""
    text = line(BASE, BASE + 4096, "---p") + line(BASE + 4096, BASE + 4096 + 8 * MIB)
    assert heaps(text, "jemalloc", thread_sps={7: BASE + 8 * MIB}) == []
    assert heaps(text, "jemalloc", unknown_threads=(7,)) == []
    assert heaps(text, "tcmalloc", unknown_threads=(7,)) == []


def test_tcmalloc_takes_read_write_runs_of_a_system_alloc_and_more() -> None:
    text = (
        line(BASE, BASE + MIB - 4096)  # under kMinSystemAlloc
        + line(BASE + 2 * MIB, BASE + 3 * MIB)  # 1 MiB
        + line(BASE + 4 * MIB + 4096, BASE + 6 * MIB + 4096)  # page heap + metadata, merged
        + line(BASE + 8 * MIB, BASE + 12 * MIB, "---p")  # tcmalloc reserves nothing
    )
    assert heaps(text, "tcmalloc") == [
        (BASE + 2 * MIB, BASE + 3 * MIB, "tcmalloc-heap", "tcmalloc"),
        (BASE + 4 * MIB + 4096, BASE + 6 * MIB + 4096, "tcmalloc-heap", "tcmalloc"),
    ]


def test_mimalloc_hint_area() -> None:
    seg = 0x20000000000 + 4 * MIB * 7  # in the hint area, on a 4 MiB boundary
    text = (
        line(0x1FFFF000000, 0x20000000000)  # below 2 TiB: not hinted (nor 32 MiB)
        + line(seg, seg + 2 * MIB)
        + line(seg + 2 * MIB, seg + 32 * MIB, "---p")
        + line(seg + 64 * MIB, seg + 96 * MIB, "---p")  # a segment wholly decommitted
        + line(seg + 128 * MIB + 4096, seg + 130 * MIB)  # off the segment boundary
        + line(31 * TIB, 31 * TIB + 32 * MIB)  # past the hint area
    )
    assert heaps(text, "mimalloc") == [
        (seg, seg + 2 * MIB, "mimalloc-heap", "mimalloc"),
        (seg + 2 * MIB, seg + 32 * MIB, "heap-reserve", "mimalloc"),
        (seg + 64 * MIB, seg + 96 * MIB, "heap-reserve", "mimalloc"),
        (31 * TIB, 31 * TIB + 32 * MIB, "mimalloc-heap", "mimalloc"),  # the late rule's shape
    ]


def test_mimalloc_segments_the_kernel_placed() -> None:
    """Outside the hint area: 32 MiB-aligned runs of 32 MiB and more (a block over 1 GiB)."""
    big = 0x7F0040000000
    text = (
        line(big - 64 * MIB, big - 32 * MIB - 4096)  # aligned, under a segment
        + line(big - 16 * MIB, big + 16 * MIB)  # a segment's size, off its alignment
        + line(big + 32 * MIB, big + 32 * MIB + (1 << 30) + 64 * 1024)  # a 1 GiB block
    )
    assert heaps(text, "mimalloc") == [
        (big + 32 * MIB, big + 32 * MIB + (1 << 30) + 64 * 1024, "mimalloc-heap", "mimalloc")
    ]


def test_mimalloc_on_32_bit_has_no_hint_area() -> None:
    seg = 0x20000000000
    maps = parse_maps(line(seg, seg + 32 * MIB))
    facts = Facts(pointer_size=4, runtimes=runtimes("mimalloc"))
    rt = facts.runtimes[1]  # type: ignore[index]
    assert list(mallocs.mimalloc_early(maps, facts, rt)) == []
    assert list(mallocs.mimalloc_late(maps, lambda i: True, facts, rt)) == []


def test_rules_ask_free_and_are_linear() -> None:
    """The late rules take only what `free` says is free, one pass over the mappings."""
    maps: list[Mapping] = parse_maps(
        b"".join(line(BASE + k * 4 * MIB, BASE + (k + 1) * 4 * MIB) for k in range(4))
    )
    asked: list[int] = []

    def free(i: int) -> bool:
        asked.append(i)
        return i != 1

    rt = runtimes("jemalloc")[1]
    got = list(mallocs.jemalloc_late(maps, free, Facts(), rt))
    assert [(r.start, r.end) for r in got] == [
        (m.start, m.end) for m in (maps[0], maps[2], maps[3])
    ]
    assert sorted(asked) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "rule", [mallocs.jemalloc_late, mallocs.tcmalloc_late, mallocs.mimalloc_late]
)
def test_late_rules_on_no_mappings(rule) -> None:
    assert list(rule([], lambda i: True, Facts(), runtimes("jemalloc")[1])) == []


@pytest.mark.parametrize(
    "detail, allocator, in_table, in_where",
    [
        (Detail.BRK_HEAP, "glibc", "brk heap", "brk heap (glibc malloc)"),
        (Detail.BRK_HEAP, "tcmalloc", "brk heap (tcmalloc)", "brk heap (tcmalloc)"),
        (Detail.MALLOC_ARENA, "glibc", "malloc arena", "malloc arena (glibc malloc)"),
        (Detail.JEMALLOC_HEAP, "jemalloc", "jemalloc heap", "jemalloc heap"),
        (Detail.HEAP_RESERVE, "mimalloc", *(["mimalloc heap, reserved, not yet committed"] * 2)),
        (Detail.BRK_HEAP, None, "brk heap", "brk heap"),
    ],
)
def test_heap_words_name_the_allocator_once(detail, allocator, in_table, in_where):
    """The table names another allocator's brk heap; where's answer names every owner, once."""
    r = Region(0x1000, 0x2000, "rw-p", 0, "00:00", 0, None, "heap", detail, allocator=allocator)
    assert r.description == in_table
    assert Location(0x1800, r).description == in_where
