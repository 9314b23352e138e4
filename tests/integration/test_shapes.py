"""Classification of shapes this machine does not produce on its own.

Each test starts from the real /proc/PID/maps of a running sample and the real
ELF layouts of its files, then changes the text the way another kernel or
another program would (a bss merged into [heap], a thread stack merged with
the mapping above it...), and classifies it with the pure classifier.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import procmap
from procmap.classify import classify
from procmap.elf import read_elf
from procmap.kernel.maps import parse_maps
from procmap.model import Detail, Facts, Mapping
from tests.conftest import SAMPLE_BIN, run_sample

MiB = 1 << 20


def snapshot(mode: str):
    """The sample's maps, the layouts of its files, its facts, its variables."""
    with run_sample(mode) as s:
        text = Path(f"/proc/{s.pid}/maps").read_bytes()
        live = procmap.read_map(s.pid)
        variables = dict(s.variables)
        tid = s.thread_tid
        sp = None
        for line in Path(f"/proc/{s.pid}/task/{tid}/syscall").read_text().split("\n")[:1]:
            sp = int(line.split()[-2], 16)
    mappings = parse_maps(text)
    layouts = {}
    for m in mappings:
        if m.inode and m.path and m.path.startswith("/"):
            try:
                layouts[m.file_key] = read_elf(m.path)
            except procmap.ProcmapError:
                layouts[m.file_key] = None
    exe = next(im for im in live.images if im.role == "program")
    facts = Facts(exe_key=exe.key, thread_sps={tid: sp}, thread_stack_size=8 * MiB)
    return mappings, layouts, facts, variables, exe


def tiles(mappings, regions) -> bool:
    it = iter(regions)
    for m in mappings:
        pos = m.start
        while pos < m.end:
            r = next(it)
            if r.start != pos or r.end <= r.start or r.path != m.path:
                return False
            pos = r.end
    return next(it, None) is None


def region_at(regions, address):
    return next(r for r in regions if r.start <= address < r.end)


