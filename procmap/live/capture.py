"""One read of a live process: kernel readers + ELF reader + classifier.

`read_map(target)` is the whole one-shot pipeline; `where(target, addresses)`
adds the ELF section and nearest symbol of each address; `capture(target)`
keeps what was read, as a Snapshot to show again elsewhere.  The process is
read through one held /proc/PID descriptor from start to end (see
kernel/procfs.py), and each mapped file's ELF headers are read once per
(device, inode).  The sampler (sampler.py) reads the same way, again and again.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Iterable
from functools import partial
from typing import NamedTuple

from ..classify import classify
from ..classify.locate import locate
from ..classify.resident import attribute, split_mappings
from ..classify.rules import ClassifyMemo
from ..classify.runtimes import Mark, identify, runtimes_of
from ..classify.threads import describe_threads
from ..elf import ElfLayout, SymbolTable, read_elf_fd, read_symbols_fd
from ..elf.dynamic import read_dynamic_fd
from ..elf.layout import ET_EXEC, PT_DYNAMIC
from ..elf.symbols import defined_names
from ..errors import (
    AccessDenied,
    CorruptELF,
    KernelThread,
    NotAnELF,
    ProcessExited,
    ZombieProcess,
)
from ..kernel.maps import parse_maps
from ..kernel.procfs import ProcessDir, ProcFS, TaskStat, effective_uid, parse_auxv, user_name
from ..kernel.smaps import maps_text_of, page_states, parse_rollup, parse_smaps
from ..model import (
    Facts,
    FileKey,
    LoadedImage,
    Location,
    Mapping,
    ProcessInfo,
    ProcessMap,
    Region,
    Resident,
    SavedSharing,
    Snapshot,
    SymbolsOf,
    Task,
    ThreadFacts,
)
from .runtimes import read_heap_ranges

# --- reading a live process -----------------------------------------------------------


class ElfCache:
    """ELF layouts by (device, inode): a file's headers never change under one inode.

    Holds a layout, None for a file that is not ELF (or is corrupt), and the
    source it was read from, for reading its symbols later.
    """

    def __init__(self) -> None:
        self.layouts: dict[FileKey, ElfLayout | None] = {}
        self.sources: dict[FileKey, str] = {}
        self.problems: dict[FileKey, str] = {}
        self.unreadable: dict[FileKey, str] = {}  # files that could not be opened: why
        # The allocators and runtimes each ELF file holds (classify.runtimes.identify).
        self.marks: dict[FileKey, tuple[Mark, ...]] = {}
        # What the classifier works out per layout, for readers of many processes
        # that pass it to classify() (procmap system); it lives as long as the layouts.
        self.memo = ClassifyMemo()


def read_map(
    target: int | str = "self",
    procfs: ProcFS | None = None,
    cache: ElfCache | None = None,
    rss: bool = False,
    threads: bool = False,
    shared: bool = False,
) -> ProcessMap:
    """The classified map of a live process (a PID, or "self").

    With rss, read from /proc/PID/smaps: each region gets its memory figures.
    With threads, each thread's name, state and stack pointer too: the map's
    `threads` (classify.threads).  With shared (which implies rss), each region
    also gets its Sharing: the other processes that map it, and its pages
    shared or its own.
    """
    procfs = procfs or ProcFS()
    with procfs.open(_pid(target)) as pd:
        pmap = _read(pd, cache or ElfCache(), rss or shared, threads).pmap
        return with_sharing(pd, pmap) if shared else pmap


def with_sharing(pd: ProcessDir, pmap: ProcessMap) -> ProcessMap:
    """`pmap` (read with its figures) with each region's Sharing."""
    from .sharing import read_sharing, scope_notes

    sharing, scope = read_sharing(pd, pmap)
    return pmap._replace(
        sharing=sharing, sharing_scope=scope, warnings=pmap.warnings + scope_notes(scope)
    )


