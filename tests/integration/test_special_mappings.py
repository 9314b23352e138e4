"""Special mappings on real processes: named anonymous memory, memfd, SysV shared memory,
/dev/zero, hugetlb, and a process with 60,000 mappings.

samples/special.c makes one of each special mapping and prints where; every test
checks procmap's API and commands against what the kernel says about the same
mapping in /proc/PID/maps and /proc/PID/smaps, read here with nothing of procmap's.
A mapping the kernel cannot make here is skipped with the sample's reason:
[anon:...] needs CONFIG_ANON_VMA_NAME; hugetlb needs free huge pages, which the
tests reserve for the run as root (vm.nr_hugepages, put back afterwards).
The saved-text counterpart is test_shapes.py::test_kernel_names_and_special_files.

Speed is measured in benchmarks/run.py (its 60,000-mapping case), not asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import procmap
from procmap.units import human_size
from tests.conftest import SAMPLE_BIN, SAMPLES, lines_until_ready, stop
from tests.helpers import procmap_json, run_cli

SPECIAL = SAMPLE_BIN / "special"
PAGES = SAMPLES / "pages.py"
NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
MAX_MAP_COUNT = Path("/proc/sys/vm/max_map_count")

# What procmap must call each mapping the sample makes: (kind, detail, maps path).
EXPECTED = {
    "anon-named": ("mmap", "anonymous, named procmap-private", "[anon:procmap-private]"),
    "shmem-named": (
        "mmap",
        "shared anonymous, named procmap-shared",
        "[anon_shmem:procmap-shared]",
    ),
    "memfd": ("mmap", "memfd", "/memfd:procmap-memfd (deleted)"),
    # IPC_PRIVATE is key 0; the kernel names the segment after its key.
    "sysv": ("mmap", "SysV shared memory", "/SYSV00000000 (deleted)"),
    "dev-zero": ("mmap", "shared anonymous", "/dev/zero (deleted)"),
    "hugetlb": ("mmap", "anonymous, huge pages", "/anon_hugepage (deleted)"),
    # Only smaps (KernelPageSize) tells a hugetlbfs memfd from another: by name, a memfd.
    "memfd-hugetlb": ("mmap", "memfd", "/memfd:procmap-memfd-huge (deleted)"),
}
NAMES = list(EXPECTED)
HUGE = ("hugetlb", "memfd-hugetlb")

# smaps' field names for procmap's Resident fields (the ones compared here).
SMAPS_FIELDS = {
    "rss": "Rss",
    "pss": "Pss",
    "shared_clean": "Shared_Clean",
    "shared_dirty": "Shared_Dirty",
    "private_clean": "Private_Clean",
    "private_dirty": "Private_Dirty",
    "swap": "Swap",
    "anonymous": "Anonymous",
    "shared_hugetlb": "Shared_Hugetlb",
    "private_hugetlb": "Private_Hugetlb",
}


# --- the kernel's word, read without procmap -------------------------------------------


def kernel_maps(pid: int) -> dict[int, tuple[int, str, str | None]]:
    """start -> (end, perms, path) from /proc/PID/maps, split by hand."""
    out = {}
    text = Path(f"/proc/{pid}/maps").read_bytes().decode("utf-8", "surrogateescape")
    for line in filter(None, text.split("\n")):  # proc(5): a path's newline is \012
        fields = line.split(None, 5)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        out[start] = (end, fields[1], fields[5] if len(fields) == 6 else None)
    return out


def kernel_smaps(pid: int) -> dict[int, dict[str, int]]:
    """start -> {smaps field: bytes} from /proc/PID/smaps."""
    out: dict[int, dict[str, int]] = {}
    block: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps").read_text(errors="replace").splitlines():
        head = line.split(None, 1)[0]
        if "-" in head and not head.endswith(":"):
            block = out[int(head.split("-")[0], 16)] = {}
        elif line.endswith(" kB"):
            name, value = line.split(":", 1)
            block[name] = int(value.split()[0]) << 10
    return out


# --- the sample, with huge pages reserved for it ----------------------------------------


@pytest.fixture(scope="module")
def huge_pages():
    """Reserve 4 more huge pages while the module runs; the old count goes back after.

    Yields why hugetlb cannot be tested here, or None when it can.
    """
    if not NR_HUGEPAGES.exists():
        yield "this kernel has no hugetlb support (no /proc/sys/vm/nr_hugepages)"
        return
    if os.geteuid() != 0:
        yield "reserving huge pages (vm.nr_hugepages) needs root"
        return
    old = NR_HUGEPAGES.read_text()
    try:
        NR_HUGEPAGES.write_text(f"{int(old) + 4}\n")
    except OSError as err:
        yield f"vm.nr_hugepages cannot be raised here ({err.strerror})"
        return
    try:
        now = int(NR_HUGEPAGES.read_text())
        # The kernel gives fewer when memory is too fragmented to find free huge pages.
        enough = now >= int(old) + len(HUGE)
        yield None if enough else f"the kernel gave too few huge pages (nr_hugepages {now})"
    finally:
        NR_HUGEPAGES.write_text(old)


@dataclass
class Special:
    process: subprocess.Popen
    made: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (address, size)
    unsupported: dict[str, str] = field(default_factory=dict)  # name -> the sample's reason
    huge_reason: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def mapping(self, name: str) -> tuple[int, int]:
        """(address, size) of the sample's mapping `name`, or skip with why it is not there."""
        if name in self.made:
            return self.made[name]
        why = self.unsupported.get(name, "not printed")
        if name in ("anon-named", "shmem-named") and why == "EINVAL":
            pytest.skip(
                "prctl(PR_SET_VMA_ANON_NAME) fails with EINVAL: this kernel is built without "
                "CONFIG_ANON_VMA_NAME (or, for shared memory, is older than Linux 6.2)"
            )
        if name in HUGE and self.huge_reason:
            pytest.skip(f"no huge pages for {name}: {self.huge_reason}")
        pytest.skip(f"the sample could not make {name} here: {why}")


