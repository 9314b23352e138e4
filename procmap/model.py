"""The records procmap's layers pass to each other: plain data, no I/O, no views.

Everything below the views speaks these: the kernel readers make `Mapping`
and `Resident`, the classifier turns mappings into `Region`s of one `kind`
and `Detail`, and a `ProcessMap` holds one process's classified map.

One record style across the package: a record is a `typing.NamedTuple`.
Immutable, slotted by construction, compared and sorted as a tuple, and the
cheapest object Python makes (a read of 60,000 mappings makes 120,000 of
them); `_replace` gives a changed copy.  State that changes as procmap works
(a sampler, a cache, a watch's history) lives in plain classes, which are not
records.

Kinds and details are data, not prose: a region's `kind` is one of `KINDS`,
its `detail` a `Detail` member, whose `value` is a stable key (what JSON
carries and code compares) and whose `text` is what people read.  Facts code
needs are fields (`Region.tid`), never parsed back out of the text.

JSON: every `to_dict()` gives the shape procmap prints with --json, where
addresses and file offsets are strings of hex digits ("0x7ffd1c2a0e3c"), so
that no JSON reader rounds them (jq 1.6 and JavaScript hold numbers as
doubles, exact only to 2**53); sizes and counts are numbers.  The records
themselves hold ints.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # records of the ELF reader, named in annotations only
    from .elf import ElfLayout, SymbolTable

# The lesson's regions, from the bottom of the address space to the top.
KINDS = ("text", "rodata", "data", "bss", "heap", "stack", "mmap", "kernel")

FileKey = tuple[str, int]  # a mapped file's identity: (device as maps prints it, inode)
JSONDict = dict[str, Any]


def hex_address(n: int) -> str:
    """An address (or file offset) as JSON carries it: "0x" and lower-case hex digits."""
    return f"0x{n:x}"


def hex_or_none(n: int | None) -> str | None:
    return None if n is None else f"0x{n:x}"


class Detail(Enum):
    """What a region (or a part of an ELF file) is, within its kind.

    Each member's value is its key, stable across releases; `text` is the words
    shown beside it.  The lesson's sentence on each is in classify.notes.
    """

    text: str

    def __new__(cls, key: str, text: str) -> Detail:
        member = object.__new__(cls)
        member._value_ = key
        member.text = text
        return member

    # Parts of a loaded ELF image.
    CODE = "code", "code"
    CODE_WITH_DATA = "code-with-data", "code, with ELF headers and read-only data"
    ELF_HEADERS = "elf-headers", "ELF headers"
    READ_ONLY_DATA = "read-only-data", "read-only data"
    EXEC_ELF_HEADERS = "exec-elf-headers", "ELF headers, in an executable segment"
    EXEC_READ_ONLY_DATA = "exec-read-only-data", "read-only data, in an executable segment"
    RELRO = "relro", "relro"
    DATA = "data", "initialised data"
    DATA_MADE_READ_ONLY = "data-made-read-only", "initialised data, made read-only"
    BSS = "bss", "bss"
    BSS_FILE_PAGE = "bss-file-page", "bss, in the last file page"
    SEGMENT_GAP = "segment-gap", "gap between segments"
    # Parts of an ELF file that are no region: explain's placement of sections and symbols.
    THREAD_LOCAL = "thread-local", "thread-local"
    COMMON = "common", "common symbol"
    # malloc.
    BRK_HEAP = "brk-heap", "brk heap"
    MALLOC_ARENA = "malloc-arena", "malloc arena"
    MALLOC_ARENA_RESERVE = "malloc-arena-reserve", "malloc arena reserve"
    # Other allocators and runtimes (the region's `allocator` says whose).
    JEMALLOC_HEAP = "jemalloc-heap", "jemalloc heap"
    TCMALLOC_HEAP = "tcmalloc-heap", "tcmalloc heap"
    MIMALLOC_HEAP = "mimalloc-heap", "mimalloc heap"
    HEAP_RESERVE = "heap-reserve", "heap, reserved, not yet committed"
    GO_HEAP_ARENA = "go-heap-arena", "Go heap arena"
    GO_HEAP_RESERVE = "go-heap-reserve", "Go heap arena, reserved, not yet committed"
    GO_RUNTIME_DATA = "go-runtime-data", "the Go runtime's own data, off the heap"
    JAVA_HEAP = "java-heap", "Java heap"
    JAVA_HEAP_YOUNG = "java-heap-young", "Java heap (young generation)"
    JAVA_HEAP_OLD = "java-heap-old", "Java heap (old generation)"
    JAVA_HEAP_RESERVE = "java-heap-reserve", "Java heap, reserved up to the maximum heap size"
    METASPACE = "metaspace", "metaspace (class metadata)"
    CLASS_SPACE = "class-space", "compressed class space (class metadata)"
    JVM_RESERVE = "jvm-reserve", "reserved by the JVM, not yet committed"
    JIT_CODE = "jit-code", "JIT-compiled code (the code cache)"
    JIT_CODE_RESERVE = "jit-code-reserve", "code cache, reserved, not yet committed"
    JVM_PERF_DATA = "jvm-perf-data", "JVM performance counters (hsperfdata)"
    JAVA_STACK_GUARD = "java-stack-guard", "Java stack guard zone"
    V8_HEAP = "javascript-heap", "V8 (JavaScript) heap"
    V8_CODE = "javascript-jit-code", "JIT-compiled JavaScript code (V8's code range)"
    V8_CODE_RESERVE = "javascript-code-reserve", "V8's code range, reserved, not yet committed"
    V8_EMBEDDED_BUILTINS = "javascript-builtins", "V8's built-in functions, remapped"
    # Stacks.
    MAIN_STACK = "main-stack", "main thread stack"
    THREAD_STACK = "thread-stack", "thread stack"
    THREAD_STACK_BY_SHAPE = "thread-stack-by-shape", "thread stack, found by shape"
    GUARD_PAGE = "guard-page", "guard page"
    STACK_SHAPED = "stack-shaped", "anonymous, thread-stack shape, no thread in it"
    # What the kernel maps for itself.
    VSYSCALL = "vsyscall", "vsyscall page"
    VDSO = "vdso", "vdso"
    VVAR = "vvar", "vvar"
    VVAR_VCLOCK = "vvar-vclock", "vvar_vclock"
    UPROBES = "uprobes", "uprobes"
    SIGPAGE = "sigpage", "sigpage"
    VECTORS = "vectors", "vectors page"
    KERNEL_NAMED = "kernel-named", "a name the kernel gave"  # text: the [name] itself
    # Everything else in the mapping area.
    ANONYMOUS = "anonymous", "anonymous"
    SHARED_ANONYMOUS = "shared-anonymous", "shared anonymous"
    NAMED_ANONYMOUS = "named-anonymous", "anonymous, named"
    NAMED_SHARED_ANONYMOUS = "named-shared-anonymous", "shared anonymous, named"
    RESERVED = "reserved", "reserved, no access"
    HUGE_ANONYMOUS = "huge-anonymous", "anonymous, huge pages"
    HUGE_SHARED_ANONYMOUS = "huge-shared-anonymous", "shared anonymous, huge pages"
    MEMFD = "memfd", "memfd"
    SYSV_SHM = "sysv-shm", "SysV shared memory"
    POSIX_SHM = "posix-shm", "POSIX shared memory"
    HUGETLBFS_FILE = "hugetlbfs-file", "hugetlbfs file"
    DEVICE = "device", "device mapping"
    ELF_AS_DATA = "elf-as-data", "ELF file mapped as data"
    FILE = "file", "file mapping"
    SHARED_FILE = "shared-file", "shared file mapping"


# Memory the kernel backs with an unlinked file of its own (memfd, SysV, /dev/zero,
# MAP_HUGETLB): maps always adds " (deleted)" to their names.
KERNEL_FILE_DETAILS = frozenset(
    (
        Detail.MEMFD,
        Detail.SYSV_SHM,
        Detail.SHARED_ANONYMOUS,
        Detail.HUGE_ANONYMOUS,
        Detail.HUGE_SHARED_ANONYMOUS,
    )
)
# The kernel's own code and data in the mapping area, for fast system calls.
KERNEL_MADE_DETAILS = frozenset(
    (Detail.VDSO, Detail.VVAR, Detail.VVAR_VCLOCK, Detail.UPROBES, Detail.SIGPAGE)
)
STACK_DETAILS = frozenset((Detail.THREAD_STACK, Detail.THREAD_STACK_BY_SHAPE))

# The allocators and runtimes procmap recognises, by key (what JSON carries and
# code compares), with the name people read.
ALLOCATORS = {
    "glibc": "glibc malloc",
    "jemalloc": "jemalloc",
    "tcmalloc": "tcmalloc",
    "mimalloc": "mimalloc",
    "go": "Go runtime",
    "jvm": "JVM (HotSpot)",
    "v8": "V8",
}


class Runtime(NamedTuple):
    """An allocator or language runtime found in a process, and the image it lives in."""

    name: str  # a key of ALLOCATORS
    object: str  # the image it was found in, as maps names it
    malloc: bool = False  # it answers the program's malloc() (it defines malloc, or is glibc's)
    found_by: str = "symbols"  # "name" (the file's), "symbols" (what it defines), "section"

    @property
    def title(self) -> str:
        return ALLOCATORS.get(self.name, self.name)

    def to_dict(self) -> JSONDict:
        return {
            "name": self.name,
            "title": self.title,
            "object": self.object,
            "malloc": self.malloc,
            "found_by": self.found_by,
        }


def strip_deleted(path: str) -> str:
    """A path from maps without the " (deleted)" the kernel adds to a file since deleted."""
    return path[:-10] if path.endswith(" (deleted)") else path


# Heap details whose words do not name the allocator that owns the memory.
_UNNAMED_OWNER = frozenset((Detail.BRK_HEAP, Detail.MALLOC_ARENA, Detail.MALLOC_ARENA_RESERVE))


class HeapRange(NamedTuple):
    """Memory a runtime manages: read from the runtime itself, or found by its layout.

    `kind` and `detail` are the region's; `allocator` a key of ALLOCATORS.
    `reserve`, where set, is the detail of the range's parts with no access: a
    range read once (a JVM's heap) is cut at the mappings each time it is
    classified, so memory the runtime commits later is told as committed.
    """

    start: int
    end: int
    kind: str
    detail: Detail
    allocator: str
    heuristic: bool = False
    reserve: Detail | None = None


def detail_words(
    detail: Detail,
    tid: int | None = None,
    path: str | None = None,
    allocator: str | None = None,
    owner: bool = False,
) -> str:
    """The words for a detail, with the facts that complete them (a TID, a name, an allocator).

    Heap memory whose words do not name its allocator ("brk heap", "malloc
    arena") names it where it is not glibc's, or everywhere with `owner`
    (where's answer: "brk heap (glibc malloc)").
    """
    if allocator is not None:
        title = ALLOCATORS.get(allocator, allocator)
        if detail is Detail.HEAP_RESERVE:
            return f"{title} heap, reserved, not yet committed"
        if detail in _UNNAMED_OWNER and (owner or allocator != "glibc"):
            return f"{detail.text} ({title})"
    if tid is not None and detail in (Detail.THREAD_STACK, Detail.GUARD_PAGE):
        return f"{detail.text} (TID {tid})"
    if path is not None:
        if detail is Detail.KERNEL_NAMED:
            return path
        if detail is Detail.NAMED_ANONYMOUS and path.startswith("[anon:"):
            return f"{detail.text} {path[6:-1]}"
        if detail is Detail.NAMED_SHARED_ANONYMOUS and path.startswith("[anon_shmem:"):
            return f"{detail.text} {path[12:-1]}"
    return detail.text


# --- what the kernel shows ------------------------------------------------------------


class Mapping(NamedTuple):
    """One line of /proc/PID/maps: a virtual memory area."""

    start: int
    end: int
    perms: str  # "r-xp": read, write, execute, then p(rivate) or s(hared)
    offset: int  # file offset of `start`; 0 for anonymous memory
    dev: str  # "fe:00": major:minor of the file's device, "00:00" if none
    inode: int  # 0 for anonymous memory
    path: str | None  # file path, kernel name ("[heap]"), or None

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def is_file(self) -> bool:
        """Backed by a file (a path that is not a [kernel name])."""
        return self.inode != 0 or (self.path is not None and self.path[:1] == "/")

    @property
    def is_anonymous(self) -> bool:
        """Anonymous private memory with no name at all."""
        return self.path is None and self.inode == 0

    @property
    def is_plain_anonymous(self) -> bool:
        """Anonymous private memory, read-write or no-access: what a heap, a stack, a
        guard page or a reservation is made of."""
        return self.path is None and self.inode == 0 and self.perms in ("rw-p", "---p")

    @property
    def file_key(self) -> FileKey:
        """Identity of the backing file: (device, inode)."""
        return (self.dev, self.inode)


class Resident(NamedTuple):
    """One mapping's (or region's, or kind's) memory figures from smaps, in bytes."""

    rss: int = 0  # resident in RAM
    pss: int = 0  # RSS with each page divided by the number of processes mapping it
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    swap: int = 0
    anonymous: int = 0  # not backed by a file: heap, stacks, copy-on-write copies
    referenced: int = 0  # accessed since the flags were last cleared
    pss_dirty: int = 0  # Linux 6.0+
    swap_pss: int = 0
    locked: int = 0  # mlock()ed
    lazyfree: int = 0  # MADV_FREE'd, reclaimable
    ksm: int = 0  # merged with identical pages by KSM (Linux 6.5+)
    anon_huge: int = 0  # of anonymous, in transparent huge pages
    shmem_pmd: int = 0
    file_pmd: int = 0
    shared_hugetlb: int = 0  # hugetlbfs pages are not in RSS: here
    private_hugetlb: int = 0

    @property
    def dirty(self) -> int:
        return self.shared_dirty + self.private_dirty

    @property
    def private(self) -> int:
        return self.private_clean + self.private_dirty

    def to_dict(self) -> dict[str, int]:
        return dict(zip(self._fields, self))


FIGURES = Resident._fields
ZERO = Resident()


def total(figures: Iterable[Resident]) -> Resident:
    """Figures added up, field by field."""
    out = [0] * len(FIGURES)
    for f in figures:
        for i, v in enumerate(f):
            out[i] += v
    return Resident(*out)


# How a region's figures were found: it is a whole mapping; a share of its
# mapping's by the pages it holds; a share by its size.
WHOLE, BY_PAGES, BY_SIZE = "mapping", "pages", "size"


# --- who else maps a region ----------------------------------------------------------------

# How a region's sharers were found (Sharing.method): page frame numbers compared
# (with CAP_SYS_ADMIN); pagemap's "exclusively mapped" bit (any reader of the maps);
# the maps alone (pagemap not readable).
FRAMES, EXCLUSIVE_BIT, MAPS_ONLY = "frames", "exclusive-bit", "maps"
# How a sharer shares (Sharer.via): it maps the same object (file, shared memory,
# memfd, a shared anonymous mapping inherited across fork); it holds the same
# private pages, copy-on-write, since a fork.
VIA_OBJECT, VIA_COPY_ON_WRITE = "object", "copy-on-write"


class Sharer(NamedTuple):
    """Another process that maps a region's object, or still shares its pages."""

    pid: int
    name: str
    via: str  # VIA_OBJECT or VIA_COPY_ON_WRITE
    writable: bool  # maps the object shared and writable: its writes reach this region
    pages: int | None  # resident pages of the region it maps too; None: not known

    def to_dict(self) -> JSONDict:
        return self._asdict()


class Sharing(NamedTuple):
    """A region's sharers, and its resident pages shared with others or its own."""

    sharers: tuple[Sharer, ...]
    shared_pages: int  # resident pages mapped more than once (smaps' Shared_*)
    exclusive_pages: int  # resident pages mapped by this process alone (smaps' Private_*)
    method: str  # FRAMES, EXCLUSIVE_BIT or MAPS_ONLY

    @property
    def processes(self) -> list[int]:
        return sorted({s.pid for s in self.sharers})

    @property
    def writers(self) -> list[int]:
        return sorted({s.pid for s in self.sharers if s.writable})

    def to_dict(self) -> JSONDict:
        return {
            "processes": self.processes,
            "writers": self.writers,
            "shared_pages": self.shared_pages,
            "exclusive_pages": self.exclusive_pages,
            "method": self.method,
            "sharers": [s.to_dict() for s in self.sharers],
        }


class SharingScope(NamedTuple):
    """Which processes --shared could look at: sharers outside them go unnamed."""

    processes_read: int  # other processes whose maps were read
    unreadable: tuple[tuple[int, str], ...]  # (pid, name) of those that could not be
    # The target's PID in each PID namespace, outermost first (status NSpid), when it
    # is in a namespace of its own; procmap's own, when procmap is in one (its /proc
    # then shows only the processes of that namespace).
    target_pids: tuple[int, ...] = ()
    own_namespace: bool = False

    @property
    def partial(self) -> bool:
        return bool(self.unreadable) or self.own_namespace

    def to_dict(self) -> JSONDict:
        return {
            "partial": self.partial,
            "processes_read": self.processes_read,
            "unreadable": [{"pid": pid, "name": name} for pid, name in self.unreadable],
            "target_pids": list(self.target_pids),
            "own_namespace": self.own_namespace,
        }


class SavedSharing(NamedTuple):
    """--shared as a snapshot keeps it: the other processes cannot be read again later."""

    scope: SharingScope
    regions: dict[tuple[int, int], Sharing]  # by the region's (start, end)


# --- what the classifier makes ------------------------------------------------------------


class Region(NamedTuple):
    """A range of addresses of one kind, inside one mapping.

    The first seven fields are the mapping's (a Region is its mapping's tuple
    and its label's, concatenated: the cheapest way to make one).
    """

    start: int
    end: int
    perms: str
    offset: int  # file offset of `start`, 0 for anonymous memory
    dev: str
    inode: int
    path: str | None
    kind: str  # one of KINDS
    detail: Detail
    object: str | None = None  # the ELF image this region is part of
    sections: tuple[str, ...] = ()
    heuristic: bool = False
    tid: int | None = None  # the thread whose stack (or guard page) this is
    allocator: str | None = None  # a key of ALLOCATORS: whose memory this is

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def description(self) -> str:
        """The detail in words: "thread stack (TID 812)", "anonymous, named ring"."""
        return detail_words(self.detail, self.tid, self.path, self.allocator)

    def to_dict(self) -> JSONDict:
        return {
            "start": hex_address(self.start),
            "end": hex_address(self.end),
            "size": self.end - self.start,
            "perms": self.perms,
            "offset": hex_address(self.offset),
            "dev": self.dev,
            "inode": self.inode,
            "path": self.path,
            "kind": self.kind,
            "detail": self.detail.value,
            "description": self.description,
            "tid": self.tid,
            "object": self.object,
            "sections": list(self.sections),
            "heuristic": self.heuristic,
            "allocator": self.allocator,
        }


class LoadedImage(NamedTuple):
    """An ELF file loaded into the process: the program, its interpreter, a library."""

    path: str  # as /proc/PID/maps names it, without " (deleted)"
    key: FileKey
    layout: ElfLayout
    bias: int  # add to a file address (p_vaddr, st_value) for the process address
    start: int
    end: int
    role: str  # "program", "dynamic linker" or "shared library"
    deleted: bool = False  # maps names it "... (deleted)": the file is gone or replaced

    def __repr__(self) -> str:
        return f"LoadedImage({self.path!r}, {self.role}, bias=0x{self.bias:x})"

    def to_dict(self) -> JSONDict:
        return {
            "path": self.path,
            "deleted": self.deleted,
            "role": self.role,
            "bias": hex_address(self.bias),
            "start": hex_address(self.start),
            "end": hex_address(self.end),
        }


class Facts(NamedTuple):
    """What the classifier knows about the process besides its maps and files."""

    page_size: int = 4096
    pointer_size: int = 8
    exe_key: FileKey | None = None  # (dev, inode) of /proc/PID/exe
    interp_key: FileKey | None = None  # the program's PT_INTERP file
    thread_sps: dict[int, int] = {}  # TID -> stack pointer; never changed in place
    unknown_threads: tuple[int, ...] = ()  # TIDs whose stack pointer could not be read
    thread_stack_size: int | None = None  # glibc's default: the RLIMIT_STACK soft limit
    # The program's own file when it is not /proc/PID/exe: the dynamic linker run
    # as a command (`ld.so PROGRAM`) is then exe and interp_key.  program_from
    # says how it was found: "auxv" (AT_ENTRY), "link-map" (the dynamic linker's
    # list of loaded objects, read from the process's memory) or "heuristic".
    program_key: FileKey | None = None
    program_from: str | None = None
    # The allocators and runtimes found in the mapped images, in the order of the
    # images; None when unknown (a snapshot saved before procmap looked for them):
    # the glibc arena rule then fires as it always did.
    runtimes: tuple[Runtime, ...] | None = None
    # What runtimes report of their own memory, read from the process (the JVM's).
    heap_ranges: tuple[HeapRange, ...] = ()


# --- threads ------------------------------------------------------------------------------

# A thread's state: stat's letter -> its key (proc(5); fs/proc/array.c, task_state_array).
THREAD_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "X": "dead",
    "Z": "zombie",
    "P": "parked",
    "I": "idle",
    "W": "waking",  # Linux 2.6.33 to 3.13; "paging" before 2.6.0
    "K": "wakekill",  # Linux 2.6.33 to 3.13
}

# Why a thread's stack pointer is not known (Task.sp_unknown, Thread.sp_unknown).
SP_UNKNOWN = {
    "running": "on a CPU when read: the kernel shows no registers of a running thread",
    "denied": "task/TID/syscall needs ptrace attach permission, stricter than maps",
    "unreadable": "task/TID/syscall said nothing this procmap reads",
    "not-saved": "the saved map holds no stack pointer for it",
}

# Where a thread's stack pointer is (Thread.sp_in).
SP_IN = {
    "stack": "in its stack",
    "guard": "in the guard below its stack: it overflowed",
    "elsewhere": "outside every stack (a signal stack, or a runtime's own stacks)",
    "goroutine-stack": (
        "on a goroutine stack, in the Go heap: the Go runtime allocates goroutine stacks "
        "from its heap arenas and sizes them itself"
    ),
    "unmapped": "at no mapping",
}

# What bounds how far a thread's stack can grow down from its stack pointer (Thread.left_bound).
LEFT_BOUNDS = {
    "guard-page": "left ends at the guard page below the thread's stack",
    "stack-start": "left ends at the start of the thread's stack (no guard page below it)",
    "rlimit-stack": "left ends where the main stack would outgrow RLIMIT_STACK (its soft limit)",
    "stack-guard-gap": (
        "left ends where the main stack would come within the kernel's stack guard gap "
        "of the mapping below"
    ),
    "mapping-below": "left ends at the mapping below (no access: the kernel keeps no gap from it)",
}


class Task(NamedTuple):
    """One thread as /proc/PID/task/TID shows it, besides its stack pointer (in
    Facts.thread_sps): what `--threads` reads, and snapshots keep."""

    tid: int
    name: str | None  # comm; None where unknown (a core's threads but the main one)
    state: str | None  # stat's letter (THREAD_STATES); None where unknown
    sp_unknown: str | None = None  # a SP_UNKNOWN key when Facts.thread_sps lacks its sp


class ThreadFacts(NamedTuple):
    """What `--threads` needs beyond the classifier's Facts."""

    tasks: tuple[Task, ...]
    stack_guard_gap: int | None  # bytes (the kernel's stack_guard_gap); None: not known


# 256 pages: the kernel's stack_guard_gap unless the command line sets stack_guard_gap=.
DEFAULT_GUARD_GAP_PAGES = 256


def stack_use(top: int, lowest: int, sp: int) -> tuple[int, int]:
    """(used, left) of a stack that spans [lowest, top) with its pointer at `sp`.

    The one place that knows which way stacks grow: down, on every machine
    procmap reads (x86-64 and AArch64, arch.py), so what is used lies between
    sp and the top, and what is left between the lowest usable address and sp.
    """
    return top - sp, max(0, sp - lowest)


class StackGuard(NamedTuple):
    """What keeps a stack from running into the memory below it."""

    start: int
    end: int
    kind: str  # "guard-page" (a thread's PROT_NONE page) or "stack-guard-gap" (the main stack's)

    def to_dict(self) -> JSONDict:
        return {
            "kind": self.kind,
            "start": hex_address(self.start),
            "end": hex_address(self.end),
            "size": self.end - self.start,
        }


class Thread(NamedTuple):
    """One row of `procmap PID --threads`: a thread, its stack, and how much is used."""

    tid: int
    name: str | None
    state: str | None  # stat's letter
    main: bool  # the main thread (TID = PID), whose stack is [stack]
    sp: int | None
    sp_unknown: str | None  # a SP_UNKNOWN key, when sp is None
    sp_in: str | None  # a SP_IN key, when sp is known
    stack: Region | None  # its stack region (tid = this TID, or [stack] for the main thread)
    guard: StackGuard | None
    used: int | None  # bytes between sp and the top of its stack
    left: int | None  # bytes between sp and the lowest address its stack may reach
    left_bound: str | None  # a LEFT_BOUNDS key: what sets that lowest address

    @property
    def state_key(self) -> str | None:
        if self.state is None:
            return None
        return THREAD_STATES.get(self.state, "unknown")

    def to_dict(self) -> JSONDict:
        s = self.stack
        return {
            "tid": self.tid,
            "name": self.name,
            "main": self.main,
            "state": self.state_key,
            "state_code": self.state,
            "sp": hex_or_none(self.sp),
            "sp_unknown": self.sp_unknown,
            "sp_in": self.sp_in,
            "stack": None
            if s is None
            else {
                "start": hex_address(s.start),
                "end": hex_address(s.end),
                "size": s.end - s.start,
                "detail": s.detail.value,
                "heuristic": s.heuristic,
            },
            "guard": None if self.guard is None else self.guard.to_dict(),
            "used": self.used,
            "left": self.left,
            "left_bound": self.left_bound,
        }


class ProcessInfo(NamedTuple):
    pid: int
    name: str
    cmdline: tuple[str, ...]
    user: str
    uid: int
    threads: int
    state: str

    def to_dict(self) -> JSONDict:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": list(self.cmdline),
            "user": self.user,
            "uid": self.uid,
            "threads": self.threads,
        }


def _start(r: Region) -> int:
    return r.start


class ProcessMap(NamedTuple):
    """A process's mappings, split into classified regions that tile them."""

    info: ProcessInfo
    mappings: list[Mapping]
    regions: list[Region]
    images: list[LoadedImage]
    warnings: list[str] = []
    page_size: int = 4096
    # With smaps read: each region's figures, and how each was found (WHOLE,
    # BY_PAGES or BY_SIZE); the kernel's own totals (smaps_rollup), if read.
    resident: list[Resident] | None = None
    resident_from: list[str] | None = None
    rollup: Resident | None = None
    # With --shared: each region's sharers and page split (see Sharing), and which
    # processes were looked at.
    sharing: list[Sharing] | None = None
    sharing_scope: SharingScope | None = None
    threads: list[Thread] | None = None  # with --threads: one per thread, in TID order
    runtimes: tuple[Runtime, ...] = ()  # the allocators and runtimes found (Facts.runtimes)

    @property
    def pid(self) -> int:
        return self.info.pid

    @property
    def total_size(self) -> int:
        return sum(m.end - m.start for m in self.mappings)

    def region_at(self, address: int) -> Region | None:
        regions = self.regions
        i = bisect.bisect_right(regions, address, key=_start) - 1
        if i >= 0 and address < regions[i].end:
            return regions[i]
        return None

    def neighbours(self, address: int) -> tuple[Region | None, Region | None]:
        """The regions just below and just above an unmapped address."""
        regions = self.regions
        i = bisect.bisect_right(regions, address, key=_start)
        below = regions[i - 1] if i > 0 else None
        above = regions[i] if i < len(regions) else None
        return below, above

    def image_at(self, address: int) -> LoadedImage | None:
        for image in self.images:
            if image.start <= address < image.end:
                return image
        return None

    def summary(self) -> JSONDict:
        return summarize(self.regions, self.images, self.resident, self.rollup)

    def to_dict(self) -> JSONDict:
        regions = [r.to_dict() for r in self.regions]
        if self.resident is not None and self.resident_from is not None:
            for d, figures, how in zip(regions, self.resident, self.resident_from):
                d.update(zip(FIGURES, figures))
                d["resident_from"] = how
        if self.sharing is not None:
            for d, sharing in zip(regions, self.sharing):
                d["sharing"] = sharing.to_dict()
        out = {
            "pid": self.pid,
            "process": self.info.to_dict(),
            "regions": regions,
            "images": [im.to_dict() for im in self.images],
            "summary": self.summary(),
            "allocators": [r.to_dict() for r in self.runtimes],
            "warnings": self.warnings,
            **({"sharing": self.sharing_scope.to_dict()} if self.sharing_scope else {}),
        }
        if self.threads is not None:
            out["threads"] = [t.to_dict() for t in self.threads]
        return out


def summarize(
    regions: Sequence[Region],
    images: Iterable[LoadedImage],
    resident: Sequence[Resident] | None = None,
    rollup: Resident | None = None,
) -> JSONDict:
    """Regions and virtual size by kind and by ELF object, with totals.

    With `resident` (each region's figures), every entry also has them: by
    kind and by object they are sums of the regions' (so of smaps' per-mapping
    figures, each rounded down to a kB by the kernel: PSS loses up to 1 kB a
    mapping); the total's figures are the kernel's own sum, `rollup`
    (smaps_rollup), when it was read.  `figures_from` says which.
    """
    fields = FIGURES if resident is not None else ()
    figures: Sequence[Sequence[int]] = resident if resident is not None else [()] * len(regions)

    def entry(**first: Any) -> JSONDict:
        return {**first, "regions": 0, "size": 0, **dict.fromkeys(fields, 0)}

    by_kind = {k: entry() for k in KINDS}
    by_object: dict[str, JSONDict] = {}
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
    if resident is not None:
        if rollup is not None:
            whole.update(rollup.to_dict())
        whole["figures_from"] = "smaps_rollup" if rollup is not None else "sum"
    return {
        "by_kind": {k: v for k, v in by_kind.items() if v["regions"]},
        "by_object": sorted(by_object.values(), key=lambda o: -o["size"]),
        "total": whole,
    }


# --- the whole machine: procmap system -----------------------------------------------


class Usage(NamedTuple):
    """The memory a process (or one kind of its memory, or a file it maps) holds, in bytes.

    USS, the unique set size, is the memory only this process maps: private
    clean + private dirty, what its exit would free.
    """

    rss: int = 0
    pss: int = 0
    uss: int = 0
    swap: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"rss": self.rss, "pss": self.pss, "uss": self.uss, "swap": self.swap}


