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
    write_report(
        report.to_dict if as_json else None,
        (report.summary(), report.warnings, report.fault, report.map),
        no_picture,
        output,
    )


def write_report(to_dict, parts, no_picture: bool, output: str | None) -> None:
    """A crash report, to standard output or to `output`: JSON if `to_dict`, else text.

    `parts`: (the one-line summary, warnings, the Fault or None, the map or None).
    """
    if to_dict is not None:
        from ..names import to_json

        if output is None:
            print_json(to_dict())
            return
        text = to_json(to_dict(), indent=2) + "\n"
    elif output is None:
        console = make_console()
        height = console.height if console.is_terminal else None
        console.print(_renderable(parts, no_picture, height))
        return
    else:
        import io

        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=100, color_system=None, highlight=False)
        console.print(_renderable(parts, no_picture, None))
        text = buffer.getvalue()
    from ..files import write_atomic

    write_atomic(output, text.encode("utf-8"))


def _renderable(parts, no_picture: bool, height: int | None):
    from rich.console import Group
    from rich.text import Text

    from ..render.crash import render_fault
    from ..render.text import printable

    summary, warnings, fault, pmap = parts
    shown = [Text("procmap: " + printable(summary), style="bold")]
    shown.extend(Text("procmap: " + printable(w), style="yellow") for w in warnings)
    if fault is not None:
        shown.append(Text())
        shown.append(render_fault(fault, None if no_picture else pmap, height))
    return Group(*shown)
