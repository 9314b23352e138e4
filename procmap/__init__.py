"""procmap: where everything in a Linux process's memory lives, and why.

The Python API needs neither click nor rich:

    >>> import procmap
    >>> pmap = procmap.read_map("self")           # a PID or "self"
    >>> pmap.region_at(id(pmap)).kind              # doctest: +SKIP
    'heap'
    >>> [loc.kind for loc in procmap.where("self", [0x1000])]
    [None]
    >>> procmap.read_elf("/bin/sh").loads          # doctest: +SKIP
    >>> procmap.explain_elf("/bin/sh").facts.relro  # doctest: +SKIP
    'full'

Names are imported on first use, so `import procmap.maps` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "KINDS": "classify",
    "Region": "classify",
    "LoadedImage": "classify",
    "Facts": "classify",
    "classify": "classify",
    "ElfLayout": "elf",
    "read_elf": "elf",
    "read_symbols": "elf",
    "Explanation": "explain",
    "explain_elf": "explain",
    "plan_mappings": "explain",
    "RunResult": "run",
    "run_and_stop": "run",
    "ProcmapError": "errors",
    "Mapping": "maps",
    "parse_maps": "maps",
    "Band": "picture",
    "Picture": "picture",
    "picture_of": "picture",
    "plan_picture": "picture",
    "Location": "process",
    "ProcessMap": "process",
    "locate": "process",
    "read_map": "process",
    "capture": "process",
    "replay": "process",
    "Resident": "smaps",
    "Snapshot": "snapshot",
    "resolve_target": "process",
    "where": "process",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'procmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