@pytest.fixture(scope="module")
def special(huge_pages):
    """The sample, running and waiting on stdin; killed and reaped whatever happens."""
    subprocess.run(["make", "-s", "-C", str(SAMPLES), "bin/special"], check=True)
    process = subprocess.Popen([str(SPECIAL)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        s = Special(process, huge_reason=huge_pages)
        for line in lines_until_ready(process, "special"):
            name, where, why = line.split(None, 2)
            if where == "unsupported":
                s.unsupported[name] = why
            else:
                s.made[name] = (int(where, 16), int(why))
        assert set(s.made) | set(s.unsupported) == set(NAMES)
        yield s
    finally:
        stop(process)


@dataclass
class Views:
    """procmap's every view of the sample, taken once, and the kernel's word after them."""

    pmap: procmap.ProcessMap
    table: str
    json: dict
    diagram: str
    diagram_json: dict
    rss_table: str
    rss_json: dict
    rss_diagram_json: dict
    where: list[dict]
    maps: dict[int, tuple[int, str, str | None]]
    smaps: dict[int, dict[str, int]]


def run_ok(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.fixture(scope="module")
def views(special) -> Views:
    pid = str(special.pid)
    # Each mapping's first and last byte.
    addresses = [f"{a + off:#x}" for a, size in special.made.values() for off in (0, size - 1)]
    return Views(
        pmap=procmap.read_map(special.pid),
        table=run_ok(pid),
        json=procmap_json(run_ok(pid, "--json")),
        diagram=run_ok(pid, "--diagram"),
        diagram_json=procmap_json(run_ok(pid, "--diagram", "--json")),
        rss_table=run_ok(pid, "--rss"),
        rss_json=procmap_json(run_ok(pid, "--rss", "--json")),
        rss_diagram_json=procmap_json(run_ok(pid, "--rss", "--diagram", "--json")),
        where=procmap_json(run_ok("where", pid, *addresses, "--json")),
        # The sample only waits: its maps and smaps hold still while procmap reads them.
        maps=kernel_maps(special.pid),
        smaps=kernel_smaps(special.pid),
    )


# --- each special mapping, every way procmap shows it -----------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_kernel_shows_the_mapping_the_sample_made(special, views, name):
    address, size = special.mapping(name)
    end, perms, path = views.maps[address]
    assert (end - address, path) == (size, EXPECTED[name][2])
    assert perms == ("rw-p" if name in ("anon-named", "hugetlb") else "rw-s")


@pytest.mark.parametrize("name", NAMES)
def test_read_map_and_region_at(special, views, name):
    address, size = special.mapping(name)
    kind, detail, path = EXPECTED[name]
    pmap = views.pmap
    region = pmap.region_at(address)
    assert (region.kind, region.description, region.path) == (kind, detail, path)
    assert (region.start, region.end, region.size) == (address, address + size, size)
    assert pmap.region_at(address + size - 1) == region
    assert region.object is None and not region.heuristic
    (mapping,) = [m for m in pmap.mappings if m.start == address]
    assert (mapping.end, mapping.perms, mapping.path) == views.maps[address]


@pytest.mark.parametrize("name", NAMES)
def test_json(special, views, name):
    address, size = special.mapping(name)
    kind, detail, path = EXPECTED[name]
    (region,) = [r for r in views.json["regions"] if r["start"] == address]
    assert (region["kind"], region["description"], region["end"]) == (kind, detail, address + size)
    # The path exactly as /proc/PID/maps has it, " (deleted)" included.
    assert region["path"] == views.maps[address][2]


@pytest.mark.parametrize("name", NAMES)
def test_table_row(special, views, name):
    address, size = special.mapping(name)
    kind, detail, path = EXPECTED[name]
    (row,) = [ln for ln in views.table.splitlines() if ln.startswith(f"{address:016x}  ")]
    assert row.split()[:5] == [
        f"{address:016x}",
        f"{address + size:016x}",
        *human_size(size).split(),
        views.maps[address][1],
    ]
    assert f"  {kind}  " in row and f"  {detail}  " in row and row.endswith(path)


@pytest.mark.parametrize("name", NAMES)
def test_diagram(special, views, name):
    address, size = special.mapping(name)
    kind, detail, path = EXPECTED[name]
    (band,) = [b for b in views.diagram_json["bands"] if b["start"] <= address < b["end"]]
    # Each special mapping is a band of its own: no neighbour has its path.
    assert (band["start"], band["end"], band["size"], band["regions"]) == (
        address,
        address + size,
        size,
        1,
    )
    assert (band["kind"], band["detail"], band["path"], band["perms"]) == (
        kind,
        detail,
        path,
        views.maps[address][1],
    )
    # Named as the kernel names it, without the " (deleted)" it always adds to these.
    assert not band["label"].endswith("(deleted)") and band["label"] in path
    # The text picture: the band's box, with its size and detail beside it.
    assert any(
        f"│ {band['label'][:20]}" in ln and f"{human_size(size)}  {detail}" in ln
        for ln in views.diagram.splitlines()
    )
    assert f"{address:016x} │" in views.diagram  # the address where the band starts


@pytest.mark.parametrize("name", NAMES)
def test_rss_agrees_with_smaps(special, views, name):
    address, size = special.mapping(name)
    (region,) = [r for r in views.rss_json["regions"] if r["start"] == address]
    kernel = views.smaps[address]
    assert {f: region[f] for f in SMAPS_FIELDS} == {
        f: kernel.get(s, 0) for f, s in SMAPS_FIELDS.items()
    }
    assert region["resident_from"] == "mapping"  # one region: the mapping's own figures
    if name in HUGE:
        # Huge pages are not in Rss: smaps puts them in Shared_ or Private_Hugetlb.
        assert region["rss"] == 0
        assert region["shared_hugetlb"] + region["private_hugetlb"] == size
    else:
        assert region["rss"] == size  # the sample touched every page


def test_rss_summary_counts_huge_pages(special, views):
    for name in HUGE:
        special.mapping(name)
    summary = views.rss_json["summary"]
    for f in ("shared_hugetlb", "private_hugetlb", "rss"):
        kernel = sum(block.get(SMAPS_FIELDS[f], 0) for block in views.smaps.values())
        assert summary["total"][f] == kernel, f
        assert sum(k[f] for k in summary["by_kind"].values()) == kernel, f
    huge = summary["total"]["private_hugetlb"] + summary["total"]["shared_hugetlb"]
    assert huge == sum(special.made[name][1] for name in HUGE)  # every huge page touched
    # The table's summary has a huge-page column where the process has any.
    assert "prv hugetlb" in views.rss_table or "shr hugetlb" in views.rss_table


@pytest.mark.parametrize("name", NAMES)
def test_rss_table_row(special, views, name):
    address, size = special.mapping(name)
    kind, detail, path = EXPECTED[name]
    (row,) = [ln for ln in views.rss_table.splitlines() if ln.startswith(f"{address:016x}  ")]
    assert f"  {kind}  " in row and f"  {detail}  " in row and row.endswith(path)
    rss = views.smaps[address]["Rss"]
    assert row.split()[3] == (human_size(rss).split()[0] if rss else "-")
    if name in HUGE:  # its huge pages in their own column: the size again
        head = next(ln for ln in views.rss_table.splitlines() if ln.lstrip().startswith("start "))
        assert " hugetlb " in head
        assert row.count(f"  {human_size(size)}  ") == 2, row


@pytest.mark.parametrize("name", HUGE)
def test_rss_diagram_counts_huge_pages(special, views, name):
    address, size = special.mapping(name)
    (band,) = [b for b in views.rss_diagram_json["bands"] if b["start"] == address]
    kernel = views.smaps[address]
    assert band["rss"] == kernel["Rss"] + kernel["Shared_Hugetlb"] + kernel["Private_Hugetlb"]


@pytest.mark.parametrize("name", [n for n in NAMES if n not in HUGE])
def test_rss_diagram(special, views, name):
    address, size = special.mapping(name)
    (band,) = [b for b in views.rss_diagram_json["bands"] if b["start"] == address]
    assert band["rss"] == views.smaps[address]["Rss"] == size


@pytest.mark.parametrize("name", NAMES)
def test_where(special, views, name):
    address, size = special.mapping(name)
    kind, detail, path = EXPECTED[name]
    found = [loc for loc in views.where if address <= loc["address"] < address + size]
    assert [loc["address"] for loc in found] == [address, address + size - 1]
    for loc in found:
        assert (loc["kind"], loc["description"], loc["object"], loc["symbol"]) == (
            kind,
            detail,
            None,
            None,
        )
        assert loc["region"] == {
            "start": address,
            "end": address + size,
            "size": size,
            "perms": views.maps[address][1],
            "path": path,
        }


# --- 60,000 mappings ----------------------------------------------------------------------

WANTED = 60_000
# The interpreter's own mappings (~60 with this venv's Python) and some room.
OWN_MAPPINGS = 500


def many_count() -> int:
    """60,000, or the largest even count under vm.max_map_count with the interpreter's own."""
    limit = int(MAX_MAP_COUNT.read_text()) if MAX_MAP_COUNT.exists() else 65_530
    return min(WANTED, (limit - OWN_MAPPINGS) // 2 * 2)


@pytest.fixture(scope="module")
def many():
    """samples/pages.py N: a Python process of N single-page mappings that never merge."""
    n = many_count()
    if n < WANTED:
        warnings.warn(f"vm.max_map_count leaves room for {n} mappings, not {WANTED}", stacklevel=1)
    process = subprocess.Popen(
        [sys.executable, str(PAGES), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout.readline() == b"ready\n"
        yield n, process.pid
    finally:
        stop(process)


def tiles(regions: list[dict], maps: dict[int, tuple[int, str, str | None]]) -> bool:
    """Whether the regions, in order, cut each mapping into contiguous pieces, no more."""
    k = 0
    for start in sorted(maps):
        end, perms, path = maps[start]
        pos = start
        while pos < end:
            r = regions[k]
            if (r["start"], r["perms"], r["path"]) != (pos, perms, path) or r["end"] > end:
                return False
            pos, k = r["end"], k + 1
    return k == len(regions)


def is_row(line: str) -> bool:
    """A table row: it starts with a 16-digit start address."""
    return len(line) > 17 and line[16] == " " and not line[:16].strip("0123456789abcdef")


def adds_up(summary: dict, regions: list[dict], fields=("regions", "size")) -> None:
    total = summary["total"]
    assert total["regions"] == len(regions)
    assert total["size"] == sum(r["end"] - r["start"] for r in regions)
    for f in fields:
        assert sum(k[f] for k in summary["by_kind"].values()) == total[f], f


def test_60k_json_has_every_mapping(many):
    n, pid = many
    data = procmap_json(run_ok(str(pid), "--json"))
    maps = kernel_maps(pid)
    assert len(maps) >= n  # pages.py made every one of them
    assert tiles(data["regions"], maps)
    adds_up(data["summary"], data["regions"])
    assert sum(1 for r in data["regions"] if r["detail"] == "anonymous") >= n


def test_60k_table(many):
    n, pid = many
    out = run_ok(str(pid), "--no-diagram")
    mappings = len(kernel_maps(pid))
    rows = [ln for ln in out.splitlines() if is_row(ln)]
    header = out.splitlines()[0]
    assert f" mapped in {mappings} mappings, {len(rows)} regions" in header
    assert len(rows) >= mappings


def test_60k_diagram(many):
    n, pid = many
    out = run_ok(str(pid), "--diagram")
    assert "regions" in out.splitlines()[0] and "└" in out
    data = procmap_json(run_ok(str(pid), "--diagram", "--json"))
    regions = sum(b["regions"] for b in data["bands"])
    maps = kernel_maps(pid)
    # Every region is in one band; the mapped bands cover exactly what is mapped.
    assert regions >= len(maps)
    assert sum(b["size"] for b in data["bands"] if b["regions"]) == sum(
        end - start for start, (end, _, _) in maps.items()
    )
    assert any(b["regions"] >= n for b in data["bands"])  # the pages, in one band


def test_60k_rss(many):
    n, pid = many
    out = run_ok(str(pid), "--rss")
    data = procmap_json(run_ok(str(pid), "--rss", "--json"))
    smaps = kernel_smaps(pid)
    assert tiles(data["regions"], kernel_maps(pid))
    fields = ("regions", "size", "rss", "private_dirty", "anonymous", "swap")
    adds_up(data["summary"], data["regions"], fields)
    for f in ("rss", "private_dirty", "anonymous", "swap"):
        assert data["summary"]["total"][f] == sum(b.get(SMAPS_FIELDS[f], 0) for b in smaps.values())
    assert sum(1 for ln in out.splitlines() if is_row(ln)) == len(data["regions"])
