"""What is really in RAM: /proc/PID/smaps figures, per mapping and per region.

`parse_smaps` turns the smaps text into mappings (its header lines are maps
lines) and one `Resident` per mapping; `parse_rollup` reads smaps_rollup, the
same figures summed by the kernel.  Regions tile mappings, and most mappings
are one region, which takes the mapping's figures whole.  A mapping split
into several regions (data | bss, an arena's used part | its reserve, a
guard | a stack) has one set of figures: `attribute` shares them out so
that every total stays exact.  (Pure: the pagemap bytes come from procfs.)

How a split mapping's figures are shared, when /proc/PID/pagemap is readable:
each region gets the mapping's resident figures (RSS, PSS, clean, dirty,
anonymous...) in proportion to its bytes in resident pages, and its swap
figures in proportion to its bytes in swapped-out pages; pagemap says which
page is which.  (A page two regions share, data | bss, counts for each by
the bytes it holds.)  When pagemap is not readable, in proportion to each
region's size.  Shares are whole KiB (smaps' unit), by largest remainder, so
they add up to the mapping's figure.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import MapsFormatError
from .maps import Mapping, parse_maps


class Resident(NamedTuple):
    """One mapping's (or region's, or kind's) memory figures from smaps, in bytes."""

    rss: int = 0  # resident in RAM
    pss: int = 0  # RSS with each page divided by the number of processes mapping it
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    swap: int = 0
    anonymous: int = 0  # not backed by a file: heap, stacks, copy-on-write copies
    referenced: int = 0  # accessed since the flags were last cleared
    pss_dirty: int = 0  # Linux 6.0+
    swap_pss: int = 0
    locked: int = 0  # mlock()ed
    lazyfree: int = 0  # MADV_FREE'd, reclaimable
    ksm: int = 0  # merged with identical pages by KSM (Linux 6.5+)
    anon_huge: int = 0  # of anonymous, in transparent huge pages
    shmem_pmd: int = 0
    file_pmd: int = 0
    shared_hugetlb: int = 0  # hugetlbfs pages are not in RSS: here
    private_hugetlb: int = 0

    @property
    def dirty(self) -> int:
        return self.shared_dirty + self.private_dirty

    @property
    def private(self) -> int:
        return self.private_clean + self.private_dirty

    def to_dict(self) -> dict[str, int]:
        return dict(zip(self._fields, self))


FIGURES = Resident._fields
ZERO = Resident()

# smaps' names for Resident's fields (proc(5), Documentation/filesystems/proc.rst).
_INDEX = {
    name: FIGURES.index(field)
    for name, field in {
        b"Rss": "rss",
        b"Pss": "pss",
        b"Shared_Clean": "shared_clean",
        b"Shared_Dirty": "shared_dirty",
        b"Private_Clean": "private_clean",
        b"Private_Dirty": "private_dirty",
        b"Swap": "swap",
        b"Anonymous": "anonymous",
        b"Referenced": "referenced",
        b"Pss_Dirty": "pss_dirty",
        b"SwapPss": "swap_pss",
        b"Locked": "locked",
        b"LazyFree": "lazyfree",
        b"KSM": "ksm",
        b"AnonHugePages": "anon_huge",
        b"ShmemPmdMapped": "shmem_pmd",
        b"FilePmdMapped": "file_pmd",
        b"Shared_Hugetlb": "shared_hugetlb",
        b"Private_Hugetlb": "private_hugetlb",
    }.items()
}
_SWAP_FIELDS = frozenset((FIGURES.index("swap"), FIGURES.index("swap_pss")))
# A header line starts with the start address in lower-case hex; a field's
# name with a capital letter.
_HEX_FIRST = frozenset(b"0123456789abcdef")


# Each mapping's block in smaps has the same lines in the same order
# (show_smap prints every field, zeros too), so the text splits into columns:
# line p of every block is one field.  A column is checked whole with one
# count, and one of all zeros (most are) costs no int() at all.  2,000
# mappings: 6 ms, against 27 ms line by line.
_HEADER = re.compile(rb"^[0-9a-f][^\n]*\n", re.M)


def parse_smaps(data: bytes) -> tuple[list[Mapping], list[Resident]]:
    """The mappings of an smaps text, and each one's figures (same order).

    Raises MapsFormatError for a header line that is not in maps format, or a
    figure that is not a number of kB.
    """
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if not lines:
        return [], []
    size = 1  # lines in a block: up to the next header
    while size < len(lines) and not (lines[size][:1] and lines[size][0] in _HEX_FIRST):
        size += 1
    n = len(lines) // size
    headers = lines[0::size]
    columns = _columns(lines, size, n) if n * size == len(lines) else None
    if columns is None:
        headers = _HEADER.findall(data)
        mappings = parse_maps(b"".join(headers))
        figures = _parse_blocks(data)
    else:
        mappings = parse_maps(b"\n".join(headers) + b"\n")
        figures = list(map(Resident._make, zip(*columns)))
    if len(figures) != len(mappings):
        figures = _kept(headers, mappings, figures)
    return mappings, figures


