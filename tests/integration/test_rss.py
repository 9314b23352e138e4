"""procmap --rss against the kernel's own sums and against pmap, on the lesson's samples.

The samples wait on stdin once ready, so their memory holds still while the
test reads it several ways: procmap (smaps), /proc/PID/smaps_rollup (the
kernel's sum), `pmap -x` and `pmap -X` (procps, smaps parsed by C).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import procmap
from procmap.kernel.smaps import parse_rollup
from procmap.model import BY_PAGES, FIGURES, WHOLE, total
from tests.conftest import MODES, run_sample
from tests.helpers import procmap_json, run_cli

# The figures smaps_rollup sums exactly as smaps prints them, page for page.
EXACT = (
    "rss",
    "shared_clean",
    "shared_dirty",
    "private_clean",
    "private_dirty",
    "swap",
    "anonymous",
    "referenced",
    "locked",
)


def rollup(pid: int):
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        return parse_rollup(f.read())


def pmap_x_totals(pid: int) -> tuple[int, int]:
    """(RSS, dirty) in bytes from the "total kB" line of `pmap -x PID`."""
    out = subprocess.run(["pmap", "-x", str(pid)], capture_output=True, text=True, check=True)
    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("total kB")]
    _, _, _size, rss, dirty = line.split()
    return int(rss) << 10, int(dirty) << 10


def pmap_big_x(pid: int) -> dict[int, dict[str, int]]:
    """Each mapping's figures (bytes) by start address, from `pmap -X PID`."""
    out = subprocess.run(["pmap", "-X", str(pid)], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    head = lines[1].split()
    rows = {}
    for line in lines[2:]:
        f = line.split()
        if len(f) < len(head) - 1 or len(f[1]) != 4:  # the totals lines below the rows
            continue
        row = dict(zip(head, f))
        rows[int(row["Address"], 16)] = {
            k: int(row[k]) << 10 for k in ("Size", "Rss", "Pss", "Anonymous", "Swap", "Locked")
        }
    return rows


@pytest.mark.parametrize("mode", MODES)
def test_totals_agree_with_smaps_rollup_and_pmap(mode):
    with run_sample(mode) as s:
        for _ in range(3):
            pmap = procmap.read_map(s.pid, rss=True)
            kernel = rollup(s.pid)
            ours = total(pmap.resident)
            # smaps rounds each mapping's PSS down to a KiB; smaps_rollup sums
            # before rounding.  (PSS also moves when another process maps or
            # unmaps a shared page between the two reads: then read again.)
            slack = len(pmap.mappings) << 10
            own = pmap.rollup  # read by procmap, just after smaps
            if own is not None and all(0 <= k.pss - ours.pss < slack for k in (kernel, own)):
                break
        else:
            pytest.fail(f"PSS {ours.pss} against smaps_rollup's {kernel.pss}, three times")
        pmap_rss, pmap_dirty = pmap_x_totals(s.pid)
    for name in EXACT:
        assert getattr(ours, name) == getattr(kernel, name), name
    assert ours.rss == pmap_rss
    assert ours.dirty == pmap_dirty
    # The process's totals are the kernel's own sum (smaps_rollup), not the sum of
    # per-mapping figures that the kernel rounded down one by one.
    whole = pmap.summary()["total"]
    assert whole["figures_from"] == "smaps_rollup"
    assert [whole[f] for f in FIGURES] == list(pmap.rollup)
    for name in EXACT:
        assert getattr(pmap.rollup, name) == getattr(ours, name), name


@pytest.mark.parametrize("mode", ["pie", "static"])
def test_each_mapping_adds_up_to_pmap_big_x(mode):
    # Regions tile mappings: the regions of one mapping share its figures and
    # add up to exactly what pmap -X says of the mapping.
    with run_sample(mode) as s:
        pmap = procmap.read_map(s.pid, rss=True)
        theirs = pmap_big_x(s.pid)
    assert sorted(theirs) == [m.start for m in pmap.mappings]
    for m in pmap.mappings:
        figures = [f for r, f in zip(pmap.regions, pmap.resident) if m.start <= r.start < m.end]
        got = total(figures)
        want = theirs[m.start]
        # (Not PSS: pmap itself maps libc while it runs, which lowers the
        # sample's share of every libc page.)
        assert (got.rss, got.anonymous, got.swap, got.locked) == (
            want["Rss"],
            want["Anonymous"],
            want["Swap"],
            want["Locked"],
        ), m


def test_data_and_bss_in_one_page_share_it_by_bytes(sample):
    # The lesson's program: .data ends and .bss begins inside one page of one
    # mapping.  That page is resident (the program wrote its globals), and each
    # region's share of the mapping's RSS follows its bytes in resident pages.
    pmap = procmap.read_map(sample.pid, rss=True)
    program = next(im for im in pmap.images if im.role == "program")
    rows = [
        (r, f, how)
        for r, f, how in zip(pmap.regions, pmap.resident, pmap.resident_from)
        if r.object == program.path and r.kind in ("data", "bss") and how != WHOLE
    ]
    assert rows, "the program's data and bss share a page in every link mode"
    for r, f, how in rows:
        assert how == BY_PAGES  # root reads pagemap
        # A share is at most the region's bytes rounded up to a KiB.
        assert f.rss <= -(-r.size // 1024) * 1024
    mapping = next(m for m in pmap.mappings if m.start <= rows[0][0].start < m.end)
    shares = [
        f for r, f in zip(pmap.regions, pmap.resident) if mapping.start <= r.start < mapping.end
    ]
    assert sum(f.rss for f in shares) > 0


def test_json_regions_and_summary_carry_the_figures():
    with run_sample("pie") as s:
        # smaps and smaps_rollup are two reads: a process that starts or ends
        # between them, mapping libc, changes every libc user's PSS (other tests
        # start dozens).  The totals agree on a read the machine left alone.
        for _ in range(10):
            out = run_cli(str(s.pid), "--rss", "--json")
            assert out.returncode == 0, out.stderr
            data = procmap_json(out.stdout)
            pss = sum(r["pss"] for r in data["regions"])
            if 0 <= data["summary"]["total"]["pss"] - pss < len(data["regions"]) << 10:
                break
    wanted = {
        "rss",
        "pss",
        "shared_clean",
        "shared_dirty",
        "private_clean",
        "private_dirty",
        "swap",
        "anonymous",
    }
    for region in data["regions"]:
        assert wanted <= region.keys()
        assert region["resident_from"] in ("mapping", "pages", "size")
        assert region["rss"] % 1024 == 0 and region["rss"] >= 0
    summary = data["summary"]
    assert summary["total"]["figures_from"] == "smaps_rollup"
    for name in wanted:
        everything = sum(r[name] for r in data["regions"])
        # The total is the kernel's (smaps_rollup): exact but for PSS, which smaps rounds
        # down to a kB per mapping and the rollup does not.
        if name in ("pss", "swap_pss", "pss_dirty"):
            assert 0 <= summary["total"][name] - everything < len(data["regions"]) << 10
        else:
            assert summary["total"][name] == everything, name
        assert sum(k[name] for k in summary["by_kind"].values()) == everything
        by_object = sum(o[name] for o in summary["by_object"])
        assert by_object == sum(r[name] for r in data["regions"] if r["object"])
    libc = [o for o in summary["by_object"] if "libc.so" in o["object"]]
    assert libc and libc[0]["rss"] > 0  # which library costs what


def test_sort_rss_orders_largest_first_in_text_and_json():
    with run_sample("pie") as s:
        text = run_cli(str(s.pid), "--sort", "rss", "--no-notes", columns=250)
        js = run_cli(str(s.pid), "--sort", "rss", "--json")
    assert text.returncode == 0 and js.returncode == 0, text.stderr + js.stderr
    regions = procmap_json(js.stdout)["regions"]
    values = [r["rss"] for r in regions]
    assert values == sorted(values, reverse=True) and values[0] > 0
    lines = text.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["start", "size", "rss"])
    starts = [int(ln.split()[0], 16) for ln in lines[head + 1 : head + 1 + len(regions)]]
    assert starts == [r["start"] for r in regions]


def test_rss_text_view_marks_shared_figures_and_says_how():
    with run_sample("pie") as s:
        out = run_cli(str(s.pid), "--rss", "--no-notes", columns=250)
    assert out.returncode == 0, out.stderr
    assert "\u2021" in out.stdout
    assert "from /proc/PID/pagemap; totals are exact" in out.stdout
    for heading in ("rss", "pss", "shr clean", "shr dirty", "prv clean", "prv dirty", "swap"):
        assert heading in out.stdout


def test_sections_do_not_go_with_rss():
    out = run_cli("self", "--rss", "--sections")
    assert out.returncode == 2 and "--sections does not go with --rss" in out.stderr


LOCKER = r"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
buf = mmap.mmap(-1, 64 << 10)
address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
assert libc.mlock(ctypes.c_void_p(address), ctypes.c_size_t(64 << 10)) == 0, ctypes.get_errno()
print(hex(address), flush=True)
sys.stdin.read()
"""


def test_locked_memory_is_a_figure_and_a_summary_column():
    # mlock()ed pages: pmap -X's Locked column, which the summary shows when
    # any memory is locked.  (RLIMIT_MEMLOCK allows 64 KiB to anyone.)
    process = subprocess.Popen(
        [sys.executable, "-c", LOCKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        address = int(process.stdout.readline(), 16)
        js = run_cli(str(process.pid), "--rss", "--json")
        text = run_cli(str(process.pid), "--rss", "--no-notes", columns=300)
    finally:
        process.stdin.close()
        process.wait()
    assert js.returncode == 0 and text.returncode == 0, js.stderr + text.stderr
    data = procmap_json(js.stdout)
    [region] = [r for r in data["regions"] if r["start"] <= address < r["end"]]
    assert region["locked"] == region["rss"] >= 64 << 10
    assert data["summary"]["total"]["locked"] >= 64 << 10
    by_kind = text.stdout[text.stdout.index("by kind") :]
    assert "locked" in by_kind.splitlines()[1]
