"""A crash report: the verdict, the facts that led to it, and the picture with the fault."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..classify.fault import Fault, headline
from ..model import Location, ProcessMap
from ..units import human_size
from ..views.picture import map_picture
from .diagram import Diagram
from .text import printable
from .theme import kind_style


def render_fault(fault: Fault, pmap: ProcessMap | None, picture_height: int | None = None):
    """The report's body: a table of facts, the explanation, and the marked picture."""
    parts: list = [Text(printable(headline(fault)), style="bold red"), Text()]
    parts.append(_facts(fault))
    if fault.explanation:
        parts.extend([Text(), Text("Why: ", style="bold").append(printable(fault.explanation))])
    if pmap is not None:
        marks = [(fault.pc.address, "pc")]
        if fault.address is not None:
            marks.insert(0, (fault.address, "fault"))
        if fault.stack.sp is not None:
            marks.append((fault.stack.sp, "sp"))
        picture = map_picture(pmap)._replace(marks=tuple(marks))
        parts.extend([Text(), Diagram(picture, height=picture_height)])
    return Group(*parts)


def _facts(f: Fault) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("signal", f"{f.signal_name} ({f.code_name})" + _sender(f))
    if f.address is not None:
        how = {"instruction": ", computed from the instruction"}.get(f.address_from or "", "")
        if f.address_from == "instruction" and f.reported_address is not None:
            how += f" (the kernel reported 0x{f.reported_address:x})"
        table.add_row("address", Text(f"0x{f.address:x}{how}"))
    if f.access:
        table.add_row("access", f.access)
    if f.location is not None:
        table.add_row("where", _where(f.location))
    if f.abort_message:
        table.add_row("message", Text(printable(f.abort_message)))
    insn = f" by {f.instruction.text}" if f.instruction else ""
    table.add_row("pc", Text(f"0x{f.pc.address:x} ").append_text(_where(f.pc, brief=True))
                  .append(printable(insn)))  # fmt: skip
    if f.called_from is not None:
        table.add_row("called from", _where(f.called_from, brief=True))
    thread = f"TID {f.tid}" + (f" ({printable(f.thread_name)})" if f.thread_name else "")
    table.add_row("thread", thread)
    table.add_row("stack", _stack(f))
    if f.frames:
        lines = Text()
        for i, frame in enumerate(f.frames):
            if i:
                lines.append("\n")
            lines.append(f"0x{frame.address:x} ").append_text(_where(frame.location, brief=True))
            if frame.repeats > 1:
                lines.append(f", {frame.repeats} times in {_SCAN_WORDS}", style="dim")
        table.add_row("return addresses", lines)
        table.add_row("", Text("found by scanning the stack: a guide, not a backtrace", "dim"))
    return table


_SCAN_WORDS = "the 64 KiB of stack scanned"  # classify/fault._SCAN


def _sender(f: Fault) -> str:
    return "" if f.sender is None else f", sent by PID {f.sender}"


def _where(loc: Location, brief: bool = False) -> Text:
    """ "main+0x39 in crash (text, .text)" or, unmapped, the reason."""
    r = loc.region
    if r is None:
        return Text(printable(loc.description), style="dim" if brief else "")
    text = Text()
    if loc.symbol is not None:
        offset = f"+0x{loc.symbol_offset:x}" if loc.symbol_offset else ""
        text.append(printable(loc.symbol + offset), style="bold")
        text.append(" in ")
    elif loc.image is not None:
        text.append(f"+0x{loc.address - loc.image.start:x} in ")
    name = r.object or r.path or ""
    if name:
        text.append(printable(name.rsplit("/", 1)[-1] if brief else name))
        text.append(" ")
    inside = ", ".join(x for x in (loc.section, printable(r.description)) if x)
    text.append("(")
    text.append(r.kind, style=kind_style(r.kind))
    text.append(f", {inside}, {r.perms})" if not brief else f", {inside})")
    return text


def _stack(f: Fault) -> Text:
    st = f.stack
    text = Text(f"sp 0x{st.sp:x}")
    if st.stack is None or st.used is None or st.left is None:
        return text.append(", in no stack procmap knows")
    text.append(f" in the {printable(st.stack.description)}: {human_size(max(st.used, 0))} used, ")
    if st.left < 0:
        text.append(f"{human_size(-st.left)} past its bottom", style="bold red")
    else:
        text.append(f"{human_size(st.left)} left")
    if st.guard is not None:
        text.append(f", guard page at 0x{st.guard.start:x}")
    return text
