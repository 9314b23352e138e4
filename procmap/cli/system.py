"""`procmap system`: every process's memory by kind, the shared objects, and metrics."""

from __future__ import annotations

import sys

import click

from .base import cli, debug_option, make_console, print_json

SORT_KEYS = ("pss", "rss", "uss", "swap", "pid", "name")


@cli.command()
@click.option(
    "--sort",
    type=click.Choice(SORT_KEYS),
    default="pss",
    show_default=True,
    help="Order the processes: the figures largest first, pid and name ascending.",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="USER",
    help="Only the processes of USER (a name or a UID); give it again for more users.",
)
@click.option("--name", metavar="TEXT", help="Only the processes whose name holds TEXT (any case).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Show the first N processes (the totals still count every process read).",
)
@click.option(
    "--objects",
    type=click.IntRange(min=0),
    metavar="N",
    help="Shared objects shown, most saved first: 10 in the table and the metrics, "
    "all in the JSON, unless given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option(
    "--openmetrics",
    is_flag=True,
    help="Print OpenMetrics text (for node_exporter's textfile collector); needs procmap[metrics].",
)
@click.option(
    "--serve",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve the metrics over HTTP for Prometheus, reading the machine again at "
    "each scrape, until Ctrl-C or SIGTERM (0: a free port, which is printed).",
)
@click.option(
    "--bind",
    metavar="ADDR",
    help="With --serve: the address to listen on (default 127.0.0.1; 0.0.0.0 or :: for "
    "every interface).",
)
@click.option(
    "--per-pid",
    is_flag=True,
    help="With --openmetrics or --serve: series for each process too (label pid), not "
    "only by name.",
)
@debug_option
def system(
    sort: str,
    users: tuple[str, ...],
    name: str | None,
    limit: int | None,
    objects: int | None,
    as_json: bool,
    openmetrics: bool,
    serve: int | None,
    bind: str | None,
    per_pid: bool,
):
    """Every process you may read: RSS, PSS, USS and swap, split by kind, and the
    files several processes map, with the memory that sharing them saves.

    A process's figures are the kernel's own (/proc/PID/smaps_rollup): PSS
    divides each page by the number of processes mapping it, so the PSS of
    all processes adds up to the memory they use; USS is the memory only
    that process maps (what its exit would free).  The split by kind comes
    from classifying each process's map, as `procmap PID --rss` does.  A
    shared object is a file, shared memory or a memfd that two processes or
    more map; sharing it saves its RSS summed minus its PSS summed.

    Processes that cannot be read (another user's, without root; or gone
    meanwhile) are counted and named on one line, and the exit status is
    still 0; those refused make the result partial (said in the JSON).
    Kernel threads have no memory and are skipped.

    --openmetrics prints the figures as OpenMetrics text, summed by process
    name and by kind (--per-pid adds one series per process); --serve PORT
    serves the same over HTTP for Prometheus.  Both need prometheus_client:
    pip install 'procmap[metrics]'.

    \b
    Examples:
      procmap system
      procmap system --sort rss --limit 20
      procmap system --user www-data --name php
      procmap system --json | jq '.processes[] | {name, pss, heap: .kinds.heap.pss}'
      procmap system --openmetrics > /var/lib/node_exporter/procmap.prom.$$ &&
        mv /var/lib/node_exporter/procmap.prom.$$ /var/lib/node_exporter/procmap.prom
      procmap system --serve 9256 --bind 0.0.0.0
    """
    metrics = openmetrics or serve is not None
    if as_json + openmetrics + (serve is not None) > 1:
        raise click.UsageError("--json, --openmetrics and --serve: one at a time")
    if per_pid and not metrics:
        raise click.UsageError("--per-pid goes with --openmetrics or --serve")
    if bind is not None and serve is None:
        raise click.UsageError("--bind goes with --serve")
    if metrics and (limit is not None or sort != "pss"):
        raise click.UsageError(
            "--sort and --limit order the table and the JSON: not with --openmetrics or --serve"
        )
    from ..views.system import Filters, uid_of

    uids = set()
    for user in users:
        uid = uid_of(user)
        if uid is None:
            raise click.BadParameter(f"no user named {user!r}", param_hint="--user")
        uids.add(uid)
    filters = Filters(users=frozenset(uids) if users else None, name=name)
    if metrics:
        from ..views.metrics import require_client

        require_client()
    if serve is not None:
        _serve(filters, serve, bind or "127.0.0.1", per_pid, 10 if objects is None else objects)
        return
    view = _read(filters)
    if openmetrics:
        from ..views.metrics import openmetrics_text

        text = openmetrics_text(view, per_pid, 10 if objects is None else objects)
        sys.stdout.write(text.decode("utf-8"))
    elif as_json:
        from ..views.system import system_json

        print_json(system_json(view, sort, limit, objects))
    else:
        from ..render.system import render_system

        console = make_console()
        console.print(
            render_system(
                view, sort, limit, 10 if objects is None else objects, width=console.width
            ),
            crop=console.is_terminal,
        )
    _say_unreadable(view)


def _read(filters):
    from ..views.system import read_system

    if not sys.stderr.isatty():
        return read_system(filters=filters)
    from rich.console import Console

    from ..render.system import progress_bar

    with progress_bar(Console(stderr=True)) as advance:
        return read_system(filters=filters, progress=advance)


def _say_unreadable(view) -> None:
    from ..views.system import unreadable_line

    line = unreadable_line(view.unreadable)
    if line is not None:
        sys.stdout.flush()  # the output first, then the line that qualifies it
        click.echo(f"procmap: {line}", err=True)


def _serve(filters, port: int, bind: str, per_pid: bool, objects: int) -> None:
    import signal

    from ..views.metrics import SystemCollector, make_server
    from ..views.system import read_system

    collector = SystemCollector(lambda: read_system(filters=filters), per_pid, objects)
    server = make_server(collector, bind, port)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"procmap: serving metrics on http://{shown}:{port}/metrics (Ctrl-C or SIGTERM stops)",
        err=True,
    )

    def stop(signum, frame):
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
