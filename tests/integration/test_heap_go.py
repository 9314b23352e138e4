"""The Go heap: arenas at the runtime's hints, goroutine stacks inside them.

samples/goheap (pure Go, CGO_ENABLED=0, no libc) and samples/goheap-cgo (the
same program linked with libc through cgo, plus a block a C thread malloc()s)
allocate Go objects of several sizes, 100 MiB in all (more than one 64 MiB
arena), park four goroutines in a read(2) with a local on their stacks, and
print each address with the kind procmap must give it, then the runtime's own
MemStats.  The tests compare procmap's map with both.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

import procmap
from procmap.classify import classify
from procmap.live.sampler import Sampler
from procmap.model import Detail, ProcessMap, Region
from tests.conftest import (
    SAMPLE_BIN,
    SAMPLES,
    Lines,
    lines_until_ready,
    stop,
    wait_until_blocked,
)
from tests.helpers import procmap_json, run_cli

GOHEAP = SAMPLE_BIN / "goheap"
GOHEAP_CGO = SAMPLE_BIN / "goheap-cgo"
ARENA = 64 << 20  # heapArenaBytes, 64-bit Linux (runtime/malloc.go)
FIRST_HINT = 0xC000000000
# The runtime maps its heap in page-allocator chunks of 4 MiB (pallocChunkBytes):
# what it has mapped may be up to one chunk more than MemStats counts.
CHUNK = 4 << 20
GOROUTINE_STACK_MIN = 2048  # _StackMin: a goroutine's local is this near its stack pointer
GO_HEAP = frozenset((Detail.GO_HEAP_ARENA, Detail.GO_HEAP_RESERVE))
GLIBC_ARENA = frozenset((Detail.MALLOC_ARENA, Detail.MALLOC_ARENA_RESERVE))

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None, reason="needs golang-go (make deps installs it)"
)


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    """The Go samples, built under a lock: parallel workers share samples/bin."""
    if GOHEAP.exists() and GOHEAP_CGO.exists():
        return
    SAMPLE_BIN.mkdir(exist_ok=True)
    with open(SAMPLE_BIN / ".go-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            ["make", "-s", "-C", str(SAMPLES), "bin/goheap", "bin/goheap-cgo"], check=True
        )


@dataclass
class GoSample:
    process: subprocess.Popen
    objects: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (address, kind)
    memstats: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def locals(self) -> dict[str, int]:
        return {n: a for n, (a, _) in self.objects.items() if n.startswith("goroutine")}

    @property
    def go_objects(self) -> dict[str, int]:
        return {n: a for n, (a, _) in self.objects.items() if n != "c_thread_malloc"}


@contextmanager
def run_goheap(path=GOHEAP) -> Iterator[GoSample]:
    process = subprocess.Popen([str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        sample = GoSample(process)
        for line in lines_until_ready(process, path.name, timeout=30):
            words = line.split()
            if words[0] == "memstats":
                names = ("HeapSys", "HeapInuse", "StackInuse", "StackSys")
                sample.memstats = dict(zip(names, map(int, words[1:])))
            else:
                sample.objects[words[0]] = (int(words[1], 16), words[2])
        wait_until_blocked(process.pid)
        yield sample
    finally:
        stop(process)


@pytest.fixture(scope="module")
def pure() -> Iterator[GoSample]:
    with run_goheap(GOHEAP) as s:
        yield s


@pytest.fixture(scope="module")
def cgo() -> Iterator[GoSample]:
    with run_goheap(GOHEAP_CGO) as s:
        yield s


def go_heap(pmap: ProcessMap) -> list[Region]:
    return [r for r in pmap.regions if r.detail in GO_HEAP]


def check_go_heap(pmap: ProcessMap, sample: GoSample) -> None:
    """What holds in any Go process: its heap from the first hint up, whole arenas, never split."""
    heap = go_heap(pmap)
    assert heap, "no Go heap arena found"
    assert all(r.kind == "heap" and r.allocator == "go" and r.heuristic for r in heap)
    # One unbroken run from the first hint, in whole arenas, more than one (the
    # sample's heap is past 64 MiB).
    start, end = heap[0].start, heap[-1].end
    assert start == FIRST_HINT
    assert all(a.end == b.start for a, b in zip(heap, heap[1:]))
    assert (end - start) % ARENA == 0 and end - start >= 2 * ARENA
    # Committed and reserved told apart, by the permissions the runtime gave them.
    for r in heap:
        assert r.detail is (Detail.GO_HEAP_ARENA if r.perms == "rw-p" else Detail.GO_HEAP_RESERVE)
    # Nothing else in those addresses: not split into thread stacks, mmaps or glibc arenas.
    inside = [r for r in pmap.regions if r.start < end and r.end > start]
    assert inside == heap
    # Every object and goroutine local the program printed: in a committed arena.
    for name, address in sample.go_objects.items():
        r = pmap.region_at(address)
        assert r is not None, name
        assert (r.kind, r.detail, r.allocator) == ("heap", Detail.GO_HEAP_ARENA, "go"), name
    # The runtime's own figures: what is in use is committed; what is committed
    # is what the runtime counts as obtained for its heap and stacks, to a chunk.
    committed = sum(r.size for r in heap if r.detail is Detail.GO_HEAP_ARENA)
    ms = sample.memstats
    assert committed >= ms["HeapInuse"] + ms["StackInuse"]
    assert abs(committed - (ms["HeapSys"] + ms["StackSys"])) <= CHUNK, (committed, ms)
    # The process's main stack is still its main stack.
    main = [r for r in pmap.regions if r.path == "[stack]"]
    assert [r.detail for r in main] == [Detail.MAIN_STACK]
    go = [rt for rt in pmap.runtimes if rt.name == "go"]
    assert go and go[0].found_by == "section"


def test_pure_go_heap(pure):
    """A pure Go process: the arenas are the Go heap, no glibc arena anywhere, runtime data named."""
    pmap = procmap.read_map(pure.pid)
    check_go_heap(pmap, pure)
    assert [rt.name for rt in pmap.runtimes] == ["go"]
    assert not [r for r in pmap.regions if r.detail in GLIBC_ARENA]
    assert not [r for r in pmap.regions if r.kind == "stack" and r.path != "[stack]"]
    # No libc: every other anonymous mapping is the runtime's (the bss is the program's).
    anonymous = [r for r in pmap.regions if r.path is None and r.inode == 0]
    others = [r for r in anonymous if r.detail not in GO_HEAP and r.kind != "bss"]
    assert others
    for r in others:
        assert (r.kind, r.detail, r.allocator, r.heuristic) == (
            "mmap",
            Detail.GO_RUNTIME_DATA,
            "go",
            True,
        )


def test_cgo_heap(cgo):
    """With cgo, libc's malloc has its arenas too: they are glibc's, the Go arenas Go's."""
    pmap = procmap.read_map(cgo.pid)
    check_go_heap(pmap, cgo)
    assert {rt.name for rt in pmap.runtimes} >= {"go", "glibc"}
    block = pmap.region_at(cgo.objects["c_thread_malloc"][0])
    assert block is not None
    assert (block.kind, block.detail, block.allocator) == ("heap", Detail.MALLOC_ARENA, "glibc")
    # With libc mapping memory too, the runtime's data cannot be told from it.
    assert not [r for r in pmap.regions if r.detail is Detail.GO_RUNTIME_DATA]


