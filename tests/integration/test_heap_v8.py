"""V8's heap, live: samples/node/heap.js run by node.

The sample prints V8's own figures (process.memoryUsage(), v8.getHeapSpaceStatistics())
and, with --allow-natives-syntax, the addresses of a few objects as %DebugPrint
gives them.  procmap's V8 regions are held to those figures, and `where` to those
addresses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from procmap.classify import v8
from procmap.model import Detail
from tests.conftest import SAMPLES, Lines, stop
from tests.helpers import procmap_json, run_cli

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs node (package nodejs; make deps)")

SCRIPT = SAMPLES / "node" / "heap.js"
MIB = 1 << 20
# V8's spaces whose pages are in the code range, not among the heap pages.
CODE_SPACES = ("code_space", "code_large_object_space")
TRIES = 10  # times the figures are asked for before and after procmap looks, to find them still


@dataclass
class Node:
    process: subprocess.Popen
    lines: Lines
    addresses: dict[str, int] = field(default_factory=dict)  # "small", "large-elements", ...

    @property
    def pid(self) -> int:
        return self.process.pid

    def figures(self, first: list[str] | None = None) -> dict:
        """V8's figures: those printed before "ready", or asked for anew."""
        if first is None:
            assert self.process.stdin
            self.process.stdin.write(b"\n")
            self.process.stdin.flush()
            first = self.until_ready()
        (line,) = [x for x in first if x.startswith("figures ")]
        return json.loads(line[len("figures ") :])

    def until_ready(self) -> list[str]:
        out = []
        while (line := self.lines.next(30)) != "ready":
            out.append(line)
        return out


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    process = subprocess.Popen(
        [str(NODE), "--allow-natives-syntax", str(SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        run = Node(process, Lines(process.stdout, "heap.js"))
        name = None
        for line in run.until_ready():
            # %DebugPrint's first line: "DebugPrint: 0x...: [JS_OBJECT_TYPE] ..."; an
            # array's backing store: " - elements: 0x... <FixedDoubleArray[100000]> ...".
            # Heap object pointers are tagged: the object is at the address less 1.
            if line.startswith("address "):
                name = line.split()[1]
            elif name and line.startswith("DebugPrint: 0x") and name not in run.addresses:
                run.addresses[name] = int(line.split()[1].rstrip(":"), 16) - 1
            elif name == "large" and line.startswith(" - elements: 0x"):
                run.addresses.setdefault("large-elements", int(line.split()[2], 16) - 1)
        yield run
    finally:
        stop(process)


def show(pid: int) -> dict:
    result = run_cli(str(pid), "--json")
    assert result.returncode == 0, result.stderr
    return procmap_json(result.stdout)


def steady(node: Node) -> tuple[dict, dict]:
    """procmap's map and V8's figures, taken while the figures did not change.

    V8 keeps working after "ready" (sweeping, the memory reducer's GCs), so the
    figures are asked for before and after procmap reads the map, until the
    committed ones agree (the used ones change with each answer, which allocates).
    """
    before = node.figures()
    for _ in range(TRIES):
        shown = show(node.pid)
        after = node.figures()
        if committed(after) == committed(before):
            return shown, after
        before = after
    pytest.fail(f"V8's figures changed each of {TRIES} times procmap looked")


def committed(figures: dict) -> tuple[int, dict[str, int]]:
    """heapTotal and each space's committed size."""
    spaces = {s["space_name"]: s["space_size"] for s in figures["spaces"]}
    return figures["memoryUsage"]["heapTotal"], spaces


def code_range(regions: list[dict]) -> tuple[int, int]:
    """The code range's bounds, from procmap's regions in it: it begins with the
    header of its first page (V8's heap), on a 256 KiB boundary."""
    details = {
        d.value for d in (Detail.V8_CODE, Detail.V8_CODE_RESERVE, Detail.V8_EMBEDDED_BUILTINS)
    }
    mine = [r for r in regions if r["allocator"] == "v8" and r["detail"] in details]
    assert mine, "no code range found"
    lo = min(r["start"] for r in mine)
    return lo - lo % v8.PAGE, max(r["end"] for r in mine)


def test_v8_is_named_among_the_allocators(node: Node) -> None:
    by_name = {a["name"]: a for a in show(node.pid)["allocators"]}
    assert by_name["v8"]["object"].endswith("node") or "libnode" in by_name["v8"]["object"]
    assert by_name["v8"]["malloc"] is False and by_name["glibc"]["malloc"] is True


def test_heap_pages_against_v8s_own_count(node: Node) -> None:
    """procmap's read-write V8 heap outside the code range is V8's heapTotal less its
    code spaces, to the byte.

    heapTotal is the sum of the spaces' space_size, each the committed size of the
    space's pages: whole 256 KiB pages, and large-object pages of their object's
    size.  Every one of those pages is a mapping of its own, so the two must agree
    exactly: a page missed or a foreign mapping taken shows as a difference.  The
    code spaces' pages are in the code range (its headers are counted apart).  The
    read-only space V8 reports as 0 bytes (it is shared, read from the snapshot),
    though its pages are mapped read-only: procmap's r--p pages are held apart, to
    less than a page each.
    """
    shown, figures = steady(node)
    regions = shown["regions"]
    lo, hi = code_range(regions)
    heap = [
        r
        for r in regions
        if r["allocator"] == "v8"
        and r["detail"] == Detail.V8_HEAP.value
        and not lo <= r["start"] < hi
    ]
    spaces = {s["space_name"]: s["space_size"] for s in figures["spaces"]}
    assert sum(spaces.values()) == figures["memoryUsage"]["heapTotal"]
    expected = figures["memoryUsage"]["heapTotal"] - sum(spaces.get(s, 0) for s in CODE_SPACES)
    total = sum(r["size"] for r in heap if r["perms"] == "rw-p")
    assert total == expected, (total, expected, spaces)
    read_only = [r for r in heap if r["perms"] == "r--p"]
    assert read_only and all(r["size"] <= v8.PAGE for r in read_only), read_only
    assert all(r["start"] % v8.PAGE == 0 and r["start"] < v8.HINT_END for r in heap)
    assert all(r["kind"] == "heap" and r["heuristic"] for r in heap)


def test_code_range(node: Node) -> None:
    """The code range is one 512 MiB reservation (kMaximalCodeRangeSize, no pointer
    compression), all of it V8's, and its code is at least V8's code space's use."""
    shown, figures = steady(node)
    regions = shown["regions"]
    lo, hi = code_range(regions)
    inside = [r for r in regions if lo <= r["start"] < hi]
    assert hi - lo == 512 * MIB
    assert lo % v8.PAGE == 0
    assert all(r["allocator"] == "v8" for r in inside), [
        r for r in inside if r["allocator"] != "v8"
    ]
    assert sum(r["size"] for r in inside) == hi - lo  # no gap
    code = [r for r in inside if r["detail"] == Detail.V8_CODE.value]
    assert code and all(r["kind"] == "text" and "x" in r["perms"] for r in code)
    spaces = {s["space_name"]: s for s in figures["spaces"]}
    used = sum(spaces[s]["space_used_size"] for s in CODE_SPACES if s in spaces)
    committed = sum(spaces[s]["space_size"] for s in CODE_SPACES if s in spaces)
    assert used <= sum(r["size"] for r in code) <= committed
    builtins = [r for r in inside if r["detail"] == Detail.V8_EMBEDDED_BUILTINS.value]
    assert len(builtins) <= 1 and all(r["path"] for r in builtins)


def test_where_each_object_is_in_v8s_heap(node: Node) -> None:
    names = ["small", "medium", "large", "large-elements"]
    missing = [n for n in names if n not in node.addresses]
    assert not missing, f"%DebugPrint gave no address for {missing}"
    result = run_cli("where", str(node.pid), *(hex(node.addresses[n]) for n in names), "--json")
    assert result.returncode == 0, result.stderr
    found = {
        n: (loc["kind"], loc["allocator"]) for n, loc in zip(names, procmap_json(result.stdout))
    }
    assert found == {n: ("heap", "v8") for n in names}


def test_the_large_array_has_a_page_of_its_own(node: Node) -> None:
    """100000 doubles, 800 KB: over half a page, so a large-object page, larger than 256 KiB."""
    regions = show(node.pid)["regions"]
    address = node.addresses["large-elements"]
    (page,) = [r for r in regions if r["start"] <= address < r["end"]]
    assert page["detail"] == Detail.V8_HEAP.value
    assert page["size"] > v8.PAGE and page["start"] % v8.PAGE == 0


def test_no_malloc_arena_in_v8s_memory(node: Node) -> None:
    """glibc's arenas are found (node's threads use malloc) and none of them is V8's."""
    regions = show(node.pid)["regions"]
    arenas = [r for r in regions if r["allocator"] == "glibc" and r["path"] is None]
    assert arenas, "node's threads have malloc arenas"
    lo, hi = code_range(regions)
    ours = [(r["start"], r["end"]) for r in regions if r["allocator"] == "v8"] + [(lo, hi)]
    overlapping = [a for a in arenas if any(a["start"] < e and s < a["end"] for s, e in ours)]
    assert not overlapping
    assert all(a["start"] >= v8.HINT_END for a in arenas)
