"""procmap.sampler on live processes: the incremental state is always the full one.

The sampler classifies again only the mappings around each change.  The
property that makes that safe, checked after every sample here: classifying
the sampler's own mappings whole, with its own layouts and facts, gives the
very regions and images it holds, its running totals are the sums of those
regions, and its text is exactly its mappings' lines.

Two kinds of process are watched: this test's own (mmap, munmap and mprotect
of pages in one reservation, files and ELF copies mapped, a library copy
loaded and unloaded, threads started and stopped, in a seeded random order),
and samples/bin/watch, driven command by command, whose printed addresses
say exactly what each event must be.
"""

from __future__ import annotations

import _ctypes
import bisect
import ctypes
import mmap as mmap_module
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from procmap.classify import classify
from procmap.errors import NoSuchProcess, ProcessExited, ZombieProcess
from procmap.kernel.maps import format_mapping, parse_maps
from procmap.kernel.procfs import ProcFS, dev_string
from procmap.live.diff import Hunk, diff_maps
from procmap.live.events import EVENTS, Change
from procmap.live.sampler import PidReused, Sampler
from procmap.model import KINDS, Detail, Mapping, Runtime
from tests.conftest import SAMPLE_BIN, SAMPLES, Lines

WATCH = SAMPLE_BIN / "watch"
LIBALIGNED = SAMPLE_BIN / "libaligned.so"
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module", autouse=True)
def built_watch():
    # conftest builds the samples when the lesson binaries are missing; these two
    # are in the same make target, but check them too.
    if not (WATCH.exists() and LIBALIGNED.exists()):
        subprocess.run(["make", "-s", "-C", str(SAMPLES)], check=True)


# --------------------------------------------------------------- the property


def check_consistent(s: Sampler) -> None:
    """The sampler's incremental state equals a classification of the whole map."""
    assert s.mappings == parse_maps(s.text)
    assert s.text.count(b"\n") == len(s.mappings)  # one line per mapping, no repeats
    assert s.starts == [m.start for m in s.mappings]
    full = classify(s.mappings, s.cache.layouts, s.facts)
    regions = s.regions
    if regions != full.regions:
        # Name the first region that differs: far easier to read than the whole list.
        for i, (mine, want) in enumerate(zip(regions, full.regions)):
            if mine != want:
                pytest.fail(f"region {i} differs:\n  sampler  {mine}\n  classify {want}")
        pytest.fail(f"{len(regions)} regions, classify gives {len(full.regions)}")
    assert len(s.groups) == len(s.mappings)
    for m, group in zip(s.mappings, s.groups):
        assert group and group[0].start == m.start and group[-1].end == m.end
    key = lambda im: (im.path, im.start, im.end, im.bias, im.role)  # noqa: E731
    assert sorted(map(key, s.images)) == sorted(map(key, full.images))
    sums = dict.fromkeys(KINDS, 0)
    for r in full.regions:
        sums[r.kind] += r.size
    assert s.totals() == sums
    assert s.total == sum(m.size for m in s.mappings)


def check_events(change: Change, old_maps, s: Sampler) -> None:
    """Events are well formed, and every byte whose mapping changed is in one."""
    for e in change.events:
        assert e.event in EVENTS and e.kind in KINDS, e
        assert e.start < e.end and e.bytes > 0, e
        assert e.direction in (("up", "down") if e.event in ("grow", "shrink") else (None,)), e
    changed = changed_ranges(old_maps, s.mappings)
    # (Events without such a change are fine: the kernel splits a mapping where
    # flags maps does not show differ, MAP_NORESERVE for one.)
    assert change.events or not changed, changed
    spans = [(e.start, e.end) for e in change.events]
    spans += [e.before[:2] for e in change.events if e.before]
    # A grow names the region at the moving edge; the bytes it added can reach
    # into the next region too (an anonymous mapping partly inside an image's
    # span): before, direction and bytes say where they are.
    spans += [
        (e.before[0] - e.bytes, e.before[0])
        if e.direction == "down"
        else (e.before[1], e.before[1] + e.bytes)
        for e in change.events
        if e.event == "grow"
    ]
    covered = merge_ranges(spans)
    starts = [a for a, _ in covered]
    for a, b in changed:
        k = bisect.bisect_right(starts, a) - 1
        assert k >= 0 and covered[k][1] >= b, (hex(a), hex(b), change.events)


def merge_ranges(ranges):
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def changed_ranges(old, new) -> list[tuple[int, int]]:
    """The address ranges whose memory changed: mapped or not, perms, file, file offset.

    A mapping can change its bounds without any of its bytes changing (its
    neighbour's protection changed and the kernel merged or split them): that
    is not a change here.
    """

    def state_at(maps, starts, addr):
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0 or addr >= maps[i].end:
            return None
        m = maps[i]
        offset = m.offset + (addr - m.start) if m.is_file else 0
        return (m.perms, m.dev, m.inode, m.path, offset)

    old_starts, new_starts = [m.start for m in old], [m.start for m in new]
    edges = sorted({x for m in old + new for x in (m.start, m.end)})
    out = []
    for a, b in zip(edges, edges[1:]):
        if state_at(old, old_starts, a) != state_at(new, new_starts, a):
            out.append((a, b))
    return [tuple(r) for r in merge_ranges(out)]


