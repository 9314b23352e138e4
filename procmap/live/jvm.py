"""The JVM's own account of its memory, read from the live process (a stub until it lands)."""

from __future__ import annotations

from collections.abc import Sequence

from ..kernel.procfs import ProcessDir
from ..model import HeapRange, Mapping, Runtime


def read_ranges(
    pd: ProcessDir, mappings: Sequence[Mapping], runtime: Runtime, warnings: list[str]
) -> list[HeapRange]:
    """The Java heap, metaspace and code cache, as the JVM itself bounds them."""
    return []
