"""`procmap system` as rich renderables: the processes, the shared objects, the totals;
and the progress bar shown while the processes are read."""

from __future__ import annotations

from contextlib import contextmanager

from rich import box
from rich.console import Console, Group, RenderableType
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
) -> RenderableType:
    """The processes (sorted, the first `limit`), the totals, and the first `objects`
    shared objects, most saved first."""
    parts: list[RenderableType] = [render_processes(view, sort, limit)]
    if objects > 0:
        parts.append(Text(""))
        parts.append(render_objects(view, objects))
    return Group(*parts)


def render_processes(view: SystemView, sort: str = "pss", limit: int | None = None) -> Table:
    processes = sort_processes(view.processes, sort)
    shown = processes[:limit]
    kinds = [k for k in SHOWN_KINDS if any(k in p.kinds for p in processes)]
    n = len(processes)
    title = f"{n} process{'es' if n != 1 else ''}"
    if limit is not None and limit < n:
        title += f", the first {len(shown)} by {sort}"
    title += f"; PSS by kind (from smaps); totals from {view.figures_from}"
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    table.add_column("PID", justify="right", no_wrap=True)
    table.add_column("user", no_wrap=True, max_width=12)
    table.add_column("name", no_wrap=True)
    for heading in ("RSS", "PSS", "USS", "swap"):
        table.add_column(heading, justify="right", no_wrap=True)
    for kind in kinds:
        table.add_column(Text(kind, style=kind_style(kind)), justify="right", no_wrap=True)
    for p in shown:
        table.add_row(*_row(p, kinds))
    whole = add_up(p.total for p in processes)
    if n > 1:
        table.add_section()
        kind_pss = [sum(p.kinds[k].pss for p in processes if k in p.kinds) for k in kinds]
        table.add_row(
            "",
            "",
            Text("all", style="bold"),
            *(Text(_size(v), style="bold") for v in whole),
            *(Text(_size(v), style="bold") for v in kind_pss),
        )
    return table


def _row(p: ProcessUsage, kinds: list[str]) -> list[Text | str]:
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


def render_objects(view: SystemView, first: int = 10) -> RenderableType:
    shared = shared_objects(view.processes)
    if not shared:
        return Text("No file or shared memory is mapped by more than one of these processes.")
    saved = sum(o.saved for o in shared)
    title = (
        f"shared objects: {len(shared)} mapped by several processes; sharing saves "
        f"{human_size(saved)} (RSS summed - PSS summed)"
    )
    if first < len(shared):
        title += f"; the {first} that save most"
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
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
    return table


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