def usage_of(f: Resident) -> Usage:
    """A Resident's figures as a Usage."""
    return Usage(f.rss, f.pss, f.private_clean + f.private_dirty, f.swap)


class ObjectUse(NamedTuple):
    """What one process maps of a file (a library, a data file, shared memory)."""

    path: str
    rss: int
    pss: int


class ProcessUsage(NamedTuple):
    """One process's memory, whole and by kind, and the files it maps."""

    pid: int
    name: str  # comm: the kernel's name of the process, at most 15 bytes
    user: str
    uid: int
    threads: int
    total: Usage  # smaps_rollup's figures, or smaps' summed where the kernel has no rollup
    kinds: dict[str, Usage]  # kind -> the figures of its regions (smaps, shared by pages)
    objects: dict[FileKey, ObjectUse]  # the files it maps, by (device, inode)
    figures_from: str  # "smaps_rollup" or "smaps"

    def to_dict(self) -> JSONDict:
        return {
            "pid": self.pid,
            "name": self.name,
            "user": self.user,
            "uid": self.uid,
            "threads": self.threads,
            **self.total.to_dict(),
            "kinds": {k: self.kinds[k].to_dict() for k in KINDS if k in self.kinds},
            "figures_from": self.figures_from,
        }


class Unreadable(NamedTuple):
    """A process procmap system could not read, and why: a key of UNREADABLE_REASONS."""

    pid: int
    name: str
    reason: str

    def to_dict(self) -> JSONDict:
        return {"pid": self.pid, "name": self.name, "reason": self.reason}


