"""A watch: the sampler run at an interval, and what it saw, kept in bounded memory.

Pure over the sampler (no click, no rich): `run_watch` samples on a schedule,
hands each Tick to a callback and returns why the watch ended; `History` keeps what the
views show (totals over time for sparklines, the event log, counts), all in
ring buffers, so a watch can run for days in the same memory (the sentences
each sample adds to the log come from events.describe).

With --rss, `ResidentWatch` adds what is in RAM at a cost the watch can
bear: smaps_rollup (the kernel's totals) on every sample, and the full smaps
(per mapping, so per region) now and then, each figure with when it was read.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import NamedTuple

from ..classify.resident import attribute
from ..classify.sharing import Shared, SharingChange, change_sentences, sharing_changes
from ..errors import ProcessExited
from ..kernel.smaps import parse_rollup, parse_smaps, parse_statm
from ..model import (
    FIGURES,
    KINDS,
    JSONDict,
    Mapping,
    Region,
    Resident,
    SharingScope,
    hex_address,
    total,
)
from ..units import human_size
from .capture import read_page_states
from .events import Change, describe
from .sampler import PidReused, Sampler
from .sharing import scope_notes, sharing_of

END_REASONS = ("exited", "count", "interrupted", "reused")


class Tick(NamedTuple):
    """One sample: when (seconds since the watch began), what changed, what it cost."""

    t: float
    change: Change
    cost: float  # seconds the sample took: read, parse, classify, diff


class End(NamedTuple):
    t: float
    reason: str  # one of END_REASONS
    message: str


def run_watch(
    sampler: Sampler,
    history: History,
    interval: float,
    count: int | None = None,
    on_tick: Callable[[Tick, list[str]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> End:
    """Sample every `interval` seconds (0: flat out) until the watch ends; returns why.

    The Sampler's first read counts as sample 1 (the snapshot), so `count`
    samples means count - 1 more.  Samples keep to a fixed schedule: a slow
    sample shortens the next wait, and a watch that falls behind starts again
    from now rather than catching up in a burst.  Each sample goes into
    `history`, then to `on_tick(tick, sentences)`.  Ctrl-C, wherever it lands,
    ends the watch with reason "interrupted".  With `history.resident` (--rss),
    each sample also reads the memory figures that are due (ResidentWatch).
    """
    resident = history.resident
    start = clock()
    due = start
    try:
        while count is None or history.samples < count:
            due += interval
            now = clock()
            if due > now:
                sleep(due - now)
            elif interval:
                due = now
            before = clock()
            change = sampler.sample()
            after = clock()
            if resident is not None:
                resident.update(after - start, change)
            tick = Tick(after - start, change, after - before)
            sentences = history.add(tick)
            if on_tick is not None:
                on_tick(tick, sentences)
    except PidReused as err:
        return End(clock() - start, "reused", str(err))
    except ProcessExited as err:
        return End(clock() - start, "exited", str(err))
    except KeyboardInterrupt:
        return End(clock() - start, "interrupted", "interrupted")
    return End(clock() - start, "count", f"{history.samples} samples taken")


# --- what is in RAM, for --rss ------------------------------------------------------------

# smaps walks the page tables of every mapping and prints ~25 lines for each:
# ~10x the maps read (2,000 mappings: maps 0.26 ms, smaps 2.4 ms to read and
# 18 ms to parse; benchmarks/watch_rss.py).  smaps_rollup walks the same page
# tables but prints one block (0.12 ms there; ~4 ms per GiB resident), and
# statm prints the kernel's running counters without walking anything (5 us).
ROLLUP, STATM = "smaps_rollup", "statm"
_ROLLUP_SHARE = 0.25  # smaps_rollup while it costs at most this share of the interval
_FULL_EVERY = 1.0  # seconds: the full smaps at most this often,
_FULL_SHARE = 0.10  # and taking at most this share of the watch's time


class ResidentWatch:
    """The process's memory figures as a watch goes: totals each sample, regions now and then.

    Totals: smaps_rollup on every sample; where it costs more than a quarter of
    the interval, on every sample it is due (its cost times four after the last
    one) and /proc/PID/statm, the RSS alone, on the samples in between.
    Regions: the full smaps, at most once a second and at most a tenth of the
    time (no sooner than ten times its last cost after the last one began).
    smaps' mappings are matched to the sampler's by (start, end, perms); a
    mapping split into several regions shares its figures out (smaps.attribute,
    by pagemap where readable).  A region whose mapping was not matched (the
    map changed between the two reads), or that changed since, has no figures
    until the next full read.  Times are watch times (seconds since the
    watch began), given to update(); costs are measured with `clock`.
    """

    def __init__(
        self,
        sampler: Sampler,
        interval: float,
        clock: Callable[[], float] = time.perf_counter,
        sharing: bool = False,
    ):
        self.sampler = sampler
        # --shared: each full read also finds every region's sharers (classify.sharing);
        # the changes since the read before are what the watch reports.
        self.with_sharing = sharing
        self.sharing: Shared | None = None
        self.sharing_changes: list[SharingChange] = []
        self.sharing_scope: SharingScope | None = None
        self.interval = interval
        self.clock = clock
        self.page_size = sampler.facts.page_size
        self.has_rollup = True  # Linux 4.14+
        # The totals: the last smaps_rollup read, and when (None: not read).
        self.totals: Resident | None = None
        self.totals_t = 0.0
        # The RSS, from the newest read of either file.
        self.rss = 0
        self.rss_t = 0.0
        self.rss_from = ROLLUP
        # The last full read: each region's figures and how they were found
        # (smaps.WHOLE, BY_PAGES, BY_SIZE), by (start, end); what smaps summed to.
        self.regions: dict[tuple[int, int], tuple[Resident, str]] = {}
        self.regions_t: float | None = None
        self.full_totals: Resident | None = None
        self.read_full = False  # whether the last update() read smaps in full
        self.rollup_reads = self.statm_reads = self.full_reads = 0
        self.rollup_cost = self.full_cost = 0.0  # the last read's, in seconds
        self.rollup_cost_total = self.full_cost_total = 0.0
        self._next_rollup = self._next_full = 0.0
        self.update(0.0)

    def update(self, now: float, change: Change | None = None) -> bool:
        """Read what is due at watch time `now`; True if smaps was read in full.

        `change`, the sample just taken: its regions' figures are forgotten
        (new or changed memory), but for a protection change of a whole region.
        Raises ProcessExited (or PidReused) as the sampler does.
        """
        if change and self.regions:
            for e in change.events:
                if e.event == "protect":
                    continue
                if e.regions == 1:
                    self.regions.pop((e.start, e.end), None)
                else:  # a coalesced event: every region in its span
                    for key in [k for k in self.regions if k[0] < e.end and k[1] > e.start]:
                        del self.regions[key]
            if change.exec:
                self.regions.clear()
        try:
            self._read_totals(now)
            self.read_full = now >= self._next_full
            if self.read_full:
                self._read_regions(now)
        except ProcessExited:
            # The sampler's words: exited, or exited and the PID given to another process.
            raise self.sampler.gone() from None
        return self.read_full

    def _read_totals(self, now: float) -> None:
        pd = self.sampler.pd
        if self.has_rollup and (
            self.rollup_cost <= self.interval * _ROLLUP_SHARE or now >= self._next_rollup
        ):
            before = self.clock()
            data = pd.smaps_rollup()
            if data is None:  # no smaps_rollup before Linux 4.14: statm alone, then
                self.has_rollup = False
                return self._read_totals(now)
            cost = self.clock() - before
            if not data:
                raise ProcessExited(f"PID {pd.pid} has no memory left")  # exiting
            self.totals = parse_rollup(data)
            self.totals_t = self.rss_t = now
            self.rss = self.totals.rss
            self.rss_from = ROLLUP
            self.rollup_reads += 1
            self.rollup_cost = cost
            self.rollup_cost_total += cost
            self._next_rollup = now + cost / _ROLLUP_SHARE
            return
        pages = parse_statm(pd.read("statm"))
        if pages is None:
            raise ProcessExited(f"PID {pd.pid} has no memory left")
        self.rss = pages * self.page_size
        self.rss_t = now
        self.rss_from = STATM
        self.statm_reads += 1

    def _read_regions(self, now: float) -> None:
        s = self.sampler
        before = self.clock()
        data = s.pd.smaps()
        if not data:
            raise ProcessExited(f"PID {s.pid} has no memory left")
        mappings, figures = parse_smaps(data)
        index = {(m.start, m.end, m.perms): f for m, f in zip(mappings, figures)}
        matched: list[Mapping] = []
        their: list[Resident] = []
        regions: list[Region] = []
        for m, group in zip(s.mappings, s.groups):
            f = index.get((m.start, m.end, m.perms))
            if f is not None and group:
                matched.append(m)
                their.append(f)
                regions.extend(group)
        states = read_page_states(s.pd, matched, their, regions, self.page_size)
        shares, how = attribute(matched, their, regions, states, self.page_size)
        self.regions = {(r.start, r.end): (f, h) for r, f, h in zip(regions, shares, how)}
        if self.with_sharing:
            self._read_sharing(matched, their, regions)
        self.full_totals = total(figures)
        self.regions_t = now
        cost = self.clock() - before
        self.full_reads += 1
        self.full_cost = cost
        self.full_cost_total += cost
        self._next_full = now + max(_FULL_EVERY, cost / _FULL_SHARE)

    def _read_sharing(
        self, mappings: list[Mapping], figures: list[Resident], regions: list[Region]
    ) -> None:
        s = self.sampler
        program = s.facts.program_key or s.facts.exe_key
        found, self.sharing_scope = sharing_of(
            s.pd, mappings, figures, regions, self.page_size, program
        )
        now = {(r.start, r.end): (r, x) for r, x in zip(regions, found)}
        before = self.sharing
        self.sharing_changes = [] if before is None else sharing_changes(before, now)
        self.sharing = now

    def of(self, region: Region) -> tuple[Resident, str] | None:
        """A region's figures from the last full read, and how they were found; None if unknown."""
        return self.regions.get((region.start, region.end))

    def summary(self) -> JSONDict:
        return {
            "rss": self.rss,
            "from": self.rss_from,
            "rollup_reads": self.rollup_reads,
            "statm_reads": self.statm_reads,
            "full_reads": self.full_reads,
            "rollup_ms": round(self.rollup_cost_total / max(self.rollup_reads, 1) * 1000, 4),
            "full_ms": round(self.full_cost_total / max(self.full_reads, 1) * 1000, 4),
        }


