"""`procmap system` as OpenMetrics: a text for node_exporter's textfile collector,
and an HTTP endpoint for Prometheus to scrape (a new read of the machine each time).

prometheus_client is an optional extra (pip install 'procmap[metrics]'): it is
imported here only, inside the functions, so that the rest of procmap never
pays for it; without it, `require_client()` raises MissingExtra.

Labels stay bounded, as process-exporter keeps them: the figures are summed
over the processes of one name (`name`), and by kind (`kind`, one of eight);
series per process (`pid`) only when asked (per_pid), and the shared objects
(`object`) only for the first few, most saved first.  docs/system.md lists the
metrics.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtra, ProcmapError, ServeFailed
from ..model import UNREADABLE_REASONS
from ..names import escape
from .system import SystemView, name_groups, shared_objects

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from prometheus_client.metrics_core import Metric

INSTALL = "pip install 'procmap[metrics]'"
FIGURES = ("rss", "pss", "uss", "swap")
_HELP = {
    "rss": "resident set size: memory in RAM, each page counted whole",
    "pss": "proportional set size: each page divided by the number of processes mapping it",
    "uss": "unique set size: private clean + private dirty, what an exit would free",
    "swap": "swapped out",
}


def require_client() -> None:
    """Raise MissingExtra, saying how to install it, if prometheus_client is not installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise MissingExtra(
            f"--openmetrics and --serve need prometheus_client, an optional extra: {INSTALL}"
        ) from None


def metric_families(view: SystemView, per_pid: bool = False, objects: int = 10) -> list[Metric]:
    """The metric families of one read of the machine."""
    from prometheus_client.core import GaugeMetricFamily

    out: list[Metric] = []
    groups = name_groups(view.processes)
    count = GaugeMetricFamily(
        "procmap_processes", "Processes read, by name (comm)", labels=["name"]
    )
    for g in groups:
        count.add_metric([escape(g.name)], g.processes)
    out.append(count)
    for figure in FIGURES:
        family = GaugeMetricFamily(
            f"procmap_{figure}",
            f"{_HELP[figure]}; summed over the processes of each name (from smaps_rollup)",
            labels=["name"],
            unit="bytes",
        )
        for g in groups:
            family.add_metric([escape(g.name)], getattr(g.total, figure))
        out.append(family)
    for figure in FIGURES:
        family = GaugeMetricFamily(
            f"procmap_kind_{figure}",
            f"{_HELP[figure]}; by kind of memory (text, rodata, data, bss, heap, stack, "
            "mmap, kernel), summed over the processes of each name (from smaps)",
            labels=["name", "kind"],
            unit="bytes",
        )
        for g in groups:
            for kind, usage in g.kinds.items():
                family.add_metric([escape(g.name), kind], getattr(usage, figure))
        out.append(family)
    if per_pid:
        out.extend(_per_pid(view))
    out.extend(_objects(view, objects))
    out.extend(_machine(view))
    return out


def _per_pid(view: SystemView) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    processes = sorted(view.processes, key=lambda p: p.pid)
    for figure in FIGURES:
        family = GaugeMetricFamily(
            f"procmap_process_{figure}",
            f"{_HELP[figure]}; one process (from smaps_rollup)",
            labels=["pid", "name", "user"],
            unit="bytes",
        )
        for p in processes:
            family.add_metric(
                [str(p.pid), escape(p.name), escape(p.user)], getattr(p.total, figure)
            )
        yield family
    family = GaugeMetricFamily(
        "procmap_process_kind_pss",
        f"{_HELP['pss']}; one process, by kind of memory (from smaps)",
        labels=["pid", "name", "kind"],
        unit="bytes",
    )
    for p in processes:
        for kind, usage in p.kinds.items():
            family.add_metric([str(p.pid), escape(p.name), kind], usage.pss)
    yield family


