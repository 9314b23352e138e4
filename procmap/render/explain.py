"""`procmap explain`: an ELF file's load plan as rich renderables.

Names in a file (section and symbol names, paths) are untrusted like anything
in /proc: they go through printable() into Text, never into markup.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..classify.notes import RUNTIME_NOTES
from ..elf import align_down, align_up
from ..model import KINDS, STACK_DETAILS, Detail
from ..views.explain import MISSING, Explanation
from .table import FastTable, render_notes
from .text import human_size, printable
from .theme import kind_style

# How many of the file's own variables the default view lists before counting the rest.
OWN_SYMBOLS_SHOWN = 40


def render_explanation(
    exp: Explanation, *, symbols: bool = False, notes: bool = True
) -> RenderableType:
    parts: list[RenderableType] = [render_facts(exp)]
    parts.extend(render_findings(exp))
    parts.extend(Text("note: ", style="yellow").append(printable(w)) for w in exp.warnings)
    if exp.loader is not None:
        parts.append(render_plan(exp))
    elif exp.facts.type == "core" and exp.loads:
        parts.append(render_core_segments(exp))
    parts.append(render_sections(exp))
    parts.append(render_symbols(exp, everything=symbols))
    if exp.loader is not None:
        key = (
            "library"
            if exp.loader == "dynamic linker"
            else ("static" if exp.facts.static else "dynamic")
        )
        parts.append(Text("At run time", style="bold underline"))
        parts.append(Text(RUNTIME_NOTES[key] + "\n"))
    if notes:
        parts.append(render_notes(exp.kinds()))
    return Group(*parts)


def render_facts(exp: Explanation) -> Text:
    f = exp.facts
    t = Text()
    t.append(printable(exp.path), style="bold")
    t.append(f"\nELF {f.elf_class}-bit {f.endian}-endian {f.machine}, {f.description}\n")
    line = [f"entry 0x{f.entry:x}"] if f.entry else []
    if f.interpreter:
        line.append(f"interpreter {printable(f.interpreter)}")
    if f.soname:
        line.append(f"soname {printable(f.soname)}")
    line.append(f"build ID {f.build_id}" if f.build_id else "no build ID")
    line.append(f"{human_size(f.file_size)} on disk")
    t.append("  ".join(line) + "\n", style="dim")
    if f.needed:
        t.append("needs ", style="dim")
        t.append(printable(", ".join(f.needed)) + "\n")
    t.append("hardening: ")
    _flag(t, "NX stack", f.nx_stack, "yes" if f.nx_stack else "NO: the stack is executable")
    if not f.loadable:
        t.append("\n")
        return t
    t.append("  ")
    relro = {
        "full": "full (BIND_NOW: the GOT is read-only before main runs)",
        "partial": "partial (no BIND_NOW: .got.plt stays writable for lazy binding)",
        "none": "none (no PT_GNU_RELRO)",
    }[f.relro]
    _flag(t, "RELRO", f.relro != "none", relro)
    t.append("  ")
    if f.type in ("executable", "static"):
        low = min((s.vaddr for s in exp.layout.loads), default=0)
        _flag(t, "PIE", False, f"no (always at 0x{low:x})")
    elif f.pie:
        _flag(t, "PIE", True, "yes")
    t.append("\n")
    for i in f.wx_segments:
        t.append(f"warning: segment {i} is writable and executable\n", style="bold red")
    if f.textrel:
        t.append("warning: text relocations: the loader writes into code pages\n", style="red")
    return t


def render_findings(exp: Explanation) -> list[Text]:
    """The program headers' lies: one line each, refusals first."""
    lines = []
    for f in sorted(exp.findings, key=lambda f: not f.refused):
        head = Text("refused: ", style="bold red") if f.refused else Text("warning: ", style="red")
        lines.append(head.append(printable(f.text)))
    return lines


def _flag(t: Text, name: str, good: bool, value: str) -> None:
    t.append(f"{name} ")
    t.append(value, style="green" if good else "bold red")


def render_plan(exp: Explanation) -> RenderableType:
    loads = exp.loads
    size = sum(m.size for m in exp.mappings)
    relative = exp.facts.pie or exp.facts.type == "shared-object"
    where = (
        "addresses are offsets from the load base, chosen at run time"
        if relative
        else "addresses are absolute: the file is linked to load there"
    )
    title = Text("Load plan", style="bold underline")
    title.append(
        f"\n{len(loads)} PT_LOAD segments become {len(exp.mappings)} mappings, "
        f"{human_size(size)}, loaded by the {exp.loader}; {where}",
        style="not underline",
    )
    width = max(8, len(f"{max((m.end for m in exp.mappings), default=1) - 1:x}"))
    page = exp.page_size
    rows: list = []
    current = None
    by_number = {p.number: p for p in loads}
    for r in exp.regions:
        if exp.owners:
            # The segment whose mapping really holds the region (a later one wins).
            number = exp.owner_at(r.start)
            owner = by_number.get(number) if number is not None else None
        else:
            owner = next(
                (
                    p
                    for p in loads
                    if align_down(p.segment.vaddr, page)
                    <= r.start
                    < align_up(p.segment.vaddr + p.segment.memsz, page)
                ),
                None,
            )
        if owner is not current and owner is not None:
            rows.append(_segment_line(owner.number, owner.segment))
            current = owner
        rows.append(
            (
                f"{r.start:0{width}x}",
                f"{r.end:0{width}x}",
                human_size(r.end - r.start),
                r.perms[:3],
                r.kind,
                printable(r.description),
                printable(" ".join(r.sections)),
            )
        )
    table = FastTable(
        ("start", "end", "size", "perms", "kind", "detail", "sections"),
        rows,
        right=(0, 1, 2),
        styled=4,
        style_of=lambda row: kind_style(row[4]),
    )
    return Group(title, table, Text(""))


