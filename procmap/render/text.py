"""Turning untrusted text and numbers into safe, readable strings.

Pure (no rich): paths come from other processes' /proc files and from files
anyone may have named, so they can hold terminal escape sequences, control
characters, bytes that are not UTF-8 and right-to-left overrides.  printable()
shows each of those as a visible escape, so nothing in a path reaches the
terminal as a control sequence; callers wrap the result in rich Text, never in
markup, so "[bold]" in a path stays literal text.
"""

from __future__ import annotations

from ..names import escape
from ..units import address_width, human_size

__all__ = ["address_width", "human_size", "printable"]


def printable(s: str) -> str:
    """`s` with every non-printable character shown as an escape (\\x1b, \\u202e, \\xff).

    names.escape: the same escapes as JSON's, so a name reads the same in
    both, but for a backslash, left as it is here (escaping twice changes
    nothing).  Trailing spaces too (\\x20): at the end of a line or a cell
    they would vanish.
    """
    return escape(s, lossless=False)
