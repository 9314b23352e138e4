"""procmap's commands, one module each; base.py turns errors into messages and exit codes.

`procmap TARGET` is short for `procmap show TARGET`.  The readers, the
classifier and rich are imported inside the commands, so `--help` and
`--json` pay only for what they use.
"""

from __future__ import annotations

from . import core, explain, run, show, system, where  # noqa: F401  (each registers its command)
from .base import cli, guard_standard_streams


def main() -> None:
    guard_standard_streams()
    cli(prog_name="procmap")


__all__ = ["cli", "main"]
