"""`procmap where TARGET ADDRESS...`: what lives at each address."""

from __future__ import annotations

import click

from .base import cli, debug_option, make_console, parse_address, print_json


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
@debug_option
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
    from ..live.capture import resolve_target
    from ..live.capture import where as locate_all

    if from_file is not None:
        from ..views import snapshot as snapshots
        from ..views.snapshot import where_saved

        parsed = [parse_address(a) for a in (target, *addresses)]
        locations = where_saved(snapshots.read(from_file), parsed)
    else:
        if not addresses:
            raise click.UsageError("give at least one ADDRESS after TARGET")
        parsed = [parse_address(a) for a in addresses]
        locations = locate_all(resolve_target(target), parsed)
    if as_json:
        print_json([loc.to_dict() for loc in locations])
        return
    from ..render.table import render_where

    make_console().print(render_where(locations))
