"""Numbers as people read them: sizes in binary units, addresses at a fixed width.

Pure, shared by the core (the watch's sentences) and the views.
"""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


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


def plural(n: int, one: str, many: str | None = None) -> str:
    """ "1 process", "3 processes": a count and its noun."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