UNREADABLE_REASONS = {
    "permission-denied": "permission denied; run as root or as their owner",
    "exited": "exited while procmap was reading them",
}


# --- the address space: the process's half, the hole, the kernel's half -----------------


class Space(NamedTuple):
    """How the address space splits between the process and the kernel."""

    bits: int  # 32 or 64: the whole space is [0, 2**bits)
    user_end: int  # the process's addresses are below this
    kernel_start: int | None  # the kernel's half starts here; None: outside this space
    how: str  # how the split was found, in words

    @property
    def top(self) -> int:
        return 1 << self.bits


# Virtual address bits of user space when no process shows them (a load plan):
# x86-64 with 4-level paging, arm64 with 48-bit VAs.  Others are given 47, said so.
_USER_BITS = {"x86-64": 47, "AArch64": 48}
_I386_SPLIT = 0xC000_0000  # the default 3G/1G split of a 32-bit kernel (CONFIG_VMSPLIT_3G)
_NO_SPLIT = "no kernel's half: mappings lie where it would be"


def address_space(highest: int | None, bits: int, machine: str | None = None) -> Space:
    """The split of a `bits`-wide space whose highest user address ends at `highest`.

    On 64-bit Linux the user half is [0, 2**n) and the kernel's half the top
    2**n, with the non-canonical hole between, for n = 47 on x86-64 with
    4-level paging (128 TiB each), 56 with 5-level paging, 48 on arm64, 38
    or 47 on riscv64.  The main stack sits just below the top of user space,
    so n is the bit length of the highest user address.  A 32-bit process runs
    on a 32-bit kernel that takes the top GiB (3G/1G), or on a 64-bit kernel
    that leaves it all 4 GiB; a stack above 3 GiB says which.
    """
    if bits == 64:
        if highest:
            n = max((highest - 1).bit_length(), 32)
            if n == 64:  # a mapping in the top half: no room left for the kernel's
                return Space(64, 1 << 64, None, _NO_SPLIT)
            how = f"{n}-bit user space, from the highest mapping"
        else:
            n = _USER_BITS.get(machine or "", 47)
            how = f"{n}-bit user space, as {machine or 'a 64-bit machine'} usually has"
        return Space(64, 1 << n, (1 << 64) - (1 << n), how)
    if highest is not None and highest > _I386_SPLIT:
        return Space(32, 1 << 32, None, "all 4 GiB for the process: a 64-bit kernel")
    return Space(32, _I386_SPLIT, _I386_SPLIT, "3 GiB for the process, 1 GiB for the kernel")