def where(target: int | str, addresses: list[int], procfs: ProcFS | None = None) -> list[Location]:
    """What lives at each address of a live process: region, section, nearest symbol."""
    procfs = procfs or ProcFS()
    with procfs.open(_pid(target)) as pd:
        pmap, symbols = read_map_and_symbols(pd)
        return [locate(pmap, a, symbols) for a in addresses]


def read_map_and_symbols(pd: ProcessDir) -> tuple[ProcessMap, SymbolsOf]:
    """The map of an open process, and its images' symbol tables, each read on first use.

    The symbols are read through `pd`: call them while it is open.
    """
    pmap = _read(pd, ElfCache()).pmap
    tables: dict[FileKey, SymbolTable | None] = {}

    def symbols(image: LoadedImage) -> SymbolTable | None:
        if image.key not in tables:
            tables[image.key] = _read_symbols(pd, pmap, image)
        return tables[image.key]

    return pmap, symbols


def _pid(target: int | str) -> int:
    if target == "self":
        return os.getpid()
    return int(target)


def resolve_target(target: str, procfs: ProcFS | None = None) -> int:
    """A PID from "self", a number, or a process name that matches exactly one process.

    A name matches a process's name (comm), the file name of its executable, or
    the file name of its argv[0].  procmap itself is never a candidate.
    """
    if target == "self":
        return os.getpid()
    if target.isdigit():
        return int(target)
    return (procfs or ProcFS()).find(target, exclude=os.getpid())


class _Read(NamedTuple):
    """A read of a live process: the map, and what it was made from (for snapshots)."""

    pmap: ProcessMap
    text: bytes | None  # the maps text, when maps was read (not smaps)
    smaps: bytes | None
    rollup: bytes | None  # smaps_rollup, read with smaps where the kernel has it
    states: dict[int, str]  # page_states of split mappings, by start
    facts: Facts
    threads: ThreadFacts | None = None  # each thread's name and state, when asked for


# How many times a read is begun again when the process runs a new program meanwhile.
_EXEC_RETRIES = 3


def _read(pd: ProcessDir, cache: ElfCache, rss: bool = False, threads: bool = False) -> _Read:
    """Read the process's map, again from the start if it ran a new program meanwhile.

    The maps text, the ELF files and the threads are read one after another: an
    exec between two of them would mix two programs into one map.  The addresses
    the kernel sets at exec (TaskStat.exec_marks) are compared before and after.
    """
    execed = False
    for _ in range(_EXEC_RETRIES):
        before = check_alive(pd)
        read = _read_once(pd, cache, before, rss, threads)
        # Still the same process and program after the last read?  Through the
        # held descriptor, a process that exited (even if its PID was reused)
        # raises ProcessExited; one that exited but is not yet reaped is a zombie.
        after = pd.stat()
        if after.is_zombie:
            raise ProcessExited(f"PID {pd.pid} exited while procmap was reading it")
        if after.exec_marks == before.exec_marks:
            if execed:
                read.pmap.warnings.insert(
                    0,
                    f"PID {pd.pid} started a new program (exec) while procmap was reading "
                    "it: this is the new program's map, read again from the start",
                )
            return read
        execed = True
    raise ProcessExited(
        f"PID {pd.pid} kept starting new programs (exec) while procmap was reading it "
        f"({_EXEC_RETRIES} times); run procmap again"
    )


