"""The JVM's rules over a saved map (tests/data/jvm/g1.maps, a G1 JVM run with
-Xms16m -Xmx256m, and the bounds the live reader read from it then)."""

from __future__ import annotations

from pathlib import Path

from procmap.classify import classify
from procmap.classify import jvm as classify_jvm
from procmap.kernel.maps import parse_maps
from procmap.live.jvm import JvmLayout, ranges_of, stack_guards
from procmap.model import Detail, Facts, Mapping, Runtime

DATA = Path(__file__).parent.parent / "data" / "jvm"
PAGE = 4096
JVM = Runtime("jvm", "/usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so", False, "name")
GLIBC = Runtime("glibc", "/usr/lib/x86_64-linux-gnu/libc.so.6", True, "name")


def saved() -> tuple[list[Mapping], JvmLayout]:
    maps = parse_maps((DATA / "g1.maps").read_bytes())
    layout = JvmLayout()
    layout.heap = (0xF000_0000, 0x1_0000_0000)  # jcmd GC.heap_info said the same
    layout.code = (0x7F75_2540_0000, 0x7F75_3440_0000)
    layout.archive = (0x7F74_CF00_0000, 0x7F74_D000_0000)
    layout.class_space = (0x7F74_D000_0000, 0x7F75_1000_0000)
    layout.stack_guard_pages = 4
    return maps, layout


def heap_parts(maps: list[Mapping], layout: JvmLayout) -> list[tuple[int, int, Detail]]:
    """The Java heap (below 4 GiB in the saved map) as classified: neighbours alike merged."""
    facts = Facts(runtimes=(JVM, GLIBC), heap_ranges=tuple(ranges_of(layout, maps, PAGE)))
    parts: list[tuple[int, int, Detail]] = []
    for r in classify(maps, {}, facts).regions:
        if r.kind != "heap" or r.start >= 1 << 32:
            continue
        assert r.allocator == "jvm" and not r.heuristic
        if parts and parts[-1][1] == r.start and parts[-1][2] is r.detail:
            parts[-1] = (parts[-1][0], r.end, r.detail)
        else:
            parts.append((r.start, r.end, r.detail))
    return parts


def test_heap_is_committed_where_mapped_read_write_and_reserved_elsewhere():
    maps, layout = saved()
    assert [(hex(a), hex(b), detail) for a, b, detail in heap_parts(maps, layout)] == [
        ("0xf0000000", "0xf1000000", Detail.JAVA_HEAP),
        ("0xf1000000", "0xffe00000", Detail.JAVA_HEAP_RESERVE),
        # The class data archive's heap objects (classes.jsa) are mapped into the heap's top.
        ("0xffe00000", "0x100000000", Detail.JAVA_HEAP),
    ]


def test_heap_the_jvm_commits_later_is_committed_without_reading_it_again():
    """The range is read once (as --watch does); the mappings' permissions say what is committed."""
    maps, layout = saved()
    ranges = tuple(ranges_of(layout, maps, PAGE))
    i = next(i for i, m in enumerate(maps) if m.start == 0xF100_0000)
    grown = maps[i]._replace(end=0xF200_0000, perms="rw-p")
    rest = maps[i]._replace(start=0xF200_0000)
    maps[i : i + 1] = [grown, rest]
    facts = Facts(runtimes=(JVM, GLIBC), heap_ranges=ranges)
    details = {r.start: r.detail for r in classify(maps, {}, facts).regions}
    assert details[0xF100_0000] is Detail.JAVA_HEAP
    assert details[0xF200_0000] is Detail.JAVA_HEAP_RESERVE


def test_generations_take_their_own_ranges():
    maps, layout = saved()
    layout.young, layout.old = (0xF000_0000, 0xF555_0000), (0xF555_0000, 0x1_0000_0000)
    assert [(a, detail) for a, _, detail in heap_parts(maps, layout)] == [
        (0xF000_0000, Detail.JAVA_HEAP_YOUNG),
        (0xF100_0000, Detail.JAVA_HEAP_RESERVE),  # the young's reserve, then the old's
        (0xFFE0_0000, Detail.JAVA_HEAP_OLD),
    ]
    facts = Facts(runtimes=(JVM, GLIBC), heap_ranges=tuple(ranges_of(layout, maps, PAGE)))
    assert 0xF555_0000 in {r.start for r in classify(maps, {}, facts).regions}


def test_the_classifier_gives_the_jvm_its_memory_and_glibc_none_of_it():
    maps, layout = saved()
    facts = Facts(runtimes=(JVM, GLIBC), heap_ranges=tuple(ranges_of(layout, maps, PAGE)))
    regions = classify(maps, {}, facts).regions
    details = {r.detail for r in regions if r.allocator == "jvm"}
    assert {
        Detail.JAVA_HEAP,
        Detail.JAVA_HEAP_RESERVE,
        Detail.JIT_CODE,
        Detail.JIT_CODE_RESERVE,
        Detail.METASPACE,
        Detail.CLASS_SPACE,
        Detail.JVM_RESERVE,
        Detail.JVM_PERF_DATA,
        Detail.JAVA_STACK_GUARD,
    } <= details
    owned = [r for r in regions if r.allocator == "jvm"]
    for arena in (r for r in regions if r.detail is Detail.MALLOC_ARENA):
        assert not any(arena.start < r.end and r.start < arena.end for r in owned)
    code = [r for r in regions if r.detail is Detail.JIT_CODE]
    assert {r.kind for r in code} == {"text"} and all(r.perms == "rwxp" for r in code)


def test_stack_guard_zones_are_the_zones_size_under_a_stack():
    maps = parse_maps(
        b"7f0000000000-7f0000004000 ---p 00000000 00:00 0\n"  # a Java thread's zones
        b"7f0000004000-7f0000100000 rw-p 00000000 00:00 0\n"
        b"7f0000100000-7f0000101000 ---p 00000000 00:00 0\n"  # glibc's guard (a GC thread)
        b"7f0000101000-7f0000201000 rw-p 00000000 00:00 0\n"
        b"7f0000300000-7f0000305000 ---p 00000000 00:00 0\n"  # zones over glibc's page
        b"7f0000305000-7f0000400000 rw-p 00000000 00:00 0\n"
    )
    guards = stack_guards(maps, 4 * PAGE, PAGE)
    assert [(hex(g.start), hex(g.end)) for g in guards] == [
        ("0x7f0000000000", "0x7f0000004000"),
        ("0x7f0000301000", "0x7f0000305000"),
    ]
    assert all(g.kind == "stack" and g.heuristic for g in guards)
    assert stack_guards(maps, 0, PAGE) == []


def test_perf_data_is_found_by_its_path():
    maps = parse_maps(
        b"7f0000000000-7f0000008000 rw-s 00000000 fe:00 12 /tmp/hsperfdata_root/4242\n"
        b"7f0000010000-7f0000018000 rw-s 00000000 fe:00 13 /tmp/hsperfdata_root/notes\n"
        b"7f0000020000-7f0000028000 rw-p 00000000 fe:00 14 /tmp/hsperfdata_root/4243\n"
        b"7f0000030000-7f0000038000 rw-s 00000000 fe:00 15 /tmp/other/4244\n"
    )
    found = list(classify_jvm.early(maps, Facts(), JVM))
    assert [(r.start, r.kind, r.detail) for r in found] == [
        (0x7F00_0000_0000, "mmap", Detail.JVM_PERF_DATA)
    ]