def space_of(
    regions: Sequence[Region], images: Iterable[LoadedImage] = (), bits: int | None = None
) -> Space:
    """The split of a process's address space, from its classified regions.

    `bits`: 32 or 64 when known; else 64 for a 64-bit program or a mapping
    above 4 GiB.  A region in the hole or across the split (a text written by
    hand: no kernel maps one there) leaves no kernel's half.
    """
    if bits is None:
        wide = any(im.layout.elf_class == 64 for im in images if im.role == "program")
        bits = 64 if wide or any(r.end > 1 << 32 for r in regions) else 32
    top = 1 << bits
    highest = max((r.end for r in regions if r.kind != "kernel" and r.end <= top >> 1), default=0)
    if bits == 32:
        highest = max((r.end for r in regions if r.kind != "kernel"), default=0)
    space = address_space(highest or None, bits)
    split = space.kernel_start
    if split is not None and any(r.start < split and r.end > space.user_end for r in regions):
        space = Space(bits, top, None, _NO_SPLIT)
    return space


# --- where an address is ----------------------------------------------------------------

# Why nothing is mapped at an address (Location.unmapped).
UNMAPPED_REASONS = {
    "kernel": "the kernel's half of the address space, never accessible to the process",
    "non-canonical": (
        "a non-canonical address, in the hole between the process's half and the kernel's: "
        "nothing can ever be mapped there, and any access faults"
    ),
    "beyond-32-bit": "beyond 4 GiB: no 32-bit address can be there",
    "null": "the lowest pages, never mapped, so a NULL pointer access faults",
    "gap": "no mapping here",
}


