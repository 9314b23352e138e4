"""Names from outside (paths, process and thread names, command lines) as safe text.

Core: no click, no rich.  A name comes from another process's /proc files or
from a file anyone may have named: it can hold control characters, escape
sequences, right-to-left overrides and bytes that are not UTF-8 (decoded
with "surrogateescape", as os.fsdecode does).  `escape` writes every such
character as a visible escape, the same in the text view, in JSON and in
snapshots' JSON views, so the output is always printable, valid UTF-8:

    a byte that is not UTF-8        \\xff
    a non-printable character       \\x1b (below 0x80), \\u0085, \\u202e, \\U000e0001
    a trailing space                \\x20 (it would vanish at a line's end)
    a backslash that starts \\x, \\u, \\U or \\\\ in the name   \\\\

Any other backslash is itself (so the kernel's "\\012" for a newline in a
path reads as the kernel wrote it).  The text view leaves every backslash as
it is (`lossless=False`): it is for reading, JSON for getting the bytes back.
`unescape` undoes `escape` exactly: os.fsencode(unescape(s)) gives a file
name's bytes back.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NEEDS_DOUBLING = frozenset("xuU\\")


def escape(s: str, lossless: bool = True) -> str:
    """`s` with every character that is not plainly printable written as an escape.

    `lossless=False`, for the text view: backslashes are left as they are, so
    that text escaped twice reads the same as once (render code escapes labels
    built from escaped parts); only a name holding a backslash before x, u, U
    or an escape reads differently from its JSON.
    """
    if s.isprintable() and not s.endswith(" ") and ("\\" not in s or not lossless):
        return s  # nearly every name: nothing to do
    body = s.rstrip(" ")
    out = []
    for i, ch in enumerate(body):
        if ch == "\\" and lossless:
            # Doubled when what follows it in the output starts x, u, U or a
            # backslash: one of those letters, a backslash, or an escape.
            following = body[i + 1 : i + 2] or s[len(body) : len(body) + 1]
            doubled = following and (following in _NEEDS_DOUBLING or _escaped(following))
            out.append("\\\\" if doubled else "\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
                out.append(f"\\x{code - 0xDC00:02x}")
            elif code < 0x80:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append("\\x20" * (len(s) - len(body)))
    return "".join(out)


def _escaped(ch: str) -> bool:
    """Whether `escape` writes `ch` as an escape (a trailing space aside)."""
    return ch == " " or not ch.isprintable()


_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def unescape(s: str) -> str:
    """The name `escape` wrote as `s` (bytes that were not UTF-8 as surrogates)."""
    if "\\" not in s:
        return s
    return _ESCAPE.sub(_one, s)


def _one(match: re.Match[str]) -> str:
    text = match.group(1)
    if text == "\\":
        return "\\"
    code = int(text[1:], 16)
    if text[0] == "x" and code >= 0x80:
        return chr(0xDC00 + code)  # a byte, not a character: surrogateescape's
    return chr(code)


def escape_all(data: Any) -> Any:
    """JSON-shaped `data` with every string (keys too) escaped: valid UTF-8, lossless."""
    if isinstance(data, str):
        return escape(data)
    if isinstance(data, dict):
        return {escape(k) if isinstance(k, str) else k: escape_all(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [escape_all(v) for v in data]
    return data


def to_json(data: Any, indent: int | None = None) -> str:
    """`data` as JSON text, every string escaped (`escape_all`) where it needs it.

    The usual document has nothing to escape, and escaping every string of a
    map of 30,000 regions would cost twice the dump: so the dump comes first,
    ASCII only, where any string with something to escape shows a backslash
    (a control character, a backslash, a quote, any non-ASCII character) or
    ends in a space (` "`, which a compact dump has nowhere else); only then
    is every string escaped and the dump made again.
    """
    text = json.dumps(data, separators=(",", ":"))
    if "\\" in text or ' "' in text:
        data = escape_all(data)
        text = json.dumps(data, separators=(",", ":"))
    return text if indent is None else json.dumps(data, indent=indent)
