"""`procmap PID --threads`: one row per thread, its stack and how much of it is used.

Thread names come from the process (any bytes up to 15): they go through
printable() into plain segments, never into markup.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from ..model import LEFT_BOUNDS, SP_IN, SP_UNKNOWN, THREAD_STATES, ProcessMap, Thread
from .table import FastTable, render_header, render_warnings
from .text import address_width, human_size, printable

_HEAD = ("TID", "name", "state", "sp", "stack", "size", "used", "left", "to", "guard")
# The `to` column: what ends the room left (LEFT_BOUNDS), in a word or two.
_BOUND_WORDS = {
    "guard-page": "guard page",
    "stack-start": "stack start",
    "rlimit-stack": "RLIMIT_STACK",
    "stack-guard-gap": "guard gap",
    "mapping-below": "mapping below",
}
_GUARD_WORDS = {"guard-page": "page", "stack-guard-gap": "gap"}


def render_threads(pmap: ProcessMap) -> RenderableType:
    """The header, the map's warnings, the thread table and what its words mean."""
    threads = pmap.threads or []
    parts: list[RenderableType] = [render_header(pmap), *render_warnings(pmap.warnings)]
    if not threads:
        parts.append(Text("no threads: this map holds none (a plain maps text has no threads)"))
        return Group(*parts)
    parts.append(render_thread_table(pmap, threads))
    parts.append(render_legend(threads))
    return Group(*parts)


def render_thread_table(pmap: ProcessMap, threads: list[Thread]) -> FastTable:
    """The rows, aligned: a process can have thousands of threads (FastTable, not rich's Table)."""
    width = address_width(max((r.end for r in pmap.regions), default=1))
    rows = [_row(t, width) for t in threads]
    return FastTable(_HEAD, rows, right=(0, 5, 6, 7))


def _row(t: Thread, width: int) -> tuple[str, ...]:
    name = "?" if t.name is None else printable(t.name)
    if t.state is None:
        state = "?"
    else:
        state = f"{printable(t.state)} {THREAD_STATES.get(t.state, 'unknown')}"
    if t.sp is not None:
        sp = f"{t.sp:0{width}x}"
        if t.sp_in not in (None, "stack"):
            sp += f" ({t.sp_in})"
    else:
        sp = f"? {t.sp_unknown}"
    s = t.stack
    if s is None:
        # A Go thread's stack is a goroutine's, in the Go heap: its size is the runtime's.
        stack, size = ("in the Go heap" if t.sp_in == "goroutine-stack" else "-"), ""
    else:
        stack = f"{s.start:0{width}x}-{s.end:0{width}x}" + (" [stack]" if t.main else "")
        size = human_size(s.size)
    used = "-" if t.used is None else human_size(t.used)
    left = "-" if t.left is None else human_size(t.left)
    bound = _BOUND_WORDS.get(t.left_bound or "", "") if t.left is not None else ""
    g = t.guard
    guard = "-" if g is None else f"{human_size(g.end - g.start)} {_GUARD_WORDS[g.kind]}"
    return (f"{t.tid}", name, state, sp, stack, size, used, left, bound, guard)


def render_legend(threads: list[Thread]) -> Text:
    """What the words in the rows mean: only those the rows use."""
    lines = []
    for key in dict.fromkeys(t.sp_unknown for t in threads if t.sp_unknown):
        lines.append(f"? {key}: {SP_UNKNOWN.get(key, key)}")
    for key in dict.fromkeys(t.sp_in for t in threads if t.sp_in not in (None, "stack")):
        lines.append(f"({key}): the stack pointer is {SP_IN.get(key or '', key)}")
    for key in dict.fromkeys(t.left_bound for t in threads if t.left is not None):
        lines.append(f"to {_BOUND_WORDS.get(key or '', key)}: {LEFT_BOUNDS.get(key or '', key)}")
    lines.append("used: from the stack pointer to the top of its stack; stacks grow down")
    return Text("\n".join(lines), style="dim")
