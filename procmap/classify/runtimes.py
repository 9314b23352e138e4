"""Allocators and language runtimes: which a process uses, and the memory each manages.

Pure.  `identify` tells, once per ELF file, which allocators or runtimes the
file holds, from its name, its sections and the symbols it defines (the
reader hands in what it found; classify never opens a file).  `runtimes_of`
turns that into the process's list, in the order of its mappings, and says
which one answers malloc().  The classifier then asks each runtime's rules
for the memory it manages:

- early rules, before glibc's arena rule and the thread stacks: memory whose
  place is known, because the runtime said so (Facts.heap_ranges, read from
  the process by live.runtimes) or because the runtime's design fixes it
  (the Go heap's arena hints, mimalloc's aligned hint area);
- late rules, after the thread stacks: memory found by its shape among the
  mappings no other rule took (jemalloc's and tcmalloc's), marked heuristic.

glibc's arena rule fires only where glibc answers malloc, and never on
memory an early rule claimed (a Go heap arena has an arena's shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from typing import NamedTuple

from ..elf import ElfLayout
from ..model import Facts, FileKey, HeapRange, Mapping, Runtime, strip_deleted
from . import go, jvm, mallocs, v8

# What each runtime's file is called, and a symbol only its code defines.
# Names are file names without their version suffix (libjemalloc.so.2 ->
# libjemalloc.so).
_FILE_NAMES = {
    "libc.so": "glibc",
    "libjemalloc.so": "jemalloc",
    "libtcmalloc.so": "tcmalloc",
    "libtcmalloc_minimal.so": "tcmalloc",
    "libtcmalloc_and_profiler.so": "tcmalloc",
    "libtcmalloc_debug.so": "tcmalloc",
    "libtcmalloc_minimal_debug.so": "tcmalloc",
    "libmimalloc.so": "mimalloc",
    "libmimalloc-secure.so": "mimalloc",
    "libjvm.so": "jvm",
    "libnode.so": "v8",
}
SIGNATURES = {
    # glibc linked in statically: its malloc's internal entry point.
    "glibc": frozenset({"__libc_malloc"}),
    # jemalloc built with or without a prefix (redis links it in as je_*).
    "jemalloc": frozenset({"mallctl", "je_mallctl", "je_malloc_stats_print"}),
    "tcmalloc": frozenset({"tc_malloc", "TCMallocGetenvSafe"}),
    "mimalloc": frozenset({"mi_malloc", "mi_version"}),
    "jvm": frozenset({"JNI_CreateJavaVM", "gHotSpotVMStructs"}),
    "v8": frozenset({"_ZN2v82V818InitializePlatformEPNS_8PlatformE"}),
}
# Every name identify() asks the reader about first; malloc itself only of a
# file found to hold an allocator.
WANTED = frozenset().union(*SIGNATURES.values())
# Sections only the Go toolchain writes.
_GO_SECTIONS = frozenset({".go.buildinfo", ".gopclntab", ".note.go.buildid"})

# (runtime key, defines malloc, found by): what one file holds.
Mark = tuple[str, bool, str]


def identify(
    path: str, layout: ElfLayout, defines: Callable[[frozenset[str]], Set[str]]
) -> tuple[Mark, ...]:
    """The allocators and runtimes in one ELF file.

    `defines(names)`: which of `names` the file defines (elf.symbols.defined_names).
    A stripped file that links an allocator in has no symbols to tell it by:
    it is then not recognised, and its memory keeps the kinds of any process.
    """
    base = path.rsplit("/", 1)[-1]
    stem = base.split(".so", 1)[0] + ".so" if ".so" in base else base
    by_name = _FILE_NAMES.get(stem)
    found: list[tuple[str, str]] = [] if by_name is None else [(by_name, "name")]
    if any(s.name in _GO_SECTIONS for s in layout.sections):
        found.append(("go", "section"))
    defined = defines(WANTED)
    found += [(n, "symbols") for n, sym in SIGNATURES.items() if n != by_name and defined & sym]
    if len(found) > 1:  # tcmalloc and mimalloc define __libc_malloc too, to replace glibc's
        found = [(n, how) for n, how in found if (n, how) != ("glibc", "symbols")]
    if not found:
        return ()
    # glibc's libc always answers malloc, unless another allocator does (runtimes_of).
    malloc = by_name == "glibc" or "malloc" in defines(_MALLOC)
    return tuple((name, malloc and name in _ALLOCATORS, how) for name, how in found)


_MALLOC = frozenset({"malloc"})
# The runtimes among them that can answer malloc() (Go and the JVM use libc's).
_ALLOCATORS = frozenset({"glibc", "jemalloc", "tcmalloc", "mimalloc"})


def runtimes_of(
    mappings: Iterable[Mapping], marks: dict[FileKey, tuple[Mark, ...]]
) -> tuple[Runtime, ...]:
    """The process's runtimes, one per (name, file), in the order their files are mapped.

    glibc's malloc answers malloc() unless another allocator defines malloc:
    a library loaded at start-up (linked or LD_PRELOADed) comes before libc
    in the dynamic linker's search order, so its malloc is the one called.
    """
    found: list[Runtime] = []
    seen: set[FileKey] = set()
    for m in mappings:
        key = m.file_key
        if not m.inode or key in seen:
            continue
        seen.add(key)
        for name, malloc, how in marks.get(key, ()):
            found.append(Runtime(name, strip_deleted(m.path or ""), malloc, how))
    if any(r.malloc and r.name != "glibc" for r in found):
        found = [r._replace(malloc=False) if r.name == "glibc" else r for r in found]
    return tuple(found)


def glibc_arenas_possible(facts: Facts) -> bool:
    """Whether glibc's arena rule may fire: glibc answers malloc, or nobody knows.

    Nobody knows where no allocator was found to answer malloc in a C
    program (a stripped static binary names none): the rule then applies as
    it did before allocators were looked for.  Not in a Go program, whose
    runtime maps its own memory, nor in a JVM whose layout was not read: its
    Java heap and class space are 64 MiB-aligned reservations committed from
    the bottom, the arena's shape, and the rule would be sure and wrong.
    """
    if facts.runtimes is None:
        return True
    names = {r.name for r in facts.runtimes}
    if "jvm" in names and not any(h.allocator == "jvm" for h in facts.heap_ranges):
        return False
    if not any(r.malloc for r in facts.runtimes):
        return not names & {"go", "jvm"}
    return any(r.name == "glibc" and r.malloc for r in facts.runtimes)


def brk_owner(facts: Facts) -> str | None:
    """The allocator whose heap [heap] (the brk heap) is: the one that answers malloc.

    tcmalloc grows its heap with sbrk first; glibc with brk; jemalloc and
    mimalloc use mmap, so their process's brk heap, if any, is glibc's.
    """
    if facts.runtimes is None:
        return None
    for r in facts.runtimes:
        if r.malloc and r.name in _BRK_USERS:
            return r.name
    return "glibc" if any(r.name == "glibc" for r in facts.runtimes) else None


_BRK_USERS = frozenset({"glibc", "tcmalloc"})

EarlyRule = Callable[[Sequence[Mapping], Facts, Runtime], Iterable[HeapRange]]
LateRule = Callable[[Sequence[Mapping], Callable[[int], bool], Facts, Runtime], Iterable[HeapRange]]

# Each runtime's rules: its module keeps what it knows of the runtime's layout.
EARLY: dict[str, EarlyRule] = {
    "go": go.early,
    "jvm": jvm.early,
    "mimalloc": mallocs.mimalloc_early,
    "v8": v8.early,
}
LATE: dict[str, LateRule] = {
    "go": go.late,
    "jemalloc": mallocs.jemalloc_late,
    "tcmalloc": mallocs.tcmalloc_late,
    "mimalloc": mallocs.mimalloc_late,
    "v8": v8.late,
}


class Plan(NamedTuple):
    """What the classifier asks of a process's runtimes, decided once per set of facts."""

    brk_owner: str | None
    glibc_arenas: bool  # whether glibc's arena rule may fire
    early: tuple[tuple[EarlyRule, Runtime], ...]
    late: tuple[tuple[LateRule, Runtime], ...]


