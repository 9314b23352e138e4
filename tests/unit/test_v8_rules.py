"""V8's heap pages, code range and pointer-compression cage, found by shape (classify.v8).

Two kinds of input: the maps of samples/node/heap.js saved from a real node 20
process (tests/data/v8/node.maps; see the README there), and small maps texts
written here, each on the edge of one rule.
"""

from __future__ import annotations

from pathlib import Path

from procmap.classify import classify, runtimes
from procmap.classify import v8 as v8_rules
from procmap.kernel.maps import parse_maps
from procmap.model import Detail, Facts, Region, Runtime

DATA = Path(__file__).resolve().parents[1] / "data" / "v8"
MIB = 1 << 20
GIB = 1 << 30
KIB = 1 << 10
NODE = "/usr/bin/node"
V8 = Runtime("v8", NODE, False, "symbols")
GLIBC = Runtime("glibc", "/usr/lib/x86_64-linux-gnu/libc.so.6", True, "name")
# The saved process's code range: a glibc arena's reserve ends right where it begins.
CODE_RANGE = 0x7FF590000000


def classified(text: bytes, *found: Runtime, **facts: object) -> list[Region]:
    f = Facts(runtimes=found or (V8, GLIBC), thread_stack_size=8 * MIB, **facts)  # type: ignore[arg-type]
    return classify(parse_maps(text), {}, f).regions


def saved(*found: Runtime) -> list[Region]:
    return classified((DATA / "node.maps").read_bytes(), *found)


def v8(regions: list[Region]) -> list[Region]:
    return [r for r in regions if r.allocator == "v8"]


def test_saved_sample_heap_pages() -> None:
    """195 read-write pages (183 of 256 KiB, a page trimmed to 224 KiB, eleven
    large-object pages) and the read-only space's page: every one on a 256 KiB
    boundary below 64 TiB, and nothing else there."""
    regions = saved()
    pages = [r for r in v8(regions) if r.start < v8_rules.HINT_END]
    assert {(r.kind, r.detail, r.heuristic) for r in pages} == {("heap", Detail.V8_HEAP, True)}
    assert sorted({r.perms for r in pages}) == ["r--p", "rw-p"]
    assert len([r for r in pages if r.perms == "rw-p"]) == 195
    assert [r.size for r in pages if r.perms == "r--p"] == [52 * KIB]
    assert len([r for r in pages if r.size == 256 * KIB]) == 183
    assert sorted(r.size // KIB for r in pages if r.size != 256 * KIB) == [
        52,
        224,
        264,
        272,
        604,
        788,
        788,
        900,
        1032,
        1032,
        1348,
        2020,
        8200,
    ]
    assert all(r.start % v8_rules.PAGE == 0 for r in pages)
    low = [r for r in regions if r.start < v8_rules.HINT_END and r.path is None and r.kind != "bss"]
    assert low == pages  # node's bss, past its data, stays bss


def test_saved_sample_code_range_over_an_arena() -> None:
    """The code range is 512 MiB from its first page's header, though the kernel put
    it right on top of a glibc arena (one run of anonymous mappings): the arena stays
    glibc's, and the range is V8's to its last byte."""
    regions = saved()
    end = CODE_RANGE + 512 * MIB
    inside = [r for r in regions if CODE_RANGE <= r.start < end]
    assert sum(r.size for r in inside) == 512 * MIB
    assert inside[0].start == CODE_RANGE and inside[-1].end == end
    shapes = [(r.perms, r.kind, r.detail, r.allocator) for r in inside if r.path is None]
    assert shapes == [
        ("rw-p", "heap", Detail.V8_HEAP, "v8"),  # the first code page's header
        ("---p", "text", Detail.V8_CODE_RESERVE, "v8"),  # its guard page
        ("rwxp", "text", Detail.V8_CODE, "v8"),
        ("---p", "text", Detail.V8_CODE_RESERVE, "v8"),  # guard, then the range's reserve
        ("---p", "text", Detail.V8_CODE_RESERVE, "v8"),  # past the remapped builtins
    ]
    # With no ELF file readable, the remapped builtins are node's code by name and
    # permissions (a stronger rule); live, with node's headers read, they are V8's.
    (builtins,) = [r for r in inside if r.path is not None]
    assert (builtins.path, builtins.kind) == (NODE, "text")
    below = [r for r in regions if CODE_RANGE - 64 * MIB <= r.start < CODE_RANGE]
    assert [(r.detail, r.allocator) for r in below] == [
        (Detail.MALLOC_ARENA, "glibc"),
        (Detail.MALLOC_ARENA_RESERVE, "glibc"),
    ]
    assert len([r for r in regions if r.detail is Detail.MALLOC_ARENA]) == 5