class Location(NamedTuple):
    """What lives at one address."""

    address: int
    region: Region | None
    image: LoadedImage | None = None
    section: str | None = None
    symbol: str | None = None
    symbol_offset: int | None = None
    below: Region | None = None  # for an unmapped address: the regions around it
    above: Region | None = None
    unmapped: str | None = None  # for an unmapped address: a key of UNMAPPED_REASONS
    # For an unmapped address: the unmapped stretch around it, [start, end): the
    # gap between its neighbours (clipped to user space), or the hole, or the
    # kernel's half.
    bounds: tuple[int, int] | None = None

    @property
    def kind(self) -> str | None:
        return self.region.kind if self.region else None

    @property
    def detail(self) -> Detail | None:
        return self.region.detail if self.region else None

    @property
    def description(self) -> str:
        """In words: the region's detail (and whose memory it is), or why nothing is mapped here."""
        r = self.region
        if r is not None:
            return detail_words(r.detail, r.tid, r.path, r.allocator, owner=True)
        return unmapped_note(
            self.address, self.unmapped or "gap", self.below, self.above, self.bounds
        )

    def to_dict(self) -> JSONDict:
        r = self.region
        return {
            "address": hex_address(self.address),
            "kind": self.kind,
            "detail": r.detail.value if r else None,
            "description": self.description,
            "tid": r.tid if r else None,
            "allocator": r.allocator if r else None,
            "heuristic": r.heuristic if r else None,
            "unmapped": self.unmapped,
            "unmapped_range": (
                None
                if self.bounds is None
                else {"start": hex_address(self.bounds[0]), "end": hex_address(self.bounds[1])}
            ),
            "region": (
                {
                    "start": hex_address(r.start),
                    "end": hex_address(r.end),
                    "size": r.end - r.start,
                    "perms": r.perms,
                    "path": r.path,
                }
                if r
                else None
            ),
            "object": r.object if r else None,
            "section": self.section,
            "symbol": self.symbol,
            "symbol_offset": self.symbol_offset,
            "between": None if r else [_brief(self.below), _brief(self.above)],
        }