# The last plan made, with the facts' runtimes and ranges it was made from: the live
# sampler classifies small windows of one process, again and again, with the same ones.
_last: tuple[object, object, Plan] | None = None


def plan(facts: Facts) -> Plan:
    """The plan for these facts: the rules of each runtime, once each."""
    global _last
    last = _last
    if last is not None and last[0] is facts.runtimes and last[1] is facts.heap_ranges:
        return last[2]
    once = _each_once(facts)
    made = Plan(
        brk_owner(facts),
        glibc_arenas_possible(facts),
        tuple((EARLY[r.name], r) for r in once if r.name in EARLY),
        tuple((LATE[r.name], r) for r in once if r.name in LATE),
    )
    _last = (facts.runtimes, facts.heap_ranges, made)
    return made


def early_ranges(maps: Sequence[Mapping], facts: Facts, how: Plan) -> list[HeapRange]:
    """What the runtimes reported of their memory, then what their designs place."""
    ranges = list(facts.heap_ranges)
    for rule, runtime in how.early:
        ranges.extend(rule(maps, facts, runtime))
    return ranges


def late_ranges(
    maps: Sequence[Mapping], free: Callable[[int], bool], facts: Facts, how: Plan
) -> list[HeapRange]:
    """Memory found by its shape among the mappings `free(i)` says no rule took."""
    ranges: list[HeapRange] = []
    for rule, runtime in how.late:
        ranges.extend(rule(maps, free, facts, runtime))
    return ranges


