"""What every command shares: the group, how errors become messages, the output helpers.

The one place a ProcmapError becomes a line on stderr and an exit code.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import AmbiguousProcess, BadAddress, ProcmapError


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
            from ..render.text import printable

            click.echo(f"procmap: {printable(str(err))}", err=True)
            if isinstance(err, AmbiguousProcess):
                for line in err.candidates:
                    click.echo("  " + printable(line), err=True)
            ctx.exit(err.exit_code)


def debug_option(f):
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


def room(console, above) -> int | None:
    """The rows a picture may take below `above` to fit a terminal; None: not a terminal."""
    if not console.is_terminal:
        return None
    used = sum(len(console.render_lines(part, pad=False)) for part in above)
    return max(console.height - used - 1, 12)


def show_picture(make_picture, head, diagram: bool, as_json: bool, svg_to, html_to) -> bool:
    """Write and print the picture as asked; True when that is all there is to do.

    --svg and --html alone write the files and nothing else; --diagram prints
    the picture (its bands, with --json) below `head()`, the command's header.
    """
    if not (diagram or svg_to or html_to):
        return False
    picture = make_picture()
    if svg_to or html_to:
        from ..files import write_atomic
        from ..render.svg import render_html, render_svg

        for path, render in ((svg_to, render_svg), (html_to, render_html)):
            if path is not None:
                write_atomic(path, render(picture).encode("utf-8"))
                click.echo(f"procmap: picture written to {shown(path)}", err=True)
    if diagram and as_json:
        print_json(picture.to_dict())
    elif diagram:
        from rich.console import Group

        from ..render.diagram import Diagram

        console = make_console()
        above = head()
        console.print(Group(*above, Diagram(picture, height=room(console, above))))
    return diagram or not as_json


def shown(text: str) -> str:
    from ..render.text import printable

    return printable(text)


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


def parse_kinds(kinds: str | None) -> set[str] | None:
    if not kinds:
        return None
    from ..model import KINDS

    wanted = {k.strip() for k in kinds.split(",") if k.strip()}
    unknown = wanted - set(KINDS)
    if unknown:
        raise click.BadParameter(
            f"unknown kind {', '.join(sorted(unknown))}; kinds are {', '.join(KINDS)}",
            param_hint="--kind",
        )
    return wanted


def print_json(data) -> None:
    import json

    # Indented for a person at a terminal; compact (3x faster to write) for a pipe.
    if sys.stdout.isatty():
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")


def make_console():
    from rich.console import Console

    # Not a terminal (a pipe, a file): wide lines rather than wrapped ones, for grep.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    return Console(highlight=False, markup=False, emoji=False, width=width)
