"""Where two texts of /proc/PID/maps differ, found at the cost of a memcmp.

Most of a maps file is the same from one sample to the next.  Changed bytes
are found by memcmp (common prefix and suffix, in galloping steps), and
changes far apart by looking for an old line in the new text (bytes.find):
only the changed lines need parsing.  Pure: bytes in, hunks out.
"""

from __future__ import annotations

from typing import NamedTuple

_SMALL = 4096  # a changed stretch this short is parsed whole rather than searched
_GRAIN = 32  # bytes: how close the common prefix and suffix searches get
_PROBES = ((1, 2), (1, 4), (3, 4))  # where to probe a long changed stretch


class Hunk(NamedTuple):
    """old[old_start:old_end] became new[new_start:new_end]; whole lines, byte offsets."""

    old_start: int
    old_end: int
    new_start: int
    new_end: int


def diff_maps(old: bytes, new: bytes) -> list[Hunk]:
    """The line-aligned stretches where `new` differs from `old`, in order.

    Outside the hunks the two texts are equal byte for byte.  Both must be
    whole lines (ending with a newline).  Costs a memcmp of the equal bytes
    plus, for changes far apart, one bytes.find per change.
    """
    if old == new:
        return []
    hunks: list[Hunk] = []
    work = [(0, len(old), 0, len(new))]
    while work:
        o0, o1, n0, n1 = _trim(old, new, *work.pop())
        if o0 == o1 and n0 == n1:
            continue
        split = None
        if o1 - o0 > _SMALL and n1 - n0 > _SMALL:
            split = _probe(old, new, o0, o1, n0, n1)
        if split is None:
            hunks.append(Hunk(o0, o1, n0, n1))
        else:
            ls, le, at = split
            # Work is a stack: push the upper part first so hunks come out in order.
            work.append((le, o1, at + le - ls, n1))
            work.append((o0, ls, n0, at))
    return hunks


def _trim(old: bytes, new: bytes, o0: int, o1: int, n0: int, n1: int) -> tuple[int, int, int, int]:
    """Shrink the stretch by its common prefix and suffix, to whole lines on both sides."""
    limit = min(o1 - o0, n1 - n0)
    p = _common_prefix(old, new, o0, n0, limit)
    if p < limit:
        # Back to the start of the line holding the first difference (both texts
        # agree before it, so it is a line start in both).
        nl = old.rfind(b"\n", o0, o0 + p)
        p = nl + 1 - o0 if nl >= 0 else 0
    o0 += p
    n0 += p
    limit = min(o1 - o0, n1 - n0)
    s = _common_suffix(old, new, o1, n1, limit)
    if s:
        q, r = o1 - s, n1 - s
        if not ((q == o0 or old[q - 1] == 10) and (r == n0 or new[r - 1] == 10)):
            # Mid-line on one side: the next line start inside the common suffix.
            s = o1 - (old.find(b"\n", q, o1) + 1)
    o1 -= s
    n1 -= s
    return o0, o1, n0, n1


def _common_prefix(old: bytes, new: bytes, o0: int, n0: int, limit: int) -> int:
    """A length up to which old[o0:] and new[n0:] are equal, within _GRAIN of the longest.

    Galloping then bisecting memcmps (bytes.startswith takes a memoryview: no
    copy).  Stopping _GRAIN bytes short at most adds a line or two to a hunk,
    which compare equal later; it saves half the steps.
    """
    view = memoryview(old)
    n, step = 0, 8192
    while n < limit:
        k = min(step, limit - n)
        if new.startswith(view[o0 + n : o0 + n + k], n0 + n):
            n += k
            step *= 4
            continue
        lo, hi = n, n + k  # equal up to lo, not up to hi
        while hi - lo > _GRAIN:
            mid = (lo + hi) // 2
            if new.startswith(view[o0 + lo : o0 + mid], n0 + lo):
                lo = mid
            else:
                hi = mid
        return lo
    return limit


def _common_suffix(old: bytes, new: bytes, o1: int, n1: int, limit: int) -> int:
    """As _common_prefix, from the ends: old[:o1] and new[:n1] end alike for this long."""
    view = memoryview(old)
    n, step = 0, 8192
    while n < limit:
        k = min(step, limit - n)
        if new.endswith(view[o1 - n - k : o1 - n], 0, n1 - n):
            n += k
            step *= 4
            continue
        lo, hi = n, n + k
        while hi - lo > _GRAIN:
            mid = (lo + hi) // 2
            if new.endswith(view[o1 - mid : o1 - lo], 0, n1 - lo):
                lo = mid
            else:
                hi = mid
        return lo
    return limit


def _probe(
    old: bytes, new: bytes, o0: int, o1: int, n0: int, n1: int
) -> tuple[int, int, int] | None:
    """An old line that is still in the new text: (its start, its end, where it is now).

    Lines are unique (each starts with its own address), so a line found at a
    line start in the new stretch splits the problem in two.
    """
    for num, den in _PROBES:
        mid = o0 + (o1 - o0) * num // den
        nl = old.rfind(b"\n", o0, mid)
        ls = nl + 1 if nl >= 0 else o0
        le = old.find(b"\n", mid, o1) + 1
        if le <= ls:
            continue
        line = old[ls:le]
        at = new.find(line, n0, n1)
        while at > n0 and new[at - 1] != 10:
            at = new.find(line, at + 1, n1)  # the tail of a longer line: not this one
        if at != -1:
            return ls, le, at
    return None
