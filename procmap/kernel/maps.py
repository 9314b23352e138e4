"""The text of /proc/PID/maps, parsed into mapping records.

Pure: bytes in, records out.  One line per virtual memory area (VMA), as the
kernel prints it in fs/proc/task_mmu.c (show_map_vma):

    55d4c0de0000-55d4c0de2000 r--p 00000000 fe:00 260131        /usr/bin/cat

start-end (hex), permissions (r, w, x, and p(rivate) or s(hared)), file offset
(hex), device major:minor (hex), inode (decimal), then, padded, the path or a
kernel name such as [heap].  proc(5): only a newline in a path is escaped, as
\\012, so a path may hold spaces, trailing spaces, backslashes and bytes that
are not UTF-8; the path keeps them (decoded with surrogateescape, so
os.fsencode() gives the exact bytes back).
"""

from __future__ import annotations

from ..errors import MapsFormatError
from ..model import Mapping

# The kernel pads the path to this column: seq_setwidth(m, 25 + sizeof(void *) * 6 - 1)
# on 64-bit; used only to write lines exactly as the kernel does.
_PATH_COLUMN_64 = 25 + 8 * 6 - 1


_HEX = b"0123456789abcdef"
_PERMS: dict[bytes, str] = {}  # valid permission fields seen: at most 16 of them


def parse_maps(data: bytes, every_line: bool = False) -> list[Mapping]:
    """Parse the bytes of a /proc/PID/maps file into mappings, in address order.

    Reading /proc/PID/maps takes several read() calls, and a VMA that changes
    between two of them can be printed twice; a line that does not start above
    the previous one's end is such a repeat and is dropped (`dropped_lines`
    counts them).  With `every_line`, for a text that did not come from a live
    read, every line is kept, in the text's order, for the caller to check.

    Raises MapsFormatError, naming the line, for text that is not maps format.
    """
    mappings: list[Mapping] = []
    append = mappings.append
    last_end = 0
    perms_cache = _PERMS
    # split() + int() beats a compiled regex by ~25% here (0.93 vs 1.27 us a line,
    # CPython 3.11, 10,400 lines).
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line:
            continue
        fields = line.split(None, 5)
        try:
            low, dash, high = fields[0].partition(b"-")
            start = int(low, 16)
            end = int(high, 16)
            raw_perms = fields[1]
            perms = perms_cache.get(raw_perms)
            if perms is None:
                perms = _parse_perms(raw_perms)
                perms_cache[raw_perms] = perms
            offset = int(fields[2], 16)
            dev = fields[3].decode("ascii")
            inode = int(fields[4])
        except (IndexError, ValueError, UnicodeDecodeError):
            raise MapsFormatError(_bad_line(number, line)) from None
        # int() also takes signs, "0x" and "_", which the kernel never prints:
        # every number field must be bare hex digits (the inode, decimal ones).
        # An address is an unsigned long: past 2**64 - 1 it is not a kernel's text.
        major, colon, minor = fields[3].partition(b":")
        if (
            end <= start
            or end >> 64
            or not (dash and colon and major and minor)
            or (low + high + fields[2] + major + minor).strip(_HEX)
            or not fields[4].isdigit()
        ):
            raise MapsFormatError(_bad_line(number, line))
        if start < last_end and not every_line:
            continue  # repeated across two read() calls
        last_end = end
        path = fields[5].decode("utf-8", "surrogateescape") if len(fields) == 6 else None
        append(Mapping(start, end, perms, offset, dev, inode, path))
    return mappings


def dropped_lines(data: bytes, mappings: list[Mapping]) -> int:
    """How many of the lines of `data` parse_maps dropped as repeats."""
    lines = data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
    if lines == len(mappings):
        return 0  # the usual case, without splitting the text
    return sum(1 for line in data.split(b"\n") if line.strip()) - len(mappings)


def _parse_perms(raw: bytes) -> str:
    perms = raw.decode("ascii")
    if (
        len(perms) != 4
        or perms[0] not in "r-"
        or perms[1] not in "w-"
        or perms[2] not in "x-"
        or perms[3] not in "ps"
    ):
        raise ValueError(perms)
    return perms


def _bad_line(number: int, line: bytes) -> str:
    shown = line[:80].decode("ascii", "backslashreplace")
    return f"line {number} is not in /proc/PID/maps format: {shown!r}"


def format_mapping(m: Mapping) -> str:
    """One maps line, byte for byte as a 64-bit kernel prints it (without the newline)."""
    head = f"{m.start:08x}-{m.end:08x} {m.perms} {m.offset:08x} {m.dev} {m.inode} "
    if m.path is None:
        return head
    return head.ljust(_PATH_COLUMN_64) + " " + m.path
