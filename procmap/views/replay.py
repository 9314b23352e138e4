"""A Snapshot shown again: its maps classified with the facts and ELF layouts it saved.

Shared by saved snapshots (views/snapshot.py) and core files (views/core.py):
the same rules, the same facts, as when the process was live.
"""

from __future__ import annotations

from ..classify import classify
from ..classify.resident import attribute
from ..classify.threads import describe_threads
from ..errors import BadSnapshot
from ..kernel.maps import parse_maps
from ..kernel.smaps import parse_rollup, parse_smaps
from ..model import ProcessMap, Snapshot


def replay(
    snapshot: Snapshot, rss: bool = False, threads: bool = False, shared: bool = False
) -> ProcessMap:
    """The map a Snapshot holds, classified as it was live (same rules, same facts).

    With threads, its `threads` rows as well (classify.threads), from the names
    and states it saved, or, in an older snapshot, from its stack pointers alone.
    With shared (and rss), each region's Sharing as it was saved (--save --shared).
    """
    figures = None
    if snapshot.smaps is not None:
        mappings, figures = parse_smaps(snapshot.smaps)
    else:
        mappings = parse_maps(snapshot.maps)
    if not mappings:
        raise BadSnapshot(f"{snapshot.info.name}: no mappings in it")
    result = classify(mappings, snapshot.layouts, snapshot.facts)
    resident = resident_from = None
    rollup = None
    if rss:
        if figures is None:
            raise BadSnapshot(
                f"{snapshot.info.name}: no memory figures in it (it holds maps, not smaps)"
            )
        page_size = snapshot.facts.page_size
        resident, resident_from = attribute(
            mappings, figures, result.regions, snapshot.page_states, page_size
        )
        rollup = parse_rollup(snapshot.rollup) if snapshot.rollup else None
    warnings = list(snapshot.warnings)
    warnings.extend(w for w in result.warnings if w not in warnings)
    pmap = ProcessMap(
        info=snapshot.info,
        mappings=mappings,
        regions=result.regions,
        images=result.images,
        warnings=warnings,
        page_size=snapshot.facts.page_size,
        resident=resident,
        resident_from=resident_from,
        rollup=rollup,
        runtimes=snapshot.facts.runtimes or (),
    )
    if shared:
        pmap = _with_saved_sharing(pmap, snapshot)
    if threads:
        pmap = pmap._replace(threads=describe_threads(pmap, snapshot.facts, snapshot.threads))
        if snapshot.source == "core" and snapshot.facts.thread_stack_size is None:
            warnings.append(
                "a core does not hold RLIMIT_STACK: what the main thread has left is "
                "bounded by the stack guard gap alone"
            )
    return pmap


def _with_saved_sharing(pmap: ProcessMap, snapshot: Snapshot) -> ProcessMap:
    saved = snapshot.sharing
    name = snapshot.info.name
    if saved is None:
        raise BadSnapshot(f"{name}: no sharing in it (saved without --shared)")
    try:
        sharing = [saved.regions[(r.start, r.end)] for r in pmap.regions]
    except KeyError:
        raise BadSnapshot(
            f"{name}: its sharing was saved for other regions than this procmap finds "
            f"in its map (saved by procmap {snapshot.procmap_version})"
        ) from None
    return pmap._replace(sharing=sharing, sharing_scope=saved.scope)
