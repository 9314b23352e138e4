"""`procmap PID --watch --rss` through the real command, on real processes.

The figures are checked against what samples/bin/watch did (heap-grow N
mallocs N bytes and writes every page of them) and against the kernel's own
sums in /proc/PID/smaps_rollup.  The only timing asserted is an upper bound
on how often smaps is read in full, with the watch's own clock as the ruler.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from procmap.errors import ProcessExited
from procmap.kernel.smaps import parse_rollup
from procmap.live.sampler import Sampler
from procmap.live.watch import STATM, ResidentWatch, resident_figures
from procmap.model import FIGURES
from tests.conftest import run_sample
from tests.helpers import procmap_json, run_cli
from tests.integration.test_watch_cli import (
    ENV,
    Lines,
    Watcher,
    WatchSample,
    _run_in_terminal,
    watching,
)

MiB = 1 << 20
TOTALS_KEYS = set(FIGURES) | {"age", "from"}
REGION_KEYS = set(FIGURES) | {"resident_from"}


class RssWatcher(Watcher):
    """`procmap PID --watch --json --rss`, its records read as they come."""

    def __init__(self, pid: int, *args: str):
        super().__init__(pid, "--rss", *args)

    def next(self, kind: str, wanted=lambda r: True, timeout: float = 10) -> dict:
        """The next record of type `kind` for which wanted(record) holds."""
        while True:
            record = self.record(timeout)
            if record["type"] == kind and wanted(record):
                return record
            assert record["type"] != "end", f"the watch ended first: {record}"


@pytest.fixture
def watched():
    with watching(RssWatcher) as pair:
        yield pair


def rollup(pid: int):
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        return parse_rollup(f.read())


def heap_of(regions: list[dict]) -> dict:
    [heap] = [r for r in regions if r["kind"] == "heap" and r["detail"] == "brk-heap"]
    return heap


def grew_to(brk: int):
    """A change record whose heap grow event reaches `brk`."""
    return lambda r: any(e["kind"] == "heap" and e["end"] == brk for e in r["events"])


def test_the_records_carry_the_figures(watched):
    sample, watcher = watched
    snap = watcher.snapshot
    assert set(snap["resident"]) == TOTALS_KEYS
    assert snap["resident"]["from"] == "smaps_rollup" and snap["resident"]["age"] == 0.0
    # Regions as `procmap PID --rss --json` has them; read at the start, all known.
    shown = procmap_json(run_cli(str(sample.pid), "--rss", "--json").stdout)
    assert [set(r) for r in snap["regions"]] == [set(r) for r in shown["regions"]]
    assert all(r["rss"] is not None for r in snap["regions"])
    assert {r["resident_from"] for r in snap["regions"]} <= {"mapping", "pages", "size"}

    facts = sample.do("heap-grow 1048576")
    change = watcher.next("change", grew_to(facts["new_brk"]))
    assert set(change["resident"]) == TOTALS_KEYS
    assert isinstance(change["resident"]["rss"], int) and change["resident"]["age"] >= 0
    resident = watcher.next("resident")
    assert resident["t"] > change["t"]
    assert set(resident["totals"]) == set(FIGURES)
    assert resident["regions"]
    for r in resident["regions"]:
        assert set(r) == REGION_KEYS | {"start", "end", "kind"}
    # The regions it could match add up to no more than the totals it read.
    assert sum(r["rss"] for r in resident["regions"]) <= resident["totals"]["rss"]


def test_touched_heap_growth_shows_in_the_totals_then_in_the_heap_region(watched):
    sample, watcher = watched
    n = 8 * MiB
    before = watcher.snapshot["resident"]
    heap_before = heap_of(watcher.snapshot["regions"])
    facts = sample.do(f"heap-grow {n}")  # every page written, before it answers
    watcher.next("change", grew_to(facts["new_brk"]))
    # A map change made after heap-grow answered: its totals were read after it.
    mapped = sample.do("mmap 65536")  # not touched: no RSS of its own
    change = watcher.next(
        "change", lambda r: any(e["start"] == mapped["start"] for e in r["events"])
    )
    now = change["resident"]
    assert now["from"] == "smaps_rollup"
    assert n * 0.95 <= now["anonymous"] - before["anonymous"] <= n + 512 * 1024
    assert n * 0.95 <= now["rss"] - before["rss"] <= n + MiB
    # The next full read gives the heap region its figures.
    resident = watcher.next("resident")
    [heap] = [r for r in resident["regions"] if r["kind"] == "heap"]
    assert heap["end"] == facts["new_brk"]
    assert n * 0.95 <= heap["rss"] - heap_before["rss"] <= n + 512 * 1024
    assert heap["anonymous"] == heap["rss"] == heap["private_dirty"]


def test_smaps_is_read_in_full_at_most_once_a_second():
    with run_sample("pie") as s:
        result = run_cli(
            str(s.pid), "--watch", "--json", "--rss", "--interval", "0.05", "--count", "60"
        )
    assert result.returncode == 0, result.stderr
    records = [procmap_json(line) for line in result.stdout.splitlines()]
    end = records[-1]
    reads = [r["t"] for r in records if r["type"] == "resident"]
    assert end["type"] == "end" and end["samples"] == 60
    # The first full read is the snapshot's; then one a second at most, by the watch's clock.
    assert 1 <= len(reads) <= end["t"] + 1, (reads, end["t"])
    assert all(b - a >= 1.0 for a, b in zip(reads, reads[1:])), reads
    assert end["summary"]["resident"]["full_reads"] == len(reads) + 1
    figures = end["summary"]["resident"]
    assert figures["rollup_reads"] + figures["statm_reads"] == 60  # one each sample


def test_not_a_terminal_prints_the_resident_line_after_a_full_read():
    sample = WatchSample()
    # A process: its lines are read while the test acts on the watched process.
    watcher = subprocess.Popen(
        [sys.executable, "-m", "procmap", str(sample.pid), "--watch", "--rss"]
        + ["--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        out = Lines(watcher.stdout, "procmap --watch --rss")
        first = out.next(20)
        assert re.fullmatch(
            rf"watching PID {sample.pid} \(watch\): \d+ mappings, [\d.]+ \w+ mapped, "
            r"[\d.]+ \w+ resident; sampling every 0\.05 s",
            first,
        ), first
        sample.do("heap-grow 4194304")
        while True:
            line = out.next()
            if "resident" in line:
                break
            assert "heap grew" in line, line
        assert re.fullmatch(
            r" *\d+\.\d{3}s  resident [\d.]+ MiB \(pss [\d.]+ \w+, swap 0 B, "
            r"anonymous [\d.]+ MiB\)",
            line,
        ), line
        sample.do("exit 0")
        rest = watcher.stdout.read().decode()
        assert watcher.wait(timeout=10) == 0
        assert re.search(r"resident: [\d.]+ MiB \(\+[\d.]+ MiB since the watch began\); ", rest)
        assert watcher.stderr.read() == b""
    finally:
        watcher.kill()
        watcher.wait()
        watcher.stdout.close()
        watcher.stderr.close()
        sample.close()


class StepClock:
    """A clock whose every timed read (two calls) costs `cost` seconds."""

    def __init__(self, cost: float):
        self.cost = cost
        self.t = 0.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:
            self.t += self.cost
        return self.t


def test_slow_reads_are_spaced_out_and_statm_fills_in():
    """The schedule, on a real process, with a clock that makes every read cost 1/64 s.

    (Binary fractions, so that the times compare exactly.)
    """
    tick = 1 / 32
    with run_sample("pie") as s, Sampler(s.pid) as sampler:
        clock = StepClock(1 / 64)
        rw = ResidentWatch(sampler, tick, clock)  # reads smaps_rollup and smaps at 0
        assert rw.rollup_reads == rw.full_reads == 1
        sources = []
        for i in range(1, 11):
            rw.update(i * tick)
            sources.append(rw.rss_from)
        # 1/64 s > a quarter of 1/32 s: smaps_rollup no sooner than 4/64 s after the
        # last; statm between.
        assert sources == ["statm", "smaps_rollup"] * 5
        figures = resident_figures(rw, 10 * tick)
        assert figures["from"] == "smaps_rollup" and figures["age"] == 0.0
        assert set(figures) == TOTALS_KEYS
        rw.update(11 * tick)
        figures = resident_figures(rw, 12 * tick)
        assert figures["from"] == STATM and figures["age"] == tick
        assert figures["rss"] == rw.rss and figures["pss"] is None
        # statm's RSS is the kernel's running count: per-CPU parts may lag a little.
        slack = (os.cpu_count() or 1) * 64 * os.sysconf("SC_PAGE_SIZE")
        assert abs(rw.rss - rollup(s.pid).rss) <= slack
        # smaps in full: once a second while it costs under 100 ms...
        updates = 1 + 11
        assert rw.full_reads == 1
        assert rw.update(1.0) and rw.full_reads == 2 and rw.regions_t == 1.0
        # ... and no more than a tenth of the time when it costs more.
        clock.cost = 0.5
        assert rw.update(2.0) and rw.full_reads == 3
        for now in (3.0, 4.0, 6.9):
            assert not rw.update(now)
        assert rw.update(7.0) and rw.full_reads == 4
        updates += 6
        # One read of the totals at every update, from one file or the other.
        assert rw.rollup_reads + rw.statm_reads == updates
        assert rw.statm_reads == 8  # 6 above; at 3.0 and 7.0, smaps_rollup now costing 0.5 s


def test_the_process_exiting_ends_the_watch_cleanly(watched):
    sample, watcher = watched
    sample.do("exit 3")
    end = watcher.next("end")
    assert end["reason"] == "exited"
    assert watcher.process.wait(timeout=10) == 0
    assert watcher.process.stderr.read() == b""


def test_a_read_after_the_process_exited_is_process_exited():
    """smaps_rollup and statm, through the sampler's held /proc/PID, in the sampler's words."""
    sample = WatchSample()
    try:
        with Sampler(sample.pid) as sampler:
            # Every read costs 1 s: smaps_rollup is due again at 4 s, statm in between.
            rw = ResidentWatch(sampler, 0.05, StepClock(1.0))
            sample.process.kill()
            sample.process.wait()
            for now in (0.05, 5.0):
                with pytest.raises(ProcessExited, match=rf"PID {sample.pid} \(watch\) exited"):
                    rw.update(now)
            assert rw.statm_reads == 0 and rw.rollup_reads == 1
    finally:
        sample.close()


def test_totals_agree_with_smaps_rollup_on_a_steady_process():
    with run_sample("pie") as s:
        result = run_cli(str(s.pid), "--watch", "--json", "--rss", "--count", "3")
        kernel = rollup(s.pid)
    assert result.returncode == 0, result.stderr
    records = [procmap_json(line) for line in result.stdout.splitlines()]
    snapshot, end = records[0], records[-1]
    assert snapshot["resident"]["rss"] == kernel.rss
    assert snapshot["resident"]["anonymous"] == kernel.anonymous
    # The first full read's regions add up to the same, exactly (all matched).
    assert sum(r["rss"] for r in snapshot["regions"]) == kernel.rss
    assert end["summary"]["resident"]["rss"] == kernel.rss
    assert end["summary"]["resident"]["rss_growth"] == 0


def test_regions_not_matched_or_changed_since_have_no_figures_until_the_next_full_read():
    sample = WatchSample()
    try:
        with Sampler(sample.pid) as sampler:
            mapped = sample.do("mmap 65536")
            sampler.sample()
            rw = ResidentWatch(sampler, 0.05)
            assert all(rw.of(r) is not None for r in sampler.regions)
            [region] = [r for r in sampler.regions if r.start == mapped["start"]]
            # The map changes after the sample, before smaps is read: not matched.
            sample.do("munmap")
            assert rw.update(1.0)
            assert [r for r in sampler.regions if rw.of(r) is None] == [region]
            sample.do("mmap 65536")  # back where it was: the sampler saw nothing
            assert rw.update(2.0)
            assert all(rw.of(r) is not None for r in sampler.regions)
            # Unmapped, then mapped again: new memory, whatever its addresses.
            sample.do("munmap")
            rw.update(2.1, sampler.sample())
            again = sample.do("mmap 65536")
            rw.update(2.2, sampler.sample())
            [region] = [r for r in sampler.regions if r.start == again["start"]]
            assert rw.of(region) is None
            assert rw.update(3.0) and rw.of(region) is not None
    finally:
        sample.close()


def test_the_live_view_shows_the_figures_and_fits_the_terminal():
    with run_sample("pie") as s:
        # A process: a real terminal is the point.
        output = _run_in_terminal(
            [str(s.pid), "--watch", "--rss", "--interval", "0.05", "--count", "30"], 100, 30
        )
    text = output.decode("utf-8", "replace")
    screen, _, after = text.partition("\x1b[?1049l")
    last = screen.rsplit("\x1b[H", 1)[-1]
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", last)
    rows = plain.split("\n")
    assert any(re.match(r"rss +\S+ +[\d.]+ \w+ \(", row) for row in rows), plain
    assert re.search(r"resident [\d.]+ \w+ +pss .* totals 0\.0 s old, regions [\d.]+ s old", plain)
    assert re.search(r"start +end +size +rss perms", plain)
    for row in rows:
        assert len(row.rstrip("\r")) <= 100
    assert len([row for row in rows if row.strip()]) <= 30
    assert "resident: " in after