# --- what the views keep ------------------------------------------------------------


class History:
    """What a watch has seen, in bounded memory.

    `points` samples of heap, stack and total size for the sparklines (and
    RSS, with `resident`); the last `log_size` event sentences; which address
    ranges changed recently, for highlighting (pruned as they age); counts
    and costs as running sums.
    """

    def __init__(
        self,
        sampler: Sampler,
        points: int = 240,
        log_size: int = 400,
        resident: ResidentWatch | None = None,
    ):
        self.sampler = sampler
        self.resident = resident
        self.start_rss = resident.rss if resident is not None else 0
        self.rss: deque[int] = deque(maxlen=points)
        self.start_totals = sampler.totals()
        self.start_total = sampler.total
        self.heap: deque[int] = deque(maxlen=points)
        self.stack: deque[int] = deque(maxlen=points)
        self.mapped: deque[int] = deque(maxlen=points)
        self.log: deque[tuple[float, str]] = deque(maxlen=log_size)
        self.recent: dict[tuple[int, int], float] = {}  # (start, end) -> when it changed
        self.events: Counter[str] = Counter()
        self.samples = 1
        self.cost_total = 0.0
        self.costs: deque[float] = deque(maxlen=64)  # the last samples' costs
        self.times: deque[float] = deque(maxlen=64)  # and when they were taken
        self.t = 0.0
        self._record_sizes()

    def _record_sizes(self) -> None:
        totals = self.sampler.totals()
        self.heap.append(totals["heap"])
        self.stack.append(totals["stack"])
        self.mapped.append(self.sampler.total)
        if self.resident is not None:
            self.rss.append(self.resident.rss)

    def add(self, tick: Tick, highlight_for: float = 3.0) -> list[str]:
        """Record a sample; returns the sentences it added to the log."""
        self.samples += 1
        self.t = tick.t
        self.cost_total += tick.cost
        self.costs.append(tick.cost)
        self.times.append(tick.t)
        self._record_sizes()
        lines = []
        if tick.change:
            for e in tick.change.events:
                self.events[e.event] += e.regions
                if e.event != "unmap":
                    self.recent[(e.start, e.end)] = tick.t
            lines = describe(tick.change)
        resident = self.resident
        if resident is not None and resident.read_full:
            for c in resident.sharing_changes:
                lines.extend(change_sentences(c))
        if lines:
            self.log.extend((tick.t, line) for line in lines)
        if self.recent:
            # Forget highlights once they are old, or when there are too many to show.
            cutoff = tick.t - highlight_for
            if len(self.recent) > 2000:
                cutoff = sorted(self.recent.values())[-1000]
            self.recent = {k: v for k, v in self.recent.items() if v >= cutoff}
        return lines

    @property
    def rate(self) -> float:
        """Samples per second, over the last samples."""
        if len(self.times) < 2 or self.times[-1] == self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    @property
    def cost(self) -> float:
        """Median cost of the last samples, in seconds."""
        if not self.costs:
            return 0.0
        return sorted(self.costs)[len(self.costs) // 2]

    def growth(self) -> dict[str, int]:
        """Net change in bytes by kind since the watch began (kinds that changed)."""
        now = self.sampler.totals()
        return {k: now[k] - self.start_totals[k] for k in KINDS if now[k] != self.start_totals[k]}

    def summary(self, end: End) -> JSONDict:
        out = {
            "reason": end.reason,
            "samples": self.samples,
            "duration": round(end.t, 6),
            "cost_ms": round(self.cost_total / max(self.samples - 1, 1) * 1000, 4),
            "events": dict(self.events),
            "growth": self.growth(),
            "mapped": self.sampler.total,
            "mapped_growth": self.sampler.total - self.start_total,
        }
        if self.resident is not None:
            out["resident"] = {
                **self.resident.summary(),
                "rss_growth": self.resident.rss - self.start_rss,
            }
        return out


# --- records for --json and lines for a log ----------------------------------------------


def snapshot_record(
    sampler: Sampler, kinds: set[str] | None = None, resident: ResidentWatch | None = None
) -> JSONDict:
    """The first JSON Lines record: the whole map, regions as `procmap PID --json` has them.

    With `resident`, as `procmap PID --rss --json` has them (figures null where
    not known), and the totals as "resident" (resident_figures).
    """
    regions = []
    for r in sampler.regions:
        if kinds is None or r.kind in kinds:
            d = r.to_dict()
            if resident is not None:
                d.update(_region_figures(resident, r))
            regions.append(d)
    record = {
        "type": "snapshot",
        "t": 0.0,
        "pid": sampler.pid,
        "time": time.time(),
        "process": sampler.info.to_dict(),
        "regions": regions,
        "warnings": list(sampler.warnings),
    }
    if resident is not None:
        record["resident"] = resident_figures(resident, 0.0)
    return record


def change_record(
    tick: Tick, kinds: set[str] | None = None, resident: ResidentWatch | None = None
) -> JSONDict | None:
    """A "change" record for a sample that changed something, else None."""
    change = tick.change
    events = [e.to_dict() for e in change.events if kinds is None or e.kind in kinds]
    threads = change.threads_started or change.threads_ended
    if not (events or threads or change.exec):
        return None
    record: JSONDict = {"type": "change", "t": round(tick.t, 6), "events": events}
    if threads:
        record["threads"] = {"started": change.threads_started, "ended": change.threads_ended}
    if change.exec:
        record["exec"] = True
    if resident is not None:
        record["resident"] = resident_figures(resident, tick.t)
    return record


def resident_figures(resident: ResidentWatch, now: float) -> JSONDict:
    """The totals as of watch time `now`: every figure, how old and where from.

    From smaps_rollup, every figure; from statm, the RSS alone (the rest null).
    """
    out: JSONDict
    if resident.rss_from == ROLLUP and resident.totals is not None:
        out = dict(resident.totals.to_dict())
    else:
        out = dict.fromkeys(FIGURES)
        out["rss"] = resident.rss
    out["age"] = round(max(now - resident.rss_t, 0.0), 6)
    out["from"] = resident.rss_from
    return out


def resident_record(resident: ResidentWatch, kinds: set[str] | None = None) -> JSONDict:
    """The record of a full read of smaps: the totals it gave, and each region's figures.

    The regions are those the read could match to the map as it was sampled.
    """
    regions = []
    for r in resident.sampler.regions:
        known = resident.of(r)
        if known is not None and (kinds is None or r.kind in kinds):
            figures, how = known
            regions.append(
                {
                    "start": hex_address(r.start),
                    "end": hex_address(r.end),
                    "kind": r.kind,
                    **figures.to_dict(),
                    "resident_from": how,
                }
            )
    return {
        "type": "resident",
        "t": round(resident.regions_t or 0.0, 6),
        "totals": (resident.full_totals or Resident()).to_dict(),
        "regions": regions,
    }


def sharing_record(resident: ResidentWatch, kinds: set[str] | None = None) -> JSONDict | None:
    """A "sharing" record: the sharing of every region at the first read, the changes after."""
    if resident.sharing is None:
        return None
    t = round(resident.regions_t or 0.0, 6)
    if not t:
        regions = [
            {"start": hex_address(r.start), "end": hex_address(r.end), **x.to_dict()}
            for r, x in resident.sharing.values()
            if kinds is None or r.kind in kinds
        ]
        scope = resident.sharing_scope
        return {
            "type": "sharing",
            "t": t,
            "regions": regions,
            **({"scope": scope.to_dict(), "warnings": scope_notes(scope)} if scope else {}),
        }
    changes = [c.to_dict() for c in resident.sharing_changes if kinds is None or c.kind in kinds]
    return {"type": "sharing", "t": t, "changes": changes} if changes else None


def _region_figures(resident: ResidentWatch, r: Region) -> JSONDict:
    known = resident.of(r)
    if known is None:
        return {**dict.fromkeys(FIGURES), "resident_from": None}
    figures, how = known
    return {**figures.to_dict(), "resident_from": how}


def resident_words(figures: Resident) -> str:
    """ "resident 12.3 MiB (pss 10.1 MiB, swap 0 B, anonymous 8 MiB)", for a log line."""
    return (
        f"resident {human_size(figures.rss)} (pss {human_size(figures.pss)}, "
        f"swap {human_size(figures.swap)}, anonymous {human_size(figures.anonymous)})"
    )


def end_record(end: End, history: History) -> JSONDict:
    return {
        "type": "end",
        "t": round(end.t, 6),
        "reason": end.reason,
        "samples": history.samples,
        "summary": history.summary(end),
    }


_ENDED = {
    "exited": "the process exited",
    "count": "the count of samples was reached",
    "interrupted": "interrupted",
    "reused": "the PID now belongs to another process",
}


def summary_lines(history: History, end: End) -> list[str]:
    """The watch in a few sentences: why it ended, samples and their cost, net growth."""
    s = history.sampler
    lines = [f"watch of PID {s.pid} ({s.info.name}) ended: {_ENDED[end.reason]}"]
    if end.reason == "reused":
        lines[0] = f"watch of PID {s.pid} ({s.info.name}) ended: {end.message}"
    per_second = (history.samples - 1) / end.t if end.t > 0 else 0.0
    lines.append(
        f"{history.samples} samples in {end.t:.1f} s ({per_second:.1f} a second), "
        f"{history.cost_total / max(history.samples - 1, 1) * 1000:.2f} ms each on average"
    )
    if history.events:
        counts = ", ".join(f"{n} {name}" for name, n in history.events.most_common())
        lines.append(f"events: {counts}")
    else:
        lines.append("no change to the map")
    growth = history.growth()
    if growth:
        parts = [f"{k} {signed_size(v)}" for k, v in growth.items()]
        mapped = s.total - history.start_total
        lines.append(f"net growth: {', '.join(parts)}; mapped in all {signed_size(mapped)}")
    rw = history.resident
    if rw is not None:
        reads = f"{rw.full_reads} full read{'s' if rw.full_reads != 1 else ''} of smaps"
        if rw.full_reads:
            reads += f", {rw.full_cost_total / rw.full_reads * 1000:.1f} ms each"
        if rw.rollup_reads:
            reads += f"; smaps_rollup {rw.rollup_cost_total / rw.rollup_reads * 1000:.2f} ms"
        if rw.statm_reads:
            reads += f" ({rw.statm_reads} samples read statm instead: it was slow)"
        lines.append(
            f"resident: {human_size(rw.rss)} ({signed_size(rw.rss - history.start_rss)} "
            f"since the watch began); {reads}"
        )
    return lines


def signed_size(n: int) -> str:
    """+1.5 MiB, -4 KiB."""
    return ("+" if n >= 0 else "-") + human_size(abs(n))
