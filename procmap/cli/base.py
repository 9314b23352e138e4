"""What every command shares: the group, how errors become messages, the output helpers.

The one place a ProcmapError becomes a line on stderr and an exit code.
"""

from __future__ import annotations

import errno
import io
import os
import sys

import click

from ..errors import AmbiguousProcess, BadAddress, OutputFailed, ProcmapError


class ProcmapGroup(click.Group):
    """A group whose default command is `show`, and which reports ProcmapErrors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["show", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            if sys.stdout is not None:
                sys.stdout.flush()  # a write that fails fails here, not at exit
            return result
        except ProcmapError as err:
            if isinstance(err, OutputFailed):
                # What is still buffered cannot be written either: drop it, so
                # that Python's flush at exit does not fail a second time.
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives to the exit)
            if ctx.meta.get("procmap.debug") or os.environ.get("PROCMAP_DEBUG"):
                raise
            from ..render.text import printable

            click.echo(f"procmap: {printable(str(err))}", err=True)
            if isinstance(err, AmbiguousProcess):
                for line in err.candidates:
                    click.echo("  " + printable(line), err=True)
            ctx.exit(err.exit_code)


class _Stdout(io.RawIOBase):
    """File descriptor 1, whose write errors are procmap's to report.

    A full disk or an I/O error becomes OutputFailed, one line on stderr; a
    closed standard output (`procmap 1 >&-`) fails on the first write (a command
    that writes only files succeeds); a broken pipe stays a BrokenPipeError,
    which click ends quietly, as `procmap 1 | head` should.
    """

    def __init__(self, closed: bool):
        super().__init__()
        self._closed_at_start = closed

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return not self._closed_at_start and os.isatty(1)

    def write(self, data) -> int:  # type: ignore[override]
        if self._closed_at_start:
            raise OutputFailed("cannot write the output: standard output is closed")
        try:
            return os.write(1, data)
        except BrokenPipeError:
            raise
        except OSError as err:
            reason = (err.strerror or str(err)).lower()
            raise OutputFailed(f"cannot write the output: {reason}") from None


def guard_standard_streams() -> None:
    """Make standard output report its failures, and keep fds 0-2 from being reused.

    A descriptor among 0, 1 and 2 that the caller closed is opened on /dev/null,
    so that no file procmap opens later takes its number (a write meant for
    standard output would land in it); output to a closed standard output is
    then an error, not silence.
    """
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError as err:
            if err.errno != errno.EBADF:
                continue
            closed.add(fd)
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if 2 in closed:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    old = sys.stdout
    terminal = 1 not in closed and os.isatty(1)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_Stdout(closed=1 in closed)),
        encoding=getattr(old, "encoding", None) or "utf-8",
        errors=getattr(old, "errors", None) or "strict",
        line_buffering=terminal,
    )


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
    from ..names import to_json

    # Indented for a person at a terminal; compact (3x faster to write) for a pipe.
    # Names are escaped (names.py): the document is valid UTF-8 whatever they hold.
    sys.stdout.write(to_json(data, indent=2 if sys.stdout.isatty() else None) + "\n")


def make_console():
    from rich.console import Console

    # Not a terminal (a pipe, a file): wide lines rather than wrapped ones, for grep.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    return Console(highlight=False, markup=False, emoji=False, width=width)