# The rules that look at whole runs of anonymous mappings (consecutive, no gap):
# Go's arenas from the hint at a run's start, the others by a run's size, V8's
# code range and cage by their size from their start.
_RUN_RULES = frozenset({"go", "jemalloc", "tcmalloc", "mimalloc", "v8"})


def reads_runs(facts: Facts) -> bool:
    """Whether some rule of this process's runtimes judges runs of anonymous mappings."""
    return any(r.name in _RUN_RULES for r in facts.runtimes or ())


def run_bounds(maps: Sequence[Mapping], lo: int, hi: int) -> tuple[int, int]:
    """[lo, hi) widened over the whole runs of anonymous mappings that meet its ends.

    For a caller that classifies a window of the maps (the live sampler): a rule
    that judges a run by its size or its start must see all of it, or a window
    that cuts a run would take its piece for a run of its own.  A run here is
    of anonymous private mappings of any permissions (V8's code range holds
    code and read-only pages), and passes a file mapping with anonymous memory
    right on both sides (V8's builtins, remapped into its code range).
    O(run length).
    """
    while 0 < lo < len(maps) and _in_run(maps, lo) and _in_run(maps, lo - 1):
        if maps[lo - 1].end != maps[lo].start:
            break
        lo -= 1
    while 0 < hi < len(maps) and _in_run(maps, hi - 1) and _in_run(maps, hi):
        if maps[hi - 1].end != maps[hi].start:
            break
        hi += 1
    return lo, hi


def _in_run(maps: Sequence[Mapping], i: int) -> bool:
    m = maps[i]
    if m.is_anonymous:
        return m.perms[3] == "p"
    return (
        0 < i < len(maps) - 1
        and maps[i - 1].is_anonymous
        and maps[i + 1].is_anonymous
        and maps[i - 1].end == m.start
        and m.end == maps[i + 1].start
    )


def _each_once(facts: Facts) -> list[Runtime]:
    """One runtime of each name (a library and a program may both hold one)."""
    seen: dict[str, Runtime] = {}
    for r in facts.runtimes or ():
        if r.name not in seen or (r.malloc and not seen[r.name].malloc):
            seen[r.name] = r
    return list(seen.values())