def _read_once(
    pd: ProcessDir, cache: ElfCache, stat: TaskStat, rss: bool, threads: bool = False
) -> _Read:
    smaps = pd.smaps() if rss else None
    data = smaps if smaps is not None else pd.maps()
    if not data:
        # Only kernel threads and exited processes have no mappings.
        raise ProcessExited(f"PID {pd.pid} exited while procmap was reading it")
    figures: list[Resident] = []
    if smaps is not None:
        mappings, figures = parse_smaps(smaps)
    else:
        mappings = parse_maps(data)
    info = process_info(pd, stat)
    warnings: list[str] = []
    facts = read_facts(pd, mappings, cache, warnings)
    tids = pd.task_ids()
    thread_facts = None
    if threads:
        facts, thread_facts = read_tasks(pd, facts, tids, warnings)
    elif len(tids) > 1:  # one thread: its stack is [stack]
        facts = read_thread_stacks(pd, facts, tids, warnings)
    result = classify(mappings, cache.layouts, facts, cache.unreadable)
    states: dict[int, str] = {}
    resident = resident_from = None
    rollup_text = rollup = None
    if smaps is not None:
        states = read_page_states(pd, mappings, figures, result.regions, facts.page_size)
        resident, resident_from = attribute(
            mappings, figures, result.regions, states, facts.page_size
        )
        rollup_text = pd.smaps_rollup() or None  # empty: exiting, which the caller sees
        rollup = parse_rollup(rollup_text) if rollup_text else None
    pmap = ProcessMap(
        info=info,
        mappings=mappings,
        regions=result.regions,
        images=result.images,
        warnings=warnings + result.warnings,
        page_size=facts.page_size,
        resident=resident,
        resident_from=resident_from,
        rollup=rollup,
        runtimes=facts.runtimes or (),
    )
    if thread_facts is not None:
        pmap = pmap._replace(threads=describe_threads(pmap, facts, thread_facts))
    text = None if smaps is not None else data
    return _Read(pmap, text, smaps, rollup_text, states, facts, thread_facts)


# pagemap of a split mapping larger than this is not read (8 bytes a page):
# its figures are shared by size.
_MAX_PAGEMAP_PAGES = 1 << 20


def read_page_states(
    pd: ProcessDir,
    mappings: list[Mapping],
    figures: list[Resident],
    regions: list[Region],
    page_size: int,
) -> dict[int, str]:
    """page_states() of each mapping split into several regions that has pages in RAM or swap."""
    resident = {m.start: f for m, f in zip(mappings, figures)}
    wanted = [
        m
        for m in split_mappings(mappings, regions)
        if (resident[m.start].rss or resident[m.start].swap)
        and m.size // page_size <= _MAX_PAGEMAP_PAGES
    ]
    if not wanted:
        return {}
    raws = pd.pagemaps([(m.start, m.end) for m in wanted], page_size)
    return {m.start: page_states(raw) for m, raw in zip(wanted, raws) if raw is not None}


# --- snapshots --------------------------------------------------------------------------


def capture(
    target: int | str = "self", procfs: ProcFS | None = None, shared: bool = False
) -> Snapshot:
    """Everything needed to show a live process's map later, elsewhere: a Snapshot.

    The map is read from smaps (figures included, where readable), with the
    ELF headers the classification used and the symbols `where` needs.  With
    shared, each region's Sharing too: the other processes are not there later.
    """
    import platform
    import time

    from .. import __version__

    procfs = procfs or ProcFS()
    cache = ElfCache()
    with procfs.open(_pid(target)) as pd:
        try:
            read = _read(pd, cache, rss=True, threads=True)
        except AccessDenied:
            read = _read(pd, cache, threads=True)  # smaps refused: no figures, then
        pmap = read.pmap
        sharing = None
        if shared:
            if pmap.resident is None:
                raise AccessDenied(
                    f"PID {pd.pid}: --shared needs {pd.path}/smaps, which is not readable"
                )
            pmap = with_sharing(pd, pmap)
            assert pmap.sharing is not None and pmap.sharing_scope is not None
            regions = {(r.start, r.end): x for r, x in zip(pmap.regions, pmap.sharing)}
            sharing = SavedSharing(pmap.sharing_scope, regions)
        symbols: dict[FileKey, SymbolTable] = {}
        for image in pmap.images:
            if image.key not in symbols:
                table = _read_symbols(pd, pmap, image)
                if table is not None:
                    symbols[image.key] = table
    keys = {m.file_key for m in pmap.mappings}
    uname = platform.uname()
    return Snapshot(
        maps=maps_text_of(read.smaps) if read.smaps is not None else read.text or b"",
        smaps=read.smaps,
        page_states=read.states,
        info=pmap.info,
        facts=read.facts,
        layouts={k: v for k, v in cache.layouts.items() if k in keys},
        symbols=symbols,
        warnings=pmap.warnings,
        kernel=uname.release,
        machine=uname.machine,
        hostname=uname.node,
        saved_at=time.time(),
        procmap_version=__version__,
        rollup=read.rollup,
        threads=read.threads,
        sharing=sharing,
    )


