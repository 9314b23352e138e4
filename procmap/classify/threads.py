"""Each thread of a classified map: its stack, where its stack pointer is, what is used and left.

Pure, as the classifier is: the regions, the facts (each thread's stack
pointer, RLIMIT_STACK) and the threads' names and states arrive as arguments,
so a saved snapshot or a core gives the same rows as the live process.

A thread made by pthread_create has a stack of fixed size: glibc maps it with
a guard page below (the classifier tied both to the thread's TID), so what is
left is the distance from the stack pointer down to the guard.  The main
thread's stack, [stack], grows on demand (mm/mmap.c, expand_downwards), as far
as two limits allow: the whole of it may not exceed RLIMIT_STACK (its soft
limit, acct_stack_growth), and it may not come nearer than stack_guard_gap
(256 pages unless the kernel command line says stack_guard_gap=) to an
accessible mapping below it.  The nearer of the two is its bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model import (
    DEFAULT_GUARD_GAP_PAGES,
    Detail,
    Facts,
    ProcessMap,
    Region,
    StackGuard,
    Task,
    Thread,
    ThreadFacts,
    stack_use,
)


def describe_threads(
    pmap: ProcessMap, facts: Facts, thread_facts: ThreadFacts | None = None
) -> list[Thread]:
    """One Thread per task, in TID order.

    Without `thread_facts` (a snapshot saved before procmap read names and
    states, or a plain maps text), the threads are those whose stack pointer
    the facts hold or lack, without names or states.
    """
    tasks = thread_facts.tasks if thread_facts is not None else tasks_from_facts(pmap, facts)
    page = facts.page_size
    gap = thread_facts.stack_guard_gap if thread_facts is not None else None
    if gap is None:
        gap = DEFAULT_GUARD_GAP_PAGES * page
    stacks: dict[int, Region] = {}
    guards: dict[int, Region] = {}
    main_stack: int | None = None
    regions = pmap.regions
    for i, r in enumerate(regions):
        if r.kind != "stack":
            continue
        if r.detail is Detail.MAIN_STACK:
            main_stack = i if main_stack is None else main_stack
        elif r.tid is not None:
            if r.detail is Detail.GUARD_PAGE:
                guards.setdefault(r.tid, r)
            else:
                stacks.setdefault(r.tid, r)
    out = []
    for task in sorted(tasks, key=lambda t: t.tid):
        main = task.tid == pmap.info.pid
        if main and main_stack is not None:
            row = _main_thread(task, facts, regions, main_stack, gap)
        else:
            row = _thread(task, facts, stacks.get(task.tid), guards.get(task.tid))
        if row.sp is not None and row.sp_in is None:
            row = row._replace(sp_in=_sp_elsewhere(pmap.region_at(row.sp)))
        out.append(row._replace(main=main))
    return out


def _sp_elsewhere(region: Region | None) -> str:
    """Where a stack pointer outside the thread's own stack is (a SP_IN key).

    Go runs goroutines on stacks it allocates from its own heap (and, without
    cgo, its threads' g0 stacks too): a Go thread's stack pointer is in a Go
    heap arena, and the thread's stack size is the goroutine's, which only
    the runtime knows.
    """
    if region is None:
        return "unmapped"
    if region.kind == "heap" and region.allocator == "go":
        return "goroutine-stack"
    return "elsewhere"


def tasks_from_facts(pmap: ProcessMap, facts: Facts) -> tuple[Task, ...]:
    """The threads a map's facts name, with neither name nor state."""
    tids = set(facts.thread_sps) | set(facts.unknown_threads)
    if not tids and pmap.info.pid > 0:
        tids = {pmap.info.pid}  # one thread: its stack pointer was never read
    return tuple(
        Task(tid, None, None, None if tid in facts.thread_sps else "not-saved")
        for tid in sorted(tids)
    )


def _unknown(task: Task, facts: Facts) -> tuple[int | None, str | None]:
    sp = facts.thread_sps.get(task.tid)
    if sp is not None:
        return sp, None
    return None, task.sp_unknown or "unreadable"


def _thread(task: Task, facts: Facts, stack: Region | None, guard: Region | None) -> Thread:
    sp, unknown = _unknown(task, facts)
    row = Thread(
        task.tid, task.name, task.state, False, sp, unknown, None, stack, None, None, None, None
    )
    if stack is None:
        return row
    wall = None if guard is None else StackGuard(guard.start, guard.end, "guard-page")
    row = row._replace(guard=wall, left_bound="guard-page" if guard else "stack-start")
    if sp is None:
        return row
    if stack.start <= sp < stack.end:
        used, left = stack_use(stack.end, stack.start, sp)
        return row._replace(sp_in="stack", used=used, left=left)
    if guard is not None and guard.start <= sp < guard.end:
        return row._replace(sp_in="guard", used=stack.end - sp, left=0)
    return row


def _main_thread(
    task: Task, facts: Facts, regions: Sequence[Region], index: int, gap: int
) -> Thread:
    stack = regions[index]
    sp, unknown = _unknown(task, facts)
    # The lowest address [stack] may grow down to, and what sets it: the nearer
    # (higher) of RLIMIT_STACK's and the guard gap's.
    bounds: list[tuple[int, str]] = []
    rlimit = facts.thread_stack_size
    if rlimit is not None:
        bounds.append((max(stack.end - rlimit, 0), "rlimit-stack"))
    guard = None
    below = regions[index - 1] if index > 0 else None
    if below is not None and below.end <= stack.start:
        if below.perms[:3] != "---":
            # vm_start_gap: the kernel keeps the gap only from an accessible mapping.
            low = min(below.end + gap, stack.start)
            guard = StackGuard(below.end, low, "stack-guard-gap")
            bounds.append((low, "stack-guard-gap"))
        else:
            bounds.append((below.end, "mapping-below"))
    lowest, bound = max(bounds) if bounds else (0, "mapping-below")
    row = Thread(
        task.tid, task.name, task.state, True, sp, unknown, None, stack, guard, None, None, bound
    )
    if sp is not None and stack.start <= sp < stack.end:
        used, left = stack_use(stack.end, lowest, sp)
        row = row._replace(sp_in="stack", used=used, left=left)
    return row
