"""A live process's classified map: procfs readers + ELF reader + classifier.

`read_map(target)` is the whole one-shot pipeline; `where(target, addresses)`
adds the ELF section and nearest symbol of each address.  The process is read
through one held /proc/PID descriptor from start to end (see procfs.py), and
each mapped file's ELF headers are read once per (device, inode).
"""

from __future__ import annotations

import bisect
import os

from .classify import KINDS, Classification, Facts, FileKey, LoadedImage, Region, classify
from .elf import ElfLayout, SymbolTable, read_elf_fd, read_symbols_fd
from .errors import (
    AccessDenied,
    AmbiguousProcess,
    BadSnapshot,
    CorruptELF,
    KernelThread,
    NoSuchProcess,
    NotAnELF,
    ProcessExited,
    ZombieProcess,
)
from .maps import Mapping, parse_maps
from .picture import Picture, picture_of
from .procfs import ProcessDir, ProcFS, TaskStat, user_name
from .smaps import (
    FIGURES,
    Resident,
    attribute,
    maps_text_of,
    page_states,
    parse_smaps,
    split_mappings,
)


class ProcessInfo:
    __slots__ = ("pid", "name", "cmdline", "user", "uid", "threads", "state")

    def __init__(self, pid, name, cmdline, user, uid, threads, state):
        self.pid: int = pid
        self.name: str = name
        self.cmdline: list[str] = cmdline
        self.user: str = user
        self.uid: int = uid
        self.threads: int = threads
        self.state: str = state

    def to_dict(self) -> dict:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": self.cmdline,
            "user": self.user,
            "uid": self.uid,
            "threads": self.threads,
        }


class ProcessMap:
    """A process's mappings, split into classified regions that tile them."""

    __slots__ = (
        "info",
        "mappings",
        "regions",
        "images",
        "warnings",
        "page_size",
        "resident",
        "resident_from",
        "_starts",
    )

    def __init__(
        self,
        info,
        mappings,
        regions,
        images,
        warnings=(),
        page_size=4096,
        resident=None,
        resident_from=None,
    ):
        self.info: ProcessInfo = info
        self.mappings: list[Mapping] = mappings
        self.regions: list[Region] = regions
        self.images: list[LoadedImage] = images
        self.warnings: list[str] = list(warnings)
        self.page_size: int = page_size
        # With smaps read: each region's figures, and how they were found
        # (smaps.WHOLE, BY_PAGES or BY_SIZE); None otherwise.
        self.resident: list[Resident] | None = resident
        self.resident_from: list[str] | None = resident_from
        self._starts = [r.start for r in regions]

    @property
    def pid(self) -> int:
        return self.info.pid

    @property
    def total_size(self) -> int:
        return sum(m.size for m in self.mappings)

    def region_at(self, address: int) -> Region | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self.regions[i].end:
            return self.regions[i]
        return None

    def neighbours(self, address: int) -> tuple[Region | None, Region | None]:
        """The regions just below and just above an unmapped address."""
        i = bisect.bisect_right(self._starts, address)
        below = self.regions[i - 1] if i > 0 else None
        above = self.regions[i] if i < len(self.regions) else None
        return below, above

    def image_at(self, address: int) -> LoadedImage | None:
        for image in self.images:
            if image.start <= address < image.end:
                return image
        return None

    def summary(self) -> dict:
        return summarize(self.regions, self.images, self.resident)

    def picture(self) -> Picture:
        """The lesson's picture of this map: bands from the NULL page to the kernel's half."""
        info = self.info
        title = f"PID {info.pid} ({info.name})" if info.pid else f"{info.name} (a saved maps text)"
        return picture_of(self.regions, self.images, title=title, resident=self.resident)

    def to_dict(self) -> dict:
        regions = [r.to_dict() for r in self.regions]
        if self.resident is not None:
            for d, figures, how in zip(regions, self.resident, self.resident_from):
                d.update(zip(FIGURES, figures))
                d["resident_from"] = how
        return {
            "pid": self.pid,
            "process": self.info.to_dict(),
            "regions": regions,
            "images": [im.to_dict() for im in self.images],
            "summary": self.summary(),
            "warnings": self.warnings,
        }