def check_alive(pd: ProcessDir) -> TaskStat:
    """/proc/PID/stat, refusing kernel threads and zombies, which have no map."""
    stat = pd.stat()
    if stat.is_kernel_thread:
        raise KernelThread(
            f"PID {pd.pid} ({stat.comm}) is a kernel thread: it runs only in the kernel "
            "and has no user address space to map"
        )
    if stat.is_zombie:
        raise ZombieProcess(
            f"PID {pd.pid} ({stat.comm}) is a zombie: it has exited and its memory is "
            f"gone; only its exit status waits for its parent (PID {stat.ppid}) to reap it"
        )
    return stat


def process_info(pd: ProcessDir, stat: TaskStat) -> ProcessInfo:
    status = pd.status()
    uid = effective_uid(status)
    return ProcessInfo(
        pid=pd.pid,
        name=status.get("Name", stat.comm),
        cmdline=tuple(pd.cmdline()),
        user=user_name(uid),
        uid=uid,
        threads=int(status.get("Threads", "1")),
        state=stat.state,
    )


def read_facts(
    pd: ProcessDir, mappings: list[Mapping], cache: ElfCache, warnings: list[str]
) -> Facts:
    """The program and interpreter, and the ELF layout of every mapped file (into `cache`)."""
    exe_key = pd.file_key("exe")
    read_layouts(pd, mappings, exe_key, cache, warnings)
    exe_layout = cache.layouts.get(exe_key) if exe_key else None
    interp_key = None
    if exe_layout is not None and exe_layout.interpreter:
        interp_key = pd.root_file_key(exe_layout.interpreter)
    if exe_layout is not None:
        pointer_size = exe_layout.elf_class // 8
    else:
        pointer_size = 8 if mappings[-1].end > 1 << 32 else 4
    found = runtimes_of(mappings, cache.marks)
    facts = Facts(
        page_size=os.sysconf("SC_PAGE_SIZE"),
        pointer_size=pointer_size,
        exe_key=exe_key,
        interp_key=interp_key,
        runtimes=found,
        heap_ranges=read_heap_ranges(pd, mappings, found, warnings),
    )
    if exe_layout is not None and exe_layout.interpreter is None:
        facts = read_loaded_program(pd, mappings, cache, facts, exe_layout, warnings)
    return facts


# Auxiliary vector types (elf.h).
AT_BASE = 7  # where the kernel loaded the interpreter; 0 when it loaded none
AT_ENTRY = 9  # the entry point of the file the kernel ran