def test_cli_where_and_json(pure):
    """`procmap where --json` and `procmap PID --json` say the same, in their fields."""
    addresses = [hex(a) for a in pure.go_objects.values()]
    result = run_cli("where", str(pure.pid), *addresses, "--json")
    assert result.returncode == 0, result.stderr
    for loc in procmap_json(result.stdout):
        assert (loc["kind"], loc["detail"], loc["allocator"]) == ("heap", "go-heap-arena", "go")

    result = run_cli(str(pure.pid), "--json")
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    assert {"name": "go", "found_by": "section"}.items() <= data["allocators"][0].items()
    details = {r["detail"] for r in data["regions"]}
    assert {"go-heap-arena", "go-heap-reserve"} <= details
    assert not details & {"malloc-arena", "malloc-arena-reserve"}
    heap = [r for r in data["regions"] if r["detail"] in ("go-heap-arena", "go-heap-reserve")]
    assert all(r["kind"] == "heap" and r["allocator"] == "go" for r in heap)


@pytest.mark.parametrize("which", ["pure", "cgo"])
def test_threads_on_goroutine_stacks(which, request):
    """`--threads`: a thread whose stack pointer is in the Go heap is on a goroutine stack."""
    sample = request.getfixturevalue(which)
    result = run_cli(str(sample.pid), "--threads", "--json")
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    heap = [(r["start"], r["end"]) for r in data["regions"] if r["detail"] == "go-heap-arena"]
    in_heap = [
        t for t in data["threads"] if t["sp"] and any(s <= int(t["sp"], 16) < e for s, e in heap)
    ]
    assert in_heap
    for t in in_heap:
        assert t["sp_in"] == "goroutine-stack", t
        if not t["main"]:
            assert t["stack"] is None, t  # no bogus stack size: the goroutine's is the runtime's
    main = [t for t in data["threads"] if t["main"]]
    assert main and main[0]["stack"]["detail"] == "main-stack"
    # Each parked goroutine's thread: its stack pointer just below the goroutine's local.
    sps = {int(t["sp"], 16): t for t in in_heap}
    for name, local in sample.locals.items():
        near = [t for sp, t in sps.items() if local - GOROUTINE_STACK_MIN <= sp < local]
        assert near, f"{name} at {local:#x}: no thread's stack pointer below it"

    text = run_cli(str(sample.pid), "--threads").stdout
    assert "(goroutine-stack)" in text and "in the Go heap" in text


def test_watch_tells_the_go_heap_growing_into_new_arenas():
    """The sample allocates 128 MiB more while the sampler watches: the heap's events are
    the Go heap's, committed and grown, never 'went away', and the sampler's map is
    the same as a full classification of the new one."""
    with run_goheap(GOHEAP) as sample, Sampler(sample.pid) as s:
        sample.process.stdin.write(b"grow\n")
        sample.process.stdin.flush()
        assert Lines(sample.process.stdout, "goheap").next(30) == "grown"
        change = s.sample()
        full = classify(s.mappings, s.cache.layouts, s.facts)
        assert s.regions == full.regions
    heap = [e for e in change.events if e.kind == "heap"]
    assert heap and {e.allocator for e in heap} == {"go"}, change.events
    assert not [e for e in heap if e.event == "unmap"], heap
    # What became read-write: grown, mapped, or committed out of the reserve.
    committed = sum(
        e.bytes for e in heap if e.perms == "rw-p" and e.event in ("grow", "map", "protect")
    )
    assert committed >= 128 * (1 << 20) - CHUNK, heap