def summarize(regions: list[Region], images: list[LoadedImage], resident=None) -> dict:
    """Regions and virtual size by kind and by ELF object, with totals.

    With `resident` (each region's figures), every entry also has them.
    """
    fields = FIGURES if resident is not None else ()
    figures = resident if resident is not None else [()] * len(regions)

    def entry(**first) -> dict:
        return {**first, "regions": 0, "size": 0, **dict.fromkeys(fields, 0)}

    by_kind = {k: entry() for k in KINDS}
    by_object: dict[str, dict] = {}
    whole = entry()
    roles = {im.path: im.role for im in images}
    for r, f in zip(regions, figures):
        entries = [by_kind.setdefault(r.kind, entry()), whole]
        if r.object is not None:
            obj = by_object.get(r.object)
            if obj is None:
                obj = by_object[r.object] = entry(object=r.object, role=roles.get(r.object))
                obj["kinds"] = {}
            obj["kinds"][r.kind] = obj["kinds"].get(r.kind, 0) + r.size
            entries.append(obj)
        for e in entries:
            e["regions"] += 1
            e["size"] += r.size
            for name, v in zip(fields, f):
                e[name] += v
    return {
        "by_kind": {k: v for k, v in by_kind.items() if v["regions"]},
        "by_object": sorted(by_object.values(), key=lambda o: -o["size"]),
        "total": whole,
    }


# --- reading a live process -----------------------------------------------------------


class ElfCache:
    """ELF layouts by (device, inode): a file's headers never change under one inode.

    Holds a layout, None for a file that is not ELF (or is corrupt), and the
    source it was read from, for reading its symbols later.
    """

    def __init__(self):
        self.layouts: dict[FileKey, ElfLayout | None] = {}
        self.sources: dict[FileKey, str] = {}
        self.problems: dict[FileKey, str] = {}
        self.unreadable: dict[FileKey, str] = {}  # files that could not be opened: why


def read_map(
    target: int | str = "self", procfs: ProcFS | None = None, cache=None, rss: bool = False
) -> ProcessMap:
    """The classified map of a live process (a PID, or "self").

    With rss, read from /proc/PID/smaps: each region gets its memory figures.
    """
    procfs = procfs or ProcFS()
    with procfs.open(_pid(target)) as pd:
        return _read(pd, cache or ElfCache(), rss).pmap


def where(target, addresses: list[int], procfs: ProcFS | None = None) -> list[Location]:
    """What lives at each address of a live process: region, section, nearest symbol."""
    procfs = procfs or ProcFS()
    cache = ElfCache()
    with procfs.open(_pid(target)) as pd:
        pmap = _read(pd, cache).pmap
        tables: dict[FileKey, SymbolTable | None] = {}

        def symbols(image: LoadedImage) -> SymbolTable | None:
            if image.key not in tables:
                tables[image.key] = _read_symbols(pd, pmap, image)
            return tables[image.key]

        return [locate(pmap, a, symbols) for a in addresses]


def _pid(target: int | str) -> int:
    if target == "self":
        return os.getpid()
    return int(target)


class _Read:
    """A read of a live process: the map, and what it was made from (for snapshots)."""

    __slots__ = ("pmap", "text", "smaps", "states", "facts")

    def __init__(self, pmap, text, smaps, states, facts):
        self.pmap: ProcessMap = pmap
        self.text: bytes | None = text  # the maps text, when maps was read (not smaps)
        self.smaps: bytes | None = smaps
        self.states: dict[int, str] = states  # page_states of split mappings, by start
        self.facts: Facts = facts


# How many times a read is begun again when the process runs a new program meanwhile.
_EXEC_RETRIES = 3


