"""`procmap system`: every process's memory, by kind, and what sharing files saves.

`read_system()` reads every process the user may read (live/usage.py), with
one ElfCache for all of them, so each ELF file's headers are read once.  The
rest is pure: `shared_objects()` sums what several processes map of the same
file, `sort_processes()` orders them, `system_json()` is the JSON, and
`unreadable_line()` the one line that names the processes that could not be
read.

What is counted (docs/system.md):

- a process's RSS, PSS, USS (private clean + private dirty) and swap are the
  kernel's own sums, from smaps_rollup;
- its figures by kind are smaps' per mapping, shared among the mapping's
  regions by classify.resident, and summed by kind;
- an object (a file, shared memory, a memfd: one device and inode) is listed
  when two processes or more map it; what sharing saves is the sum of its RSS
  over those processes minus the sum of its PSS: the memory that private
  copies for each process would take beyond the one copy there is.

Kernel threads have no memory and are skipped (counted).  Processes that may
not be read (permission denied) make the result partial; processes that exit
while they are read are named but do not: their memory is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from ..errors import AccessDenied, KernelThread, NoSuchProcess, ProcessExited, ZombieProcess
from ..kernel.procfs import ProcFS, effective_uid
from ..live.capture import ElfCache
from ..live.usage import read_usage
from ..model import (
    KINDS,
    UNREADABLE_REASONS,
    FileKey,
    JSONDict,
    ProcessUsage,
    Unreadable,
    Usage,
)
from ..names import escape

SORT_KEYS = ("pss", "rss", "uss", "swap", "pid", "name")
Progress = Callable[[int, int], None]  # (processes done, processes in all)


class SharedObject(NamedTuple):
    """A file (or shared memory) that several processes map, and what its sharing saves."""

    path: str
    key: FileKey
    processes: int
    rss: int  # summed over the processes
    pss: int  # summed over the processes: the object's memory, counted once

    @property
    def saved(self) -> int:
        """RSS summed minus PSS summed: what a private copy in each process would add."""
        return self.rss - self.pss

    def to_dict(self) -> JSONDict:
        return {
            "object": escape(self.path),
            "dev": self.key[0],
            "inode": self.key[1],
            "processes": self.processes,
            "rss": self.rss,
            "pss": self.pss,
            "saved": self.saved,
        }


class Filters(NamedTuple):
    """Which processes to read: by user (names or UIDs) and by a piece of their name."""

    users: frozenset[int] | None = None
    name: str | None = None

    def wants(self, name: str, uid: int) -> bool:
        return self.wants_name(name) and self.wants_user(uid)

    def wants_name(self, name: str) -> bool:
        return self.name is None or self.name.casefold() in name.casefold()

    def wants_user(self, uid: int) -> bool:
        return self.users is None or uid in self.users


class SystemView(NamedTuple):
    """A read of the whole machine."""

    processes: list[ProcessUsage]
    unreadable: list[Unreadable]
    kernel_threads: int
    zombies: int
    seconds: float  # how long the read took

    @property
    def partial(self) -> bool:
        """Some process could not be read for want of permission: its memory is missing."""
        return any(u.reason == "permission-denied" for u in self.unreadable)

    @property
    def figures_from(self) -> str:
        """Where the processes' totals came from: smaps_rollup, or smaps (summed)."""
        sources = {p.figures_from for p in self.processes}
        return sources.pop() if len(sources) == 1 else "smaps_rollup" if not sources else "mixed"


def uid_of(user: str) -> int | None:
    """A user's UID, from a name or a number; None if there is no such user."""
    import pwd

    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def read_system(
    procfs: ProcFS | None = None,
    filters: Filters = Filters(),
    progress: Progress | None = None,
) -> SystemView:
    """Every process this user may read, but procmap's own: its memory, whole and by kind.

    `progress(done, total)` is called after each process.

    One reader, in this process.  Forked readers (tried: a quarter faster on two
    CPUs) are each one more process mapping libc and procmap's other libraries
    while the others are read: the PSS of every process sharing them drops for
    that time, by up to 4% for a small one (measured), which the figures must
    not show.
    """
    procfs = procfs or ProcFS()
    started = time.perf_counter()
    cache = ElfCache()
    me = os.getpid()
    pids = [p for p in procfs.pids() if p != me]
    processes: list[ProcessUsage] = []
    unreadable: list[Unreadable] = []
    kernel_threads = zombies = 0
    for done, pid in enumerate(pids, 1):
        try:
            pd = procfs.open(pid)
        except (NoSuchProcess, AccessDenied):
            continue  # gone before it was read (or hidden): not part of this read
        name = "?"
        try:
            with pd:
                stat = pd.stat()
                name = stat.comm
                if stat.is_kernel_thread:
                    kernel_threads += 1
                    continue
                if stat.is_zombie:
                    zombies += 1
                    continue
                if not filters.wants_name(name):
                    continue
                try:
                    status = pd.status()
                except AccessDenied:
                    # Whose it is, then, from its /proc directory: only another
                    # user's wanted process is named as not readable.
                    if filters.users is not None and not filters.wants_user(pd.owner()):
                        continue
                    raise
                if not filters.wants_user(effective_uid(status)):
                    continue
                processes.append(read_usage(pd, cache, stat, status))
        except AccessDenied:
            unreadable.append(Unreadable(pid, name, "permission-denied"))
        except (ProcessExited, NoSuchProcess, KernelThread, ZombieProcess):
            unreadable.append(Unreadable(pid, name, "exited"))
        finally:
            if progress is not None:
                progress(done, len(pids))
    return SystemView(processes, unreadable, kernel_threads, zombies, time.perf_counter() - started)


