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

Names are imported on first use, so `import procmap.kernel.maps` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    # the records
    "KINDS": "model",
    "Detail": "model",
    "Facts": "model",
    "LoadedImage": "model",
    "Location": "model",
    "Mapping": "model",
    "ProcessInfo": "model",
    "ProcessMap": "model",
    "Region": "model",
    "Resident": "model",
    "Snapshot": "model",
    "ProcmapError": "errors",
    # reading the kernel and ELF files
    "parse_maps": "kernel.maps",
    "parse_smaps": "kernel.smaps",
    "ElfLayout": "elf",
    "read_elf": "elf",
    "read_symbols": "elf",
    # classifying (the function is procmap.classify.classify: the name is its package's)
    "locate": "classify.locate",
    # a live process
    "read_map": "live.capture",
    "where": "live.capture",
    "capture": "live.capture",
    "resolve_target": "live.capture",
    "Sampler": "live.sampler",
    # views
    "Explanation": "views.explain",
    "explain_elf": "views.explain",
    "plan_mappings": "views.explain",
    "RunResult": "views.run",
    "run_and_stop": "views.run",
    "Band": "views.picture",
    "Picture": "views.picture",
    "map_picture": "views.picture",
    "picture_of": "views.picture",
    "plan_picture": "views.picture",
    "replay": "views.replay",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'procmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
