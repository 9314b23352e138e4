"""One process's memory for `procmap system`: its totals, split by kind, and the files it maps.

The same pipeline as capture.py's (smaps, the ELF headers of each mapped file
once per device and inode, the classifier, classify.resident's sharing of each
mapping's figures among its regions), cut to what the kinds need, because
`system` reads every process on the machine:

- no section names (classify(sections=False)): the kinds do not use them;
- no stack pointers: thread stacks are found by their shape (a guard page
  below a read-write block), as `procmap PID` finds them when the pointers
  may not be read; reading /proc/PID/task/*/syscall would cost a read per
  thread, and needs ptrace permission;
- no command line, no symbols, no auxv.

The process's totals are the kernel's own sums, /proc/PID/smaps_rollup (exact:
it sums PSS before rounding to a kB, where smaps rounds each mapping's down);
on a kernel without it (before 4.14), smaps' figures summed.
"""

from __future__ import annotations

from functools import cache

from ..classify import classify
from ..classify.resident import attribute
from ..errors import ProcessExited
from ..kernel.procfs import ProcessDir, TaskStat, effective_uid, user_name
from ..kernel.smaps import parse_rollup, parse_smaps
from ..model import (
    FileKey,
    Mapping,
    ObjectUse,
    ProcessUsage,
    Resident,
    Usage,
    total,
    usage_of,
)
from .capture import ElfCache, check_alive, read_facts, read_page_states

# The figures a Usage is made of: the others are not parsed.
_FIGURES = frozenset(("rss", "pss", "private_clean", "private_dirty", "swap"))

# How many times a read is begun again when the process runs a new program meanwhile.
_EXEC_RETRIES = 3


@cache
def _user(uid: int) -> str:
    return user_name(uid)


def read_usage(
    pd: ProcessDir,
    cache: ElfCache,
    stat: TaskStat | None = None,
    status: dict[str, str] | None = None,
) -> ProcessUsage:
    """The memory of the process open in `pd`, whole and by kind.

    `stat` and `status`, when the caller has read them already (to choose the
    process), are not read again.  Raises KernelThread and ZombieProcess (no
    memory), AccessDenied (smaps is another user's), ProcessExited (it exited
    meanwhile, or kept running new programs).
    """
    if stat is None:
        stat = check_alive(pd)
    if status is None:
        status = pd.status()
    for _ in range(_EXEC_RETRIES):
        usage = _read_usage(pd, cache, stat.comm, status)
        # The same process and program after the read?  An exec meanwhile would mix
        # two programs' maps (TaskStat.exec_marks); an exit leaves a zombie.
        after = pd.stat()
        if after.is_zombie:
            break
        if after.exec_marks == stat.exec_marks:
            return usage
        stat, status = after, pd.status()  # a new program: its name, maybe its user
    raise ProcessExited(f"PID {pd.pid} exited while procmap was reading it")


def _read_usage(pd: ProcessDir, cache: ElfCache, name: str, status: dict[str, str]) -> ProcessUsage:
    smaps = pd.smaps()
    if not smaps:
        raise ProcessExited(f"PID {pd.pid} exited while procmap was reading it")
    mappings, figures = parse_smaps(smaps, _FIGURES)
    facts = read_facts(pd, mappings, cache, [])
    threads = int(status.get("Threads", "1"))
    if threads > 1:
        others = tuple(t for t in pd.task_ids() if t != pd.pid)
        facts = facts._replace(unknown_threads=others, thread_stack_size=pd.stack_limit())
    result = classify(
        mappings, cache.layouts, facts, cache.unreadable, sections=False, memo=cache.memo
    )
    states = read_page_states(pd, mappings, figures, result.regions, facts.page_size)
    resident, _ = attribute(mappings, figures, result.regions, states, facts.page_size)

    sums: dict[str, list[int]] = {}
    for r, f in zip(result.regions, resident):
        s = sums.get(r.kind)
        if s is None:
            s = sums[r.kind] = [0, 0, 0, 0]
        s[0] += f.rss
        s[1] += f.pss
        s[2] += f.private_clean + f.private_dirty
        s[3] += f.swap
    kinds = {kind: Usage(*s) for kind, s in sums.items()}
    objects = _objects(mappings, figures)

    rollup = pd.smaps_rollup()
    if rollup is None:  # Linux before 4.14
        whole, source = usage_of(total(figures)), "smaps"
    elif not rollup:
        raise ProcessExited(f"PID {pd.pid} exited while procmap was reading it")
    else:
        whole, source = usage_of(parse_rollup(rollup, _FIGURES)), "smaps_rollup"
    uid = effective_uid(status)
    return ProcessUsage(
        pid=pd.pid,
        name=name,
        user=_user(uid),
        uid=uid,
        threads=threads,
        total=whole,
        kinds=kinds,
        objects=objects,
        figures_from=source,
    )


def _objects(mappings: list[Mapping], figures: list[Resident]) -> dict[FileKey, ObjectUse]:
    """The files mapped (inode != 0: files, shared memory, memfds), RSS and PSS summed."""
    objects: dict[FileKey, ObjectUse] = {}
    for m, f in zip(mappings, figures):
        if not m.inode:
            continue
        key = (m.dev, m.inode)
        o = objects.get(key)
        if o is None:
            objects[key] = ObjectUse(m.path or "?", f.rss, f.pss)
        else:
            objects[key] = ObjectUse(o.path, o.rss + f.rss, o.pss + f.pss)
    return objects
