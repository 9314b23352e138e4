"""`procmap system` as rich renderables: the processes, the shared objects, the totals;
and the progress bar shown while the processes are read."""

from __future__ import annotations

import io
from contextlib import contextmanager

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ..model import KINDS, ProcessUsage
from ..views.system import SystemView, add_up, shared_objects, sort_processes
from .text import human_size, printable
from .theme import kind_style

# The kinds shown as columns: the lesson's seven (the kernel's few pages, vdso and
# vvar, are in the totals and the JSON).
SHOWN_KINDS = tuple(k for k in KINDS if k != "kernel")


def _size(n: int) -> str:
    return human_size(n) if n else "-"


def render_system(
    view: SystemView,
    sort: str = "pss",
    limit: int | None = None,
    objects: int = 10,
    width: int | None = None,
) -> RenderableType:
    """The processes (sorted, the first `limit`), the totals, and the first `objects`
    shared objects, most saved first; kinds that do not fit in `width` are left out
    (and said to be)."""
    parts: list[RenderableType] = [render_processes(view, sort, limit, width)]
    if objects > 0:
        parts.append(Text(""))
        parts.extend(render_objects(view, objects))
    return Group(*parts)


_HEADINGS = ("PID", "user", "name", "RSS", "PSS", "USS", "swap")


def render_processes(
    view: SystemView, sort: str = "pss", limit: int | None = None, width: int | None = None
) -> Group:
    processes = sort_processes(view.processes, sort)
    shown = processes[:limit]
    kinds = [k for k in SHOWN_KINDS if any(k in p.kinds for p in processes)]
    whole = add_up(p.total for p in processes)
    kind_pss = {k: sum(p.kinds[k].pss for p in processes if k in p.kinds) for k in kinds}
    rows = [_row(p, kinds) for p in shown]
    last = ["", "", "all", *map(_size, whole), *(_size(kind_pss[k]) for k in kinds)]
    if len(processes) > 1:
        rows.append(last)
    n = len(processes)
    title = f"{n} process{'es' if n != 1 else ''}"
    if limit is not None and limit < n:
        title += f", the first {len(shown)} by {sort}"
    title += f"; totals from {view.figures_from}; PSS by kind from smaps"
    table = _process_table(rows, kinds, len(processes) > 1)
    # Sizes are never cut: the kinds that do not fit go, the smallest first.
    left_out: list[str] = []
    if width is not None:
        # Measured on a console wide enough for the table's natural width.
        measuring = Console(file=io.StringIO(), width=1 << 16)
        while kinds and Measurement.get(measuring, measuring.options, table).maximum > width:
            smallest = min(kinds, key=lambda k: kind_pss[k])
            i = len(_HEADINGS) + kinds.index(smallest)
            kinds.remove(smallest)
            left_out.append(smallest)
            for r in rows:
                del r[i]
            table = _process_table(rows, kinds, len(processes) > 1)
    parts: list[RenderableType] = [Text(title, style="bold"), table]
    if left_out:
        parts.append(
            Text(f"(not shown for want of width: PSS of {', '.join(left_out)}; --json has all)")
        )
    return Group(*parts)


def _process_table(rows: list[list[str]], kinds: list[str], total: bool) -> Table:
    """The rows (and the last one, the sums, when `total`) under their headings."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("PID", justify="right", no_wrap=True)
    table.add_column("user", no_wrap=True)
    table.add_column("name", no_wrap=True)
    for heading in _HEADINGS[3:]:
        table.add_column(heading, justify="right", no_wrap=True)
    for kind in kinds:
        table.add_column(Text(kind, style=kind_style(kind)), justify="right", no_wrap=True)
    body = rows[:-1] if total else rows
    for r in body:
        table.add_row(*r)
    if total:
        table.add_section()
        table.add_row(*(Text(v, style="bold") for v in rows[-1]))
    return table


def _row(p: ProcessUsage, kinds: list[str]) -> list[str]:
    return [
        str(p.pid),
        printable(p.user),
        printable(p.name),
        _size(p.total.rss),
        _size(p.total.pss),
        _size(p.total.uss),
        _size(p.total.swap),
        *(_size(p.kinds[k].pss) if k in p.kinds else "-" for k in kinds),
    ]


def render_objects(view: SystemView, first: int = 10) -> list[RenderableType]:
    shared = shared_objects(view.processes)
    if not shared:
        return [Text("No file or shared memory is mapped by more than one of these processes.")]
    saved = sum(o.saved for o in shared)
    title = Text(
        f"{len(shared)} shared object{'s' if len(shared) != 1 else ''} (mapped by several "
        f"processes): sharing saves {human_size(saved)}, RSS summed - PSS summed",
        style="bold",
    )
    if first < len(shared):
        title.append(f"; the {first} that save most", style="bold")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("object", overflow="fold")
    table.add_column("processes", justify="right", no_wrap=True)
    table.add_column("RSS", justify="right", no_wrap=True)
    table.add_column("PSS", justify="right", no_wrap=True)
    table.add_column("saved", justify="right", no_wrap=True)
    for o in shared[:first]:
        table.add_row(
            Text(printable(o.path)),
            str(o.processes),
            _size(o.rss),
            _size(o.pss),
            _size(o.saved),
        )
    return [title, table]


@contextmanager
def progress_bar(console: Console):
    """A progress bar on `console` (stderr, a terminal), gone once the read is done:
    yields a function of (done, total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("reading processes"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("read", total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield advance
