"""Other mallocs' heaps, live: samples/mallocs.c over jemalloc, tcmalloc and mimalloc.

Each case runs the sample built for (or preloaded with) one allocator, asks procmap
where each block it printed is, and holds procmap's heap to the allocator's own
count of what it mapped (jemalloc's stats, tcmalloc's heap size, mimalloc's
committed bytes).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from procmap.live.sampler import Sampler
from procmap.model import ALLOCATORS, Detail
from tests.conftest import (
    SAMPLE_BIN,
    SAMPLES,
    Lines,
    lines_until_ready,
    stop,
    wait_until_blocked,
)
from tests.helpers import procmap_json, run_cli

MIB = 1 << 20
PACKAGES = {
    "jemalloc": ("libjemalloc-dev", "/usr/include/jemalloc/jemalloc.h"),
    "tcmalloc": ("libgoogle-perftools-dev", "/usr/include/gperftools/malloc_extension_c.h"),
    "mimalloc": ("libmimalloc-dev", "/usr/include/mimalloc.h"),
}
HEAP_DETAILS = {
    "jemalloc": Detail.JEMALLOC_HEAP.value,
    "tcmalloc": Detail.TCMALLOC_HEAP.value,
    "mimalloc": Detail.MIMALLOC_HEAP.value,
}


@dataclass(frozen=True)
class Case:
    """One way a program gets an allocator: the sample's binary and its environment."""

    id: str
    allocator: str
    program: str
    env: tuple[tuple[str, str], ...] = ()
    malloc: bool = True  # the allocator answers malloc() (not so with a je_ prefix)


CASES = [
    Case("jemalloc", "jemalloc", "mallocs-jemalloc"),
    Case("jemalloc-static", "jemalloc", "mallocs-jemalloc-static"),
    Case("jemalloc-prefixed", "jemalloc", "mallocs-jemalloc-prefixed", malloc=False),
    Case("jemalloc-preload", "jemalloc", "mallocs-plain", (("LD_PRELOAD", "libjemalloc.so.2"),)),
    Case("tcmalloc", "tcmalloc", "mallocs-tcmalloc"),
    Case("tcmalloc-mmap", "tcmalloc", "mallocs-tcmalloc", (("TCMALLOC_SKIP_SBRK", "true"),)),
    Case("mimalloc", "mimalloc", "mallocs-mimalloc"),
]


@dataclass
class Run:
    case: Case
    pid: int
    blocks: dict[str, int] = field(default_factory=dict)  # name -> address
    report: dict[str, int] = field(default_factory=dict)  # "mapped", "active", "retained"


def built(case: Case) -> Path:
    """The case's binary, built if its allocator's package is installed; else a skip."""
    package, header = PACKAGES[case.allocator]
    if not os.path.exists(header):
        pytest.skip(f"needs {package} (make deps installs it)")
    path = SAMPLE_BIN / case.program
    if not path.exists():
        subprocess.run(["make", "-s", "-C", str(SAMPLES), f"bin/{case.program}"], check=True)
    if case.allocator == "jemalloc" and not (SAMPLE_BIN / "mallocs-jemalloc").exists():
        pytest.skip("needs libjemalloc-dev (make deps installs it)")  # for libjemalloc.so.2
    return path


@contextmanager
def running(case: Case) -> Iterator[Run]:
    path = built(case)
    process = subprocess.Popen(
        [str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **dict(case.env)},
    )
    try:
        run = Run(case, process.pid)
        for line in lines_until_ready(process, case.program):
            words = line.split()
            if words[-1] == "heap":
                run.blocks[words[0]] = int(words[1], 16)
            elif words[0] != "allocator":
                run.report[words[0]] = int(words[1])
        wait_until_blocked(process.pid)
        yield run
    finally:
        stop(process)


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def run(request) -> Iterator[Run]:
    with running(request.param) as r:
        yield r


def show(pid: int) -> dict:
    result = run_cli(str(pid), "--json")
    assert result.returncode == 0, result.stderr
    return procmap_json(result.stdout)


def test_where_says_each_block_is_the_allocators_heap(run: Run) -> None:
    names = list(run.blocks)
    assert len(names) == 14  # 7 sizes, from the main thread and the second thread
    result = run_cli("where", str(run.pid), *(hex(run.blocks[n]) for n in names), "--json")
    assert result.returncode == 0, result.stderr
    found = {
        n: (loc["kind"], loc["allocator"]) for n, loc in zip(names, procmap_json(result.stdout))
    }
    wrong = {n: f for n, f in found.items() if f != ("heap", run.case.allocator)}
    assert not wrong, f"{run.case.id}: blocks not in {run.case.allocator}'s heap: {wrong}"


def test_the_allocator_is_named_and_answers_malloc(run: Run) -> None:
    by_name = {a["name"]: a for a in show(run.pid)["allocators"]}
    assert by_name[run.case.allocator]["malloc"] is run.case.malloc
    assert by_name["glibc"]["malloc"] is not run.case.malloc
    assert sum(a["malloc"] for a in by_name.values()) == 1


