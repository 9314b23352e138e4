"""Turning untrusted text and numbers into safe, readable strings.

Pure (no rich): paths come from other processes' /proc files and from files
anyone may have named, so they can hold terminal escape sequences, control
characters, bytes that are not UTF-8 and right-to-left overrides.  printable()
shows each of those as a visible escape, so nothing in a path reaches the
terminal as a control sequence; callers wrap the result in rich Text, never in
markup, so "[bold]" in a path stays literal text.
"""

from __future__ import annotations

from ..units import address_width, human_size

__all__ = ["address_width", "human_size", "printable"]


def printable(s: str) -> str:
    """`s` with every non-printable character shown as an escape (\\x1b, \\u202e, \\xff).

    Trailing spaces too (\\x20): at the end of a line or a cell they would vanish,
    and "/tmp/a " is not "/tmp/a".
    """
    if s.isprintable() and not s.endswith(" "):
        return s
    body = s.rstrip(" ")
    out = []
    for ch in body:
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
    out.append("\\x20" * (len(s) - len(body)))
    return "".join(out)
