"""Each region's memory figures: smaps gives them per mapping, regions tile mappings.

Most mappings are one region, which takes the mapping's figures whole.  A
mapping split into several regions (data | bss, an arena's used part | its
reserve, a guard | a stack, code | read-only data) has one set of figures:
`attribute` shares them out so that every total stays exact.

How a split mapping's figures are shared, when /proc/PID/pagemap is readable:
each region gets the mapping's resident figures (RSS, PSS, clean, dirty,
anonymous...) in proportion to its bytes in resident pages, and its swap
figures in proportion to its bytes in swapped-out pages; pagemap says which
page is which.  (A page two regions share, data | bss, counts for each by
the bytes it holds.)  When pagemap is not readable, in proportion to each
region's size.  Shares are whole KiB (smaps' unit), by largest remainder, so
they add up to the mapping's figure.  Pure: the page states come from the
kernel readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model import BY_PAGES, BY_SIZE, FIGURES, WHOLE, Mapping, Region, Resident

_SWAP_FIELDS = frozenset((FIGURES.index("swap"), FIGURES.index("swap_pss")))


def split_mappings(mappings: Sequence[Mapping], regions: Sequence[Region]) -> list[Mapping]:
    """The mappings that are more than one region."""
    out = []
    k, n = 0, len(regions)
    for m in mappings:
        if regions[k].end == m.end:
            k += 1
            continue
        out.append(m)
        while k < n and regions[k].end <= m.end:
            k += 1
    return out


def attribute(
    mappings: Sequence[Mapping],
    figures: Sequence[Resident],
    regions: Sequence[Region],
    states: dict[int, str],
    page_size: int,
) -> tuple[list[Resident], list[str]]:
    """Each region's figures, and how they were found (WHOLE, BY_PAGES, BY_SIZE).

    `states` holds page_states() of split mappings by start address, where
    pagemap could be read.  The regions of each mapping add up to its figures.
    """
    out: list[Resident] = []
    how: list[str] = []
    k, n = 0, len(regions)
    for m, f in zip(mappings, figures):
        r = regions[k]
        if r.end == m.end:
            out.append(f)
            how.append(WHOLE)
            k += 1
            continue
        group = []
        while k < n and regions[k].end <= m.end:
            group.append(regions[k])
            k += 1
        state = states.get(m.start)
        if state is not None and len(state) * page_size >= m.end - m.start:
            resident, swapped = _page_weights(m.start, group, state, page_size)
            method = BY_PAGES
        else:
            resident = swapped = [r.end - r.start for r in group]
            method = BY_SIZE
        zeros = [0] * len(group)  # most figures are 0: no call for them
        columns = [
            _share(v, swapped if i in _SWAP_FIELDS else resident) if v else zeros
            for i, v in enumerate(f)
        ]
        out.extend(Resident(*values) for values in zip(*columns))
        how.extend([method] * len(group))
    return out, how


def _page_weights(
    start: int, group: list[Region], state: str, page_size: int
) -> tuple[list[int], list[int]]:
    """Resident and swapped bytes of each region, page by page.

    A page that two regions share (data | bss inside one page) counts for
    each in proportion to the bytes it holds of the page.
    """
    resident, swapped = [], []
    for r in group:
        a, b = r.start - start, r.end - start  # offsets into the mapping
        first, last = a // page_size, (b - 1) // page_size  # the pages r touches
        if first == last:
            pages = {first: b - a}
        else:
            pages = {first: (first + 1) * page_size - a, last: b - last * page_size}
        inner = state[first + 1 : last]
        rb = inner.count("r") * page_size
        sb = inner.count("s") * page_size
        for page, held in pages.items():
            c = state[page]
            if c == "r":
                rb += held
            elif c == "s":
                sb += held
        resident.append(rb)
        swapped.append(sb)
    # Nothing resident (or swapped) by pagemap, yet smaps counts some: the
    # process changed between the two reads.  Share by size then.
    sizes = [r.end - r.start for r in group]
    return (resident if any(resident) else sizes), (swapped if any(swapped) else sizes)


def _share(value: int, weights: list[int]) -> list[int]:
    """value (a multiple of 1 KiB) in whole KiB by weight, adding up exactly."""
    return [p << 10 for p in largest_remainder(value >> 10, weights)]


def largest_remainder(units: int, weights: list[int]) -> list[int]:
    """`units` whole units shared out by weight, adding up exactly (equally, if no weight).

    Each gets its whole share; the units left go to the largest fractions, in order.
    """
    if not units:
        return [0] * len(weights)
    whole = sum(weights)
    if not whole:
        weights, whole = [1] * len(weights), len(weights)
    parts = [units * w // whole for w in weights]
    left = units - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: -(units * weights[i] % whole))
    for i in order[:left]:
        parts[i] += 1
    return parts