def _segment_line(index: int, seg) -> str:
    line = (
        f"segment {index}  LOAD {seg.perms}  file 0x{seg.offset:x} +{human_size(seg.filesz)}"
        f"  ->  memory 0x{seg.vaddr:x} +{human_size(seg.memsz)}"
    )
    if seg.memsz > seg.filesz:
        line += f"  ({human_size(seg.memsz - seg.filesz)} beyond the file: bss, zero-filled)"
    return line


def render_core_segments(exp: Explanation) -> RenderableType:
    rows = [
        (
            f"0x{p.segment.vaddr:x}",
            human_size(p.segment.memsz),
            p.segment.perms,
            human_size(p.segment.filesz),
        )
        for p in exp.loads
    ]
    return Group(
        Text("Dumped mappings (LOAD segments of the core file)", style="bold underline"),
        FastTable(("address", "size", "perms", "in the file"), rows, right=(0, 1, 3)),
        Text(""),
    )


def render_sections(exp: Explanation) -> RenderableType:
    """Sections grouped by the region they land in, then those that are not loaded."""
    groups: dict[tuple[str, str], list] = {}
    unloaded, tls = [], []
    missing: dict[tuple[str, int | None], list] = {}
    for s in exp.sections:
        if s.missing is not None:
            missing.setdefault((s.missing, s.replaced_by), []).append(s.section)
        elif s.kind is None:
            (tls if s.detail is Detail.THREAD_LOCAL else unloaded).append(s.section)
        else:
            groups.setdefault((s.kind, s.detail.text if s.detail else ""), []).append(s.section)
    order = {k: i for i, k in enumerate(KINDS)}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("sections (size)", overflow="fold")
    for (kind, detail), secs in sorted(groups.items(), key=lambda g: order.get(g[0][0], 99)):
        table.add_row(
            Text(kind, style=kind_style(kind)),
            printable(detail),
            human_size(sum(s.size for s in secs)),
            _section_list(secs),
        )
    for (key, by), secs in missing.items():
        why = MISSING[key] + (f" (segment {by})" if by is not None else "")
        table.add_row(
            Text("not in memory", style="bold red"),
            why,
            human_size(sum(s.size for s in secs)),
            _section_list(secs),
        )
    if tls:
        table.add_row(
            "", "thread-local template", human_size(sum(s.size for s in tls)), _section_list(tls)
        )
    if unloaded:
        on_disk = sum(s.size for s in unloaded if s.type != 8)
        table.add_row(
            Text("not loaded", style="dim"),
            "in the file only",
            human_size(on_disk),
            _section_list(unloaded),
        )
    return Group(Text("Sections, by the region they land in", style="bold underline"), table)


def _section_list(secs) -> Text:
    return Text(
        ", ".join(f"{printable(s.name) or '(unnamed)'} {human_size(s.size)}" for s in secs),
        style="dim",
    )


def render_symbols(exp: Explanation, *, everything: bool) -> RenderableType:
    source = exp.symbol_source
    if source is None:
        return Text("No symbol table: the file is fully stripped.\n", style="yellow")
    title = Text("Symbols" if everything else "The file's own variables", style="bold underline")
    if source == ".dynsym":
        title.append(
            "\nstripped: no .symtab, so only the exported symbols of .dynsym are known",
            style="yellow not underline",
        )
    if everything:
        chosen = sorted(exp.symbols, key=lambda s: (order_of(s.kind), s.entry.value))
    else:
        chosen = sorted((s for s in exp.symbols if s.own), key=lambda s: s.entry.value)
    shown = chosen if everything else chosen[:OWN_SYMBOLS_SHOWN]
    width = max(8, len(f"{max((s.entry.value for s in shown), default=1):x}"))
    parts: list[RenderableType] = [title]
    if everything:
        # Every symbol: names last (C++ names run to hundreds of characters), and no
        # reason column: it follows from the kind, and repeats 50,000 times.
        rows = [
            (
                f"{s.entry.value:0{width}x}",
                human_size(s.entry.size),
                s.entry.type_name,
                s.kind or "-",
                printable(s.section or "-"),
                printable(s.entry.name),
            )
            for s in shown
        ]
        head = ("address", "size", "type", "kind", "section", "name")
        style_at, right = 3, (0, 1)
    else:
        rows = [
            (
                printable(s.entry.name),
                f"{s.entry.value:0{width}x}",
                human_size(s.entry.size),
                s.kind or "-",
                printable(s.section or "-"),
                s.reason,
            )
            for s in shown
        ]
        head = ("name", "address", "size", "kind", "section", "why")
        style_at, right = 3, (1, 2)
    if rows:
        parts.append(
            FastTable(
                head,
                rows,
                right=right,
                styled=style_at,
                style_of=lambda row: kind_style(row[style_at]),
                max_width={0: 40},
            )
        )
    rest = len(exp.symbols) - len(shown)
    if not everything:
        functions = sum(1 for s in exp.symbols if s.entry.type_name != "object")
        text = (
            f"{len(exp.symbols)} objects and functions in {source}: {len(chosen)} variables "
            f"of the file's own, {functions} functions"
        )
        if rest:
            text += f"; {rest} not listed here (--symbols lists them all)"
        parts.append(Text(text, style="dim"))
    parts.append(Text(""))
    return Group(*parts)


