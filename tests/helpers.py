"""What many tests share: running the command line in-process, drawing a rich
renderable as text, and reading procmap's JSON as the Python API would hold it."""

from __future__ import annotations

import io
import json
import re
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from procmap.cli import cli

# JSON keys whose values are addresses or file offsets: "0x..." strings in every
# command's JSON (numbers past 2**53 lose precision in jq 1.6 and JavaScript).
ADDRESS_KEYS = frozenset(
    (
        "start",
        "end",
        "address",
        "bias",
        "offset",
        "vaddr",
        "entry",
        "value",
        "addr",
        "reported_address",
        "plan_start",
        "plan_end",
        "user_end",
        "kernel_start",
    )
)
_HEX = re.compile(r"0x[0-9a-f]+")


def procmap_json(text: str | bytes) -> Any:
    """procmap's JSON output, with each address checked to be a hex string and made an int."""
    return json.loads(text, object_hook=_addresses)


def _addresses(d: dict) -> dict:
    for key in ADDRESS_KEYS & d.keys():
        value = d[key]
        if value is None:
            continue
        assert type(value) is str and _HEX.fullmatch(value), f"{key}: {value!r} is not hex text"
        d[key] = int(value, 16)
    return d


# --- the command line, in-process ---------------------------------------------------


@dataclass
class CliResult:
    """What a run of `procmap` left, named as subprocess.CompletedProcess names it."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    exception: BaseException | None = None  # a crash, with crash_ok=True


def run_cli(
    *args: str,
    env: dict[str, str | None] | None = None,
    input: str | bytes | None = None,
    columns: int | None = None,
    crash_ok: bool = False,
    timeout: float = 60,
) -> CliResult:
    """`procmap ARGS` run in this process, as `python -m procmap ARGS` would run in a pipe.

    Its output is not a terminal, stdin is `input` (else empty), and the
    environment is this one with NO_COLOR=1, without PROCMAP_DEBUG, with COLUMNS
    set to `columns` (else unset: procmap's own width for a pipe), then `env`
    (a value of None unsets).  procmap turns its own errors into a message and
    an exit code; any other exception is a bug, raised here with its traceback,
    or with crash_ok kept in .exception and written to stderr as Python would
    (exit code 1).  A run longer than `timeout` seconds is a TimeoutError
    (unless the caller's own interval timer is running).
    """
    assert threading.current_thread() is threading.main_thread(), "run_cli swaps sys.stdout"
    environ = {"NO_COLOR": "1", "PROCMAP_DEBUG": None, "COLUMNS": None}
    if columns is not None:
        environ["COLUMNS"] = str(columns)
    environ.update(env or {})
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2: stderr is always apart
    # A watch takes SIGTERM as Ctrl-C, explain --run takes SIGINT: this process's own after.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def hung(signum, frame):
        raise TimeoutError(f"procmap {' '.join(args)}: still running after {timeout} s")

    guarded = signal.getitimer(signal.ITIMER_REAL)[0] > 0  # the caller's own timer rules
    if not guarded:
        alarm = signal.signal(signal.SIGALRM, hung)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = runner.invoke(
            cli,
            list(args),
            input=input,
            env=environ,
            prog_name="procmap",
            terminal_width=_help_width(environ.get("COLUMNS")),
        )
    finally:
        if not guarded:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, alarm)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    error = result.exception
    crashed = error is not None and not isinstance(error, SystemExit)
    if crashed and not crash_ok:
        raise error
    stderr = result.stderr
    if crashed:
        stderr += "".join(traceback.format_exception(error))
    return CliResult(args, result.exit_code, result.stdout, stderr, error if crashed else None)


def _help_width(columns: str | None) -> int:
    """The width click gives --help in a pipe (CliRunner would force 80): COLUMNS, else 80."""
    width = int(columns) if columns and columns.isdigit() else 80
    return max(min(width, cli.context_settings.get("max_content_width", 80)) - 2, 50)


# --- drawing --------------------------------------------------------------------------


class _AsciiFile(io.StringIO):
    encoding = "ascii"  # what rich reads to choose its characters


def render(
    renderable,
    width: int = 200,
    height: int | None = None,
    *,
    ascii_only: bool = False,
    color_system: str | None = None,
    crop: bool = True,
) -> str:
    """What a rich renderable draws, as text: a console `width` wide (and `height`
    high), set as procmap's own is (no highlighting, markup or emoji), with no
    colour; with a color_system, as a terminal of that many colours."""
    file = _AsciiFile() if ascii_only else io.StringIO()
    console = Console(
        file=file,
        width=width,
        height=height,
        color_system=color_system,
        force_terminal=color_system is not None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(renderable, crop=crop)
    return file.getvalue()
