"""What runtimes say of their own memory, read from the live process.

A runtime that keeps its memory's bounds where a reader can find them (the
JVM publishes its own layout for debuggers, in gHotSpotVMStructs) is read
here, once per read of the map; classify.runtimes claims the ranges before
any rule that guesses.  A runtime whose layout cannot be read (no access to
its memory, a version whose layout procmap does not know) gives no ranges
and one warning: its memory keeps the kinds of any process.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..kernel.procfs import ProcessDir
from ..model import HeapRange, Mapping, Runtime
from . import jvm


def read_heap_ranges(
    pd: ProcessDir, mappings: Sequence[Mapping], runtimes: Sequence[Runtime], warnings: list[str]
) -> tuple[HeapRange, ...]:
    ranges: list[HeapRange] = []
    for r in runtimes:
        if r.name == "jvm":
            ranges.extend(jvm.read_ranges(pd, mappings, r, warnings))
    return tuple(ranges)
