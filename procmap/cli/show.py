"""`procmap show TARGET` (and `procmap TARGET`): the classified map of a process."""

from __future__ import annotations

import sys

import click

from .base import (
    cli,
    debug_option,
    make_console,
    parse_kinds,
    print_json,
    room,
    show_picture,
    shown,
)
from .watch import watch_process


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
    "--shared",
    is_flag=True,
    help="Say who else maps each region: the processes that map the same file or shared "
    "memory (and which of them can write it), those that still share its pages "
    "copy-on-write after a fork, and its resident bytes shared or its own.  Implies --rss.",
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
    help="Also write a snapshot (JSON) that `--from FILE` shows anywhere, as now "
    "(readable by its owner only); `--save -` writes it to standard output instead of the map.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --save: replace FILE even when it is not a procmap snapshot.",
)
@click.option(
    "--from",
    "from_file",
    metavar="FILE",
    help="Show a map saved with --save, or a saved /proc/PID/maps or smaps text "
    "(- reads standard input).",
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
@click.option(
    "--threads",
    is_flag=True,
    help="One row per thread instead of the map: its name, state, stack pointer, stack, "
    "and how much of the stack is used and left (with --json: the map's `threads`).",
)
@debug_option
def show(
    target: str | None,
    as_json: bool,
    rss: bool,
    shared: bool,
    sort: str,
    save_to: str | None,
    force: bool,
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
    threads: bool = False,
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

    With --threads, one row per thread instead of the map: its name and
    state, its stack pointer, its stack, how much of the stack is used and
    how much is left before the guard page (the main thread's: before
    RLIMIT_STACK or the kernel's guard gap, whichever is nearer).

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
      procmap 1234 --save - | ssh elsewhere procmap --from -
      procmap 1234 --watch
      procmap 1234 --watch --interval 0.05 --count 200
      procmap 1234 --watch --json > events.jsonl
      procmap 1234 --threads
    """
    from ..live.capture import read_map, resolve_target

    wanted = parse_kinds(kinds)
    rss = rss or shared or sort not in ("address", "size")
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
    if force and save_to is None:
        raise click.UsageError("--force goes with --save")
    if save_to == "-" and (as_json or diagram or sections or svg_to or html_to or watch):
        raise click.UsageError(
            "--save - writes the snapshot to standard output: not with --json, --diagram, "
            "--sections, --svg, --html or --watch"
        )
    if threads:
        _check_threads(as_json, diagram, no_diagram, sections, svg_to, html_to, watch, save_to)
        if not as_json and (wanted or sort != "address" or rss):
            raise click.UsageError(
                "--kind, --sort, --rss and --shared go with --threads only with --json"
            )
    if watch:
        if sections or from_file or save_to or svg_to or html_to:
            raise click.UsageError(
                "--sections, --save, --from, --svg and --html do not go with --watch"
            )
        watch_process(resolve_target(target), interval, count, as_json, wanted, rss, shared)
        return
    if from_file is not None or save_to is not None:
        from ..live.capture import capture
        from ..views import snapshot as snapshots
        from ..views.snapshot import replay

        if from_file == "-":
            saved = snapshots.read_stream(sys.stdin.buffer)
        elif from_file is not None:
            saved = snapshots.read(from_file)
        else:
            saved = capture(resolve_target(target), shared=shared)
        if from_file is not None:
            # The map is shown exactly as it was live; where it came from goes aside.
            click.echo(f"procmap: {shown(snapshots.describe(saved))}", err=True)
        if save_to == "-":
            sys.stdout.buffer.write(snapshots.dumps(saved))
            return
        if save_to is not None:
            written = snapshots.write(saved, save_to, force=force)
            where = save_to if written == save_to else f"{save_to} (a link to {written})"
            click.echo(f"procmap: saved to {shown(where)}", err=True)
        pmap = replay(saved, rss=rss, threads=threads, shared=shared)
    else:
        pmap = read_map(resolve_target(target), rss=rss, threads=threads, shared=shared)
    if threads and not as_json:
        from ..render.threads import render_threads

        make_console().print(render_threads(pmap), crop=False)
        return

    def head():
        from ..render.table import render_header, render_warnings

        return [render_header(pmap), *render_warnings(pmap.warnings)]

    def picture():
        from ..views.picture import map_picture

        return map_picture(pmap)

    if show_picture(picture, head, diagram, as_json, svg_to, html_to):
        return
    if as_json:
        data = pmap.to_dict()
        order = range(len(pmap.regions))
        if sort != "address":
            from ..render.table import sort_key

            order = sorted(order, key=sort_key(pmap, sort), reverse=True)
        regions = data["regions"]
        data["regions"] = [regions[i] for i in order if not wanted or regions[i]["kind"] in wanted]
        print_json(data)
        return
    from ..render.table import render_map

    console = make_console()
    console.print(
        render_map(
            pmap,
            kinds=wanted,
            sections=sections,
            notes=not no_notes,
            sort=sort,
            diagram=not (no_diagram or wanted),
            diagram_height=room(console, head()),
        ),
        crop=console.is_terminal,  # piped, a long path is printed whole
    )


def _check_threads(as_json, diagram, no_diagram, sections, svg_to, html_to, watch, save_to) -> None:
    """--threads shows the threads instead of the map: not with the map's other views."""
    if diagram or no_diagram or sections or svg_to or html_to or watch:
        raise click.UsageError(
            "--threads shows the threads, not the map: not with --diagram, --no-diagram, "
            "--sections, --svg, --html or --watch"
        )
    if save_to == "-":
        raise click.UsageError(
            "--save - writes the snapshot to standard output: not with --threads"
        )
