"""The map of a process as rich renderables: header, region table, summary, notes.

Every string that comes from the process (paths, names, command lines) goes
through printable() into a Text, never into markup.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Group, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ..classify.notes import ALLOCATOR_NOTES, describe_kind
from ..model import (
    ALLOCATORS,
    BY_PAGES,
    BY_SIZE,
    EXCLUSIVE_BIT,
    FRAMES,
    KINDS,
    MAPS_ONLY,
    VIA_COPY_ON_WRITE,
    WHOLE,
    Location,
    ProcessMap,
    Region,
    Runtime,
    Sharing,
)
from ..units import plural
from ..views.picture import map_picture
from .diagram import Diagram
from .text import address_width, human_size, printable
from .theme import kind_style


def render_map(
    pmap: ProcessMap,
    *,
    kinds: Iterable[str] | None = None,
    sections: bool = False,
    notes: bool = True,
    sort: str = "address",
    diagram: bool = False,
    diagram_height: int | None = None,
) -> RenderableType:
    """The whole `procmap PID` view (with memory figures when the map has them).

    With `diagram`, the picture comes first, in `diagram_height` rows if given.
    """
    wanted = set(kinds) if kinds else None
    rows = [i for i, r in enumerate(pmap.regions) if wanted is None or r.kind in wanted]
    if sort != "address":
        rows.sort(key=sort_key(pmap, sort), reverse=True)
    parts: list[RenderableType] = [render_header(pmap)]
    parts.extend(render_warnings(pmap.warnings))
    if diagram:
        parts.append(Diagram(map_picture(pmap), height=diagram_height))
        parts.append(Text(""))
    if pmap.resident is not None:
        parts.append(ResidentTable(pmap, rows))
    else:
        parts.append(RegionTable(pmap, [pmap.regions[i] for i in rows], sections=sections))
    parts.append(render_summary(pmap))
    if notes:
        shown = {pmap.regions[i].kind for i in rows}
        owners = tuple(dict.fromkeys(r.name for r in pmap.runtimes))
        parts.append(render_notes((k for k in KINDS if k in shown), owners))
    return Group(*parts)


SORT_KEYS = ("address", "size", "rss", "pss", "private", "dirty", "swap", "anonymous")


def sort_key(pmap: ProcessMap, key: str):
    """Region index -> the value to sort by, largest first (ties in address order)."""
    regions, resident = pmap.regions, pmap.resident
    if key == "size":
        return lambda i: (regions[i].size, -i)
    if key in ("private", "dirty"):
        return lambda i: (getattr(resident[i], key), -i)
    field = resident[0]._fields.index(key) if resident else 0
    return lambda i: (resident[i][field], -i)


def render_header(pmap: ProcessMap) -> Text:
    info = pmap.info
    threads = f"{info.threads} thread" + ("s" if info.threads != 1 else "")
    text = Text()
    if info.pid == 0:  # a plain maps text given to --from: no process facts at all
        text.append(printable(info.name), style="bold")
        text.append("  (a saved maps text)  ")
    else:
        text.append(f"PID {info.pid}", style="bold")
        text.append("  ")
        text.append(printable(info.name), style="bold")
        text.append(f"  user {printable(info.user)}  {threads}  ")
    text.append(f"{human_size(pmap.total_size)} mapped", style="bold")
    text.append(f" in {len(pmap.mappings)} mappings, {len(pmap.regions)} regions")
    if info.cmdline:
        text.append("\n")
        text.append(printable(" ".join(info.cmdline))[:400], style="dim")
    if pmap.runtimes:
        text.append("\nheap managed by ")
        text.append(printable(runtimes_words(pmap.runtimes)))
    return text


def runtimes_words(runtimes: Iterable[Runtime]) -> str:
    """ "jemalloc (malloc, in libjemalloc.so.2), glibc malloc (in libc.so.6)" """
    words = []
    for r in sorted(runtimes, key=lambda r: not r.malloc):
        where = r.object.rsplit("/", 1)[-1]
        words.append(f"{r.title} ({'malloc, ' if r.malloc else ''}in {where})")
    return ", ".join(words)


def render_warnings(warnings: list[str]) -> list[Text]:
    return [Text("note: ", style="yellow").append(printable(w)) for w in warnings]


class RegionTable:
    """The region rows, one line each, aligned, with the kind in its colour.

    A map can have 60,000 regions: rich's Table measures every cell and takes
    about 0.6 ms a row, so this renderable lays the columns out itself and
    yields plain segments (about 10 us a row), styled only where a kind is.
    """

    _HEAD = ("start", "end", "size", "perms", "kind", "detail", "object or path")

    def __init__(self, pmap: ProcessMap, regions: list[Region], sections: bool = False):
        self.pmap = pmap
        self.regions = regions
        self.sections = sections

    def rows(self):
        """(start, end, size, perms, kind, detail, where, dim) for each line."""
        width = address_width(max((r.end for r in self.pmap.regions), default=1))
        deleted = _deleted_objects(self.pmap)
        for r in self.regions:
            detail = r.description + (" *" if r.heuristic else "")
            yield (
                f"{r.start:0{width}x}",
                f"{r.end:0{width}x}",
                human_size(r.size),
                r.perms,
                r.kind,
                printable(detail),
                printable(_short(r, deleted)),
                False,
            )
            if self.sections and r.object:
                image = self.pmap.image_at(r.start)
                if image is None:
                    continue
                bias = image.bias
                for sec in image.layout.sections_between(r.start - bias, r.end - bias):
                    start = max(r.start, sec.addr + bias)
                    end = min(r.end, sec.addr + sec.size + bias)
                    yield (
                        f"{start:0{width}x}",
                        f"{end:0{width}x}",
                        human_size(end - start),
                        "",
                        "",
                        "  " + printable(sec.name),
                        "",
                        True,
                    )

    def __rich_console__(self, console, options):
        rows = list(self.rows())
        widths = [len(h) for h in self._HEAD[:6]]
        for row in rows:
            for i in range(6):
                if len(row[i]) > widths[i]:
                    widths[i] = len(row[i])
        widths[5] = min(widths[5], 44)
        w0, w1, w2, w3, w4, w5 = widths
        bold, dim = Style(bold=True), Style(dim=True)
        head = self._HEAD
        yield Segment(
            f"{head[0]:>{w0}}  {head[1]:>{w1}}  {head[2]:>{w2}}  {head[3]:<{w3}}  "
            f"{head[4]:<{w4}}  {head[5]:<{w5}}  {head[6]}\n",
            bold,
        )
        kind_styles = {k: Style.parse(kind_style(k)) for k in KINDS}
        room = _path_room(console, options, w0 + w1 + w2 + w3 + w4 + w5 + 12)
        for start, end, size, perms, kind, detail, where, faint in rows:
            left = f"{start:>{w0}}  {end:>{w1}}  {size:>{w2}}  {perms:<{w3}}  "
            right = f"  {detail:<{w5}}  {_fit(where, room)}".rstrip() + "\n"
            if faint:
                yield Segment(left + " " * w4 + right, dim)
                continue
            yield Segment(left)
            yield Segment(f"{kind:<{w4}}", kind_styles.get(kind))
            yield Segment(right)
        if any(r.heuristic for r in self.regions):
            yield Segment(
                "* found by a heuristic (shape or permissions), not by the kernel or ELF headers\n",
                dim,
            )


def _path_room(console, options, used: int) -> int | None:
    """Cells left for the last column in a terminal; None when nothing crops (a pipe)."""
    if not console.is_terminal:
        return None
    return max(options.max_width - used, 8)


def _fit(where: str, room: int | None) -> str:
    """`where` cut to `room` cells with a mark: a terminal crops the line's end unmarked,
    and a path cut without one reads as another path."""
    if room is None or (len(where) <= room and where.isascii()) or cell_len(where) <= room:
        return where
    return set_cell_size(where, room - 1) + "…"


def _short(r: Region, deleted: set[str]) -> str:
    """An ELF object by its file name (the summary gives its full path); other paths whole.

    A file deleted since it was mapped keeps the kernel's " (deleted)", on all
    its regions, its bss too: the binary on disk is not the one running.
    """
    if r.object:
        name = r.object.rsplit("/", 1)[-1]
        return name + _DELETED if r.object in deleted else name
    return r.path or ""


_DELETED = " (deleted)"


def _deleted_objects(pmap: ProcessMap) -> set[str]:
    """The ELF objects loaded from a file the kernel names "... (deleted)"."""
    return {im.path for im in pmap.images if im.deleted}


# The memory figures of a row, with their column headings: pmap -X's and
# vmmap's, the ones smaps gives for every mapping.
_FIGURE_COLUMNS = (
    ("rss", "rss"),
    ("pss", "pss"),
    ("shared_clean", "shr clean"),
    ("shared_dirty", "shr dirty"),
    ("private_clean", "prv clean"),
    ("private_dirty", "prv dirty"),
    ("swap", "swap"),
    ("anonymous", "anon"),
)


# In the summary, where any is not zero.
_MORE_FIGURES = (
    ("referenced", "referenced"),
    ("swap_pss", "swap pss"),
    ("locked", "locked"),
    ("lazyfree", "lazyfree"),
    ("ksm", "ksm"),
    ("anon_huge", "anon THP"),
    ("shmem_pmd", "shmem PMD"),
    ("file_pmd", "file PMD"),
    ("shared_hugetlb", "shr hugetlb"),
    ("private_hugetlb", "prv hugetlb"),
)


def figure(n: int) -> str:
    """A memory figure: human-sized, and "-" for none (easier to scan than 0 B)."""
    return human_size(n) if n else "-"


def render_summary(pmap: ProcessMap) -> Group:
    summary = pmap.summary()
    resident = pmap.resident is not None
    total = summary["total"]["size"] or 1
    kinds = Table(title="by kind", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    kinds.add_column("kind")
    kinds.add_column("regions", justify="right")
    kinds.add_column("size", justify="right")
    kinds.add_column("share", justify="right")
    figures = _FIGURE_COLUMNS if resident else ()
    if resident:
        # pmap -X's other columns, where this process has any.
        whole = summary["total"]
        figures += tuple((f, h) for f, h in _MORE_FIGURES if whole[f])
    for _, heading in figures:
        kinds.add_column(heading, justify="right")
    for kind, v in summary["by_kind"].items():
        kinds.add_row(
            Text(kind, style=kind_style(kind)),
            str(v["regions"]),
            human_size(v["size"]),
            f"{100 * v['size'] / total:.1f}%",
            *(figure(v[f]) for f, _ in figures),
        )
    whole = summary["total"]
    kinds.add_row(
        Text("total", style="bold"),
        str(whole["regions"]),
        human_size(total),
        "",
        *(figure(whole[f]) for f, _ in figures),
    )
    objects = Table(title="by object", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    objects.add_column("object", overflow="fold")
    objects.add_column("role")
    objects.add_column("size", justify="right")
    if resident:
        # Which library costs what: its figures, not its size by kind.
        present: list[str] = []
        for _, heading in figures:
            objects.add_column(heading, justify="right")
    else:
        present = [k for k in KINDS if any(k in o["kinds"] for o in summary["by_object"])]
        for kind in present:
            objects.add_column(Text(kind, style=kind_style(kind)), justify="right")
    deleted = _deleted_objects(pmap)
    for o in summary["by_object"]:
        objects.add_row(
            Text(printable(o["object"]) + (_DELETED if o["object"] in deleted else "")),
            o["role"] or "",
            human_size(o["size"]),
            *(human_size(o["kinds"][k]) if k in o["kinds"] else "" for k in present),
            *(figure(o[f]) for f, _ in figures),
        )
    parts: list[RenderableType] = [kinds]
    if resident:
        whole_from = summary["total"].get("figures_from")
        parts.append(Text(_TOTALS_NOTES[whole_from], style="dim"))
    if summary["by_object"]:
        parts.append(objects)
    return Group(*parts)


_TOTALS_NOTES = {
    "smaps_rollup": (
        "by kind and by object: sums of smaps' per-mapping figures, each rounded down to "
        "a kB by the kernel (so PSS sums fall short); total: the kernel's own, smaps_rollup"
    ),
    "sum": (
        "figures: sums of smaps' per-mapping figures, each rounded down to a kB by the "
        "kernel (so PSS sums fall short); smaps_rollup was not read"
    ),
}


class ResidentTable:
    """The region rows with their memory figures (procmap PID --rss).

    Laid out by hand, as RegionTable, for maps of many thousand regions.  The
    end address gives way to the figures, as in pmap -X.  With the map's
    sharing (--shared), the figures are RSS, PSS and the resident bytes shared
    with other processes or the process's own, and the sharers come last.
    """

    def __init__(self, pmap: ProcessMap, rows: list[int]):
        self.pmap = pmap
        self.rows = rows

    def __rich_console__(self, console, options):
        pmap = self.pmap
        sharing = pmap.sharing
        width = address_width(max((r.end for r in pmap.regions), default=1))
        columns = _SHARING_COLUMNS if sharing is not None else _FIGURE_COLUMNS
        fields = [f for f, _ in columns]
        head = ["start", "size", *(h for _, h in columns), "perms", "kind", "detail"]
        # Huge pages (hugetlbfs) are in RAM but never in Rss: their own column, when any.
        huge = any(
            pmap.resident[i].shared_hugetlb or pmap.resident[i].private_hugetlb for i in self.rows
        )
        if huge:
            head.insert(2 + len(fields), "hugetlb")
        lines = []
        methods = set()
        deleted = _deleted_objects(pmap)
        for i in self.rows:
            r, f, how = pmap.regions[i], pmap.resident[i], pmap.resident_from[i]
            mark = "" if how == WHOLE else " ‡"  # double dagger: a share of a mapping's
            if mark:
                methods.add(how)
            detail = r.description + (" *" if r.heuristic else "") + mark
            if sharing is not None:
                values = (f.rss, f.pss, f.shared_clean + f.shared_dirty, f.private)
            else:
                values = tuple(getattr(f, name) for name in fields)
            lines.append(
                (
                    f"{r.start:0{width}x}",
                    human_size(r.size),
                    *(figure(v) for v in values),
                    *((figure(f.shared_hugetlb + f.private_hugetlb),) if huge else ()),
                    r.perms,
                    r.kind,
                    printable(detail),
                    printable(_short(r, deleted)),
                    *((printable(sharers_text(sharing[i])),) if sharing is not None else ()),
                )
            )
        widths = [len(h) for h in head]
        for line in lines:
            for i in range(len(head)):
                if len(line[i]) > widths[i]:
                    widths[i] = len(line[i])
        widths[-1] = min(widths[-1], 40)
        n = len(head)
        kind_at = n - 2
        bold, dim = Style(bold=True), Style(dim=True)
        numbers = range(0, n - 3)

        def cells(line, a, b):
            return "  ".join(
                f"{line[i]:>{widths[i]}}" if i in numbers else f"{line[i]:<{widths[i]}}"
                for i in range(a, b)
            )

        if sharing is not None:
            where = max((len(line[-2]) for line in lines), default=0)
            where = min(max(where, len("object or path")), 40)
            yield Segment(cells(head, 0, n) + f"  {'object or path':<{where}}  shared with\n", bold)
        else:
            yield Segment(cells(head, 0, n) + "  object or path\n", bold)
        kind_styles = {k: Style.parse(kind_style(k)) for k in KINDS}
        used = sum(widths) + 2 * len(widths) + (where + 2 if sharing is not None else 0)
        room = _path_room(console, options, used)
        for line in lines:
            yield Segment(cells(line, 0, kind_at) + "  ")
            yield Segment(f"{line[kind_at]:<{widths[kind_at]}}", kind_styles.get(line[kind_at]))
            if sharing is None:
                yield Segment(f"  {line[-2]:<{widths[-1]}}  {_fit(line[-1], room)}".rstrip() + "\n")
                continue
            shown = f"  {line[-3]:<{widths[-1]}}  {_fit(line[-2], where):<{where}}"
            yield Segment(f"{shown}  {_fit(line[-1], room)}".rstrip() + "\n")
        if any(pmap.regions[i].heuristic for i in self.rows):
            yield Segment(
                "* found by a heuristic (shape or permissions), not by the kernel or ELF headers\n",
                dim,
            )
        for how in sorted(methods):
            yield Segment(_SHARE_NOTES[how] + "\n", dim)
        if sharing is not None:
            for method in sorted({sharing[i].method for i in self.rows}):
                yield Segment(_METHOD_NOTES[method] + "\n", dim)


# --shared: the figures that say how much of a region is shared, in bytes.
_SHARING_COLUMNS = (("rss", "rss"), ("pss", "pss"), ("shared", "shared"), ("own", "own"))
_SHOWN_SHARERS = 3


def sharers_text(s: Sharing) -> str:
    """The sharers of a region in a few words: "share 812 (writes), bash 77, +14 more"."""
    parts = []
    first = sorted(s.sharers, key=lambda x: (not x.writable, -(x.pages or 0), x.pid))
    for x in first[:_SHOWN_SHARERS]:
        how = []
        if x.writable:
            how.append("writes")
        if x.via == VIA_COPY_ON_WRITE:
            how.append("copy-on-write")
        if x.pages is not None:
            how.append(plural(x.pages, "page") if x.pages else "no pages")
        parts.append(f"{x.name} {x.pid}" + (f" ({', '.join(how)})" if how else ""))
    more = len(s.sharers) - _SHOWN_SHARERS
    if more > 0:
        parts.append(f"+{more} more")
    return ", ".join(parts) or "-"


_METHOD_NOTES = {
    FRAMES: (
        "shared/own: resident bytes mapped more than once, or by this process alone (smaps); "
        "sharers and their pages: page frame numbers compared (/proc/PID/pagemap, read with "
        "CAP_SYS_ADMIN)"
    ),
    EXCLUSIVE_BIT: (
        "shared/own: resident bytes mapped more than once, or by this process alone (smaps, "
        "pagemap's exclusive bit); sharers of a file or shared memory from their maps; "
        "copy-on-write sharers inferred (a parent, child or sibling running the same program "
        "whose pages at the same addresses are not its alone), pages an upper bound: run as "
        "root to compare page frames"
    ),
    MAPS_ONLY: (
        "sharers from their maps only: /proc/PID/pagemap was not readable, so no "
        "copy-on-write sharers and no pages per sharer"
    ),
}


_SHARE_NOTES = {
    BY_PAGES: (
        "‡ one of several regions in one mapping, whose smaps figures are shared among "
        "them by the bytes each holds in resident pages (swap: in swapped-out pages), "
        "from /proc/PID/pagemap; totals are exact"
    ),
    BY_SIZE: (
        "‡ one of several regions in one mapping, whose smaps figures are shared among "
        "them in proportion to their sizes (/proc/PID/pagemap was not readable); "
        "totals are exact"
    ),
}


def render_notes(kinds: Iterable[str], allocators: Iterable[str] = ()) -> Group:
    """The lesson's explanation of each kind, with a hanging indent per fact.

    `allocators` (keys of model.ALLOCATORS): the heap's note also says how each
    of them gets its memory from the kernel.
    """
    how = [(ALLOCATORS[a], ALLOCATOR_NOTES[a]) for a in allocators if a in ALLOCATOR_NOTES]
    blocks: list[RenderableType] = [Text("What each kind is", style="bold underline")]
    for kind in kinds:
        note = describe_kind(kind)
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="dim", no_wrap=True, justify="right")
        facts.add_column()
        for label, value in (
            ("holds", note.holds),
            ("lifetime", note.lifetime),
            ("access", note.access),
            ("growth", note.growth),
            ("managed by", note.manager),
            ("in a real map", note.reality),
            ("shared", note.sharing),
            *(how if kind == "heap" else ()),
        ):
            facts.add_row(Text(label), Text(value))
        blocks.append(Text(note.title, style="bold " + kind_style(kind)))
        blocks.append(facts)
        blocks.append(Text(""))
    return Group(*blocks)


def _where_object(loc: Location) -> str:
    """The object's full path (with " (deleted)" when its file is), or the region's path."""
    r = loc.region
    if r is None:
        return ""
    if r.object is None or loc.image is None:
        return r.path or r.object or ""
    return r.object + (_DELETED if loc.image.deleted else "")


def render_where(locations: list[Location]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("address", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail")
    table.add_column("object or path", overflow="fold")
    table.add_column("section", no_wrap=True)
    table.add_column("symbol", overflow="fold")
    for loc in locations:
        symbol = ""
        if loc.symbol is not None:
            symbol = loc.symbol + (f"+0x{loc.symbol_offset:x}" if loc.symbol_offset else "")
        table.add_row(
            Text(f"0x{loc.address:x}"),
            Text(loc.kind or "unmapped", style=kind_style(loc.kind)),
            Text(printable(loc.description)),
            Text(printable(_where_object(loc))),
            Text(printable(loc.section or "")),
            Text(printable(symbol)),
        )
    return table


class FastTable:
    """Aligned columns of plain strings, for tables of thousands of rows.

    rich's Table measures every cell (about 0.6 ms a row); this measures
    strings once and yields one segment per cell.  `style_of(row)` gives the
    style of the column `styled` (a kind's colour); the last column runs on
    unpadded, as the widest and least important.  A row that is a plain string
    is a heading, printed bold across the columns.
    """

    def __init__(self, head, rows, *, right=(), styled=None, style_of=None, max_width=None):
        self.head = head
        self.rows = rows
        self.right = set(right)
        self.styled = styled
        self.style_of = style_of
        self.max_width = max_width or {}

    def __rich_console__(self, console, options):
        n = len(self.head)
        widths = [len(h) for h in self.head]
        for row in self.rows:
            if isinstance(row, str):
                continue
            for i in range(n - 1):
                if len(row[i]) > widths[i]:
                    widths[i] = len(row[i])
        for i, w in self.max_width.items():
            widths[i] = min(widths[i], w)
        # The last column wraps, under itself, in what the others leave of the line.
        indent = sum(widths[:-1]) + 2 * (n - 1)
        room = options.max_width - indent
        wrap = room >= 16

        def cell(i, text):
            if i == n - 1:
                return text
            return f"{text:>{widths[i]}}" if i in self.right else f"{text:<{widths[i]}}"

        def last(text):
            if not wrap or len(text) <= room:
                return text.rstrip() + "\n"
            lines = textwrap.wrap(text, room, break_on_hyphens=False) or [""]
            return ("\n" + " " * indent).join(lines) + "\n"

        bold = Style(bold=True)
        yield Segment("  ".join(cell(i, h) for i, h in enumerate(self.head)).rstrip() + "\n", bold)
        styles: dict[str, Style] = {}
        k = self.styled
        for row in self.rows:
            if isinstance(row, str):  # a heading line between groups of rows
                lines = textwrap.wrap(row, max(options.max_width, 20), subsequent_indent="  ")
                yield Segment("\n".join(lines or [""]) + "\n", bold)
                continue
            if k is None:
                yield Segment("  ".join(cell(i, t) for i, t in enumerate(row[:-1])) + "  ")
                yield Segment(last(row[-1]))
                continue
            yield Segment("".join(cell(i, t) + "  " for i, t in enumerate(row[:k])))
            name = self.style_of(row) if self.style_of else ""
            style = styles.get(name)
            if style is None:
                style = styles[name] = Style.parse(name or "default")
            yield Segment(cell(k, row[k]), style)
            if k < n - 1:
                middle = "".join("  " + cell(i, row[i]) for i in range(k + 1, n - 1))
                yield Segment(middle + "  " + last(row[-1]))
            else:
                yield Segment("\n")