def test_without_v8_nothing_is_v8() -> None:
    """The rules are V8's: without it, the same maps keep the kinds of any process."""
    regions = saved(GLIBC)
    assert not v8(regions)
    at = {r.start: r for r in regions}
    assert (at[CODE_RANGE + 0x3000].kind, at[CODE_RANGE + 0x3000].detail) == (
        "mmap",
        Detail.ANONYMOUS,
    )
    assert len([r for r in regions if r.detail is Detail.MALLOC_ARENA]) == 5


# --- rules on the edge ---------------------------------------------------------------


def line(start: int, end: int, perms: str = "rw-p", path: str = "") -> bytes:
    inode = "0" if not path.startswith("/") else "42"
    dev = "00:00" if inode == "0" else "fe:00"
    return f"{start:x}-{end:x} {perms} 00000000 {dev} {inode} {path}\n".encode()


def found(regions: list[Region]) -> list[tuple[int, int, str, str]]:
    return [(r.start, r.end, r.kind, r.detail.value) for r in v8(regions)]


PAGE = 256 * KIB
LOW = 0x2E5467D80000  # a page's address in the saved sample


def test_heap_pages_on_the_edge() -> None:
    text = (
        line(LOW, LOW + PAGE)  # a page
        + line(LOW + 2 * PAGE + 4096, LOW + 3 * PAGE)  # not on a page boundary
        + line(LOW + 4 * PAGE, LOW + 4 * PAGE + 52 * KIB, "r--p")  # read-only space
        + line(LOW + 6 * PAGE, LOW + 7 * PAGE, "---p")  # no access: not a page
        + line(LOW + 8 * PAGE, LOW + 9 * PAGE, "rw-s")  # shared: not a page
        + line(LOW + 10 * PAGE, LOW + 11 * PAGE, "rw-p", "/data/file")  # a file
        + line(LOW + 12 * PAGE, LOW + 13 * PAGE, "rw-p", "[anon:buffer]")  # a name
        + line(LOW + 14 * PAGE, LOW + 14 * PAGE + 4536 * KIB)  # a large-object page
        + line(0x3FFFFFFC0000, 0x400000000000)  # the last page under the hint limit
        + line(0x400000000000, 0x400000040000)  # at the limit: the kernel's, or anyone's
        + line(0x7F0000000000, 0x7F0000040000)  # where the kernel puts memory
    )
    assert found(classified(text)) == [
        (LOW, LOW + PAGE, "heap", "javascript-heap"),
        (LOW + 4 * PAGE, LOW + 4 * PAGE + 52 * KIB, "heap", "javascript-heap"),
        (LOW + 14 * PAGE, LOW + 14 * PAGE + 4536 * KIB, "heap", "javascript-heap"),
        (0x3FFFFFFC0000, 0x400000000000, "heap", "javascript-heap"),
    ]
    assert not found(classified(text, GLIBC))
    assert not found(classified(text, pointer_size=4))


BASE = 0x7F0010000000  # 256 KiB-aligned, not 64 MiB-aligned


def code_pages(base: int, size: int, tail: bytes = b"") -> bytes:
    """A code range of `size` at `base` with one code page, as node 20 maps it."""
    return (
        line(base, base + 8 * KIB)
        + line(base + 8 * KIB, base + 12 * KIB, "---p")
        + line(base + 12 * KIB, base + 252 * KIB, "rwxp")
        + line(base + 252 * KIB, base + size - 2 * MIB, "---p")
        + line(base + size - 2 * MIB, base + size - 512 * KIB, "r-xp", NODE)
        + line(base + size - 512 * KIB, base + size, "---p")
        + tail
    )


def test_code_range_of_each_size() -> None:
    for size in (512 * MIB, 128 * MIB):
        regions = classified(code_pages(BASE, size))
        mine = v8(regions)
        assert mine[0].start == BASE and mine[-1].end == BASE + size, size
        assert [r.detail for r in mine if r.perms == "rwxp"] == [Detail.V8_CODE]


