"""The watch as people see it: a live full-screen view, or one plain line per event.

LiveView is a renderable that fits whatever size it is given: a header with
the sampler's own figures, sparklines of heap, stack and everything mapped
(and RSS, with --rss: then also the memory figures and how old they are,
and an rss column), the totals by kind, the picture (beside the rows on a
wide terminal, above them otherwise; its bands resize as the process runs),
as many region rows as fit (changed ones first, marked and highlighted, the
rest folded into "... N regions" rows), and the latest sentences of the
event log.  Everything from the process goes through
printable() into Text, never markup.
"""

from __future__ import annotations

import heapq
import time

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from ..live.sampler import Sampler
from ..live.watch import STATM, End, History, signed_size, summary_lines
from ..model import KINDS, Detail, Region
from ..views.picture import Picture, picture_of
from .diagram import Diagram
from .text import address_width, human_size, printable
from .theme import kind_style

_BARS = "▁▂▃▄▅▆▇█"
_ASCII_BARS = "_.-=+*#@"


def sparkline(values, width: int, ascii_only: bool = False) -> str:
    """The last `width` values as bars, scaled between their minimum and maximum."""
    bars = _ASCII_BARS if ascii_only else _BARS
    points = list(values)[-width:] if width > 0 else []
    if not points:
        return ""
    lo, hi = min(points), max(points)
    if hi == lo:
        return bars[0] * len(points)
    top = len(bars) - 1
    return "".join(bars[round((v - lo) * top / (hi - lo))] for v in points)