def _objects(view: SystemView, first: int) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    shared = shared_objects(view.processes)
    saved = GaugeMetricFamily(
        "procmap_shared_saved",
        "Memory that sharing saves: over every object (a file, shared memory) that "
        "several processes map, their RSS summed minus their PSS summed",
        unit="bytes",
    )
    saved.add_metric([], sum(o.saved for o in shared))
    yield saved
    if first <= 0:
        return
    top = shared[:first]
    labels = ["object"]
    made = {
        "processes": GaugeMetricFamily(
            "procmap_shared_object_processes",
            f"Processes mapping the object; the {first} objects whose sharing saves most",
            labels=labels,
        ),
        "rss": GaugeMetricFamily(
            "procmap_shared_object_rss",
            "The object's RSS, summed over the processes mapping it",
            labels=labels,
            unit="bytes",
        ),
        "pss": GaugeMetricFamily(
            "procmap_shared_object_pss",
            "The object's PSS, summed over the processes mapping it: its memory, counted once",
            labels=labels,
            unit="bytes",
        ),
        "saved": GaugeMetricFamily(
            "procmap_shared_object_saved",
            "What sharing the object saves: its RSS summed minus its PSS summed",
            labels=labels,
            unit="bytes",
        ),
    }
    for o in top:
        value = [escape(o.path)]
        made["processes"].add_metric(value, o.processes)
        made["rss"].add_metric(value, o.rss)
        made["pss"].add_metric(value, o.pss)
        made["saved"].add_metric(value, o.saved)
    yield from made.values()


def _machine(view: SystemView) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    unreadable = GaugeMetricFamily(
        "procmap_unreadable_processes",
        "Processes not read: permission denied, or exited while being read",
        labels=["reason"],
    )
    for reason in UNREADABLE_REASONS:
        unreadable.add_metric([reason], sum(u.reason == reason for u in view.unreadable))
    yield unreadable
    threads = GaugeMetricFamily(
        "procmap_kernel_threads", "Kernel threads, which have no memory of their own"
    )
    threads.add_metric([], view.kernel_threads)
    yield threads
    partial = GaugeMetricFamily(
        "procmap_partial",
        "1 when some processes could not be read for want of permission: the sums leave "
        "their memory out",
    )
    partial.add_metric([], int(view.partial))
    yield partial
    took = GaugeMetricFamily("procmap_read", "How long reading every process took", unit="seconds")
    took.add_metric([], view.seconds)
    yield took


class SystemCollector:
    """A prometheus_client collector: each collect() reads the machine again."""

    def __init__(self, read: Callable[[], SystemView], per_pid: bool = False, objects: int = 10):
        self.read = read
        self.per_pid = per_pid
        self.objects = objects
        self._lock = threading.Lock()  # two scrapes at once: one read after the other

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            view = self.read()
        return metric_families(view, self.per_pid, self.objects)

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not read the machine


def openmetrics_text(view: SystemView, per_pid: bool = False, objects: int = 10) -> bytes:
    """The OpenMetrics text of one read, ending "# EOF"."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SystemCollector(lambda: view, per_pid, objects))
    text: bytes = generate_latest(registry)  # type: ignore[no-untyped-call]
    return text


def make_server(collector: SystemCollector, bind: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for Prometheus, listening on bind:port (port 0: a free one).

    It serves the metrics at any path, in OpenMetrics when the scraper asks for
    it (Prometheus does), else in Prometheus' text format 0.0.4.  Raises
    ServeFailed when it cannot listen.
    """
    from http.server import ThreadingHTTPServer

    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import MetricsHandler

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    handler: Any = MetricsHandler.factory(registry)

    class Server(ThreadingHTTPServer):
        daemon_threads = True  # a scrape in progress does not hold the exit
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET

        def handle_error(self, request: Any, client_address: Any) -> None:
            # A scraper that hangs up early is no error; one of procmap's is one
            # line; anything else is a bug, and keeps its traceback.
            error = sys.exc_info()[1]
            if isinstance(error, ConnectionError):
                return
            if isinstance(error, ProcmapError):
                print(f"procmap: a scrape failed: {error}", file=sys.stderr)
                return
            super().handle_error(request, client_address)

    try:
        return Server((bind, port), handler)
    except OverflowError:
        raise ServeFailed(f"cannot listen on port {port}: ports are 0 to 65535") from None
    except socket.gaierror as err:
        raise ServeFailed(f"cannot listen on {bind!r}: {err.strerror or err}") from None
    except OSError as err:
        where = f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"
        reason = (err.strerror or str(err)).lower()
        raise ServeFailed(f"cannot listen on {where}: {reason}") from None
