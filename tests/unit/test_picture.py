"""The picture's pure rules, on hand-made regions: shapes this machine cannot produce.

A 32-bit process, arm64's and riscv64's splits, 5-level paging; and the
grouping rules that decide what is one box.  The samples' real pictures are
tested in tests/integration/test_picture.py.
"""

from __future__ import annotations

from procmap.model import Detail, Region
from procmap.views.picture import address_space, fold, picture_of

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


def region(start, end, kind, detail, path=None, perms="rw-p", obj=None, tid=None) -> Region:
    return Region(start, end, perms, 0, "00:00", 0, path, kind, detail, obj, tid=tid)


def process(stack_top: int, *extra: Region) -> list[Region]:
    """A small static program, its heap, anything `extra`, and its stack below `stack_top`."""
    prog = "/bin/prog"
    regions = [
        region(0x400000, 0x401000, "text", Detail.CODE, prog, "r-xp", prog),
        region(0x401000, 0x402000, "data", Detail.DATA, prog, "rw-p", prog),
        region(0x402000, 0x403000, "bss", Detail.BSS, None, "rw-p", prog),
        region(0x1000000, 0x1021000, "heap", Detail.BRK_HEAP, "[heap]"),
        *extra,
        region(stack_top - 132 * KiB, stack_top, "stack", Detail.MAIN_STACK, "[stack]"),
    ]
    return sorted(regions, key=lambda r: r.start)


def test_the_split_follows_the_highest_user_address():
    # x86-64, 4-level paging: 128 TiB each side of the hole.
    s = address_space(0x7FFD_1C2A_1000, 64)
    assert (s.user_end, s.kernel_start) == (1 << 47, (1 << 64) - (1 << 47))
    # x86-64 with 5-level paging, once something is mapped above 2**47.
    s = address_space(0x00FF_FFFF_F000_0000, 64)
    assert (s.user_end, s.kernel_start) == (1 << 56, (1 << 64) - (1 << 56))
    # arm64, 48-bit VAs: the stack near 2**48.
    assert address_space(0xFFFF_F7FF_F000, 64).user_end == 1 << 48
    # riscv64 Sv39: user space is the lower 256 GiB.
    assert address_space(0x3F_FFFF_F000, 64).user_end == 256 * GiB
    # A load plan has no stack: the machine's usual split.
    assert address_space(None, 64, "AArch64").user_end == 1 << 48
    assert address_space(None, 64, "x86-64").user_end == 1 << 47


def test_a_32_bit_process_on_a_32_bit_or_a_64_bit_kernel():
    native = picture_of(process(0xBF80_0000), bits=32)
    assert native.space.top == 1 << 32
    assert native.bands[-1].role == "kernel" and native.bands[-1].start == 0xC000_0000
    assert native.bands[-1].span == GiB and not any(b.role == "hole" for b in native.bands)
    compat = picture_of(process(0xFFFF_D000), bits=32)
    assert compat.space.kernel_start is None and compat.bands[-1].end == 1 << 32
    assert not any(b.role == "kernel" for b in compat.bands)
    assert "outside this 32-bit address space" in compat.notes[0]