def test_bss_merged_into_heap_is_split_at_p_memsz():
    """Older kernels with ASLR off merge the program's bss mapping into [heap]."""
    mappings, layouts, facts, variables, exe = snapshot("nopie")
    i = next(i for i, m in enumerate(mappings) if m.path == "[heap]")
    bss = mappings[i - 1]
    assert bss.is_anonymous and bss.end <= mappings[i].start
    merged = Mapping(bss.start, bss.start + 33 * MiB, "rw-p", 0, "00:00", 0, "[heap]")
    shaped = mappings[: i - 1] + [merged] + mappings[i + 1 :]
    regions = classify(shaped, layouts, facts).regions
    assert tiles(shaped, regions)
    rw = next(s for s in exe.layout.loads if s.flags & 2)
    bss_end = -(-(rw.vaddr + rw.memsz) // 4096) * 4096
    part = [r for r in regions if r.path == "[heap]"]
    assert [(r.kind, r.start, r.end) for r in part] == [
        ("bss", bss.start, bss_end),
        ("heap", bss_end, merged.end),
    ]
    assert part[0].object == exe.path and part[1].detail is Detail.BRK_HEAP
    assert region_at(regions, variables["big_zeroes_end"][0]).kind == "bss"


def test_thread_stack_merged_with_the_mapping_above_is_cut_at_its_size():
    mappings, layouts, facts, variables, _ = snapshot("pie")
    ((tid, sp),) = facts.thread_sps.items()
    i = next(i for i, m in enumerate(mappings) if m.start <= sp < m.end)
    stack, above = mappings[i], mappings[i + 1]
    assert above.is_anonymous and above.start == stack.end  # the sample's mmaps sit above
    merged = stack._replace(end=above.end)
    shaped = mappings[:i] + [merged] + mappings[i + 2 :]
    regions = classify(shaped, layouts, facts).regions
    assert tiles(shaped, regions)
    pieces = [r for r in regions if merged.start <= r.start < merged.end]
    assert [(r.kind, r.end) for r in pieces] == [
        ("stack", stack.start + 8 * MiB),
        ("mmap", merged.end),
    ]
    assert (pieces[0].detail, pieces[0].tid) == (Detail.THREAD_STACK, tid) and pieces[0].heuristic
    assert region_at(regions, variables["anon_mmap"][0]).kind == "mmap"


def test_stack_by_shape_when_no_stack_pointer_is_readable():
    mappings, layouts, facts, variables, _ = snapshot("pie")
    ((tid, _sp),) = facts.thread_sps.items()
    blind = Facts(exe_key=facts.exe_key, unknown_threads=(tid,), thread_stack_size=8 * MiB)
    regions = classify(mappings, layouts, blind).regions
    r = region_at(regions, variables["thread_local"][0])
    assert (r.kind, r.detail, r.heuristic) == ("stack", Detail.THREAD_STACK_BY_SHAPE, True)
    guard = region_at(regions, r.start - 1)
    assert guard.kind == "stack" and guard.detail is Detail.GUARD_PAGE and guard.perms == "---p"
    # Every thread accounted for: the same shape is a stack no thread uses.
    idle = Facts(exe_key=facts.exe_key, thread_sps={tid: 0x10})
    r = region_at(classify(mappings, layouts, idle).regions, variables["thread_local"][0])
    assert r.kind == "mmap" and r.detail is Detail.STACK_SHAPED


def test_arena_reserve_merged_with_a_thread_guard():
    text = (
        b"7f0000000000-7f0000021000 rw-p 00000000 00:00 0\n"
        # arena reserve to 7f0004000000, then a thread's guard page, merged (both ---p)
        b"7f0000021000-7f0004001000 ---p 00000000 00:00 0\n"
        b"7f0004001000-7f0004801000 rw-p 00000000 00:00 0\n"
        b"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
    )
    mappings = parse_maps(text)
    facts = Facts(thread_sps={42: 0x7F0004800000}, thread_stack_size=8 * MiB)
    regions = classify(mappings, {}, facts).regions
    assert tiles(mappings, regions)
    assert [(r.kind, r.description, r.start, r.end) for r in regions[:4]] == [
        ("heap", "malloc arena", 0x7F0000000000, 0x7F0000021000),
        ("heap", "malloc arena reserve", 0x7F0000021000, 0x7F0004000000),
        ("stack", "guard page (TID 42)", 0x7F0004000000, 0x7F0004001000),
        ("stack", "thread stack (TID 42)", 0x7F0004001000, 0x7F0004801000),
    ]
    # The same shapes, with the thread's stack pointer unreadable.
    blind = classify(mappings, {}, Facts(unknown_threads=(42,), thread_stack_size=8 * MiB))
    assert [(r.kind, r.description, r.heuristic) for r in blind.regions[1:4]] == [
        ("heap", "malloc arena reserve", True),
        ("stack", "guard page", True),
        ("stack", "thread stack, found by shape", True),
    ]


def test_unreadable_binaries_are_classified_by_names_and_permissions():
    mappings, _layouts, facts, variables, exe = snapshot("pie")
    result = classify(mappings, {}, facts)
    assert tiles(mappings, result.regions)
    assert any("classified by names and permissions" in w for w in result.warnings)
    main = region_at(result.regions, variables["main"][0])
    assert (main.kind, main.heuristic, main.object) == ("text", True, exe.path)
    assert region_at(result.regions, variables["global_init"][0]).kind == "data"
    big = region_at(result.regions, variables["big_zeroes_end"][0])
    assert (big.kind, big.heuristic) == ("bss", True)


def test_a_library_loaded_twice_is_two_images():
    """dlmopen() loads a second copy of a library at another address."""
    mappings, layouts, facts, _variables, _ = snapshot("pie")
    libc = [m for m in mappings if m.path and "libc.so" in m.path]
    shift = 0x100000000
    copy = [m._replace(start=m.start - shift, end=m.end - shift) for m in libc]
    shaped = sorted(mappings + copy, key=lambda m: m.start)
    result = classify(shaped, layouts, facts)
    images = [im for im in result.images if "libc.so" in im.path]
    assert len(images) == 2 and images[1].bias - images[0].bias == shift
    assert tiles(shaped, result.regions)


def test_kernel_names_and_special_files():
    text = (
        b"10000-11000 rw-p 00000000 00:00 0                                  [anon:my buffer]\n"
        b"11000-12000 rw-s 00000000 00:01 7                                  [anon_shmem:ring]\n"
        b"12000-13000 rw-s 00000000 00:01 8                                  /memfd:jit (deleted)\n"
        b"13000-14000 rw-s 00000000 00:01 65538                              /SYSV0000abcd (deleted)\n"
        b"14000-15000 rw-s 00000000 00:01 9                                  /dev/zero (deleted)\n"
        b"15000-16000 rw-s 00000000 00:19 10                                 /dev/shm/queue\n"
        b"16000-17000 rw-p 00000000 00:00 0                                  [anon: glibc: malloc arena]\n"
        b"17000-18000 rw-p 00000000 00:00 0                                  [stack:1234]\n"
        b"18000-19000 r-xp 00000000 00:00 0                                  [uprobes]\n"
        b"19000-1a000 r--p 00000000 00:00 0                                  [something new]\n"
        b"1a000-1b000 r--p 00000000 fe:00 11                                 /usr/share/fonts/x.ttf\n"
        b"1b000-1c000 ---p 00000000 00:00 0\n"
        b"200000-400000 rw-p 00000000 00:10 12                               /anon_hugepage (deleted)\n"
        b"400000-600000 rw-s 00000000 00:10 13                               /anon_hugepage (deleted)\n"
        b"600000-800000 rw-s 00000000 00:2f 14                               /dev/hugepages/pool\n"
    )
    mappings = parse_maps(text)
    regions = classify(mappings, {("fe:00", 11): None}, Facts()).regions
    assert [(r.kind, r.description) for r in regions] == [
        ("mmap", "anonymous, named my buffer"),
        ("mmap", "shared anonymous, named ring"),
        ("mmap", "memfd"),
        ("mmap", "SysV shared memory"),
        ("mmap", "shared anonymous"),
        ("mmap", "POSIX shared memory"),
        ("heap", "malloc arena"),
        ("stack", "thread stack (TID 1234)"),
        ("mmap", "uprobes"),
        ("mmap", "[something new]"),
        ("mmap", "file mapping"),
        ("mmap", "reserved, no access"),
        ("mmap", "anonymous, huge pages"),
        ("mmap", "shared anonymous, huge pages"),
        ("mmap", "hugetlbfs file"),
    ]


def test_library_with_64k_aligned_segments_has_its_gaps_inside_it():
    """Real: a 64 KiB-aligned library loaded by the dynamic linker, padding kept ---p."""
    lib = SAMPLE_BIN / "libaligned.so"
    code = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
        "print(' '.join(hex(ctypes.addressof(ctypes.c_int.in_dll(lib, n))) "
        "for n in ('aligned_data', 'aligned_bss', 'aligned_const')), "
        "hex(ctypes.cast(lib.aligned_func, ctypes.c_void_p).value), flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lib)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        data, bss, const, func = (int(x, 16) for x in holder.stdout.readline().split())
        locations = procmap.where(holder.pid, [data, bss, const, func])
        pmap = procmap.read_map(holder.pid)
    finally:
        holder.stdin.close()
        holder.wait()
    assert [(loc.kind, loc.symbol, loc.symbol_offset) for loc in locations] == [
        ("data", "aligned_data", 0),
        ("bss", "aligned_bss", 0),
        ("rodata", "aligned_const", 0),
        ("text", "aligned_func", 0),
    ]
    (image,) = [im for im in pmap.images if im.path == str(lib)]
    mine = [r for r in pmap.regions if r.object == str(lib)]
    gaps = [r for r in mine if r.detail is Detail.SEGMENT_GAP]
    assert len(gaps) == 3 and all(r.perms == "---p" and r.kind == "mmap" for r in gaps)
    assert [r.kind for r in mine if r.detail is not Detail.SEGMENT_GAP][:3] == [
        "rodata",
        "text",
        "rodata",
    ]
    assert mine[0].start == image.start and mine[-1].end == image.end


# --- property: whatever the maps hold, regions tile them ------------------------------

_names = st.sampled_from(
    [None, "[heap]", "[stack]", "[vdso]", "[anon:x]", "[weird]", "/memfd:a (deleted)", "/x/file"]
)


@st.composite
def map_lists(draw):
    """Random mappings, some of them pieces of a real sample's program layout."""
    layout = read_elf(str(SAMPLE_BIN / "lesson-pie"))
    mappings = []
    pos = draw(st.integers(0x10000, 1 << 40)) // 4096 * 4096
    for _ in range(draw(st.integers(1, 30))):
        pos += draw(st.sampled_from([0, 0, 4096, 1 << 20]))
        if draw(st.booleans()):
            # A run of the sample's program segments at a random bias.
            bias = pos
            for seg in layout.loads:
                start = bias + seg.vaddr // 4096 * 4096
                end = bias + -(-(seg.vaddr + seg.filesz) // 4096) * 4096
                perms = ("r" if seg.flags & 4 else "-") + ("w" if seg.flags & 2 else "-")
                perms += ("x" if seg.flags & 1 else "-") + "p"
                if mappings and start < mappings[-1].end:
                    continue
                mappings.append(
                    Mapping(start, end, perms, seg.offset // 4096 * 4096, "08:01", 77, "/p")
                )
                pos = end
            if draw(st.booleans()):
                size = draw(st.integers(1, 300)) * 4096
                mappings.append(Mapping(pos, pos + size, "rw-p", 0, "00:00", 0, None))
                pos += size
            continue
        size = draw(st.integers(1, 64)) * 4096
        name = draw(_names)
        perms = draw(st.sampled_from(["r--p", "rw-p", "r-xp", "---p", "rw-s"]))
        inode = 5 if name and name.startswith("/") else 0
        mappings.append(
            Mapping(pos, pos + size, perms, 0, "08:01" if inode else "00:00", inode, name)
        )
        pos += size
    return mappings, {("08:01", 77): layout, ("08:01", 5): None}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(map_lists(), st.lists(st.integers(0, 1 << 41), max_size=3))
def test_regions_always_tile_the_mappings(case, sps):
    mappings, layouts = case
    facts = Facts(thread_sps={i + 1: sp for i, sp in enumerate(sps)}, thread_stack_size=8 * MiB)
    regions = classify(mappings, layouts, facts).regions
    assert tiles(mappings, regions)
    assert all(r.kind in procmap.KINDS for r in regions)