class LiveView:
    """The whole live screen; lays itself out for the console's width and height."""

    def __init__(self, sampler: Sampler, history: History, interval: float, kinds=None):
        self.sampler = sampler
        self.history = history
        self.interval = interval
        self.kinds = kinds
        self._picture: Picture | None = None
        self._picture_of = None  # the maps text the picture was drawn from
        self._tids: list[int] = []
        self._drawn = self._cost = 0.0  # when the picture was drawn, and what it took

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or console.height
        ascii_only = not console.options.encoding.lower().startswith("utf")
        header = self.header()
        header.truncate(width, overflow="ellipsis")
        header.no_wrap = True
        totals = self.totals()
        top = [header, *self.sparklines(width, ascii_only)]
        if self.history.resident is not None:
            resident = self.resident()
            resident.truncate(width, overflow="ellipsis")
            resident.no_wrap = True
            top.append(resident)
        used = len(top) + len(totals.wrap(console, width))
        top.append(totals)
        log = self.log_lines(min(8, max(height // 4, 2)))
        used += len(log) + 3
        room = max(height - used, 3)
        yield Group(*top)
        yield Text("")
        yield from self.body(width, room, ascii_only)
        if log:
            yield Text("")
            for line in log:  # one row each, as counted in `used`
                line.no_wrap = True
                line.truncate(width, overflow="ellipsis")
                yield line

    def body(self, width: int, room: int, ascii_only: bool):
        """The picture and the region rows: side by side when wide, else one above the other."""
        if room < 12 or width < 40:
            return self.table(width, room, ascii_only)
        if width >= 150:
            left = min(100, width // 2)
            grid = Table.grid(padding=(0, 2))
            grid.add_column(width=left, no_wrap=True)
            grid.add_column(width=width - left - 2, no_wrap=True)
            rows = self.table(width - left - 2, room, ascii_only)
            grid.add_row(Diagram(self.picture(), height=room, legend=False), Group(*rows))
            return [grid]
        tall = max(room // 2, 10)
        return [
            Diagram(self.picture(), height=tall, legend=False),
            *self.table(width, room - tall, ascii_only),
        ]

    def picture(self) -> Picture:
        """The picture of the map as last sampled, drawn again only when the map changed.

        A map of 20,000 scattered mappings takes about 0.3 s to draw: when a
        drawing took more than 50 ms, the next waits ten times as long.
        """
        s = self.sampler
        changed = self._picture_of is not s.text or self._tids != s.tids
        now = time.monotonic()
        slow = self._cost > 0.05
        if self._picture is None or changed and (not slow or now - self._drawn >= 10 * self._cost):
            self._picture = picture_of(s.regions, s.images, title=f"PID {s.pid}")
            self._picture_of, self._tids = s.text, list(s.tids)
            self._drawn = time.monotonic()
            self._cost = self._drawn - now
        return self._picture

    def header(self) -> Text:
        s, h = self.sampler, self.history
        every = "flat out" if self.interval == 0 else f"every {self.interval:g} s"
        text = Text()
        text.append(f"PID {s.pid}", style="bold")
        text.append("  ")
        text.append(printable(s.info.name), style="bold")
        text.append(f"  {s.info.threads} thread{'s' if s.info.threads != 1 else ''}")
        text.append(f"  {len(s.mappings)} mappings", style="dim")
        text.append(
            f"   sampling {every}: {h.samples} samples, {h.rate:.1f}/s, "
            f"{h.cost * 1000:.2f} ms a sample, {h.t:.1f} s",
            style="dim",
        )
        return text

    def sparklines(self, width: int, ascii_only: bool) -> list[Text]:
        h = self.history
        rows = []
        span = max(width - 34, 8)
        series = [
            ("heap", h.heap, kind_style("heap"), h.start_totals["heap"]),
            ("stack", h.stack, kind_style("stack"), h.start_totals["stack"]),
            ("mapped", h.mapped, "bold", h.start_total),
        ]
        if h.resident is not None:
            series.append(("rss", h.rss, "bold", h.start_rss))
        for label, values, style, start in series:  # the change since the watch began in brackets
            line = Text(f"{label:<7}")
            line.append(sparkline(values, span, ascii_only).ljust(span), style=style)
            now = values[-1] if values else 0
            line.append(f" {human_size(now):>10}")
            line.append(f" ({signed_size(now - start)})", style="dim")
            line.no_wrap = True
            line.truncate(width, overflow="ellipsis")
            rows.append(line)
        return rows

    def resident(self) -> Text:
        """The memory figures, and how old each is as of the last sample."""
        rw, now = self.history.resident, self.history.t
        text = Text()
        text.append("resident ", style="bold")
        text.append(human_size(rw.rss))
        t = rw.totals
        if t is not None:
            for name, value in (("pss", t.pss), ("swap", t.swap), ("anonymous", t.anonymous)):
                text.append(f"  {name} {human_size(value)}")
        ages = []
        if rw.rss_from == STATM:
            ages.append(f"rss {now - rw.rss_t:.1f} s old (statm: smaps_rollup is slow)")
            if t is not None:
                ages.append(f"the rest {now - rw.totals_t:.1f} s old")
        else:
            ages.append(f"totals {now - rw.rss_t:.1f} s old")
        if rw.regions_t is not None:
            took = f"smaps read in {rw.full_cost * 1000:.1f} ms"
            ages.append(f"regions {now - rw.regions_t:.1f} s old ({took})")
        text.append("   " + ", ".join(ages), style="dim")
        return text

    def totals(self) -> Text:
        totals = self.sampler.totals()
        text = Text()
        for kind in KINDS:
            if not totals[kind] and not self.history.start_totals[kind]:
                continue
            text.append(kind, style=kind_style(kind))
            text.append(f" {human_size(totals[kind])}  ")
        return text

    def table(self, width: int, room: int, ascii_only: bool) -> list[Text]:
        regions = self.sampler.regions
        if self.kinds:
            regions = [r for r in regions if r.kind in self.kinds]
        recent = self.history.recent
        resident = self.history.resident
        shown = pick_rows(regions, recent, room - 1)
        aw = address_width(max((r.end for r in regions), default=1))
        mark = "*" if ascii_only else "●"
        rss = f" {'rss':>9}" if resident is not None else ""
        lines = [
            Text(
                f"  {'start':<{aw}} {'end':<{aw}} {'size':>9}{rss} perms {'kind':<6} detail",
                style="bold",
            )
        ]
        last = -1
        for i in shown:
            if i > last + 1:
                lines.append(_fold(regions[last + 1 : i], ascii_only))
            r = regions[i]
            if resident is not None:
                known = resident.of(r)
                rss = f" {human_size(known[0].rss) if known else '':>9}"
            lines.append(_row(r, aw, (r.start, r.end) in recent, mark, rss))
            last = i
        if last + 1 < len(regions):
            lines.append(_fold(regions[last + 1 :], ascii_only))
        for line in lines:
            line.no_wrap = True
            line.overflow = "ellipsis"
            line.truncate(width, overflow="ellipsis")
        return lines

    def log_lines(self, count: int) -> list[Text]:
        out = []
        for t, sentence in list(self.history.log)[-count:]:
            line = Text(f"{t:8.1f}s  ", style="dim")
            line.append(printable(sentence))
            out.append(line)
        return out


def pick_rows(regions: list[Region], recent: dict, room: int) -> list[int]:
    """Indexes of the regions to show in `room` rows, counting one row per folded run.

    All of them if they fit; otherwise the recently changed ones first, then
    the heap and main stack, then the largest, as long as they and the fold
    rows between them fit.
    """
    n = len(regions)
    if n <= room:
        return list(range(n))
    if room < 2:
        return []
    changed = [i for i, r in enumerate(regions) if (r.start, r.end) in recent] if recent else []
    changed.sort(key=lambda i: -recent[(regions[i].start, regions[i].end)])
    landmarks = [
        i
        for i, r in enumerate(regions)
        if r.detail in (Detail.BRK_HEAP, Detail.MAIN_STACK) or r.kind in ("text", "data", "bss")
    ][: room // 2]
    largest = heapq.nlargest(room, range(n), key=lambda i: regions[i].size)
    chosen: list[int] = []
    seen: set[int] = set()
    for i in (*changed, *landmarks, *largest):
        if i in seen:
            continue
        trial = sorted(chosen + [i])
        if _rows_needed(trial, n) > room:
            continue
        chosen = trial
        seen.add(i)
        if len(chosen) >= room:
            break
    return chosen


def _rows_needed(indexes: list[int], n: int) -> int:
    rows, last = 0, -1
    for i in indexes:
        rows += 1 + (i > last + 1)
        last = i
    return rows + (last + 1 < n)


def _row(r: Region, aw: int, changed: bool, mark: str, rss: str = "") -> Text:
    """One region; `rss` is its rss column (with --rss), blank while not known."""
    text = Text(f"{mark} " if changed else "  ", style="bold" if changed else "")
    text.append(f"{r.start:0{aw}x} {r.end:0{aw}x} {human_size(r.size):>9}{rss} {r.perms}  ")
    text.append(f"{r.kind:<6}", style=kind_style(r.kind))
    text.append(" " + printable(r.description + (" *" if r.heuristic else "")))
    where = r.object or r.path
    if where:
        text.append("  " + printable(where), style="dim")
    if changed:
        text.stylize("reverse", 0, len(text))
    return text


def _fold(regions: list[Region], ascii_only: bool) -> Text:
    size = sum(r.size for r in regions)
    dots = ":" if ascii_only else "⋮"
    word = "region" if len(regions) == 1 else "regions"
    return Text(f"  {dots} {len(regions):,} more {word}, {human_size(size)}", style="dim")


def render_watch_summary(history: History, end: End) -> Group:
    lines = summary_lines(history, end)
    out = [Text(printable(lines[0]), style="bold")]
    out.extend(Text("  " + printable(line)) for line in lines[1:])
    if history.log:
        out.append(Text("  last events:", style="dim"))
        for t, sentence in list(history.log)[-5:]:
            out.append(Text(f"  {t:8.1f}s  ", style="dim").append(printable(sentence)))
    return Group(*out)