def order_of(kind: str | None) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def render_run(exp: Explanation, result, *, notes: bool = True) -> RenderableType:
    """`explain --run`: the live map, tied back to the load plan."""
    from .table import render_map

    pmap = result.map
    head = Text()
    head.append("Ran ", style="bold")
    head.append(printable(" ".join(result.argv)), style="bold")
    head.append(f"  PID {result.pid}, ")
    if result.stop_at == "entry":
        head.append("stopped right after exec, before the dynamic linker ran; then killed")
    else:
        status = result.exit_status
        how = f"exit status {status}" if status is None or status >= 0 else f"signal {-status}"
        head.append(f"stopped as it exited ({how}), everything it mapped still in place")
    parts: list[RenderableType] = [render_facts(exp), head]
    if result.bias is not None:
        page = exp.page_size
        low = min(align_down(p.segment.vaddr, page) for p in exp.loads)
        base = result.bias + low
        if exp.facts.pie or exp.facts.type == "shared-object":
            why = "a random base chosen at exec (ASLR)"
        else:
            why = "its link address: not PIE, so always the same"
        parts.append(Text(f"Loaded at 0x{base:x}: {why}."))
        rows = [
            (
                f"segment {x.number}",
                f"{x.plan_start:x}-{x.plan_end:x}",
                f"{x.start:x}-{x.end:x}",
                human_size(x.end - x.start),
                ", ".join(x.live_kinds),
                "" if x.live_kinds == x.kinds else "plan: " + ", ".join(x.kinds),
            )
            for x in result.landings
        ]
        parts.append(Text("Where each PT_LOAD landed", style="bold underline"))
        parts.append(FastTable(("segment", "plan", "live", "size", "kinds", ""), rows, right=(3,)))
        if result.differences:
            parts.append(Text("Live regions that differ from the plan:", style="yellow"))
            parts.extend(Text("  " + printable(d), style="dim") for d in result.differences)
            if result.stop_at == "entry":
                parts.append(
                    Text(
                        "  (At entry nothing is relocated yet: RELRO is made read-only later, by "
                        "the dynamic linker or the C start-up code.)",
                        style="dim",
                    )
                )
        else:
            parts.append(
                Text("Every region is where the plan put it, with the plan's kind.", style="green")
            )
    parts.append(Text("\n" + "Where the rest went", style="bold underline"))
    parts.append(_landmarks(pmap, result))
    parts.append(Text(""))
    parts.append(render_map(pmap, notes=notes))
    return Group(*parts)


def _landmarks(pmap, result) -> Text:
    t = Text()
    by_detail: dict[Detail, list] = {}
    for r in pmap.regions:
        by_detail.setdefault(r.detail, []).append(r)
    image_end = max((x.end for x in result.landings), default=None)
    for detail, label in (
        (Detail.BRK_HEAP, "heap"),
        (Detail.MAIN_STACK, "stack"),
        (Detail.VDSO, "vdso"),
    ):
        regions = by_detail.get(detail)
        if not regions:
            if detail is Detail.BRK_HEAP:
                t.append("heap      none yet: nothing has moved the program break\n")
            continue
        lo, hi = regions[0].start, regions[-1].end
        line = f"{label:<9} at 0x{lo:x}-0x{hi:x}  {human_size(hi - lo)}"
        if detail is Detail.BRK_HEAP and image_end is not None and lo >= image_end:
            line += f", {human_size(lo - image_end)} above the end of the bss"
        t.append(line + "\n")
    for image in pmap.images:
        if image.role == "program":
            continue
        t.append(f"{image.role:<9} at 0x{image.start:x}  ")
        t.append(printable(image.path) + "\n")
    stacks = [r for r in pmap.regions if r.detail in STACK_DETAILS]
    if stacks:
        t.append(f"threads   {len(stacks)} thread stack(s) in the mapping area\n")
    return t