def read_loaded_program(
    pd: ProcessDir,
    mappings: list[Mapping],
    cache: ElfCache,
    facts: Facts,
    loader: ElfLayout,
    warnings: list[str],
) -> Facts:
    """`facts` with the program, when the process is the dynamic linker run as a
    command (`ld.so PROGRAM`): the kernel ran ld.so, and ld.so mapped PROGRAM.

    /proc/PID/exe is then ld.so, and /proc/PID/auxv (the kernel's copy,
    mm->saved_auxv, written at exec) gives ld.so's entry point and AT_BASE 0:
    glibc's ld.so rewrites AT_PHDR, AT_PHNUM and AT_ENTRY only in the copy on
    the program's stack (seen on Linux 6.18, glibc 2.36).  So ld.so was run as
    the program when exe has no PT_INTERP, other mapped files name exe as
    theirs, and AT_BASE is 0.  The program is then, in order of trust:

    1. the file AT_ENTRY lies in, if it is not exe ("auxv");
    2. the first object of ld.so's list of loaded objects (_r_debug.r_map),
       read through /proc/PID/mem ("link-map");
    3. the one mapped executable that names exe as its interpreter
       ("heuristic", said in a warning).
    """
    exe_key = facts.exe_key
    layouts = cache.layouts
    # The mapped ELF files other than exe that name exe as their interpreter, with
    # one mapping of each; each interpreter path is looked up once.
    named: dict[str, FileKey | None] = {}
    files: dict[FileKey, Mapping] = {}
    for m in mappings:
        key = m.file_key
        layout = layouts.get(key)
        if layout is None or key == exe_key or key in files or not layout.interpreter:
            continue
        if layout.interpreter not in named:
            named[layout.interpreter] = pd.root_file_key(layout.interpreter)
        if named[layout.interpreter] == exe_key:
            files[key] = m
    if not files:
        return facts  # a static program, or a dynamic linker that has loaded nothing yet
    raw = pd.auxv()
    auxv = parse_auxv(raw, facts.pointer_size, loader.endian) if raw else None
    if auxv is not None and auxv.get(AT_BASE, 0) != 0:
        return facts  # the kernel loaded an interpreter for exe: not the dynamic linker
    why = f"{pd.path}/auxv is not readable"
    if auxv is not None:
        entry = auxv.get(AT_ENTRY, 0)
        at_entry = _mapping_at(mappings, entry)
        entry_key = at_entry.file_key if at_entry is not None else None
        if entry_key is not None and entry_key in files:
            return _with_program(facts, entry_key, "auxv")
        why = "the entry point in its auxv is in no file it loaded"
        if at_entry is not None and entry_key == exe_key:
            bias = entry - loader.entry
            program, why = _link_map_program(pd, mappings, cache, files, at_entry, loader, bias)
            if program is not None:
                return _with_program(facts, program, "link-map")
    candidates = [
        key
        for key, m in files.items()
        if _loaded(mappings, key) and _is_executable(pd, m, layouts.get(key))
    ]
    loader_path = _file_path(mappings, exe_key)
    if len(candidates) != 1:
        warnings.append(
            f"{loader_path} was run as a command, to start a program, but which file is the "
            f"program could not be told ({why}): {loader_path} is shown as the program"
        )
        return facts
    (program,) = candidates
    warnings.append(
        f"{loader_path} was run as a command, to start a program; {_file_path(mappings, program)} "
        "is taken for the program by a heuristic (the one executable that names it as its "
        f"interpreter), since the loader's own record of it could not be read ({why})"
    )
    return _with_program(facts, program, "heuristic")


def _with_program(facts: Facts, program: FileKey, how: str) -> Facts:
    return facts._replace(interp_key=facts.exe_key, program_key=program, program_from=how)


def _mapping_at(mappings: list[Mapping], address: int) -> Mapping | None:
    """The file mapping that holds `address`, if a file mapping does."""
    i = bisect.bisect_right(mappings, address, key=_mapping_start) - 1
    if i >= 0 and address < mappings[i].end and mappings[i].inode:
        return mappings[i]
    return None


def _mapping_start(m: Mapping) -> int:
    return m.start


def _file_path(mappings: list[Mapping], key: FileKey | None) -> str:
    return next((m.path for m in mappings if m.file_key == key and m.path), "the program")


def _loaded(mappings: list[Mapping], key: FileKey) -> bool:
    """Loaded, not only mmap()ed: some mapping of it is executable."""
    return any(m.file_key == key and "x" in m.perms for m in mappings)