def _read(pd: ProcessDir, cache: ElfCache, rss: bool = False) -> _Read:
    """Read the process's map, again from the start if it ran a new program meanwhile.

    The maps text, the ELF files and the threads are read one after another: an
    exec between two of them would mix two programs into one map.  The addresses
    the kernel sets at exec (TaskStat.exec_marks) are compared before and after.
    """
    execed = False
    for _ in range(_EXEC_RETRIES):
        before = check_alive(pd)
        read = _read_once(pd, cache, before, rss)
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


def _read_once(pd: ProcessDir, cache: ElfCache, stat: TaskStat, rss: bool) -> _Read:
    smaps = pd.smaps() if rss else None
    data = smaps if rss else pd.maps()
    if not data:
        # Only kernel threads and exited processes have no mappings.
        raise ProcessExited(f"PID {pd.pid} exited while procmap was reading it")
    if rss:
        mappings, figures = parse_smaps(data)
    else:
        mappings = parse_maps(data)
    info = process_info(pd, stat)
    warnings: list[str] = []
    facts = read_facts(pd, mappings, cache, warnings)
    tids = pd.task_ids()
    if len(tids) > 1:  # one thread: its stack is [stack]
        read_thread_stacks(pd, facts, tids, warnings)
    result: Classification = classify(mappings, cache.layouts, facts, cache.unreadable)
    states: dict[int, str] = {}
    resident = resident_from = None
    if rss:
        states = read_page_states(pd, mappings, figures, result.regions, facts.page_size)
        resident, resident_from = attribute(
            mappings, figures, result.regions, states, facts.page_size
        )
    pmap = ProcessMap(
        info=info,
        mappings=mappings,
        regions=result.regions,
        images=result.images,
        warnings=warnings + result.warnings,
        page_size=facts.page_size,
        resident=resident,
        resident_from=resident_from,
    )
    return _Read(pmap, None if rss else data, smaps, states, facts)


# pagemap of a split mapping larger than this is not read (8 bytes a page):
# its figures are shared by size.
_MAX_PAGEMAP_PAGES = 1 << 20


def read_page_states(pd: ProcessDir, mappings, figures, regions, page_size) -> dict[int, str]:
    """page_states() of each mapping split into several regions that has pages in RAM or swap."""
    resident = {m.start: f for m, f in zip(mappings, figures)}
    states = {}
    for m in split_mappings(mappings, regions):
        f = resident[m.start]
        if not (f.rss or f.swap) or m.size // page_size > _MAX_PAGEMAP_PAGES:
            continue
        raw = pd.pagemap(m.start, m.end, page_size)
        if raw is not None:
            states[m.start] = page_states(raw)
    return states


# --- snapshots --------------------------------------------------------------------------


def capture(target: int | str = "self", procfs: ProcFS | None = None):
    """Everything needed to show a live process's map later, elsewhere: a Snapshot.

    The map is read from smaps (figures included, where readable), with the
    ELF headers the classification used and the symbols `where` needs.
    """
    import platform
    import time

    from . import __version__
    from .snapshot import Snapshot

    procfs = procfs or ProcFS()
    cache = ElfCache()
    with procfs.open(_pid(target)) as pd:
        try:
            read = _read(pd, cache, rss=True)
        except AccessDenied:
            read = _read(pd, cache)  # smaps refused where maps is not: no figures, then
        pmap = read.pmap
        symbols = {}
        for image in pmap.images:
            if image.key not in symbols:
                table = _read_symbols(pd, pmap, image)
                if table is not None:
                    symbols[image.key] = table
    keys = {m.file_key for m in pmap.mappings}
    uname = platform.uname()
    return Snapshot(
        maps=read.text if read.smaps is None else maps_text_of(read.smaps),  # its header lines
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
    )


