"""jemalloc, tcmalloc and mimalloc: their heaps, from their layouts (stubs until the rules land)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..model import Facts, HeapRange, Mapping, Runtime


def mimalloc_early(maps: Sequence[Mapping], facts: Facts, runtime: Runtime) -> Iterable[HeapRange]:
    return ()


def mimalloc_late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterable[HeapRange]:
    return ()


def jemalloc_late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterable[HeapRange]:
    return ()


def tcmalloc_late(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, runtime: Runtime
) -> Iterable[HeapRange]:
    return ()
