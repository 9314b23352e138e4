"""The map of a process as rich renderables: header, region table, summary, notes.

Every string that comes from the process (paths, names, command lines) goes
through printable() into a Text, never into markup.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..classify import KINDS, Region
from ..lesson import describe_kind
from ..process import Location, ProcessMap
from .text import address_width, human_size, printable
from .theme import kind_style


def render_map(
    pmap: ProcessMap,
    *,
    kinds: Iterable[str] | None = None,
    sections: bool = False,
    notes: bool = True,
) -> RenderableType:
    """The whole `procmap PID` view."""
    wanted = set(kinds) if kinds else None
    regions = [r for r in pmap.regions if wanted is None or r.kind in wanted]
    parts: list[RenderableType] = [render_header(pmap)]
    parts.extend(render_warnings(pmap.warnings))
    parts.append(render_regions(pmap, regions, sections=sections))
    parts.append(render_summary(pmap))
    if notes:
        parts.append(render_notes(k for k in KINDS if any(r.kind == k for r in regions)))
    return Group(*parts)


def render_header(pmap: ProcessMap) -> Text:
    info = pmap.info
    threads = f"{info.threads} thread" + ("s" if info.threads != 1 else "")
    text = Text()
    text.append(f"PID {info.pid}", style="bold")
    text.append("  ")
    text.append(printable(info.name), style="bold")
    text.append(f"  user {printable(info.user)}  {threads}  ")
    text.append(f"{human_size(pmap.total_size)} mapped", style="bold")
    text.append(f" in {len(pmap.mappings)} mappings, {len(pmap.regions)} regions")
    if info.cmdline:
        text.append("\n")
        text.append(printable(" ".join(info.cmdline))[:400], style="dim")
    return text


def render_warnings(warnings: list[str]) -> list[Text]:
    return [Text("note: ", style="yellow").append(printable(w)) for w in warnings]


def render_regions(pmap: ProcessMap, regions: list[Region], *, sections: bool = False) -> Table:
    width = address_width(max((r.end for r in pmap.regions), default=1))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("start", no_wrap=True, justify="right")
    table.add_column("end", no_wrap=True, justify="right")
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("perms", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail")
    table.add_column("object or path", overflow="fold")
    for r in regions:
        style = kind_style(r.kind)
        detail = r.detail + (" *" if r.heuristic else "")
        table.add_row(
            Text(f"{r.start:0{width}x}"),
            Text(f"{r.end:0{width}x}"),
            Text(human_size(r.size)),
            Text(r.perms),
            Text(r.kind, style=style),
            Text(detail),
            Text(printable(_short(r))),
        )
        if sections and r.object:
            _add_section_rows(table, pmap, r, width)
    if any(r.heuristic for r in regions):
        table.caption = "* found by a heuristic (shape or permissions), not by the kernel or ELF headers"
        table.caption_justify = "left"
    return table


def _short(r: Region) -> str:
    """An ELF object by its file name (the summary gives its full path); other paths whole."""
    if r.object:
        return r.object.rsplit("/", 1)[-1]
    return r.path or ""


def _add_section_rows(table: Table, pmap: ProcessMap, r: Region, width: int) -> None:
    image = pmap.image_at(r.start)
    if image is None:
        return
    for s in image.layout.sections_between(r.start - image.bias, r.end - image.bias):
        start = max(r.start, s.addr + image.bias)
        end = min(r.end, s.addr + s.size + image.bias)
        table.add_row(
            Text(f"{start:0{width}x}", style="dim"),
            Text(f"{end:0{width}x}", style="dim"),
            Text(human_size(end - start), style="dim"),
            Text(""),
            Text(""),
            Text("  " + printable(s.name), style="dim"),
            Text(""),
        )


def render_summary(pmap: ProcessMap) -> Group:
    summary = pmap.summary()
    total = summary["total"]["size"] or 1
    kinds = Table(title="by kind", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    kinds.add_column("kind")
    kinds.add_column("regions", justify="right")
    kinds.add_column("size", justify="right")
    kinds.add_column("share", justify="right")
    for kind, v in summary["by_kind"].items():
        kinds.add_row(
            Text(kind, style=kind_style(kind)),
            str(v["regions"]),
            human_size(v["size"]),
            f"{100 * v['size'] / total:.1f}%",
        )
    kinds.add_row(Text("total", style="bold"), str(summary["total"]["regions"]), human_size(total), "")
    objects = Table(title="by object", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    objects.add_column("object", overflow="fold")
    objects.add_column("role")
    objects.add_column("regions", justify="right")
    objects.add_column("size", justify="right")
    objects.add_column("kinds")
    for o in summary["by_object"]:
        parts = Text()
        for kind, size in o["kinds"].items():
            if parts:
                parts.append(" ")
            parts.append(kind, style=kind_style(kind))
            parts.append(f" {human_size(size)}")
        objects.add_row(
            Text(printable(o["object"])), o["role"] or "", str(o["regions"]), human_size(o["size"]), parts
        )
    return Group(kinds, objects) if summary["by_object"] else Group(kinds)


def render_notes(kinds: Iterable[str]) -> Group:
    """The lesson's explanation of each kind, with a hanging indent per fact."""
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
        ):
            facts.add_row(Text(label), Text(value))
        blocks.append(Text(note.title, style="bold " + kind_style(kind)))
        blocks.append(facts)
        blocks.append(Text(""))
    return Group(*blocks)


def render_where(locations: list[Location]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("address", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail")
    table.add_column("object or path", overflow="fold")
    table.add_column("section", no_wrap=True)
    table.add_column("symbol", overflow="fold")
    for loc in locations:
        r = loc.region
        symbol = ""
        if loc.symbol is not None:
            symbol = loc.symbol + (f"+0x{loc.symbol_offset:x}" if loc.symbol_offset else "")
        table.add_row(
            Text(f"0x{loc.address:x}"),
            Text(loc.kind or "unmapped", style=kind_style(loc.kind)),
            Text(printable(loc.detail)),
            Text(printable((r.object or r.path or "") if r else "")),
            Text(printable(loc.section or "")),
            Text(printable(symbol)),
        )
    return table
