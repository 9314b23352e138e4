"""The jvm runtime's memory, from its layout (a stub until its rules land)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..model import Facts, HeapRange, Mapping, Runtime


def early(maps: Sequence[Mapping], facts: Facts, runtime: Runtime) -> Iterable[HeapRange]:
    """Memory whose place the runtime's design fixes: claimed before other rules."""
    return ()
