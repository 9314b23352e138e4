"""The JVM's memory: procmap against the JVM's own report (jcmd GC.heap_info).

One JVM with the default collector (G1) serves most tests (module-scoped), with
native memory tracking on, so that jcmd VM.native_memory detail lists each of its
reservations (the code cache, metaspace, the class space, thread stacks); Serial
and Parallel, whose generations lie in fixed ranges, start one JVM each.
-Xms16m -Xmx256m: a small committed heap in a reservation of 256 MiB, so
both committed and reserved parts are there to be told apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from contextlib import contextmanager

import pytest

from tests.conftest import SAMPLE_BIN, lines_until_ready, stop, wait_until_blocked
from tests.helpers import procmap_json, run_cli
from tests.users import CAP_SYS_PTRACE, NOBODY, needs_root, run_cli_as

HEAP_DETAILS = {"java-heap", "java-heap-young", "java-heap-old", "java-heap-reserve"}
_NMT = re.compile(r"^\[(0x[0-9a-f]+) - (0x[0-9a-f]+)\] reserved .*for (.+?) from", re.M)
_RANGE = re.compile(r"\[(0x[0-9a-f]+), (0x[0-9a-f]+)(?:, (0x[0-9a-f]+))?\)")


def _need_jdk() -> None:
    if not (shutil.which("java") and shutil.which("jcmd")):
        pytest.skip("needs default-jdk-headless (make deps installs it)")
    if not (SAMPLE_BIN / "Heap.class").exists():
        pytest.skip("needs default-jdk-headless to build samples/bin/Heap.class (make samples)")


@contextmanager
def java(*options: str):
    """The Heap sample in a JVM with `options`, until it prints "ready"; always ended."""
    _need_jdk()
    process = subprocess.Popen(
        ["java", "-Xms16m", "-Xmx256m", "-Xshare:auto", *options, "-cp", str(SAMPLE_BIN), "Heap"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        for _ in lines_until_ready(process, "java Heap", timeout=60):
            pass
        wait_until_blocked(process.pid, timeout=30)
        yield process
    finally:
        stop(process)


def heap_info(pid: int) -> dict[str, tuple[int, ...]]:
    """jcmd PID GC.heap_info: the address ranges it prints, by the line's first words."""
    out = subprocess.run(
        ["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        m = _RANGE.search(line)
        if m:
            name = line.split("total")[0].strip()
            found[name] = tuple(int(x, 16) for x in m.groups() if x)
    return found


def reservations(pid: int) -> list[tuple[str, int, int]]:
    """jcmd PID VM.native_memory detail: (what for, start, end) of each reservation."""
    out = subprocess.run(
        ["jcmd", str(pid), "VM.native_memory", "detail"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [(m[3], int(m[1], 16), int(m[2], 16)) for m in _NMT.finditer(out)]


def union(regions: list[dict]) -> tuple[int, int]:
    """The span of adjacent regions, checked to leave no gap."""
    regions = sorted(regions, key=lambda r: r["start"])
    for a, b in zip(regions, regions[1:]):
        assert a["end"] == b["start"], f"gap or overlap at {a['end']:x}"
    return regions[0]["start"], regions[-1]["end"]


@pytest.fixture(scope="module")
def g1():
    with java("-XX:NativeMemoryTracking=detail") as process:
        result = run_cli(str(process.pid), "--json")
        assert result.returncode == 0, result.stderr
        yield process.pid, procmap_json(result.stdout), heap_info(process.pid)


@pytest.fixture(scope="module")
def nmt(g1):
    return reservations(g1[0])


def test_the_jvm_is_named_by_its_library(g1):
    _, data, _ = g1
    jvm = [a for a in data["allocators"] if a["name"] == "jvm"]
    assert len(jvm) == 1
    assert jvm[0]["found_by"] == "name" and jvm[0]["object"].endswith("/libjvm.so")
    assert not any("JVM layout not read" in w for w in data["warnings"]), data["warnings"]


def test_the_java_heap_is_the_range_jcmd_reports(g1):
    _, data, info = g1
    heap = [r for r in data["regions"] if r["detail"] in HEAP_DETAILS]
    assert {r["kind"] for r in heap} == {"heap"}
    assert {r["allocator"] for r in heap} == {"jvm"}
    assert union(heap) == info["garbage-first heap"]
    details = {r["detail"] for r in heap}
    # G1's regions serve either generation: no generation ranges; -Xms16m leaves a reserve.
    assert details == {"java-heap", "java-heap-reserve"}
    for r in heap:
        assert (r["perms"] == "---p") == (r["detail"] == "java-heap-reserve"), r


def test_no_malloc_arena_over_jvm_memory(g1):
    _, data, _ = g1
    owned = [r for r in data["regions"] if r["allocator"] == "jvm"]
    arenas = [r for r in data["regions"] if r["detail"].startswith("malloc-arena")]
    for a in arenas:
        assert a["allocator"] == "glibc"
        for r in owned:
            assert a["end"] <= r["start"] or r["end"] <= a["start"], (a, r)


def test_code_cache_class_metadata_perf_data_and_stack_guards(g1):
    pid, data, _ = g1
    by_detail: dict[str, list[dict]] = {}
    for r in data["regions"]:
        by_detail.setdefault(r["detail"], []).append(r)
    code = by_detail["jit-code"]
    assert {r["kind"] for r in code} == {"text"} and all("x" in r["perms"] for r in code)
    assert {r["kind"] for r in by_detail["jit-code-reserve"]} == {"text"}
    (perf,) = by_detail["jvm-perf-data"]
    assert perf["kind"] == "mmap" and re.fullmatch(rf".*/hsperfdata_[^/]+/{pid}", perf["path"])
    assert by_detail["class-space"] and by_detail["class-space"][0]["kind"] == "heap"
    guards = by_detail["java-stack-guard"]
    assert len(guards) >= 2 and all(r["kind"] == "stack" and r["perms"] == "---p" for r in guards)
    stacks = {r["start"]: r for r in data["regions"] if r["detail"] == "thread-stack"}
    # Each zone lies right under a thread's stack (the thread procmap found by its SP).
    assert sum(g["end"] in stacks for g in guards) >= 2


def test_code_cache_and_class_space_are_the_reservations_nmt_reports(g1, nmt):
    _, data, _ = g1
    regions = data["regions"]

    def inside(start: int, end: int) -> list[dict]:
        return [r for r in regions if r["start"] < end and r["end"] > start]

    (code,) = [(s, e) for what, s, e in nmt if what == "Code" and e - s > 32 << 20]
    assert union(inside(*code)) == code
    assert {r["detail"] for r in inside(*code)} == {"jit-code", "jit-code-reserve"}
    (klass,) = [(s, e) for what, s, e in nmt if what == "Class"]
    assert union(inside(*klass)) == klass
    assert {r["detail"] for r in inside(*klass)} == {"class-space", "jvm-reserve"}
    archive = [(s, e) for what, s, e in nmt if what == "Shared class space"]
    for s, e in archive:  # with -Xshare:auto, when the JDK has its archive
        assert union(inside(s, e)) == (s, e)
        assert {r["detail"] for r in inside(s, e)} <= {"metaspace", "jvm-reserve"}
    # Every Java thread's stack guard zone is at the low end of a thread stack.
    stacks = {s for what, s, e in nmt if what == "Thread Stack"}
    guards = [r for r in regions if r["detail"] == "java-stack-guard"]
    assert guards and all(g["start"] in stacks for g in guards)


def test_where_on_the_heap_names_the_jvm(g1):
    pid, _, info = g1
    start = info["garbage-first heap"][0]
    result = run_cli("where", str(pid), f"0x{start:x}", "--json")
    assert result.returncode == 0, result.stderr
    (loc,) = procmap_json(result.stdout)
    assert loc["kind"] == "heap" and loc["allocator"] == "jvm", loc
    assert loc["detail"] == "java-heap"


@pytest.mark.parametrize(
    "collector, young_name, old_name",
    [
        ("-XX:+UseSerialGC", "def new generation", "tenured generation"),
        ("-XX:+UseParallelGC", "PSYoungGen", "ParOldGen"),
    ],
)
def test_generations_are_the_ranges_jcmd_reports(collector, young_name, old_name):
    with java(collector) as process:
        result = run_cli(str(process.pid), "--json")
        info = heap_info(process.pid)
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    regions = data["regions"]
    for name, detail in ((young_name, "java-heap-young"), (old_name, "java-heap-old")):
        low, committed, high = info[name]
        parts = [r for r in regions if r["detail"] == detail]
        assert union(parts) == (low, committed), name
        inside = [r for r in regions if r["start"] < high and r["end"] > low]
        assert union(inside) == (low, high)
        assert {r["detail"] for r in inside} <= {detail, "java-heap-reserve"}
        assert {r["allocator"] for r in inside} == {"jvm"}


@needs_root
def test_unreadable_jvm_memory_falls_back_with_one_warning(g1):
    """nobody with CAP_SYS_PTRACE reads a root JVM's maps, not its memory (mode 0600)."""
    pid, _, _ = g1
    result = run_cli_as(NOBODY, [str(pid), "--json"], keep_caps=(CAP_SYS_PTRACE,))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = procmap_json(result.stdout)
    notes = [w for w in data["warnings"] if w.startswith("JVM layout not read")]
    assert len(notes) == 1, data["warnings"]
    assert "shown as plain mappings" in notes[0]
    details = {r["detail"] for r in data["regions"]}
    assert not details & HEAP_DETAILS and "jit-code" not in details
    # Nor is the Java heap, shaped like one, taken for a glibc arena.
    assert not [d for d in details if d.startswith("malloc-arena")]
    assert "jvm-perf-data" in details  # by its path: no read of the JVM needed