# --- pure: what is shown -------------------------------------------------------------


def shared_objects(processes: Iterable[ProcessUsage], at_least: int = 2) -> list[SharedObject]:
    """The objects that `at_least` processes map, most saved first."""
    found: dict[FileKey, list[Any]] = {}  # key -> [path, processes, rss, pss]
    for p in processes:
        for key, use in p.objects.items():
            entry = found.get(key)
            if entry is None:
                found[key] = [use.path, 1, use.rss, use.pss]
            else:
                entry[1] += 1
                entry[2] += use.rss
                entry[3] += use.pss
    objects = [
        SharedObject(path, key, n, rss, pss)
        for key, (path, n, rss, pss) in found.items()
        if n >= at_least
    ]
    objects.sort(key=lambda o: (-o.saved, -o.pss, o.path, o.key))
    return objects


def sort_processes(processes: Iterable[ProcessUsage], key: str = "pss") -> list[ProcessUsage]:
    """Largest first for the figures; by PID, or by name (then PID), for the others."""
    if key == "pid":
        return sorted(processes, key=lambda p: p.pid)
    if key == "name":
        return sorted(processes, key=lambda p: (p.name.casefold(), p.pid))
    if key not in SORT_KEYS:
        raise ValueError(f"no sort key {key!r}")
    index = Usage._fields.index(key)
    return sorted(processes, key=lambda p: (-p.total[index], p.pid))


def add_up(usages: Iterable[Usage]) -> Usage:
    rss = pss = uss = swap = 0
    for u in usages:
        rss += u.rss
        pss += u.pss
        uss += u.uss
        swap += u.swap
    return Usage(rss, pss, uss, swap)


def kind_totals(processes: Sequence[ProcessUsage]) -> dict[str, Usage]:
    """Each kind's figures over all the processes (kinds no process has are left out)."""
    out = {}
    for kind in KINDS:
        present = [p.kinds[kind] for p in processes if kind in p.kinds]
        if present:
            out[kind] = add_up(present)
    return out


def unreadable_line(unreadable: Sequence[Unreadable], names: int = 20) -> str | None:
    """One line that counts and names the processes not read, and says why; None if none.

    "14 processes not readable (permission denied; run as root or as their owner):
    sshd (812), cron (901), ..."
    """
    if not unreadable:
        return None
    counts = {r: sum(u.reason == r for u in unreadable) for r in UNREADABLE_REASONS}
    reasons = [(r, n) for r, n in counts.items() if n]
    if len(reasons) == 1:
        why = UNREADABLE_REASONS[reasons[0][0]]
    else:
        why = "; ".join(f"{n} {UNREADABLE_REASONS[r]}" for r, n in reasons)
    n = len(unreadable)
    listed = ", ".join(f"{escape(u.name, lossless=False)} ({u.pid})" for u in unreadable[:names])
    more = f", and {n - names} more (--json lists them all)" if n > names else ""
    return f"{n} process{'es' if n != 1 else ''} not readable ({why}): {listed}{more}"


def partial_reason(view: SystemView) -> str | None:
    denied = sum(u.reason == "permission-denied" for u in view.unreadable)
    if not denied:
        return None
    return (
        f"{denied} process{'es' if denied != 1 else ''} could not be read (permission denied): "
        "the totals and the objects leave out their memory"
    )


def system_json(
    view: SystemView,
    sort: str = "pss",
    limit: int | None = None,
    objects: int | None = None,
) -> JSONDict:
    """`procmap system --json`: the processes (sorted, the first `limit`), the shared
    objects (the first `objects`, most saved first), those not read, and the totals
    over every process read."""
    shown = sort_processes(view.processes, sort)[:limit]
    shared = shared_objects(view.processes)
    whole = add_up(p.total for p in view.processes)
    return {
        "processes": [_process_dict(p) for p in shown],
        "objects": [o.to_dict() for o in shared[:objects]],
        "unreadable": [
            {**u.to_dict(), "name": escape(u.name)}
            for u in sorted(view.unreadable, key=lambda u: u.pid)
        ],
        "totals": {
            "processes": len(view.processes),
            **whole.to_dict(),
            "kinds": {k: u.to_dict() for k, u in kind_totals(view.processes).items()},
            "shared_objects": len(shared),
            "saved": sum(o.saved for o in shared),
            "unreadable": len(view.unreadable),
            "kernel_threads": view.kernel_threads,
            "zombies": view.zombies,
        },
        "partial": view.partial,
        "partial_reason": partial_reason(view),
        "figures_from": view.figures_from,
        "sort": sort,
        "seconds": round(view.seconds, 3),
    }


def _process_dict(p: ProcessUsage) -> JSONDict:
    d = p.to_dict()
    d["name"] = escape(p.name)
    d["user"] = escape(p.user)
    return d


class NameGroup(NamedTuple):
    """The processes of one name, as process-exporter groups them: their figures summed."""

    name: str
    processes: int
    total: Usage
    kinds: dict[str, Usage]


def name_groups(processes: Iterable[ProcessUsage]) -> list[NameGroup]:
    """The processes grouped by name, in name order: how many, totals and kinds summed."""
    groups: dict[str, list[ProcessUsage]] = {}
    for p in processes:
        groups.setdefault(p.name, []).append(p)
    return [
        NameGroup(
            name,
            len(members),
            add_up(p.total for p in members),
            kind_totals(members),
        )
        for name, members in sorted(groups.items())
    ]