def test_code_range_needs_its_size_and_alignment() -> None:
    """A run of another size, or one that starts off a page boundary, is not a code range;
    nor is a range whose end merged with a reservation above (left, as anonymous)."""
    odd = code_pages(BASE, 300 * MIB)
    assert not [r for r in v8(classified(odd)) if r.kind == "text"]
    shifted = code_pages(BASE + 4096, 512 * MIB)
    assert not [r for r in v8(classified(shifted)) if r.kind == "text"]
    end = BASE + 512 * MIB
    merged = code_pages(BASE, 512 * MIB).replace(
        line(end - 512 * KIB, end, "---p"), line(end - 512 * KIB, end + MIB, "---p")
    )
    assert not [r for r in v8(classified(merged)) if r.kind == "text"]


def test_code_range_is_no_arena() -> None:
    """A code range on a 64 MiB boundary starts read-write then no access, as an arena
    does: it is V8's, and glibc's arena rule does not take its reserve."""
    base = 0x7F0040000000
    regions = classified(code_pages(base, 512 * MIB))
    inside = [r for r in regions if base <= r.start < base + 512 * MIB and r.path is None]
    assert len(inside) == 5 and all(r.allocator == "v8" for r in inside)
    assert not [r for r in regions if r.allocator == "glibc"]


def test_a_window_inside_the_code_range_is_widened_to_all_of_it() -> None:
    """The sampler classifies windows: one inside the range reaches both its ends,
    past the remapped builtins (a file mapping with anonymous memory on both sides)."""
    maps = parse_maps(code_pages(BASE, 512 * MIB, line(BASE + 600 * MIB, BASE + 601 * MIB)))
    assert runtimes.run_bounds(maps, 2, 3) == (0, 6)
    assert runtimes.run_bounds(maps, 5, 6) == (0, 6)
    assert runtimes.run_bounds(maps, 6, 7) == (6, 7)
    facts = Facts(runtimes=(V8,))
    assert [r.start for r in v8_rules.early(maps[0:6], facts, V8)][0] == BASE
    assert not list(v8_rules.early(maps[2:4], facts, V8))


CAGE = 0x1D3400000000  # 4 GiB-aligned, below 64 TiB


def test_pointer_compression_cage() -> None:
    """A 4 GiB cage on a 4 GiB boundary (kPtrComprCageReservationSize): its pages are
    the heap, its no-access rest V8's reserve.  Hand-made: node here has no cage."""
    text = (
        line(CAGE, CAGE + PAGE)
        + line(CAGE + PAGE, CAGE + 4 * PAGE, "---p")
        + line(CAGE + 4 * PAGE, CAGE + 4 * PAGE + 52 * KIB, "r--p")
        + line(CAGE + 4 * PAGE + 52 * KIB, CAGE + 8 * PAGE, "---p")
        + line(CAGE + 8 * PAGE, CAGE + 10 * PAGE)
        + line(CAGE + 10 * PAGE, CAGE + 4 * GIB, "---p")
    )
    assert found(classified(text)) == [
        (CAGE, CAGE + PAGE, "heap", "javascript-heap"),
        (CAGE + PAGE, CAGE + 4 * PAGE, "heap", "heap-reserve"),
        (CAGE + 4 * PAGE, CAGE + 4 * PAGE + 52 * KIB, "heap", "javascript-heap"),
        (CAGE + 4 * PAGE + 52 * KIB, CAGE + 8 * PAGE, "heap", "heap-reserve"),
        (CAGE + 8 * PAGE, CAGE + 10 * PAGE, "heap", "javascript-heap"),
        (CAGE + 10 * PAGE, CAGE + 4 * GIB, "heap", "heap-reserve"),
    ]
    reserve = [r for r in v8(classified(text)) if r.detail is Detail.HEAP_RESERVE]
    assert reserve[0].description == "V8 heap, reserved, not yet committed"
    # Short of 4 GiB: no cage; its pages are still pages, one by one.
    short = text.replace(f"{CAGE + 4 * GIB:x}".encode(), f"{CAGE + 3 * GIB:x}".encode())
    assert {d for _, _, _, d in found(classified(short))} == {"javascript-heap"}
    # Off a 4 GiB boundary, above the hint limit: nothing.
    high = 0x7E0000000000 + 0x40000000
    moved = b"".join(line(high + a - CAGE, high + b - CAGE, p) for a, b, p in _spans(text))
    assert not found(classified(moved))


def _spans(text: bytes) -> list[tuple[int, int, str]]:
    return [(m.start, m.end, m.perms) for m in parse_maps(text)]