def test_what_makes_one_box():
    regions = process(
        0x7FFD_0000_0000,
        # Two anonymous mappings 5 MiB apart: two boxes and a gap, not one box.
        region(0x7F00_0000_0000, 0x7F00_0000_1000, "mmap", Detail.ANONYMOUS),
        region(0x7F00_0050_1000, 0x7F00_0050_2000, "mmap", Detail.ANONYMOUS),
        # A thread's guard page and the stack above it: one box.
        region(0x7F00_1000_0000, 0x7F00_1000_1000, "stack", Detail.GUARD_PAGE, perms="---p", tid=7),
        region(0x7F00_1000_1000, 0x7F00_1080_1000, "stack", Detail.THREAD_STACK, tid=7),
        # And the next thread's: a box of its own.
        region(0x7F00_1080_1000, 0x7F00_1080_2000, "stack", Detail.GUARD_PAGE, perms="---p", tid=8),
        region(0x7F00_1080_2000, 0x7F00_1100_2000, "stack", Detail.THREAD_STACK, tid=8),
        # An arena and its reserve: one box.
        region(0x7F00_2000_0000, 0x7F00_2002_1000, "heap", Detail.MALLOC_ARENA),
        region(
            0x7F00_2002_1000, 0x7F00_2400_0000, "heap", Detail.MALLOC_ARENA_RESERVE, perms="---p"
        ),
    )
    picture = picture_of(regions)
    members = [(b.role, b.regions) for b in picture.bands if b.start >= 0x7F00_0000_0000]
    assert members[:3] == [("anonymous", 1), ("gap", 0), ("anonymous", 1)]
    assert [m for m in members if m[0] == "thread stack"] == [("thread stack", 2)] * 2
    assert ("arena", 2) in members
    threads = [b for b in picture.bands if b.role == "thread stack"]
    assert [b.detail for b in threads] == [
        "thread stack (TID 7), above its guard page",
        "thread stack (TID 8), above its guard page",
    ]
    # Without ELF images, the lowest object is taken for the program.
    image = [b for b in picture.bands if b.role == "image"]
    assert [b.label for b in image] == ["text", "data", "bss"]


def test_folding_many_small_mmaps_keeps_the_landmarks():
    extra = [
        region(
            0x7F00_0000_0000 + i * 0x2000, 0x7F00_0000_1000 + i * 0x2000, "mmap", Detail.ANONYMOUS
        )
        for i in range(5000)
    ]
    picture = picture_of(process(0x7FFD_0000_0000, *extra))
    assert len(picture.bands) > 10000
    folded = fold(picture, 30)
    assert len(folded.bands) <= 30
    roles = [b.role for b in folded.bands]
    assert roles.count("heap") == roles.count("stack") == 1
    assert sum(b.size for b in folded.bands if b.role == "folded") == 5000 * 4 * KiB
    assert folded.folded == len(picture.bands) - len(folded.bands)


def heap_of(start, end, detail, allocator, perms="rw-p") -> Region:
    return Region(start, end, perms, 0, "00:00", 0, None, "heap", detail, allocator=allocator)


def test_another_allocators_heap_is_its_own_box_not_a_malloc_arena():
    """One box per run of an allocator's memory, named for it; glibc's arenas keep theirs."""
    go = 0xC000000000
    jvm = 0xF0000000
    regions = process(
        0x7FFD_0000_0000,
        heap_of(go, go + 4 * MiB, Detail.GO_HEAP_ARENA, "go"),
        heap_of(go + 4 * MiB, go + 64 * MiB, Detail.GO_HEAP_RESERVE, "go", "---p"),
        heap_of(jvm, jvm + 16 * MiB, Detail.JAVA_HEAP, "jvm"),
        heap_of(jvm + 16 * MiB, jvm + 256 * MiB, Detail.JAVA_HEAP_RESERVE, "jvm", "---p"),
        heap_of(0x7F00_0000_0000, 0x7F00_0040_0000, Detail.JEMALLOC_HEAP, "jemalloc"),
        heap_of(0x7F10_0000_0000, 0x7F10_0002_1000, Detail.MALLOC_ARENA, "glibc"),
        heap_of(0x7F10_0002_1000, 0x7F10_0400_0000, Detail.MALLOC_ARENA_RESERVE, "glibc", "---p"),
    )
    bands = [b for b in picture_of(regions, []).bands if b.role == "arena"]
    assert [(b.label, b.start) for b in bands] == [
        ("Java heap", jvm),
        ("Go heap", go),
        ("jemalloc heap", 0x7F00_0000_0000),
        ("malloc arena", 0x7F10_0000_0000),
    ]
    assert [b.regions for b in bands] == [2, 2, 1, 2]
    assert bands[1].detail == "Go heap arena; Go heap arena, reserved, not yet committed"
