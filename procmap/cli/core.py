"""`procmap core CORE`: why the program that left this core died."""

from __future__ import annotations

import click

from .base import cli, debug_option
from .run import write_report


@cli.command()
@click.argument("core_file", metavar="CORE", type=click.Path(dir_okay=True, path_type=str))
@click.option("--exe", metavar="PROG", help="The program's file, if it is not where it was run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-picture", is_flag=True, help="Leave out the picture of the address space.")
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE.")
@debug_option
def core(core_file: str, exe: str | None, as_json: bool, no_picture: bool, output: str | None):
    """Why the program that left CORE died: the same verdict as `procmap run`.

    From the core's notes (the threads' registers, siginfo, the mapped files,
    the auxiliary vector) and its memory, with the ELF files read from disk
    (a warning says when one no longer matches the build that ran).  The
    instruction at the program counter comes from the core, or from the
    program's file when the core left it out.  `procmap --from CORE` shows
    the map alone.  docs/cores.md says how to get a core.

    \b
    Examples:
      procmap core core.1234
      procmap core --json core --exe ./build/a.out
      coredumpctl dump -o core.last && procmap core core.last
    """
    from ..classify.fault import analyze
    from ..elf.core import read_core
    from ..kernel.signals import signal_name
    from ..views.core import core_fault_input, core_snapshot

    dump = read_core(core_file)
    snapshot = core_snapshot(dump, core_file, exe)
    inp = core_fault_input(dump, snapshot, exe)
    fault = analyze(inp)
    info = inp.pmap.info
    summary = (
        f"{info.name} (PID {info.pid}) died of {signal_name(inp.siginfo.signo)}; "
        f"its core is {core_file}"
    )

    def to_dict():
        return {
            "core": core_file,
            "pid": info.pid,
            "signal": signal_name(inp.siginfo.signo),
            "summary": summary,
            "fault": fault.to_dict(),
            "map": inp.pmap.to_dict(),
            "warnings": inp.pmap.warnings,
        }

    write_report(
        to_dict if as_json else None,
        (summary, inp.pmap.warnings, fault, inp.pmap),
        no_picture,
        output,
    )