def replay(snapshot, rss: bool = False) -> ProcessMap:
    """The map a Snapshot holds, classified as it was live (same rules, same facts)."""
    figures = None
    if snapshot.smaps is not None:
        mappings, figures = parse_smaps(snapshot.smaps)
    else:
        mappings = parse_maps(snapshot.maps)
    if not mappings:
        raise BadSnapshot(f"{snapshot.info.name}: no mappings in it")
    result = classify(mappings, snapshot.layouts, snapshot.facts)
    resident = resident_from = None
    if rss:
        if figures is None:
            raise BadSnapshot(
                f"{snapshot.info.name}: no memory figures in it (it holds maps, not smaps)"
            )
        page_size = snapshot.facts.page_size
        resident, resident_from = attribute(
            mappings, figures, result.regions, snapshot.page_states, page_size
        )
    warnings = list(snapshot.warnings)
    warnings.extend(w for w in result.warnings if w not in warnings)
    return ProcessMap(
        info=snapshot.info,
        mappings=mappings,
        regions=result.regions,
        images=result.images,
        warnings=warnings,
        page_size=snapshot.facts.page_size,
        resident=resident,
        resident_from=resident_from,
    )


def where_saved(snapshot, addresses: list[int]) -> list[Location]:
    """`where` over a Snapshot: its saved symbols name the addresses."""
    pmap = replay(snapshot)
    return [locate(pmap, a, lambda image: snapshot.symbols.get(image.key)) for a in addresses]


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
    uids = status.get("Uid", "0 0").split()
    uid = int(uids[1] if len(uids) > 1 else uids[0])
    return ProcessInfo(
        pid=pd.pid,
        name=status.get("Name", stat.comm),
        cmdline=pd.cmdline(),
        user=user_name(uid),
        uid=uid,
        threads=int(status.get("Threads", "1")),
        state=stat.state,
    )


def read_facts(pd: ProcessDir, mappings: list[Mapping], cache: ElfCache, warnings) -> Facts:
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
    return Facts(
        page_size=os.sysconf("SC_PAGE_SIZE"),
        pointer_size=pointer_size,
        exe_key=exe_key,
        interp_key=interp_key,
    )


def read_thread_stacks(pd: ProcessDir, facts: Facts, tids, warnings: list[str]) -> None:
    """Add the stack pointer of each thread in `tids` to `facts` (or list it as unknown)."""
    denied = []
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
            facts.thread_sps[tid] = sp
            if tid in unknown:
                unknown.remove(tid)
    facts.unknown_threads = tuple(unknown)
    if facts.thread_stack_size is None:
        facts.thread_stack_size = pd.stack_limit()
    if denied:
        warning = (
            f"thread stacks found by shape: {pd.path}/task/*/syscall is not readable "
            "(it needs ptrace attach permission, stricter than reading maps)"
        )
        if warning not in warnings:
            warnings.append(warning)


def read_layouts(pd, mappings, exe_key, cache: ElfCache, warnings: list[str]) -> None:
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
            cache.layouts[key] = read_elf_fd(fd, m.path)
            cache.sources[key] = source
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
    fd, _ = pd.open_mapped_file(m, is_exe=image.role == "program")
    if fd is None:
        return None
    try:
        return read_symbols_fd(fd, image.path, image.layout)
    except (NotAnELF, CorruptELF, OSError):
        return None
    finally:
        os.close(fd)


# --- where --------------------------------------------------------------------------


class Location:
    """What lives at one address."""

    __slots__ = (
        "address",
        "region",
        "image",
        "section",
        "symbol",
        "symbol_offset",
        "below",
        "above",
        "note",
    )

    def __init__(
        self,
        address,
        region,
        image=None,
        section=None,
        symbol=None,
        symbol_offset=None,
        below=None,
        above=None,
        note="",
    ):
        self.address: int = address
        self.region: Region | None = region
        self.image: LoadedImage | None = image
        self.section: str | None = section
        self.symbol: str | None = symbol
        self.symbol_offset: int | None = symbol_offset
        self.below: Region | None = below  # for an unmapped address: the regions around it
        self.above: Region | None = above
        self.note: str = note

    @property
    def kind(self) -> str | None:
        return self.region.kind if self.region else None

    @property
    def detail(self) -> str:
        return self.region.detail if self.region else self.note

    def to_dict(self) -> dict:
        r = self.region
        return {
            "address": self.address,
            "kind": self.kind,
            "detail": self.detail,
            "region": (
                {"start": r.start, "end": r.end, "perms": r.perms, "path": r.path} if r else None
            ),
            "object": r.object if r else None,
            "section": self.section,
            "symbol": self.symbol,
            "symbol_offset": self.symbol_offset,
            "between": None if r else [_brief(self.below), _brief(self.above)],
        }


