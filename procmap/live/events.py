"""What changed between two samples of a map, as events, and the events in words.

`diff_events` turns old mappings into new ones as events in the kernel's
terms: a mapping grew or shrank (and which end moved), was mapped or
unmapped, changed protection, was split in two or merged with a neighbour.
`describe` tells a sample's events as sentences in the lesson's terms, related
events together.  Pure: records in, records and words out.

Alike events of one sample are one event, with the number of `regions` it
stands for: a mapping that mprotect churn cut into 1,000 pieces is one split
and one protect of 500 regions, not 500 protects; and past MOST_EVENTS in a
sample, alike events anywhere in the map are told together, so what one
sample prints is bounded.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from ..model import Detail, JSONDict, Mapping, Region, detail_words, hex_address
from ..units import human_size

EVENTS = ("grow", "shrink", "map", "unmap", "protect", "split", "merge")
# Past this many events in one sample (after each region's were coalesced), alike
# events are coalesced across the whole map: a sample's events are then at most
# one per (event, kind, detail, permissions before and after, direction).
MOST_EVENTS = 64


class Event(NamedTuple):
    """One change to the address space, about one region."""

    event: str  # one of EVENTS
    kind: str
    detail: Detail
    start: int  # the region now (for unmap: the region that went away)
    end: int
    path: str | None
    bytes: int  # how much grew, shrank, appeared, went away or changed protection
    direction: str | None  # grow, shrink: the way the moving edge went, "up" or "down"
    perms: str
    object: str | None = None
    before: tuple[int, int, str] | None = None  # (start, end, perms) before, where it differs
    tid: int | None = None  # a thread stack's thread
    # How many regions' alike events of one sample this one stands for: start and
    # end are then the lowest and highest address of them, bytes their sum.
    regions: int = 1
    allocator: str | None = None  # whose heap (a key of model.ALLOCATORS)

    @property
    def description(self) -> str:
        return detail_words(self.detail, self.tid, self.path, self.allocator)

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            "event": self.event,
            "kind": self.kind,
            "detail": self.detail.value,
            "description": self.description,
            "tid": self.tid,
            "start": hex_address(self.start),
            "end": hex_address(self.end),
            "path": self.path,
            "bytes": self.bytes,
            "direction": self.direction,
            "perms": self.perms,
            "object": self.object,
            "regions": self.regions,
            "allocator": self.allocator,
        }
        if self.before is not None:
            start, end, perms = self.before
            out["before"] = {"start": hex_address(start), "end": hex_address(end), "perms": perms}
        return out


class Change(NamedTuple):
    """What one sample found different from the last."""

    events: list[Event]
    threads_started: list[int]
    threads_ended: list[int]
    exec: bool = False  # the process ran a new program: everything was replaced

    def __bool__(self) -> bool:
        return bool(self.events or self.threads_started or self.threads_ended or self.exec)


Groups = Sequence[Sequence[Region]]  # the regions of each mapping, by mapping index


def _event(
    name: str,
    region: Region,
    nbytes: int,
    direction: str | None = None,
    before: tuple[int, int, str] | None = None,
    start: int | None = None,
    end: int | None = None,
) -> Event:
    return Event(
        name,
        region.kind,
        region.detail,
        region.start if start is None else start,
        region.end if end is None else end,
        region.path,
        nbytes,
        direction,
        region.perms,
        region.object,
        before,
        region.tid,
        1,
        region.allocator,
    )


def diff_events(
    old: Sequence[Mapping], old_groups: Groups, new: Sequence[Mapping], new_groups: Groups
) -> list[Event]:
    """Events turning `old` mappings into `new` ones (both in address order).

    `*_groups[i]` holds the classified regions of mapping i.  Mappings that
    overlap, directly or through others, form one component, told by
    `_component_events`.
    """
    events: list[Event] = []
    i = j = 0
    while i < len(old) or j < len(new):
        # Collect one component: start with the lower mapping, add overlapping ones.
        olds: list[int] = []
        news: list[int] = []
        if j >= len(new) or (i < len(old) and old[i].start <= new[j].start):
            olds.append(i)
            hi = old[i].end
            i += 1
        else:
            news.append(j)
            hi = new[j].end
            j += 1
        while True:
            if i < len(old) and old[i].start < hi:
                olds.append(i)
                hi = max(hi, old[i].end)
                i += 1
            elif j < len(new) and new[j].start < hi:
                news.append(j)
                hi = max(hi, new[j].end)
                j += 1
            else:
                break
        events.extend(
            coalesce(
                _component_events(
                    [old[k] for k in olds],
                    [old_groups[k] for k in olds],
                    [new[k] for k in news],
                    [new_groups[k] for k in news],
                )
            )
        )
    if len(events) > MOST_EVENTS:
        events = coalesce(events, across=True)
    return events


def _alike(e: Event) -> tuple[object, ...]:
    """What events must share to be told as one: the same change to the same memory."""
    return (
        e.event,
        e.kind,
        e.detail,
        e.perms,
        e.direction,
        e.before[2] if e.before is not None else None,
        e.path,
        e.object,
        e.tid,
    )


def coalesce(events: list[Event], across: bool = False) -> list[Event]:
    """Alike events as one each, with how many regions, in the order of the first of each.

    Without `across` (one region's events, from one component), the events of
    the same change to the same memory; with it (a whole sample's), the path,
    object and thread may differ too (None in the event that holds them when
    they do), so a sample has at most one event per (event, kind, detail,
    permissions before and after, direction).
    """
    if len(events) < 2:
        return events
    width = 6 if across else 9
    groups: dict[tuple[object, ...], list[Event]] = {}
    for e in events:
        groups.setdefault(_alike(e)[:width], []).append(e)
    if len(groups) == len(events):
        return events
    return [_one(alike) if len(alike) > 1 else alike[0] for alike in groups.values()]


def _one(alike: list[Event]) -> Event:
    first = alike[0]
    before = None
    if first.before is not None:
        b = [e.before for e in alike if e.before is not None]
        before = (min(x[0] for x in b), max(x[1] for x in b), first.before[2])

    paths = {e.path for e in alike}
    objects = {e.object for e in alike}
    tids = {e.tid for e in alike}
    return first._replace(
        start=min(e.start for e in alike),
        end=max(e.end for e in alike),
        bytes=sum(e.bytes for e in alike),
        path=paths.pop() if len(paths) == 1 else None,
        object=objects.pop() if len(objects) == 1 else None,
        tid=tids.pop() if len(tids) == 1 else None,
        before=before,
        regions=sum(e.regions for e in alike),
    )


def _component_events(
    old: list[Mapping], old_groups: Groups, new: list[Mapping], new_groups: Groups
) -> list[Event]:
    """The events of one component: overlapping old and new mappings.

    One mapping on each side, the same memory: a grow or shrink (and a
    protect).  Several on one side with the same span, the same memory: a
    split or merge, with a protect for each part whose permissions changed.
    The same, grown at one end (a runtime's reservation extended by a new
    arena, part of it committed): those events over the old span, and a grow.
    Anything else: unmaps and maps.
    """
    if not new:
        return _every("unmap", old_groups)
    if not old:
        return _every("map", new_groups)
    if not all(_same_memory(old[0], m) for m in (*old, *new)):
        return _every("unmap", old_groups) + _every("map", new_groups)
    if len(old) == 1 and len(new) == 1:
        return _resized(old[0], new[0], new_groups[0])
    if not (_contiguous(old) and _contiguous(new)):
        return _every("unmap", old_groups) + _every("map", new_groups)
    lo, hi = old[0].start, old[-1].end
    if (new[0].start, new[-1].end) == (lo, hi):
        return _reshaped(old, old_groups, new, new_groups)
    if new[0].start <= lo and new[-1].end >= hi:
        return _extended(old, old_groups, new, new_groups)
    return _every("unmap", old_groups) + _every("map", new_groups)


def _every(name: str, groups: Groups) -> list[Event]:
    return [_event(name, r, r.size) for group in groups for r in group]


def _same_memory(a: Mapping, b: Mapping) -> bool:
    """Whether two mappings are views of the same memory (so one can have become the other)."""
    if a.dev != b.dev or a.inode != b.inode or a.path != b.path or a.perms[3] != b.perms[3]:
        return False
    return not a.is_file or a.offset - a.start == b.offset - b.start


def _contiguous(mappings: list[Mapping]) -> bool:
    return all(a.end == b.start for a, b in zip(mappings, mappings[1:]))


def _resized(o: Mapping, n: Mapping, groups: Sequence[Region]) -> list[Event]:
    """One mapping became one: its ends moved, its protection changed."""
    events = []
    before = (o.start, o.end, o.perms)
    if n.start != o.start:
        grew = n.start < o.start
        name, way = ("grow", "down") if grew else ("shrink", "up")
        events.append(_event(name, groups[0], abs(n.start - o.start), way, before))
    if n.end != o.end:
        grew = n.end > o.end
        name, way = ("grow", "up") if grew else ("shrink", "down")
        events.append(_event(name, groups[-1], abs(n.end - o.end), way, before))
    if n.perms != o.perms:
        events.extend(_protects(groups, max(o.start, n.start), min(o.end, n.end), o.perms))
    return events


def _reshaped(
    old: list[Mapping], old_groups: Groups, new: list[Mapping], new_groups: Groups
) -> list[Event]:
    """Mappings cut or joined over the same span: splits or merges, then protects."""
    # Both sides tile the same span in address order: one sweep pairs each old
    # mapping with the new ones it overlaps (a nested loop is quadratic when
    # mprotect churn cuts a mapping into thousands).
    pairs = []
    i = j = 0
    while i < len(old) and j < len(new):
        pairs.append((i, j))
        old_end, new_end = old[i].end, new[j].end
        if old_end <= new_end:
            i += 1
        if new_end <= old_end:
            j += 1
    events = []
    if len(new) > len(old):
        pieces = Counter(i for i, _ in pairs)
        for i, (o, group) in enumerate(zip(old, old_groups)):
            if pieces[i] > 1:
                events.append(_event("split", group[0], o.size, None, None, o.start, o.end))
    elif len(new) < len(old):
        pieces = Counter(j for _, j in pairs)
        for j, (n, group) in enumerate(zip(new, new_groups)):
            if pieces[j] > 1:
                events.append(_event("merge", group[0], n.size))
    for i, j in pairs:
        o, n = old[i], new[j]
        if o.perms != n.perms:
            events.extend(
                _protects(new_groups[j], max(o.start, n.start), min(o.end, n.end), o.perms)
            )
    return events


def _extended(
    old: list[Mapping], old_groups: Groups, new: list[Mapping], new_groups: Groups
) -> list[Event]:
    """Contiguous mappings whose span grew at one end or both: what changed over
    the old span (splits, merges, protects), then a grow at each end that moved."""
    lo, hi = old[0].start, old[-1].end
    # The new mappings over the old span, cut to it: both sides tile it.
    inside = [
        (m._replace(start=max(m.start, lo), end=min(m.end, hi)), g)
        for m, g in zip(new, new_groups)
        if m.start < hi and m.end > lo
    ]
    events = _reshaped(old, old_groups, [m for m, _ in inside], [g for _, g in inside])
    if new[0].start < lo:
        below = next(r for g in new_groups for r in g if r.start < lo <= r.end)
        before = (old[0].start, old[0].end, old[0].perms)
        events.insert(0, _event("grow", below, lo - new[0].start, "down", before))
    if new[-1].end > hi:
        above = next(r for g in new_groups for r in g if r.start <= hi < r.end)
        before = (old[-1].start, old[-1].end, old[-1].perms)
        events.append(_event("grow", above, new[-1].end - hi, "up", before))
    return events


def _protects(groups: Sequence[Region], lo: int, hi: int, old_perms: str) -> list[Event]:
    return [
        _event(
            "protect",
            r,
            min(hi, r.end) - max(lo, r.start),
            before=(max(lo, r.start), min(hi, r.end), old_perms),
            start=max(lo, r.start),
            end=min(hi, r.end),
        )
        for r in groups
        if r.start < hi and r.end > lo
    ]


# --- events in words -------------------------------------------------------------------


def describe(change: Change) -> list[str]:
    """The sample's events as sentences, related events told together.

    A library's regions appearing together is "loaded"; a thread stack and its
    guard page are one new stack; a split or merge with the protection change
    that caused it is one mprotect.
    """
    if change.exec:
        return ["the process ran a new program: every mapping was replaced"]
    events = list(change.events)
    used: set[int] = set()
    lines = _loads(events, used)
    lines += _thread_stacks(events, used)
    lines += _mprotects(events, used)
    lines += [_sentence(e) for i, e in enumerate(events) if i not in used]
    stacks_mapped = {e.tid for e in events if e.event == "map" and e.kind == "stack"}
    stacks_gone = {e.tid for e in events if e.event == "unmap" and e.kind == "stack"}
    for tid in change.threads_started:
        if tid not in stacks_mapped:
            lines.append(f"thread {tid} started (on a stack already mapped)")
    for tid in change.threads_ended:
        if tid not in stacks_gone:
            lines.append(f"thread {tid} ended; its stack stays mapped (glibc keeps it for reuse)")
    return lines


def _loads(events: list[Event], used: set[int]) -> list[str]:
    """Libraries loaded or unloaded: every event about one object is a map (or unmap)."""
    lines = []
    by_object: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(events):
        if e.object and e.event in ("map", "unmap"):
            by_object.setdefault((e.event, e.object), []).append(i)
    for (what, obj), indexes in by_object.items():
        if len(indexes) < 2:
            continue
        used.update(indexes)
        names = [_region_word(events[i]) for i in indexes]
        verb = "loaded" if what == "map" else "unloaded"
        size = sum(events[i].bytes for i in indexes)
        regions = sum(events[i].regions for i in indexes)
        lines.append(
            f"{_base(obj)} {verb}: {regions} regions ({', '.join(names)}), {human_size(size)}"
        )
    return lines


def _thread_stacks(events: list[Event], used: set[int]) -> list[str]:
    """Thread stacks: a stack region and the guard page just below it, told as one."""
    lines = []
    for i, e in enumerate(events):
        if i in used or e.kind != "stack" or e.event not in ("map", "unmap"):
            continue
        if e.detail is Detail.GUARD_PAGE:
            continue
        guard = next(
            (
                k
                for k, g in enumerate(events)
                if k not in used
                and g.event == e.event
                and g.detail is Detail.GUARD_PAGE
                and g.end == e.start
            ),
            None,
        )
        used.add(i)
        extra = ""
        if guard is not None:
            used.add(guard)
            extra = f" + {human_size(events[guard].bytes)} guard page"
        who = f", TID {e.tid}" if e.tid is not None else ""
        if e.regions > 1:
            verb = "mapped" if e.event == "map" else "unmapped"
            lines.append(
                f"{e.regions} thread stacks ({human_size(e.bytes)}{extra}) {verb}{_many(e)}"
            )
        elif e.event == "map":
            lines.append(f"new thread stack ({human_size(e.bytes)}{extra}){who} at {e.start:#x}")
        else:
            lines.append(f"thread stack ({human_size(e.bytes)}{extra}){who} unmapped")
    return lines


def _mprotects(events: list[Event], used: set[int]) -> list[str]:
    """An mprotect that split or merged a mapping, with the protection it changed."""
    lines = []
    for i, e in enumerate(events):
        if i in used or e.event not in ("split", "merge"):
            continue
        used.add(i)
        inside = [
            k
            for k, p in enumerate(events)
            if k not in used and p.event == "protect" and e.start <= p.start and p.end <= e.end
        ]
        used.update(inside)
        verb = "split" if e.event == "split" else "merged"
        if e.regions > 1:
            how = f"{e.regions} mappings {verb}"
        elif any(events[k].regions > 1 for k in inside):
            how = "a mapping split" if verb == "split" else "mappings merged"
        else:
            how = "a mapping split in two" if verb == "split" else "two mappings merged"
        for k in inside:
            lines.append(f"{_protected(events[k])} ({how})")
        if not inside:
            lines.append(f"{_what(e)} {verb}{_many(e)}")
    return lines


def _sentence(e: Event) -> str:
    what = _what(e)
    size = human_size(e.bytes)
    brk = ""
    if e.detail is Detail.BRK_HEAP and e.before is not None:
        brk = f"brk moved from {e.before[1]:#x} to {e.end:#x}"
    many = _many(e)
    if e.event == "grow":
        way = "upward" if e.direction == "up" else "downward"
        return f"{what} grew {size} {way}{many}" + (f" ({brk})" if brk and not many else "")
    if e.event == "shrink":
        end = "top" if e.direction == "down" else "bottom"
        if many:
            return f"{what} shrank {size} (its {end} moved {e.direction}){many}"
        return f"{what} shrank {size} (its {end} moved {e.direction})" + (f": {brk}" if brk else "")
    if e.event == "map":
        return f"{size} {what} appeared" + (many or f" at {e.start:#x}")
    if e.event == "unmap":
        return f"{size} {what} went away" + (many or f" (was at {e.start:#x})")
    if e.event == "protect":
        return _protected(e)
    if e.event == "split":
        return f"{what} split{many}"
    return f"{what} merged{many}"


def _protected(e: Event) -> str:
    """A protection change in words: a heap's commit is growth, not just an mprotect."""
    what, size, many = _what(e), human_size(e.bytes), _many(e)
    if e.kind == "heap" and e.before is not None:
        # Allocators grow into a reservation by making it read-write (glibc's arenas,
        # the JVM, Go), and some give memory back by making it inaccessible again.
        if e.before[2][:3] == "---" and "w" in e.perms:
            return f"{what}: {size} committed (made read-write){many}"
        if e.perms[:3] == "---":
            return f"{what}: {size} uncommitted (made inaccessible){many}"
    return f"mprotect made {size} of {_a(what)} {_perm_words(e.perms)}{many}"


def _many(e: Event) -> str:
    """Where a coalesced event's regions are: "" for one region's event."""
    if e.regions == 1:
        return ""
    return f" in {e.regions} places between {e.start:#x} and {e.end:#x}"


def _what(e: Event) -> str:
    """A region named for a sentence: "heap", "libc.so.6 data", "anonymous mapping"."""
    if e.detail is Detail.BRK_HEAP:
        return "heap"
    if e.detail is Detail.MAIN_STACK:
        return "stack"
    if e.kind in ("heap", "stack"):
        return e.description
    if e.object:
        return f"{_base(e.object)} {_region_word(e)}"
    if e.detail in (Detail.ANONYMOUS, Detail.SHARED_ANONYMOUS):
        return f"{e.description} mapping"
    if e.path and e.path.startswith("/"):
        return f"{e.description} {_base(e.path)}"
    return e.description


def _a(what: str) -> str:
    """ "an anonymous mapping"; "the heap" and "libc.so.6 data" stay as they are."""
    if what.endswith("mapping"):
        return ("an " if what[0] in "aeiou" else "a ") + what
    return what


def _region_word(e: Event) -> str:
    return "relro" if e.detail is Detail.RELRO else e.kind


def _perm_words(perms: str) -> str:
    r, w, x = perms[0] == "r", perms[1] == "w", perms[2] == "x"
    if not (r or w or x):
        return "inaccessible"
    words = "read-write" if w else "read-only" if r else "write-only"
    return words + (" and executable" if x else "")


def _base(path: str) -> str:
    return os.path.basename(path.removesuffix(" (deleted)")) or path
