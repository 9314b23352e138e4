"""procmap: where everything in a Linux process's memory lives, and why.

The Python API needs neither click nor rich:

    >>> import procmap
    >>> pmap = procmap.read_map("self")           # a PID or "self"
    >>> pmap.region_at(id(pmap)).kind              # doctest: +SKIP
    'heap'
    >>> [loc.kind for loc in procmap.where("self", [0x1000])]
    [None]
    >>> procmap.read_elf("/bin/sh").loads          # doctest: +SKIP
"""

from .classify import KINDS, LoadedImage, Region, classify
from .elf import ElfLayout, read_elf, read_symbols
from .errors import ProcmapError
from .maps import Mapping, parse_maps
from .process import Location, ProcessMap, locate, read_map, resolve_target, where

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "ElfLayout",
    "LoadedImage",
    "Location",
    "Mapping",
    "ProcessMap",
    "ProcmapError",
    "Region",
    "classify",
    "locate",
    "parse_maps",
    "read_elf",
    "read_map",
    "read_symbols",
    "resolve_target",
    "where",
]