def _link_map_program(
    pd: ProcessDir,
    mappings: list[Mapping],
    cache: ElfCache,
    files: dict[FileKey, Mapping],
    loader_map: Mapping,
    loader: ElfLayout,
    bias: int,
) -> tuple[FileKey | None, str]:
    """The program as the dynamic linker records it, or (None, why not).

    glibc's <link.h>: `struct r_debug {int r_version; struct link_map *r_map;
    ...}`, and `struct link_map {ElfW(Addr) l_addr; char *l_name; ElfW(Dyn)
    *l_ld; ...}`; the first link_map is the main program's.  Its l_ld (the
    address of its dynamic section) says which file it is, and l_addr (its load
    bias) must agree.
    """
    fd, _ = pd.open_mapped_file(loader_map, is_exe=True)
    if fd is None:
        return None, f"{loader_map.path} could not be opened for its symbols"
    try:
        table = read_symbols_fd(fd, loader_map.path or "", loader)
    except (NotAnELF, CorruptELF, OSError):
        table = None
    finally:
        os.close(fd)
    symbols = table.symbols if table is not None else []
    r_debug = next((s.value for s in symbols if s.name == "_r_debug"), None)
    if r_debug is None:
        return None, f"{loader_map.path} has no _r_debug symbol"
    size = loader.elf_class // 8
    word = struct.Struct(("<" if loader.endian == "little" else ">") + ("Q" if size == 8 else "I"))
    raw = pd.memory(bias + r_debug + size, size)  # r_map: after r_version, padded to a pointer
    if raw is None:
        return None, f"{pd.path}/mem is not readable (it needs ptrace attach permission)"
    (r_map,) = word.unpack(raw)
    if not r_map:
        return None, "the dynamic linker's list of loaded objects is empty"
    raw = pd.memory(r_map, 3 * size)
    if raw is None:
        return None, "the dynamic linker's list of loaded objects is not readable"
    l_addr, _, l_ld = (word.unpack_from(raw, i * size)[0] for i in range(3))
    at_ld = _mapping_at(mappings, l_ld)
    key = at_ld.file_key if at_ld is not None else None
    layout = cache.layouts.get(key) if key in files else None
    dynamic = next((s for s in layout.segments if s.type == PT_DYNAMIC), None) if layout else None
    if key is None or dynamic is None or (l_addr + dynamic.vaddr) % (1 << 8 * size) != l_ld:
        return None, "the dynamic linker's first loaded object is no file that names it"
    return key, ""


def _is_executable(pd: ProcessDir, m: Mapping, layout: ElfLayout | None) -> bool:
    """A program rather than a library: ET_EXEC, or ET_DYN marked PIE (DF_1_PIE) or
    without a DT_SONAME.  (glibc's libc.so.6 names ld.so as its interpreter too.)"""
    if layout is None:
        return False
    if layout.type == ET_EXEC:
        return True
    fd, _ = pd.open_mapped_file(m, is_exe=False)
    if fd is None:
        return False
    try:
        dynamic = read_dynamic_fd(fd, layout, m.path or "")
    except (NotAnELF, CorruptELF, OSError):
        return False
    finally:
        os.close(fd)
    return dynamic is None or dynamic.pie or dynamic.soname is None


def read_thread_stacks(
    pd: ProcessDir, facts: Facts, tids: Iterable[int], warnings: list[str]
) -> Facts:
    """`facts` with the stack pointer of each thread in `tids` (or listing it as unknown)."""
    denied = []
    sps = dict(facts.thread_sps)
    unknown = list(facts.unknown_threads)
    for tid in tids:
        try:
            sp = pd.thread_stack_pointer(tid)
        except PermissionError:
            denied.append(tid)
            sp = None
        if sp is None:
            if tid not in unknown:
                unknown.append(tid)
        else:
            sps[tid] = sp
            if tid in unknown:
                unknown.remove(tid)
    if denied:
        _stacks_by_shape(pd, warnings)
    return _with_stacks(pd, facts, sps, unknown)


def _stacks_by_shape(pd: ProcessDir, warnings: list[str]) -> None:
    """Say once that the threads' stack pointers are not readable."""
    warning = (
        f"thread stacks found by shape: {pd.path}/task/*/syscall is not readable "
        "(it needs ptrace attach permission, stricter than reading maps)"
    )
    if warning not in warnings:
        warnings.append(warning)