# --------------------------------------------------------------- this process

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

R, W, X = mmap_module.PROT_READ, mmap_module.PROT_WRITE, mmap_module.PROT_EXEC
PRIVATE, SHARED = mmap_module.MAP_PRIVATE, mmap_module.MAP_SHARED
ANONYMOUS = mmap_module.MAP_ANONYMOUS
MAP_FIXED, MAP_NORESERVE, MAP_FIXED_NOREPLACE = 0x10, 0x4000, 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value
ARENA = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: classify's arena alignment


class Pages:
    """A window of pages inside one PROT_NONE reservation, changed at random.

    Every page is "ours" (mapped by us, however), a "hole" (unmapped by us),
    or "lost": a hole something else in this process mapped into meanwhile
    (Python's allocator, a thread stack).  Only our own pages are ever changed,
    so the test can never clobber memory it does not own: a hole is taken
    back with MAP_FIXED_NOREPLACE, which fails rather than replace.
    """

    BEFORE = 24  # window pages below the 64 MiB-aligned address
    SIZE = 176

    def __init__(self, rng: random.Random, tmp_path: Path):
        self.rng = rng
        self.length = 3 * ARENA
        self.base = self._mmap(0, self.length, 0, PRIVATE | ANONYMOUS | MAP_NORESERVE)
        assert self.base not in (None, MAP_FAILED)
        # An arena-aligned address inside, with the reservation's ---p running
        # past it by more than 64 MiB: mapping pages read-write from exactly
        # there makes glibc's arena shape (classify's rule 2).
        self.arena = (self.base + PAGE * self.BEFORE + ARENA - 1) // ARENA * ARENA
        self.start = self.arena - self.BEFORE * PAGE
        self.state = ["ours"] * self.SIZE
        self.data = os.open(self._file(tmp_path / "data file with spaces", 40 * PAGE), os.O_RDONLY)
        elf = tmp_path / "libaligned-copy.so"
        shutil.copy(LIBALIGNED, elf)
        self.elf = os.open(elf, os.O_RDONLY)
        self.elf_pages = (os.path.getsize(elf) + PAGE - 1) // PAGE

    @staticmethod
    def _file(path: Path, size: int) -> Path:
        path.write_bytes(bytes(range(256)) * (size // 256))
        return path

    @staticmethod
    def _mmap(addr, length, prot, flags, fd=-1, offset=0):
        return libc.mmap(addr, length, prot, flags, fd, offset)

    def addr(self, i: int) -> int:
        return self.start + i * PAGE

    def run(self) -> tuple[int, int]:
        i = self.rng.randrange(self.SIZE)
        length = self.rng.choice((1, 1, 1, 2, 3, 5, 8, 16))
        return i, min(i + length, self.SIZE)

    def claim(self, i: int, j: int) -> bool:
        """Make pages [i, j) all ours (taking holes back), or say they cannot be."""
        for k in range(i, j):
            if self.state[k] == "lost":
                return False
            if self.state[k] == "hole":
                got = self._mmap(
                    self.addr(k), PAGE, 0, PRIVATE | ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE
                )
                if got != self.addr(k):
                    if got not in (None, MAP_FAILED):
                        libc.munmap(got, PAGE)  # an old kernel took it as a hint
                    self.state[k] = "lost"
                    return False
                self.state[k] = "ours"
        return True

    def fixed(self, i, j, prot, flags, fd=-1, offset=0):
        got = self._mmap(self.addr(i), (j - i) * PAGE, prot, flags | MAP_FIXED, fd, offset)
        assert got == self.addr(i), ctypes.get_errno()

    # The operations: each picks its own pages.

    def anonymous(self):
        i, j = self.run()
        if self.claim(i, j):
            prot = self.rng.choice((R | W, R | W, R, 0, R | X))
            kind = self.rng.choice((PRIVATE, PRIVATE, PRIVATE, SHARED))
            self.fixed(i, j, prot, kind | ANONYMOUS | MAP_NORESERVE)

    def unmap(self):
        i, j = self.run()
        ours = [k for k in range(i, j) if self.state[k] == "ours"]
        for k in ours:
            assert libc.munmap(self.addr(k), PAGE) == 0
            self.state[k] = "hole"

    def protect(self):
        i, j = self.run()
        if self.claim(i, j):
            # May fail (PROT_WRITE on a shared read-only file): then nothing changed.
            libc.mprotect(self.addr(i), (j - i) * PAGE, self.rng.choice((R | W, R, 0, R | X)))

    def map_file(self):
        i, j = self.run()
        if self.claim(i, j):
            offset = self.rng.randrange(0, 40 - (j - i) + 1) * PAGE
            prot, kind = self.rng.choice(((R, PRIVATE), (R | W, PRIVATE), (R, SHARED)))
            self.fixed(i, j, prot, kind, self.data, offset)

    def map_elf_as_data(self):
        # An ELF file mmap()ed read-only: not a loaded image, a file mapping.
        i, j = self.run()
        if self.claim(i, j):
            offset = self.rng.randrange(0, self.elf_pages) * PAGE
            self.fixed(i, j, R, PRIVATE, self.elf, offset)

    def map_elf_code(self):
        # The ELF copy's executable segment, mapped executable: classify takes
        # that for a loaded image, whose 0x45000-byte span then claims the
        # anonymous pages around it (gaps, bss): a change reaching far beyond
        # the mapping that changed.
        i = self.rng.randrange(self.SIZE)
        if self.claim(i, i + 1):
            self.fixed(i, i + 1, R | X, PRIVATE, self.elf, 0x10000)

    def arena_shape(self):
        # rw-p from the aligned address, ---p above, r--p below: a malloc arena.
        used = self.rng.randrange(1, 24)
        a = self.BEFORE
        if self.claim(a - 1, self.SIZE):
            self.fixed(a - 1, a, R, PRIVATE | ANONYMOUS)
            self.fixed(a, a + used, R | W, PRIVATE | ANONYMOUS | MAP_NORESERVE)
            self.fixed(a + used, self.SIZE, 0, PRIVATE | ANONYMOUS | MAP_NORESERVE)

    def close(self):
        os.close(self.data)
        os.close(self.elf)
        # Unmap the reservation, but never a hole: something else may have taken it.
        lo = 0
        for k, state in enumerate(self.state + ["end"]):
            if state != "ours":
                if lo < k:
                    libc.munmap(self.addr(lo), (k - lo) * PAGE)
                lo = k + 1
        libc.munmap(self.base, self.start - self.base)
        end = self.addr(self.SIZE)
        libc.munmap(end, self.base + self.length - end)


class Threads:
    def __init__(self):
        self.running: list[tuple[threading.Thread, threading.Event]] = []

    def start(self):
        if len(self.running) < 4:
            stop = threading.Event()
            t = threading.Thread(target=stop.wait, daemon=True)
            t.start()
            self.running.append((t, stop))

    def stop(self):
        if self.running:
            t, stop = self.running.pop(0)
            stop.set()
            t.join()

    def close(self):
        while self.running:
            self.stop()


class Libraries:
    """Copies of libaligned.so, each under a new name (a new inode), really loaded."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.count = 0
        self.loaded: list[int] = []

    def load(self):
        if len(self.loaded) < 3:
            self.count += 1
            path = self.tmp_path / f"libaligned-{self.count}.so"
            shutil.copy(LIBALIGNED, path)
            self.loaded.append(ctypes.CDLL(str(path))._handle)

    def unload(self):
        if self.loaded:
            _ctypes.dlclose(self.loaded.pop(0))

    def close(self):
        while self.loaded:
            self.unload()


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_state_is_the_full_classification_under_random_changes(seed, tmp_path):
    rng = random.Random(seed)
    pages, threads, libraries = Pages(rng, tmp_path), Threads(), Libraries(tmp_path)
    operations = [
        (pages.anonymous, 8),
        (pages.unmap, 4),
        (pages.protect, 8),
        (pages.map_file, 3),
        (pages.map_elf_as_data, 2),
        (pages.map_elf_code, 2),
        (pages.arena_shape, 1),
        (threads.start, 1),
        (threads.stop, 1),
        (libraries.load, 1),
        (libraries.unload, 1),
    ]
    functions, weights = zip(*operations)
    seen: set[str] = set()
    try:
        with Sampler(os.getpid()) as s:
            check_consistent(s)
            for _ in range(300):
                old_text, old_maps = s.text, list(s.mappings)
                for op in rng.choices(functions, weights, k=rng.randrange(1, 4)):
                    op()
                change = s.sample()
                check_consistent(s)
                check_events(change, old_maps, s)
                assert bool(change) == bool(
                    s.text != old_text or change.threads_started or change.threads_ended
                )
                seen.update(r.detail for r in s.regions)
    finally:
        threads.close()
        libraries.close()
        pages.close()
    # The rules whose results reach across mappings all had their turn.
    assert Detail.MALLOC_ARENA in seen and Detail.MALLOC_ARENA_RESERVE in seen
    assert Detail.SEGMENT_GAP in seen  # libaligned's no-access padding
    assert Detail.THREAD_STACK in seen
    assert Detail.ELF_AS_DATA in seen


# --------------------------------------------------------------- written maps
#
# Some dependencies between mappings are rare in a live map.  Here the sampler
# watches this process, but reads a maps text the test writes: the first
# sample replaces the real map with it whole, the next one makes one change.
# Where it matters, a path's length is chosen so that the diff is exactly the
# changed lines: a hunk with a neighbour's line in it would widen the window
# and hide the question.


def text_of(mappings: list[Mapping]) -> bytes:
    return b"".join(os.fsencode(format_mapping(m)) + b"\n" for m in mappings)


def anon(start: int, end: int, perms: str) -> Mapping:
    return Mapping(start, end, perms, 0, "00:00", 0, None)


def file_mapping(path: Path, start: int, end: int, perms: str, offset: int) -> Mapping:
    st = os.stat(path)
    return Mapping(start, end, perms, offset, dev_string(st.st_dev), st.st_ino, str(path))


def elf_copy(tmp_path: Path) -> Path:
    elf = tmp_path / "libaligned-copy.so"
    shutil.copy(LIBALIGNED, elf)
    return elf


@pytest.fixture
def written(monkeypatch):
    """A sampler of this process whose maps text is whatever written.text is set to."""

    class Written:
        text = b""

    w = Written()
    with Sampler(os.getpid()) as s:
        monkeypatch.setattr(s, "_read_maps", lambda: w.text)
        w.sampler = s
        yield w


LOW = 0x7F0000000000
TOP = anon(0x7F0100000000, 0x7F0100001000, "r--p")


def test_guard_of_a_stack_below_a_changed_arena_reserve(written):
    # T is a thread's stack (its stack pointer is in it), G the guard below it.
    # Above T, U is ---p reaching past the 64 MiB boundary inside T: glibc's
    # arena shape, and the arena rule (stronger) takes T's top part, so T is
    # not claimed as a stack and G is just reserved memory.  Then U is cut
    # short of the boundary: no arena, T is the thread's stack, G its guard.
    # G is two mappings below the change.  (Seen live: a thread's stack right
    # below a PROT_NONE reservation.)
    s = written.sampler
    tid, base = 4_000_000, 0x7F0004000000  # base: 64 MiB aligned
    s.facts = s.facts._replace(thread_sps={tid: base + 0x500000}, unknown_threads=())
    low = anon(LOW, LOW + PAGE, "r--p")
    g = anon(base - 0x201000, base - 0x200000, "---p")
    t = anon(base - 0x200000, base + 0x600000, "rw-p")
    u = anon(base + 0x600000, base + ARENA + 0x1A000, "---p")
    written.text = text_of([low, g, t, u, TOP])
    s.sample()
    check_consistent(s)
    assert [r.detail for r in s.regions if g.start <= r.start < u.start] == [
        Detail.RESERVED,
        Detail.ANONYMOUS,
        Detail.MALLOC_ARENA,
    ]
    cut = [
        anon(u.start, base + ARENA - PAGE, "---p"),
        anon(base + ARENA - PAGE, base + ARENA, "r--p"),
        anon(base + ARENA, u.end, "---p"),
    ]
    written.text = text_of([low, g, t, *cut, TOP])
    s.sample()
    assert [(r.detail, r.tid) for r in s.regions if r.start == t.start] == [
        (Detail.THREAD_STACK, tid)
    ]
    check_consistent(s)  # G: "guard page (TID ...)", as classify says


@pytest.mark.parametrize("allocator", ["jemalloc", "go"])
def test_a_run_cut_far_from_its_start_is_judged_whole(written, allocator):
    # jemalloc's rule takes a run of anonymous mappings of 2 MiB or more, and
    # Go's a run from the arena hint at its start: each mapping's kind depends
    # on mappings far from it.  A run alternating read-write and no-access
    # (the kernel cannot merge them) is cut at its top, two mappings above its
    # bottom: the bottom must be judged again, with the run's new length.
    s = written.sampler
    s.facts = s.facts._replace(
        runtimes=(Runtime(allocator, "/x/runtime", allocator != "go", "name"),)
    )
    s._runs_matter = True  # as the full read sets it from the runtimes found
    base = 0xC000000000 if allocator == "go" else LOW + ARENA
    step = (64 << 20) if allocator == "go" else (512 << 10)
    run = [
        anon(base + i * step, base + (i + 1) * step, "rw-p" if i % 2 == 0 else "---p")
        for i in range(5)
    ]
    low = anon(LOW, LOW + PAGE, "r--p")
    written.text = text_of(sorted([low, *run, TOP]))
    s.sample()
    check_consistent(s)
    assert {r.allocator for r in s.regions if run[0].start <= r.start < run[-1].end} == {allocator}
    if allocator == "go":  # Go's arenas reach down to their hint: cut at the bottom
        written.text = text_of(sorted([low, anon(base + PAGE, run[0].end, "rw-p"), *run[1:], TOP]))
    else:  # jemalloc's run must be 2 MiB long: cut at the top
        written.text = text_of(sorted([low, *run[:3], TOP]))
    s.sample()
    check_consistent(s)


def test_image_reaching_the_guard_of_a_stack_shape(written, tmp_path):
    # M is ---p, 55 pages: too big for a thread stack's guard, so R (rw-p)
    # above it is plain anonymous memory.  An ELF file's code page mapped
    # executable is a loaded image whose span (to 0x35000 past the page) claims
    # all of M but its top 4 pages: now a guard, and R has glibc's thread-stack
    # shape.  Between the code page and M, X: another ---p mapping (the kernel
    # keeps two apart when their flags differ, MAP_NORESERVE for one).  The
    # image's span ends inside M, which the change's own neighbours reach; R,
    # one further, must be classified again too.  (Seen live in the random
    # test, both ways: the shape appearing and going.)
    s = written.sampler
    elf = elf_copy(tmp_path)
    x = 0x7F0000100000
    code = file_mapping(elf, x, x + PAGE, "r-xp", 0x10000)
    low = Mapping(LOW, LOW + PAGE, "r--p", 0, "fe:01", 6, "/nonexistent/low")
    old = [low, anon(x - 0x20000, x + PAGE, "---p")]
    new = [low, anon(x - 0x20000, x, "---p"), code]
    r = anon(x + 0x39000, x + 0x3C000, "rw-p")
    for pad in range(64):
        top = TOP._replace(inode=8, dev="fe:01", path="/nonexistent/" + "t" * pad)
        rest = [
            anon(x + PAGE, x + 2 * PAGE, "---p"),  # X
            anon(x + 2 * PAGE, x + 0x39000, "---p"),  # M
            r,
            anon(x + 0x3C000, x + 0x100000, "r--p"),
            top,
        ]
        before, after = text_of(old + rest), text_of(new + rest)
        at = len(text_of([low]))
        if diff_maps(before, after) == [Hunk(at, len(text_of(old)), at, len(text_of(new)))]:
            break
    else:
        pytest.fail("no padding gives a diff of exactly the changed lines")
    written.text = before
    s.sample()
    check_consistent(s)
    assert [reg.detail for reg in s.regions if reg.start == r.start] == [Detail.ANONYMOUS]
    written.text = after
    s.sample()
    assert [im.start for im in s.images if im.path == str(elf)] == [x - 0x10000]
    check_consistent(s)
    assert [reg.detail for reg in s.regions if reg.start == r.start] == [Detail.STACK_SHAPED]


def test_image_whose_mappings_all_go_is_forgotten(written, tmp_path):
    # An image (an ELF file's code page, mapped executable) between two other
    # files' mappings that lie outside its span.  The code page goes: the
    # change is exactly that line, and no mapping left meets the image's span,
    # yet the image must leave .images (as when a library mapped just below
    # another one is unloaded).
    s = written.sampler
    elf = elf_copy(tmp_path)
    x = 0x7F0000100000
    code = file_mapping(elf, x, x + PAGE, "r-xp", 0x10000)
    two = Mapping(x + 0x80000, x + 0x81000, "r--p", 0, "fe:01", 7, "/nonexistent/two")
    for pad in range(64):
        one = Mapping(x - 0x40000, x - 0x3F000, "r--p", 0, "fe:01", 6, "/nonexistent/" + "o" * pad)
        before, after = text_of([one, code, two]), text_of([one, two])
        at = len(text_of([one]))
        if diff_maps(before, after) == [Hunk(at, at + len(text_of([code])), at, at)]:
            break
    else:
        pytest.fail("no padding gives a diff of exactly one line")
    written.text = before
    s.sample()
    check_consistent(s)
    assert [im.start for im in s.images if im.path == str(elf)] == [x - 0x10000]
    written.text = after
    change = s.sample()
    assert ("unmap", "text") in {(e.event, e.kind) for e in change.events}
    assert [im for im in s.images if im.path == str(elf)] == []
    check_consistent(s)


def test_memory_an_image_claimed_is_released_when_the_image_goes(written, tmp_path):
    # The image (libaligned's code page mapped executable at x) claims N, a ---p
    # mapping inside its span, as the gap between its segments, though another
    # file's mapping F lies between them.  When the code page goes, N is
    # reserved memory again, as classify of the whole map says.
    s = written.sampler
    elf = elf_copy(tmp_path)
    x = 0x7F0000100000
    code = file_mapping(elf, x, x + PAGE, "r-xp", 0x10000)
    f = Mapping(x + PAGE, x + 2 * PAGE, "r--p", 0, "fe:01", 7, "/nonexistent/f")
    n = anon(x + 2 * PAGE, x + 0x10000, "---p")
    for pad in range(64):
        low = Mapping(LOW, LOW + PAGE, "r--p", 0, "fe:01", 6, "/nonexistent/" + "o" * pad)
        before, after = text_of([low, code, f, n, TOP]), text_of([low, f, n, TOP])
        at = len(text_of([low]))
        if diff_maps(before, after) == [Hunk(at, at + len(text_of([code])), at, at)]:
            break
    else:
        pytest.fail("no padding gives a diff of exactly one line")
    written.text = before
    s.sample()
    check_consistent(s)
    assert [r.detail for r in s.regions if r.start == n.start] == [Detail.SEGMENT_GAP]
    written.text = after
    s.sample()
    check_consistent(s)
    assert [r.detail for r in s.regions if r.start == n.start] == [Detail.RESERVED]


def test_maps_over_64_kib_and_many_changes_far_apart(tmp_path):
    # Every other page of a reservation made read-only: a maps file past the
    # sampler's 64 KiB buffer, then changes spread over all of it (the probe).
    count = 2400
    base = libc.mmap(None, count * PAGE, 0, PRIVATE | ANONYMOUS | MAP_NORESERVE, -1, 0)
    assert base not in (None, MAP_FAILED)
    try:
        for k in range(0, count, 2):
            libc.mprotect(base + k * PAGE, PAGE, R)
        with Sampler(os.getpid()) as s:
            assert len(s.text) > 1 << 16
            check_consistent(s)
            rng = random.Random(3)
            for _ in range(6):
                old_maps = list(s.mappings)
                for k in rng.sample(range(count), 12):
                    libc.mprotect(base + k * PAGE, PAGE, rng.choice((R, R | W, 0)))
                change = s.sample()
                check_consistent(s)
                check_events(change, old_maps, s)
            for k in range(0, count, 2):
                libc.mprotect(base + k * PAGE, PAGE, 0)
            old_maps = list(s.mappings)
            change = s.sample()
            check_consistent(s)
            check_events(change, old_maps, s)
            assert any(e.event == "merge" for e in change.events)
    finally:
        libc.munmap(base, count * PAGE)


def test_repeated_line_in_a_read_is_dropped_from_the_kept_text(monkeypatch):
    # The kernel prints a line again when its VMA changed between two read()
    # calls.  The sampler must keep a text with each mapping's line once (its
    # next diff depends on it).
    with Sampler(os.getpid()) as s:
        text = s.text
        lines = text.splitlines(keepends=True)
        k = len(lines) // 2
        doubled = b"".join(lines[: k + 1] + [lines[k]] + lines[k + 1 :])
        monkeypatch.setattr(s, "_read_maps", lambda: doubled)
        s.sample()
        check_consistent(s)
        assert s.text == text
        monkeypatch.undo()
        s.sample()
        check_consistent(s)


# --------------------------------------------------------------- samples/bin/watch


class Watch:
    """samples/bin/watch, driven one command at a time."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.out = Lines(process.stdout, "samples/bin/watch")
        ready = self.line()
        assert ready == f"ready pid={process.pid}", ready

    @property
    def pid(self) -> int:
        return self.process.pid

    def line(self, timeout: float = 10) -> str:
        return self.out.next(timeout)

    def send(self, command: str) -> None:
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def do(self, command: str) -> dict[str, int | str]:
        """Run one command; its done line's key=value pairs (numbers as ints)."""
        self.send(command)
        words = self.line().split()
        assert words[:2] == ["done", command.split()[0]], words
        out: dict[str, int | str] = {}
        for word in words[2:]:
            key, _, value = word.partition("=")
            out[key] = int(value, 0) if value[:1].isdigit() else value
        return out

    def thread_settled(self, tid: int, alive: bool, timeout: float = 10) -> None:
        """Wait until thread `tid` is there (or gone), and every thread is blocked.

        Every thread, not only `tid`: the sample's threads wait on one condition
        variable, and a thread-start or thread-stop wakes them all; a new thread
        reports itself just before it blocks; pthread_join returns once the
        kernel clears the thread's TID, a moment before its task leaves /proc.
        A thread on a CPU has no stack pointer to read, and the sampler would
        see those states, correctly, a sample later.
        """
        task = f"/proc/{self.pid}/task"
        deadline = time.monotonic() + timeout
        while True:
            tids = {int(t) for t in os.listdir(task)}
            if (tid in tids) == alive and all(self._blocked(t) for t in tids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"thread {tid} did not settle: {sorted(tids)}")
            time.sleep(0.005)

    def _blocked(self, tid: int) -> bool:
        try:
            with open(f"/proc/{self.pid}/task/{tid}/syscall", "rb") as f:
                return not f.read().startswith(b"running")
        except (FileNotFoundError, ProcessLookupError):
            return True  # gone meanwhile: the listing will say so


@contextmanager
def run_watch():
    process = subprocess.Popen([str(WATCH)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        yield Watch(process)
    finally:
        # No child survives a test: kill (harmless if it already exited) and reap.
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()


@pytest.fixture
def watch():
    with run_watch() as w:
        yield w


def step(s: Sampler, fresh_check: bool = True) -> Change:
    """One sample, checked; and compared with a sampler started from scratch now."""
    old_maps = list(s.mappings)
    change = s.sample()
    check_consistent(s)
    check_events(change, old_maps, s)
    if fresh_check:
        # The process is idle between commands: a new sampler must see what the
        # incremental one holds.
        with Sampler(s.pid, cache=s.cache) as fresh:
            assert fresh.text == s.text
            assert fresh.regions == s.regions
            assert fresh.totals() == s.totals()
    return change


def only(events, **want):
    found = [e for e in events if all(getattr(e, k) == v for k, v in want.items())]
    assert len(found) == 1, (want, events)
    return found[0]


def test_watch_commands_give_their_events(watch):
    with Sampler(watch.pid) as s:
        check_consistent(s)

        done = watch.do("heap-grow 262144")
        e = only(step(s).events, event="grow", kind="heap")
        assert e.direction == "up" and e.end == done["new_brk"]
        assert e.before[1] == done["old_brk"] and e.bytes == done["new_brk"] - done["old_brk"]

        done = watch.do("stack-grow 1024")
        e = only(step(s).events, event="grow", kind="stack")
        assert e.direction == "down" and e.path == "[stack]"
        assert e.start <= done["lowest"] < e.before[0]

        done = watch.do("thread-start")
        tid, stack = done["tid"], done["stack"]
        watch.thread_settled(tid, alive=True)
        change = step(s)
        assert change.threads_started == [tid] and change.threads_ended == []
        e = only(change.events, event="map", kind="stack", start=stack)
        assert e.end == stack + done["size"] and (e.detail, e.tid) == (Detail.THREAD_STACK, tid)
        guard = only(s.regions, end=stack)
        assert guard.kind == "stack" and (guard.detail, guard.tid) == (Detail.GUARD_PAGE, tid)
        assert guard.perms == "---p"

        done = watch.do("thread-stop")
        assert done["tid"] == tid
        watch.thread_settled(tid, alive=False)
        change = step(s)
        assert change.threads_ended == [tid] and change.threads_started == []
        unmapped = [e for e in change.events if e.event == "unmap"]
        assert unmapped and all(e.kind == "stack" for e in unmapped)
        assert any(e.start <= stack < e.end for e in unmapped)

        done = watch.do("mmap 1048576")
        e = only(step(s).events, event="map")
        assert (e.start, e.end, e.kind, e.perms) == (done["start"], done["end"], "mmap", "rw-p")
        mapping = (done["start"], done["end"])

        done = watch.do("mprotect")
        change = step(s)
        assert [e.event for e in change.events] == ["split", "protect"]
        split, protect = change.events
        assert (split.start, split.end) == mapping
        assert (protect.start, protect.end, protect.perms) == (done["start"], done["end"], "r--p")
        assert protect.before == (done["start"], done["end"], "rw-p")

        done = watch.do("unprotect")
        change = step(s)
        assert [e.event for e in change.events] == ["merge", "protect"]
        merge, protect = change.events
        assert (merge.start, merge.end, merge.perms) == (*mapping, "rw-p")
        assert (protect.start, protect.end, protect.perms) == (done["start"], done["end"], "rw-p")
        assert protect.before == (done["start"], done["end"], "r--p")

        done = watch.do("munmap")
        e = only(step(s).events, event="unmap")
        assert (e.start, e.end) == (done["start"], done["end"]) == mapping

        done = watch.do("dlopen libm.so.6")
        change = step(s)
        libm = [e for e in change.events if e.object and "libm" in e.object]
        assert libm and all(e.event == "map" and "libm" in e.path for e in libm)
        assert {"text", "rodata", "data"} <= {e.kind for e in libm}
        assert min(e.start for e in libm) == done["base"]
        assert any(im.path.endswith("libm.so.6") for im in s.images)

        watch.do("dlclose")
        change = step(s)
        unmapped = [e for e in change.events if e.object and "libm" in e.object]
        assert {(e.event, e.start, e.end) for e in unmapped} == {
            ("unmap", e.start, e.end) for e in libm
        }
        assert not any(r.path and "libm" in r.path for r in s.regions)
        assert not any(im.path.endswith("libm.so.6") for im in s.images)

        done = watch.do("heap-shrink")
        e = only(step(s).events, event="shrink", kind="heap")
        assert e.direction == "down" and e.end == done["new_brk"]

        # Then the process exits: a zombie until reaped, gone after.
        watch.send("exit 0")
        os.waitid(os.P_PID, watch.pid, os.WEXITED | os.WNOWAIT)
        with pytest.raises(ProcessExited) as raised:
            s.sample()
        assert not isinstance(raised.value, PidReused)
        watch.process.wait()
        with pytest.raises(ProcessExited) as raised:
            s.sample()
        assert not isinstance(raised.value, PidReused)


def test_nothing_changed_is_a_falsy_change_and_keeps_the_text(watch):
    with Sampler(watch.pid) as s:
        text = s.text
        for _ in range(3):
            change = s.sample()
            assert not change
            assert change.events == [] and change.threads_started == change.threads_ended == []
            assert s.text is text
        assert s.samples == 3
        check_consistent(s)


def test_watched_threads_with_a_sampler_started_after_them(watch):
    # Threads already running when the sampler starts: their stacks come from
    # the first full read, and stopping them is seen as such.
    tids = []
    for _ in range(2):
        done = watch.do("thread-start")
        watch.thread_settled(done["tid"], alive=True)
        tids.append(done["tid"])
    with Sampler(watch.pid) as s:
        check_consistent(s)
        assert set(tids) <= {r.tid for r in s.regions if r.detail is Detail.THREAD_STACK}
        watch.do("thread-stop")
        watch.thread_settled(tids[-1], alive=False)
        change = step(s)
        assert change.threads_ended == [tids[-1]]
        assert tids[-1] not in {r.tid for r in s.regions if r.detail is Detail.THREAD_STACK}


def test_a_thread_that_ends_while_another_starts_is_seen(watch):
    # Between two samples one thread ends and another starts: the thread count
    # is the same, but the threads are not.
    with Sampler(watch.pid) as s:
        first = watch.do("thread-start")["tid"]
        watch.thread_settled(first, alive=True)
        assert s.sample().threads_started == [first]
        watch.do("thread-stop")
        watch.thread_settled(first, alive=False)
        second = watch.do("thread-start")["tid"]
        watch.thread_settled(second, alive=True)
        change = s.sample()
        check_consistent(s)
        assert (change.threads_started, change.threads_ended) == ([second], [first])
        assert s.tids == sorted(int(t) for t in os.listdir(f"/proc/{watch.pid}/task"))
        assert second in {r.tid for r in s.regions if r.detail is Detail.THREAD_STACK}


@contextmanager
def exec_on_command(script: str, execed):
    """A Sampler of `sh -c script`, yielded once the shell has read a line and
    exec'd (execed(pid) says when); the process is killed after."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        with Sampler(process.pid) as s:
            process.stdin.write(b"go\n")
            process.stdin.flush()
            for _ in range(1000):
                if execed(process.pid):
                    break
                time.sleep(0.005)
            else:
                pytest.fail(f"sh did not exec: {script}")
            yield s
    finally:
        process.kill()
        process.wait()
        process.stdin.close()


def test_exec_replaces_everything():
    # A shell that execs sleep on command: the next sample says exec, and the
    # state is the new program's.
    def execed(pid):
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "sleep"

    with exec_on_command("read line; exec /bin/sleep 60", execed) as s:
        change = s.sample()
        assert change.exec and change
        check_consistent(s)
        assert s.info.name == "sleep"
        assert any(im.role == "program" and im.path.endswith("sleep") for im in s.images)


def test_exec_of_the_same_program_is_an_exec():
    # sh running sh: the program file is the same, but the process ran it
    # anew (samples/watch does that to itself at start): everything was
    # replaced, the command line too.
    def execed(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"/bin/sh\0-c\0read again\0"  # the first's holds it too

    with exec_on_command('read line; exec /bin/sh -c "read again"', execed) as s:
        change = s.sample()
        check_consistent(s)
        assert change.exec
        assert s.info.cmdline == ("/bin/sh", "-c", "read again")


def test_sampler_of_a_zombie_is_refused():
    process = subprocess.Popen(["/bin/true"])
    try:
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        with pytest.raises(ZombieProcess):
            Sampler(process.pid)
    finally:
        process.wait()


def test_pid_reused_is_told_apart_from_an_exit(tmp_path, watch):
    # A procfs whose /proc/PID is a link, pointed at another process once the
    # watched one has exited: what a reused PID looks like through a path,
    # while the sampler's held directory still says the old process is gone.
    root = tmp_path / "proc"
    root.mkdir()
    link = root / str(watch.pid)
    link.symlink_to(f"/proc/{watch.pid}")
    with Sampler(watch.pid, procfs=ProcFS(str(root))) as s:
        check_consistent(s)
        watch.send("exit 0")
        watch.process.wait()
        link.unlink()
        link.symlink_to(f"/proc/{os.getpid()}")
        with pytest.raises(PidReused, match=f"PID {watch.pid} exited and now belongs"):
            s.sample()


def test_sampler_of_a_missing_process_is_no_such_process():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())  # PIDs are below pid_max: this one never exists
    with pytest.raises(NoSuchProcess):
        Sampler(pid_max)


def test_killed_process_is_process_exited(watch):
    with Sampler(watch.pid) as s:
        watch.process.send_signal(signal.SIGKILL)
        watch.process.wait()
        with pytest.raises(ProcessExited) as raised:
            s.sample()
        assert not isinstance(raised.value, PidReused)
