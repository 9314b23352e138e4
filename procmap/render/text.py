"""Turning untrusted text and numbers into safe, readable strings.

Pure (no rich): paths come from other processes' /proc files and from files
anyone may have named, so they can hold terminal escape sequences, control
characters, bytes that are not UTF-8 and right-to-left overrides.  printable()
shows each of those as a visible escape, so nothing in a path reaches the
terminal as a control sequence; callers wrap the result in rich Text, never in
markup, so "[bold]" in a path stays literal text.
"""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def printable(s: str) -> str:
    """`s` with every non-printable character shown as an escape (\\x1b, \\u202e, \\xff)."""
    if s.isprintable():
        return s
    out = []
    for ch in s:
        if ch.isprintable():
            out.append(ch)
            continue
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def human_size(n: int) -> str:
    """Bytes in binary units: 4 KiB, 1.5 MiB, 128 TiB."""
    size = float(n)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{n} B"
            return (
                f"{size:.0f} {unit}" if size >= 100 or size == int(size) else f"{size:.1f} {unit}"
            )
        size /= 1024
    raise AssertionError("unreachable")


def address_width(end: int) -> int:
    """Hex digits to show addresses of a map whose highest end is `end`."""
    return max(8, len(f"{end - 1:x}"))