def _kept(headers: list[bytes], mappings: list[Mapping], figures: list[Resident]):
    """The figures of the blocks whose header parse_maps kept.

    smaps is read in several read() calls, as maps is, and a block can be printed
    twice; parse_maps drops the repeat (a header that does not start above the
    last one's end), and its figures must go with it, or every later mapping
    would get its neighbour's.  A dropped header starts below the next kept one.
    """
    kept = []
    starts = iter([m.start for m in mappings])
    want = next(starts, None)
    for header, f in zip(headers, figures):
        fields = header.split(None, 1)  # blank, or a header parse_maps read
        if fields and int(fields[0].partition(b"-")[0], 16) == want:
            kept.append(f)
            want = next(starts, None)
    return kept


def _columns(lines: list[bytes], size: int, n: int) -> list[list[int]] | None:
    """Each figure's values, a column per field; None if the blocks are not alike."""
    zeros = [0] * n
    columns = [zeros] * len(FIGURES)
    for p in range(1, size):
        name = lines[p].partition(b":")[0]
        i = _INDEX.get(name)
        if i is None:
            continue
        column = lines[p::size]
        joined = b"\n".join(column) + b"\n"
        if joined.count(b"\n" + name + b":") + joined.startswith(name + b":") != n:
            return None  # a block with lines of its own: not a kernel's smaps
        if joined.count(b" 0 kB\n") == n:
            continue
        cut = len(name) + 1
        try:
            values = [int(v[cut:-3]) << 10 for v in column]
        except ValueError:
            values = [-1]
        if min(values) < 0 or joined.count(b" kB\n") != n:
            raise _not_a_figure(next((v for v in column if _figure(v) < 0), column[0]))
        columns[i] = values
    return columns


def _parse_blocks(data: bytes) -> list[Resident]:
    """Line by line: for a text whose blocks differ (not seen from a kernel)."""
    rows: list[list[int]] = []
    row: list[int] = []
    index = _INDEX
    for line in data.split(b"\n"):
        if not line:
            continue
        if line[0] in _HEX_FIRST:
            row = [0] * len(FIGURES)
            rows.append(row)
            continue
        name, _, value = line.partition(b":")
        i = index.get(name)
        if i is not None and rows:
            figure = _figure(line)
            if figure < 0:
                raise _not_a_figure(line)
            row[i] = figure << 10
    return [Resident(*r) for r in rows]


def _figure(line: bytes) -> int:
    """The kB of a figure's line ("Rss:      16 kB"), -1 if it is not one."""
    value = line.partition(b":")[2]
    if not value.endswith(b" kB"):
        return -1
    try:
        return max(int(value[:-3]), -1)
    except ValueError:
        return -1


def _not_a_figure(line: bytes) -> MapsFormatError:
    shown = line[:80].decode("ascii", "backslashreplace")
    return MapsFormatError(f"not a figure in kB, as smaps gives them: {shown!r}")


def maps_text_of(smaps: bytes) -> bytes:
    """The maps text inside an smaps text: its header lines."""
    return b"".join(_HEADER.findall(smaps))


def parse_rollup(data: bytes) -> Resident:
    """/proc/PID/smaps_rollup (Linux 4.14+): the figures of every mapping, summed."""
    _, figures = parse_smaps(data)
    return figures[0] if figures else ZERO


def total(figures) -> Resident:
    out = [0] * len(FIGURES)
    for f in figures:
        for i, v in enumerate(f):
            out[i] += v
    return Resident(*out)


# --- pages ----------------------------------------------------------------------------

_PRESENT = 1 << 63
_SWAPPED = 1 << 62


def page_states(pagemap: bytes) -> str:
    """One character per page from /proc/PID/pagemap entries: r resident, s swapped, . neither.

    Each entry is 64 bits, native order (Documentation/admin-guide/mm/pagemap.rst):
    bit 63 present in RAM, bit 62 swapped.  These bits are given to any reader
    allowed to read the maps; only the frame numbers need CAP_SYS_ADMIN.
    """
    entries = memoryview(pagemap).cast("Q")
    return "".join("r" if e & _PRESENT else "s" if e & _SWAPPED else "." for e in entries)


# --- sharing a mapping's figures among its regions -------------------------------------

# How a region's figures were found: it is a whole mapping; a share of its
# mapping's by the pages it holds; a share by its size.
WHOLE, BY_PAGES, BY_SIZE = "mapping", "pages", "size"


def split_mappings(mappings: list[Mapping], regions) -> list[Mapping]:
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
    mappings: list[Mapping],
    figures: list[Resident],
    regions,
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
        columns = [_share(v, swapped if i in _SWAP_FIELDS else resident) for i, v in enumerate(f)]
        out.extend(Resident(*values) for values in zip(*columns))
        how.extend([method] * len(group))
    return out, how


def _page_weights(start: int, group, state: str, page_size: int):
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
    if not value:
        return [0] * len(weights)
    units, whole = value >> 10, sum(weights)
    if not whole:
        weights, whole = [1] * len(weights), len(weights)
    parts = [units * w // whole for w in weights]
    # Largest remainder: the units left go to the largest fractions, in order.
    left = units - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: -(units * weights[i] % whole))
    for i in order[:left]:
        parts[i] += 1
    return [p << 10 for p in parts]
