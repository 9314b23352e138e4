"""The memory figures of /proc/PID/smaps, smaps_rollup, statm and pagemap, parsed.

Pure: bytes in, records out.  `parse_smaps` turns the smaps text into mappings
(its header lines are maps lines) and one `Resident` per mapping;
`parse_rollup` reads smaps_rollup, the same figures summed by the kernel;
`page_states` says which pages pagemap finds in RAM or in swap.  Sharing a
mapping's figures among the regions it holds is the classifier's business
(classify.resident).
"""

from __future__ import annotations

import re

from ..errors import MapsFormatError
from ..model import FIGURES, ZERO, Mapping, Resident
from .maps import parse_maps

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


def parse_smaps(
    data: bytes, only: frozenset[str] | None = None
) -> tuple[list[Mapping], list[Resident]]:
    """The mappings of an smaps text, and each one's figures (same order).

    `only`: the names of the Resident fields wanted (the others are left 0),
    for a reader of many processes that needs few: `procmap system` reads five
    of the nineteen, in a third of the time (30 mappings: 55 us, not 170).
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
    wanted = None if only is None else frozenset(FIGURES.index(f) for f in only)
    columns = _columns(lines, size, n, wanted) if n * size == len(lines) else None
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


def _kept(headers: list[bytes], mappings: list[Mapping], figures: list[Resident]) -> list[Resident]:
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


def _columns(
    lines: list[bytes], size: int, n: int, wanted: frozenset[int] | None = None
) -> list[list[int]] | None:
    """Each figure's values, a column per field; None if the blocks are not alike."""
    zeros = [0] * n
    columns = [zeros] * len(FIGURES)
    for p in range(1, size):
        name = lines[p].partition(b":")[0]
        i = _INDEX.get(name)
        if i is None or (wanted is not None and i not in wanted):
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


def _parse_blocks(data: bytes, wanted: frozenset[int] | None = None) -> list[Resident]:
    """Line by line: for a text whose blocks differ (not seen from a kernel), and for
    smaps_rollup's one block."""
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
        if i is not None and rows and (wanted is None or i in wanted):
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


def parse_rollup(data: bytes, only: frozenset[str] | None = None) -> Resident:
    """/proc/PID/smaps_rollup (Linux 4.14+): the figures of every mapping, summed
    (`only`: as parse_smaps).  One block, read line by line: no columns to gain."""
    wanted = None if only is None else frozenset(FIGURES.index(f) for f in only)
    figures = _parse_blocks(data, wanted)
    return figures[0] if figures else ZERO


# --- pages ----------------------------------------------------------------------------

# The bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
PM_PRESENT = 1 << 63  # in RAM
PM_SWAPPED = 1 << 62
PM_FILE = 1 << 61  # a file page, or shared anonymous (shmem)
PM_EXCLUSIVE = 1 << 56  # mapped exactly once (Linux 4.2+)
PM_FRAME = (1 << 55) - 1  # bits 0-54: the page frame number; zero without CAP_SYS_ADMIN
_PRESENT, _SWAPPED = PM_PRESENT, PM_SWAPPED


def page_states(pagemap: bytes) -> str:
    """One character per page from /proc/PID/pagemap entries: r resident, s swapped, . neither.

    Each entry is 64 bits, native order (Documentation/admin-guide/mm/pagemap.rst):
    bit 63 present in RAM, bit 62 swapped.  These bits are given to any reader
    allowed to read the maps; only the frame numbers need CAP_SYS_ADMIN.
    """
    entries = memoryview(pagemap).cast("Q")
    return "".join("r" if e & _PRESENT else "s" if e & _SWAPPED else "." for e in entries)


def page_entries(pagemap: bytes) -> memoryview:
    """/proc/PID/pagemap bytes as 64-bit entries, one per page (native order)."""
    return memoryview(pagemap).cast("Q")


def parse_statm(data: bytes) -> int | None:
    """Resident pages from /proc/PID/statm (proc(5): size resident shared text lib data dt).

    None when the process has no memory left (an exiting process prints zeros).
    """
    fields = data.split()
    if len(fields) < 2 or fields[0] == b"0":
        return None
    return int(fields[1])
