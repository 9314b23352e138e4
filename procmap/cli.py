"""procmap's commands; the one place errors become messages and exit codes.

`procmap TARGET` is short for `procmap show TARGET`.  The readers, the
classifier and rich are imported inside the commands, so `--help` and
`--json` pay only for what they use.
"""

from __future__ import annotations

import os
import sys

import click

from .errors import AmbiguousProcess, BadAddress, ProcmapError


class ProcmapGroup(click.Group):
    """A group whose default command is `show`, and which reports ProcmapErrors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["show", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ProcmapError as err:
            if ctx.meta.get("procmap.debug") or os.environ.get("PROCMAP_DEBUG"):
                raise
            from .render.text import printable

            click.echo(f"procmap: {printable(str(err))}", err=True)
            if isinstance(err, AmbiguousProcess):
                for line in err.candidates:
                    click.echo("  " + printable(line), err=True)
            ctx.exit(err.exit_code)


def _debug_option(f):
    def remember(ctx: click.Context, _param, value: bool) -> bool:
        if value:
            ctx.meta["procmap.debug"] = True
        return value

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember,
        help="Show a traceback instead of a one-line error.",
    )(f)


@click.group(
    cls=ProcmapGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="procmap", prog_name="procmap")
def cli():
    """Where everything in a Linux process's memory lives, and why.

    procmap reads /proc/PID/maps and the ELF headers of every mapped binary,
    splits the address space into regions of one kind each (text, rodata,
    data, bss, heap, stack, mmap, kernel) and explains each kind.

    \b
    procmap self                    the map of procmap's own process
    procmap 1234                    the map of process 1234 (same as `procmap show 1234`)
    procmap where 1234 0x55d4c0de1048
    """


@cli.command()
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the map as JSON.")
@click.option(
    "--rss",
    is_flag=True,
    help="Add what is in RAM (from /proc/PID/smaps): RSS, PSS, shared and private "
    "clean/dirty, swap and anonymous, per region, kind and object.",
)
@click.option(
    "--sort",
    type=click.Choice(["address", "size", "rss", "pss", "private", "dirty", "swap", "anonymous"]),
    default="address",
    show_default=True,
    help="Order the regions, largest first; the memory figures imply --rss.",
)
@click.option(
    "--save",
    "save_to",
    metavar="FILE",
    help="Also write a snapshot (JSON) that `--from FILE` shows anywhere, as now.",
)
@click.option(
    "--from",
    "from_file",
    metavar="FILE",
    help="Show a map saved with --save, or a saved /proc/PID/maps or smaps text.",
)
@click.option("--sections", is_flag=True, help="List the ELF sections inside each region.")
@click.option(
    "--diagram",
    is_flag=True,
    help="Draw the lesson's picture of the address space alone (with --json: its bands).",
)
@click.option("--no-diagram", is_flag=True, help="Leave the picture out of the full view.")
@click.option("--svg", "svg_to", metavar="FILE", help="Write the picture as a standalone SVG file.")
@click.option(
    "--html", "html_to", metavar="FILE", help="Write the picture as a standalone HTML page."
)
@click.option(
    "--kind",
    "kinds",
    metavar="KIND[,KIND...]",
    help="Show only regions of these kinds: text, rodata, data, bss, heap, stack, mmap, kernel.",
)
@click.option("--no-notes", is_flag=True, help="Leave out the explanation of each kind.")
@click.option("--watch", is_flag=True, help="Watch the map change, live, until Ctrl-C or exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="With --watch: time between samples; 0 samples flat out.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --watch: stop after N samples (the first one included).",
)
@_debug_option
def show(
    target: str | None,
    as_json: bool,
    rss: bool,
    sort: str,
    save_to: str | None,
    from_file: str | None,
    sections: bool,
    diagram: bool,
    no_diagram: bool,
    svg_to: str | None,
    html_to: str | None,
    kinds: str | None,
    no_notes: bool,
    watch: bool,
    interval: float,
    count: int | None,
):
    """The classified map of a process: TARGET is a PID, a process name, or "self".

    The lesson's picture of the address space, drawn from the process: high
    addresses at the top, from the kernel's half down to the NULL page, each
    band with its start address, size and kind, on a compressed scale (gaps
    are breaks, labelled with their size).  Then one row per region in
    address order, totals by kind and by ELF object, and what each kind of
    region is.  --diagram shows the picture alone; --svg and --html write it
    to a file.  Colours are off when the output is not a terminal, or when
    NO_COLOR is set.

    With --rss, what is really in RAM: each region's resident, proportional,
    clean, dirty, swapped and anonymous bytes, and the same by kind and by
    object.  --save writes everything needed to show this map again (the
    maps and smaps text, the process's facts, the ELF headers and symbols
    used); --from shows it, on any machine, as it was.

    With --watch, the map is sampled again and again and every change is an
    event: a region grew or shrank (and which end moved), appeared or went
    away, changed protection, split or merged; threads came and went.  On a
    terminal it is a live view; otherwise one line per event; with --json,
    JSON Lines (a snapshot, then a change record per sample that changed
    something, then an end record).  It ends on Ctrl-C, after --count
    samples, or when the process exits (exit status 0 for all three).

    \b
    Examples:
      procmap self
      procmap 1234 --diagram
      procmap 1234 --svg map.svg --html map.html
      procmap 1234 --kind heap,stack
      procmap firefox --sections
      procmap 1234 --json | jq '.regions[] | select(.kind == "bss")'
      procmap 1234 --rss --sort rss
      procmap 1234 --save web-1234.json
      procmap --from web-1234.json --rss
      procmap 1234 --watch
      procmap 1234 --watch --interval 0.05 --count 200
      procmap 1234 --watch --json > events.jsonl
    """
    from .process import read_map, resolve_target

    wanted = _parse_kinds(kinds)
    rss = rss or sort not in ("address", "size")
    if (target is None) == (from_file is None):
        raise click.UsageError("give a TARGET (a PID, a name, or self) or --from FILE")
    if not watch and (count is not None or interval != 0.5):
        raise click.UsageError("--interval and --count go with --watch")
    if rss and sections:
        raise click.UsageError("--sections does not go with --rss")
    if diagram and (wanted or sections or sort != "address" or no_diagram):
        raise click.UsageError(
            "--diagram draws the whole space: not with --kind, --sections, --sort or --no-diagram"
        )
    if watch:
        if sections or from_file or save_to or svg_to or html_to:
            raise click.UsageError(
                "--sections, --save, --from, --svg and --html do not go with --watch"
            )
        _watch(resolve_target(target), interval, count, as_json, wanted, rss)
        return
    if from_file is not None or save_to is not None:
        from . import snapshot as snapshots
        from .process import capture, replay

        if from_file is not None:
            saved = snapshots.read(from_file)
            # The map is shown exactly as it was live; where it came from goes aside.
            click.echo(f"procmap: {_printable(snapshots.describe(saved))}", err=True)
        else:
            saved = capture(resolve_target(target))
        if save_to is not None:
            snapshots.write(saved, save_to)
            click.echo(f"procmap: saved to {_printable(save_to)}", err=True)
        pmap = replay(saved, rss=rss)
    else:
        pmap = read_map(resolve_target(target), rss=rss)

    def head():
        from .render.table import render_header, render_warnings

        return [render_header(pmap), *render_warnings(pmap.warnings)]

    if _show_picture(pmap.picture, head, diagram, as_json, svg_to, html_to):
        return
    if as_json:
        data = pmap.to_dict()
        order = range(len(pmap.regions))
        if sort != "address":
            from .render.table import sort_key

            order = sorted(order, key=sort_key(pmap, sort), reverse=True)
        regions = data["regions"]
        data["regions"] = [regions[i] for i in order if not wanted or regions[i]["kind"] in wanted]
        _print_json(data)
        return
    from .render.table import render_map

    console = _console()
    console.print(
        render_map(
            pmap,
            kinds=wanted,
            sections=sections,
            notes=not no_notes,
            sort=sort,
            diagram=not (no_diagram or wanted),
            diagram_height=_room(console, head()),
        ),
        crop=console.is_terminal,  # piped, a long path is printed whole
    )


def _room(console, above) -> int | None:
    """The rows a picture may take below `above` to fit a terminal; None: not a terminal."""
    if not console.is_terminal:
        return None
    used = sum(len(console.render_lines(part, pad=False)) for part in above)
    return max(console.height - used - 1, 12)


def _show_picture(make_picture, head, diagram: bool, as_json: bool, svg_to, html_to) -> bool:
    """Write and print the picture as asked; True when that is all there is to do.

    --svg and --html alone write the files and nothing else; --diagram prints
    the picture (its bands, with --json) below `head()`, the command's header.
    """
    if not (diagram or svg_to or html_to):
        return False
    picture = make_picture()
    if svg_to or html_to:
        from .files import write_atomic
        from .render.svg import render_html, render_svg

        for path, render in ((svg_to, render_svg), (html_to, render_html)):
            if path is not None:
                write_atomic(path, render(picture).encode("utf-8"))
                click.echo(f"procmap: picture written to {_printable(path)}", err=True)
    if diagram and as_json:
        _print_json(picture.to_dict())
    elif diagram:
        from rich.console import Group

        from .render.diagram import Diagram

        console = _console()
        above = head()
        console.print(Group(*above, Diagram(picture, height=_room(console, above))))
    return diagram or not as_json


def _printable(text: str) -> str:
    from .render.text import printable

    return printable(text)


@cli.command()
@click.argument("target")
@click.argument("addresses", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per address.")
@click.option(
    "--from",
    "from_file",
    metavar="FILE",
    help="Look in a map saved with --save (then give only addresses).",
)
@_debug_option
def where(target: str, addresses: tuple[str, ...], as_json: bool, from_file: str | None):
    """What lives at each ADDRESS in process TARGET (a PID, a name, or "self").

    For each address: its region and kind, and inside an ELF image its section
    and nearest symbol.  Addresses are hexadecimal, with or without 0x, as
    /proc/PID/maps and gdb print them.  With --from FILE, the addresses are
    looked up in a saved map, with the symbols saved with it.

    \b
    Examples:
      procmap where 1234 0x55d4c0de1048 7ffd1c2a0e3c
      procmap where self 0x7ffff7dd0000 --json
      procmap where --from web-1234.json 0x55d4c0de1048
    """
    from .process import resolve_target
    from .process import where as locate_all

    if from_file is not None:
        from . import snapshot as snapshots
        from .process import where_saved

        parsed = [parse_address(a) for a in (target, *addresses)]
        locations = where_saved(snapshots.read(from_file), parsed)
    else:
        if not addresses:
            raise click.UsageError("give at least one ADDRESS after TARGET")
        parsed = [parse_address(a) for a in addresses]
        locations = locate_all(resolve_target(target), parsed)
    if as_json:
        _print_json([loc.to_dict() for loc in locations])
        return
    from .render.table import render_where

    _console().print(render_where(locations))


@cli.command(context_settings={"allow_interspersed_args": True})
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option("--symbols", is_flag=True, help="List every object and function, by region.")
@click.option("--no-notes", is_flag=True, help="Leave out the explanation of each kind.")
@click.option(
    "--diagram",
    is_flag=True,
    help="Draw the load plan as the lesson's picture (with --run: the stopped process's).",
)
@click.option("--svg", "svg_to", metavar="FILE", help="Write the picture as a standalone SVG file.")
@click.option(
    "--html", "html_to", metavar="FILE", help="Write the picture as a standalone HTML page."
)
@click.option(
    "--run",
    is_flag=True,
    help="Run FILE (with ARGS after --), stop it, and show its real map beside the plan.",
)
@click.option(
    "--stop-at",
    type=click.Choice(["exit", "entry"]),
    default="exit",
    show_default=True,
    help="With --run: just before the program exits, or right after exec.",
)
@_debug_option
def explain(
    file: str,
    args: tuple[str, ...],
    as_json: bool,
    symbols: bool,
    no_notes: bool,
    diagram: bool,
    svg_to: str | None,
    html_to: str | None,
    run: bool,
    stop_at: str,
):
    """What an ELF FILE becomes in memory: its load plan, in the lesson's terms.

    The file's identity and hardening, each PT_LOAD segment with the mappings
    it becomes and the kind of each part (text, rodata, data, bss), the
    sections by region, and the file's own variables with the reason each
    lands where it does.  With --run, the program is started (stdin and stdout
    passed through), stopped by ptrace, and its real map shown, tied back to
    the plan; it is always let go or killed afterwards.  --diagram draws the
    plan as the lesson's picture: the file's bands at their planned addresses
    (offsets from the load base, for a PIE), the heap, the mapping area and
    the stack where they will go at run time; --svg and --html write it.

    \b
    Examples:
      procmap explain ./a.out
      procmap explain ./a.out --symbols
      procmap explain ./a.out --diagram
      procmap explain ./a.out --svg plan.svg
      procmap explain /usr/lib/x86_64-linux-gnu/libc.so.6 --json
      procmap explain ./a.out --run -- arg1 arg2
      procmap explain ./a.out --run --stop-at entry --diagram
    """
    from .explain import explain_elf

    if args and not run:
        raise click.UsageError("arguments for the program need --run")
    if diagram and symbols:
        raise click.UsageError("--diagram does not go with --symbols")
    exp = explain_elf(file)
    result = None
    if run:
        from .run import run_and_stop

        result = run_and_stop(file, list(args), exp, stop_at=stop_at)

    def plan_or_run():
        if result is not None:
            return result.map.picture()
        from .picture import plan_picture

        return plan_picture(exp)

    def head():
        from .render.explain import render_facts

        return [render_facts(exp)]

    if _show_picture(plan_or_run, head, diagram, as_json, svg_to, html_to):
        return
    if result is not None:
        if as_json:
            _print_json({**exp.to_dict(), "run": result.to_dict()})
            return
        from .render.explain import render_run

        _console().print(render_run(exp, result, notes=not no_notes))
        return
    if as_json:
        _print_json(exp.to_dict())
        return
    from .render.explain import render_explanation

    _console().print(render_explanation(exp, symbols=symbols, notes=not no_notes))


def _watch(
    pid: int, interval: float, count: int | None, as_json: bool, kinds, rss: bool = False
) -> None:
    import signal

    from .sampler import Sampler
    from .watch import History, ResidentWatch

    # A polite kill ends the watch as Ctrl-C does: with its summary (and end record).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with Sampler(pid) as sampler:
        resident = ResidentWatch(sampler, interval) if rss else None
        history = History(sampler, resident=resident)
        if as_json:
            _watch_json(sampler, history, interval, count, kinds)
        elif sys.stdout.isatty():
            _watch_live(sampler, history, interval, count, kinds)
        else:
            _watch_lines(sampler, history, interval, count)


def _watch_json(sampler, history, interval, count, kinds) -> None:
    import json

    from .watch import change_record, end_record, resident_record, run_watch, snapshot_record

    resident = history.resident

    def emit(record: dict) -> None:
        sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
        sys.stdout.flush()  # a reader (jq, a log) sees each record as it happens

    emit(snapshot_record(sampler, kinds, resident))

    def on_tick(tick, _sentences) -> None:
        record = change_record(tick, kinds, resident)
        if record is not None:
            emit(record)
        if resident is not None and resident.read_full:
            emit(resident_record(resident, kinds))

    end = run_watch(sampler, history, interval, count, on_tick)
    emit(end_record(end, history))


def _watch_lines(sampler, history, interval, count) -> None:
    from .render.text import human_size, printable
    from .watch import resident_words, run_watch, summary_lines

    resident = history.resident
    every = "flat out" if interval == 0 else f"every {interval:g} s"
    out = sys.stdout
    held = f"{human_size(sampler.total)} mapped"
    if resident is not None:
        held += f", {human_size(resident.rss)} resident"
    out.write(
        f"watching PID {sampler.pid} ({printable(sampler.info.name)}): "
        f"{len(sampler.mappings)} mappings, {held}; sampling {every}\n"
    )
    out.flush()
    last = resident_words(resident.full_totals) if resident and resident.full_totals else None

    def on_tick(tick, sentences) -> None:
        nonlocal last
        lines = [printable(sentence) for sentence in sentences]
        if resident is not None and resident.read_full:
            words = resident_words(resident.full_totals)
            if words != last:  # as shown: a change below the shown precision is no news
                lines.append(words)
                last = words
        for line in lines:
            out.write(f"{tick.t:9.3f}s  {line}\n")
        if lines:
            out.flush()

    end = run_watch(sampler, history, interval, count, on_tick)
    for line in summary_lines(history, end):
        out.write(printable(line) + "\n")


def _watch_live(sampler, history, interval, count, kinds) -> None:
    from rich.live import Live

    from .render.live import LiveView, render_watch_summary
    from .watch import run_watch

    console = _console()
    view = LiveView(sampler, history, interval, kinds)
    drawn = -1.0
    with Live(view, console=console, screen=True, auto_refresh=False) as live:

        def on_tick(tick, _sentences) -> None:
            nonlocal drawn
            if tick.t - drawn >= 0.1:  # at most 10 redraws a second, however fast it samples
                live.refresh()
                drawn = tick.t

        live.refresh()
        end = run_watch(sampler, history, interval, count, on_tick)
    console.print(render_watch_summary(history, end))


def parse_address(text: str) -> int:
    """A hexadecimal address, with or without 0x."""
    digits = text.strip().lower()
    if digits.startswith("0x"):
        digits = digits[2:]
    if not digits or len(digits) > 16 or any(c not in "0123456789abcdef" for c in digits):
        raise BadAddress(
            f"{text!r} is not an address (hexadecimal, up to 64 bits, e.g. 0x7ffd1c2a0e3c)"
        )
    return int(digits, 16)


def _parse_kinds(kinds: str | None) -> set[str] | None:
    if not kinds:
        return None
    from .classify import KINDS

    wanted = {k.strip() for k in kinds.split(",") if k.strip()}
    unknown = wanted - set(KINDS)
    if unknown:
        raise click.BadParameter(
            f"unknown kind {', '.join(sorted(unknown))}; kinds are {', '.join(KINDS)}",
            param_hint="--kind",
        )
    return wanted


def _print_json(data) -> None:
    import json

    # Indented for a person at a terminal; compact (3x faster to write) for a pipe.
    if sys.stdout.isatty():
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")


def _console():
    from rich.console import Console

    # Not a terminal (a pipe, a file): wide lines rather than wrapped ones, for grep.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    return Console(highlight=False, markup=False, emoji=False, width=width)


def main() -> None:
    cli(prog_name="procmap")
