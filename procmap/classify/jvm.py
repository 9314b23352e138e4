"""The JVM's memory that its layout alone tells: the perf-data file it maps.

The Java heap, the code cache and the class metadata are read from the JVM
itself (live.jvm), never guessed from their shapes: a Java heap has the shape
of any large anonymous reservation, and a wrong certainty is worse than a
plain mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..model import Detail, Facts, HeapRange, Mapping, Runtime

# HotSpot's perf-data file (perfMemory_linux.cpp): /tmp/hsperfdata_USER/PID,
# mapped shared (MAP_SHARED) so that jstat and jcmd can read its counters.
_PERF_DIR = "/hsperfdata_"


def early(maps: Sequence[Mapping], facts: Facts, runtime: Runtime) -> Iterable[HeapRange]:
    """The perf-data file the JVM maps, by its path."""
    for m in maps:
        path = m.path
        if path is None or _PERF_DIR not in path or not m.perms.endswith("s"):
            continue
        if is_perf_data_path(path):
            yield HeapRange(m.start, m.end, "mmap", Detail.JVM_PERF_DATA, "jvm")


def is_perf_data_path(path: str) -> bool:
    """/.../hsperfdata_USER/PID (a container's JVM may show another /tmp)."""
    directory, _, name = path.rpartition("/")
    return name.isdigit() and directory.rpartition("/")[2].startswith("hsperfdata_")