def _brief(r: Region | None) -> dict | None:
    if r is None:
        return None
    return {"start": r.start, "end": r.end, "kind": r.kind, "path": r.path}


def locate(pmap: ProcessMap, address: int, symbols=None) -> Location:
    """Where `address` falls in `pmap`; `symbols(image)` gives an image's SymbolTable."""
    region = pmap.region_at(address)
    if region is None:
        below, above = pmap.neighbours(address)
        return Location(
            address, None, below=below, above=above, note=_unmapped_note(address, below, above)
        )
    loc = Location(address, region)
    image = pmap.image_at(address) if region.object else None
    if image is None:
        return loc
    loc.image = image
    vaddr = address - image.bias
    section = image.layout.section_at(vaddr)
    loc.section = section.name if section else None
    table = symbols(image) if symbols else None
    if table is not None:
        found = table.lookup(vaddr)
        # A symbol names the address only inside the section that holds it.
        if found and (
            section is None or section.addr <= found[0].value < section.addr + section.size
        ):
            loc.symbol, loc.symbol_offset = found[0].name, found[1]
    return loc


def _unmapped_note(address: int, below: Region | None, above: Region | None) -> str:
    if below is not None and above is not None:
        between = (
            f"between {below.kind} ending at {below.end:x} "
            f"and {above.kind} starting at {above.start:x}"
        )
    elif above is not None:
        between = f"below the first region, {above.kind} starting at {above.start:x}"
    elif below is not None:
        between = f"above the last region, {below.kind} ending at {below.end:x}"
    else:
        between = ""
    if address >= 1 << 63:
        why = "kernel space, never accessible to the process"
    elif (
        address >= 1 << 47
        and (above is None or above.start >= 1 << 63)
        and (below is None or below.end <= 1 << 47)
    ):
        why = "above the top of user space"
    elif below is None and address < 1 << 16:
        why = "the lowest pages, never mapped, so a NULL pointer access faults"
    else:
        why = "no mapping here"
    return f"unmapped: {why}" + (f" ({between})" if between else "")


# --- naming a process -----------------------------------------------------------------


def resolve_target(target: str) -> int:
    """A PID from "self", a number, or a process name that matches exactly one process.

    A name matches a process's name (comm), the file name of its executable, or
    the file name of its argv[0].  procmap itself is never a candidate.
    """
    if target == "self":
        return os.getpid()
    if target.isdigit():
        return int(target)
    import psutil  # process facts for name lookup only: import it only when needed

    me = os.getpid()
    matches = []
    for p in psutil.process_iter(["pid", "name", "exe", "cmdline", "username"]):
        if p.pid == me:
            continue
        info = p.info
        names = {info["name"]}
        if info["exe"]:
            names.add(os.path.basename(info["exe"]))
        if info["cmdline"]:
            names.add(os.path.basename(info["cmdline"][0]))
        if target in names:
            matches.append(info)
    if not matches:
        raise NoSuchProcess(f"no process named {target!r}")
    if len(matches) > 1:
        candidates = [
            f"{i['pid']:>8}  {i['username'] or '?':<12} "
            + " ".join(i["cmdline"] or [i["name"]])[:100]
            for i in matches
        ]
        raise AmbiguousProcess(
            f"{len(matches)} processes are named {target!r}; give one of their PIDs:", candidates
        )
    return matches[0]["pid"]