def _with_stacks(pd: ProcessDir, facts: Facts, sps: dict[int, int], unknown: list[int]) -> Facts:
    """`facts` with these stack pointers, and glibc's default thread stack size."""
    size = facts.thread_stack_size
    if size is None:
        size = pd.stack_limit()
    return facts._replace(thread_sps=sps, unknown_threads=tuple(unknown), thread_stack_size=size)


def read_tasks(
    pd: ProcessDir, facts: Facts, tids: Iterable[int], warnings: list[str]
) -> tuple[Facts, ThreadFacts]:
    """`facts` with every thread's stack pointer (the main thread's too), and each
    thread's name and state (task/TID/stat) and why its stack pointer is unknown.

    A thread that ends meanwhile is left out, quietly; whether the whole
    process ended is for the caller to check (_read does).
    """
    sps = dict(facts.thread_sps)
    unknown = []
    tasks = []
    denied = False
    for tid in tids:
        stat = pd.task_stat(tid)
        if stat is None:
            continue
        sp, why = pd.thread_sp(tid)
        if why == "gone":
            continue
        if sp is None:
            unknown.append(tid)
            denied = denied or why == "denied"
            sps.pop(tid, None)
        else:
            sps[tid] = sp
        tasks.append(Task(tid, stat.comm, stat.state, why))
    if denied:
        _stacks_by_shape(pd, warnings)
    facts = _with_stacks(pd, facts, sps, unknown)
    gap = pd.procfs.stack_guard_gap(facts.page_size)
    return facts, ThreadFacts(tuple(tasks), gap)


def read_layouts(
    pd: ProcessDir,
    mappings: Iterable[Mapping],
    exe_key: FileKey | None,
    cache: ElfCache,
    warnings: list[str],
) -> None:
    """Read the ELF layout of every mapped regular file not yet in the cache.

    A file that cannot be opened (another user's, deleted, out of reach in
    another mount namespace, replaced on disk) is left out, with the reason in
    cache.unreadable: classify() takes it by names and permissions, and says why.
    """
    seen: set[FileKey] = set()
    for m in mappings:
        key = m.file_key
        if not m.inode or key in seen or not m.path or m.path[0] != "/":
            continue
        seen.add(key)
        if key in cache.layouts or key in cache.unreadable or m.path.startswith("/dev/"):
            continue  # never open a device: opening one can have side effects
        fd, source = pd.open_mapped_file(m, is_exe=key == exe_key)
        if fd is None:
            cache.unreadable[key] = source  # why not: said in classify's warning
            continue
        try:
            layout = cache.layouts[key] = read_elf_fd(fd, m.path)
            cache.sources[key] = source
            defines = partial(defined_names, fd, layout, name=m.path)
            try:
                cache.marks[key] = identify(m.path, layout, defines)
            except CorruptELF as err:  # its layout stands; only its symbols are damaged
                cache.marks[key] = ()
                warnings.append(f"{err}; which allocator it holds is not known")
        except NotAnELF:
            cache.layouts[key] = None
        except CorruptELF as err:
            cache.layouts[key] = None
            cache.problems[key] = str(err)
            warnings.append(f"{err}; its mappings are shown as plain file mappings")
        except OSError:
            continue
        finally:
            os.close(fd)


def _read_symbols(pd: ProcessDir, pmap: ProcessMap, image: LoadedImage) -> SymbolTable | None:
    m = next((m for m in pmap.mappings if m.file_key == image.key), None)
    if m is None:
        return None
    # The program is not /proc/PID/exe when the dynamic linker was run as a command.
    fd, _ = pd.open_mapped_file(m, is_exe=image.key == pd.file_key("exe"))
    if fd is None:
        return None
    try:
        return read_symbols_fd(fd, image.path, image.layout)
    except (NotAnELF, CorruptELF, OSError):
        return None
    finally:
        os.close(fd)
