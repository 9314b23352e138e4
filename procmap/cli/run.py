"""`procmap run PROG [ARGS...]`: run a program, and if it crashes, say why."""

from __future__ import annotations

import sys

import click

from .base import cli, debug_option, make_console, print_json


@cli.command(context_settings={"allow_interspersed_args": False})
@click.argument("prog")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-picture", is_flag=True, help="Leave out the picture of the address space.")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Write the report to FILE instead of standard output (the program keeps its own).",
)
@debug_option
def run(prog: str, args: tuple[str, ...], as_json: bool, no_picture: bool, output: str | None):
    """Run PROG with ARGS; if a signal kills it, explain why, in the lesson's terms.

    The program runs with its standard input, output and error untouched,
    traced with ptrace but stopped only when a signal is about to be delivered.
    If that signal will kill it (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
    SIGTRAP...), procmap reads the faulting thread's registers, the instruction
    at its program counter and the classified map before the signal proceeds,
    and reports the address, the access, where the address is, where the
    program was, and a verdict (null pointer, stack overflow, write to
    read-only memory...).  procmap then exits with the status a shell would
    show for the program: its exit code, or 128 + the signal.  Options for
    procmap go before PROG; everything after PROG is the program's.

    \b
    Examples:
      procmap run ./a.out
      procmap run --json ./server --port 8080
      procmap run -o crash.txt ./a.out < input.txt
    """
    from ..views.crash import run_program

    report = run_program(prog, list(args))
    _write_report(report, as_json, no_picture, output)
    sys.stdout.flush()
    raise SystemExit(report.exit_code)


def _write_report(report, as_json: bool, no_picture: bool, output: str | None) -> None:
    if report.fault is None and not as_json and not report.warnings:
        # No crash: one line, without rich (a program that ran well pays little for procmap).
        from ..render.text import printable

        line = f"procmap: {printable(report.summary())}\n"
        if output is not None:
            from ..files import write_atomic

            write_atomic(output, line.encode("utf-8"))
        else:
            sys.stdout.write(line)
        return
    if output is not None:
        from ..files import write_atomic

        if as_json:
            from ..names import to_json

            text = to_json(report.to_dict(), indent=2) + "\n"
        else:
            text = _text(report, no_picture, width=100)
        write_atomic(output, text.encode("utf-8"))
        return
    if as_json:
        print_json(report.to_dict())
        return
    console = make_console()
    console.print(_renderable(report, no_picture, console.height if console.is_terminal else None))


def _renderable(report, no_picture: bool, height: int | None):
    from rich.console import Group
    from rich.text import Text

    from ..render.crash import render_fault
    from ..render.text import printable

    parts = [Text("procmap: " + printable(report.summary()), style="bold")]
    parts.extend(Text("procmap: " + printable(w), style="yellow") for w in report.warnings)
    if report.fault is not None:
        parts.append(Text())
        parts.append(render_fault(report.fault, None if no_picture else report.map, height))
    return Group(*parts)


def _text(report, no_picture: bool, width: int) -> str:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    console.print(_renderable(report, no_picture, None))
    return buffer.getvalue()