def test_no_malloc_arena_and_the_thread_keeps_its_stack(run: Run) -> None:
    """glibc's arena rule does not fire, and the rules leave the second thread's stack."""
    regions = show(run.pid)["regions"]
    arenas = [r for r in regions if r["detail"] in ("malloc-arena", "malloc-arena-reserve")]
    assert arenas == []
    stacks = [r for r in regions if r["detail"] == "thread-stack"]
    assert len(stacks) == 1 and stacks[0]["kind"] == "stack" and stacks[0]["allocator"] is None
    assert stacks[0]["size"] >= 8 * MIB - 64 * 1024  # glibc's default: RLIMIT_STACK, 8 MiB here


def heap_bytes(regions: list[dict], allocator: str, details: set[str] | None = None) -> int:
    return sum(
        r["size"]
        for r in regions
        if r["kind"] == "heap"
        and r["allocator"] == allocator
        and (details is None or r["detail"] in details)
    )


def test_heap_size_against_the_allocators_own_count(run: Run) -> None:
    """procmap's heap regions hold at least what the allocator says it mapped.

    jemalloc: stats.mapped + stats.retained is every byte it has mapped (with
    opt.retain it keeps all of them): procmap's jemalloc heap is that, plus at
    most 1 MiB for a foreign anonymous mapping the kernel merged into one of
    its runs.  tcmalloc: generic.heap_size is its page heap; its metadata
    (spans, the page map, thread caches) comes from the same sbrk or mmap and is
    not counted in it, hence up to twice.  mimalloc: its committed count also
    holds its small allocations outside segments (each thread's data), which
    stay anonymous mmaps: procmap's committed segments are within 1 MiB under it.
    """
    assert run.report, f"{run.case.id}: the sample printed no figures of its allocator"
    regions = show(run.pid)["regions"]
    allocator = run.case.allocator
    total = heap_bytes(regions, allocator)
    if allocator == "jemalloc":
        count = run.report["mapped"] + run.report["retained"]
        assert count <= total <= count + MIB, (total, run.report)
    elif allocator == "tcmalloc":
        assert run.report["mapped"] <= total <= 2 * run.report["mapped"], (total, run.report)
    else:
        committed = heap_bytes(regions, allocator, {Detail.MIMALLOC_HEAP.value})
        assert committed <= run.report["mapped"] <= committed + MIB, (committed, run.report)
        assert total - committed >= 0


def test_text_view_names_the_allocator(run: Run) -> None:
    result = run_cli(str(run.pid), columns=200)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The header names each allocator, and which one answers malloc().
    (header,) = [line for line in lines[:4] if line.startswith("heap managed by ")]
    title = ALLOCATORS[run.case.allocator]
    assert f"{title} ({'malloc, ' if run.case.malloc else ''}in " in header, header
    assert header.count("(malloc, ") == 1, header
    rows = [line for line in lines if "  heap  " in line]
    assert rows, result.stdout
    allocator = run.case.allocator
    words = {f"{allocator} heap", f"brk heap ({allocator})"}
    assert any(any(w in row for w in words) for row in rows), rows


def test_the_heap_details_are_the_allocators(run: Run) -> None:
    """Each allocator's committed memory has its own detail (tcmalloc's brk heap the
    brk heap's), its no-access parts the shared reserve detail."""
    allocator = run.case.allocator
    mine = {r["detail"] for r in show(run.pid)["regions"] if r["allocator"] == allocator}
    allowed = {HEAP_DETAILS[allocator], Detail.HEAP_RESERVE.value}
    if allocator == "tcmalloc":
        allowed.add(Detail.BRK_HEAP.value)
    assert mine and mine <= allowed, mine
    if run.case.id != "tcmalloc":  # tcmalloc with sbrk: all of it in [heap]
        assert HEAP_DETAILS[allocator] in mine


PRELOADS = [
    ("jemalloc", "libjemalloc.so.2"),
    ("tcmalloc", "libtcmalloc.so.4"),
    ("mimalloc", "libmimalloc.so.2"),
]


@pytest.mark.parametrize("allocator, library", PRELOADS, ids=[a for a, _ in PRELOADS])
def test_watch_tells_the_allocators_heap_growing(allocator: str, library: str) -> None:
    """samples/bin/watch with the allocator preloaded mallocs 64 MiB in 16 KiB blocks: the
    sampler's heap events name the allocator and hold at least those bytes.

    (Freed, none of the three gives its mappings back: they return pages with
    madvise(), which changes what is resident, not the map.)
    """
    built(Case(allocator, allocator, f"mallocs-{allocator}"))  # skips without the package
    grown = 64 * MIB
    process = subprocess.Popen(
        [str(SAMPLE_BIN / "watch")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "LD_PRELOAD": library},
    )
    try:
        out = Lines(process.stdout, "samples/bin/watch")
        assert out.next(10).startswith("ready pid=")
        with Sampler(process.pid) as s:
            assert allocator in {r.name for r in s.facts.runtimes or ()}
            process.stdin.write(f"heap-grow {grown}\n".encode())
            process.stdin.flush()
            assert out.next(30).startswith("done heap-grow")
            events = s.sample().events
        heap = [e for e in events if e.kind == "heap" and e.event in ("map", "grow")]
        assert heap and {e.allocator for e in heap} == {allocator}, events
        assert sum(e.bytes for e in heap) >= grown, heap
    finally:
        stop(process)