def _brief(r: Region | None) -> JSONDict | None:
    if r is None:
        return None
    return {
        "start": hex_address(r.start),
        "end": hex_address(r.end),
        "kind": r.kind,
        "path": r.path,
    }


def unmapped_note(
    address: int,
    reason: str,
    below: Region | None,
    above: Region | None,
    bounds: tuple[int, int] | None = None,
) -> str:
    """Why nothing is at `address`, and what is around it, in words."""
    if reason in ("kernel", "non-canonical", "beyond-32-bit") and bounds is not None:
        where = f"from {bounds[0]:x} to {bounds[1] - 1:x}"
    else:
        left = f"{below.kind} ending at {below.end:x}" if below is not None else None
        if above is not None and (bounds is None or bounds[1] == above.start):
            right = f"{above.kind} starting at {above.start:x}"
        elif bounds is not None and bounds[1] < 1 << 64:
            right = f"the top of user space at {bounds[1]:x}"
        else:
            right = None
        if left and right:
            where = f"between {left} and {right}"
        elif right:
            where = f"below the first region, {right}" if above else f"below {right}"
        elif left:
            where = f"above the last region, {left}"
        else:
            where = ""
    return f"unmapped: {UNMAPPED_REASONS[reason]}" + (f" ({where})" if where else "")


# --- a saved map ----------------------------------------------------------------------------


class Snapshot(NamedTuple):
    """Everything procmap needs to classify a process's map again, without the process."""

    maps: bytes  # /proc/PID/maps, exactly as read
    smaps: bytes | None
    page_states: dict[int, str]  # mapping start -> "rs." per page
    info: ProcessInfo
    facts: Facts
    layouts: dict[FileKey, ElfLayout | None]  # None: not ELF
    symbols: dict[FileKey, SymbolTable]
    warnings: list[str]
    kernel: str
    machine: str
    hostname: str
    saved_at: float
    procmap_version: str
    source: str = "snapshot"  # "snapshot", or "maps" / "smaps" for a plain text
    rollup: bytes | None = None  # /proc/PID/smaps_rollup, when it was read
    threads: ThreadFacts | None = None  # each thread's name and state, when they were read
    sharing: SavedSharing | None = None  # with --save --shared

    def __repr__(self) -> str:
        return (
            f"Snapshot(pid={self.info.pid}, name={self.info.name!r}, source={self.source!r}, "
            f"files={len(self.layouts)})"
        )


SymbolsOf = Callable[[LoadedImage], "SymbolTable | None"]
