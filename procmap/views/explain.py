"""What an ELF file becomes in memory: its load plan, in the lesson's kinds.

`explain_elf(path)` reads a file's headers, dynamic section and symbols, then
plays the loader: it lays out the mappings the kernel (for a program) or the
dynamic linker (for a library) creates, at a load bias of 0, applies RELRO the
way ld.so does, and classifies that plan with the classifier a live process goes
through.  So the plan and a live map agree by construction, and the tests hold
the plan against real runs of the samples.

Pure over the ELF reader: no /proc, no click, no rich.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from ..classify import classify
from ..classify.notes import describe_symbol
from ..elf import DynamicInfo, ElfLayout, Section, Segment, SymbolEntry
from ..elf.checks import KERNEL, Finding, load_findings, user_top
from ..elf.dynamic import read_dynamic_fd
from ..elf.layout import (
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PF_W,
    PF_X,
    PT_GNU_STACK,
    PT_LOAD,
    PT_TLS,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_TLS,
    SHF_WRITE,
    SHN_COMMON,
    SHN_LORESERVE,
    SHT_NOBITS,
    STB_LOCAL,
    STT_OBJECT,
    align_down,
    align_up,
    read_elf_fd,
)
from ..elf.symbols import SYMBOL_BINDS, SYMBOL_TYPES, read_symbol_entries_fd
from ..errors import BadFile, CorruptELF
from ..files import open_regular
from ..model import KINDS, Detail, Facts, JSONDict, Mapping, Region, hex_address

T = TypeVar("T")

# What the file is, as the JSON "type" field names it.
TYPES = {
    "executable": "executable, loaded at its link address (not PIE)",
    "pie": "position-independent executable (PIE), loaded at a random base",
    "static": "static executable, loaded at its link address, no dynamic linker",
    "static-pie": "static position-independent executable, loaded at a random base",
    "shared-object": "shared object (library), loaded by the dynamic linker",
    "relocatable": "relocatable object (.o): input to the linker, not a loadable program",
    "core": "core file: a memory dump of a process, not a program",
    "unknown": "ELF file of an unknown type",
}

# Local symbols of these files are the C runtime's start-up code, not the program's.
_TOOLCHAIN_FILES = frozenset(
    (
        "crt1.o",
        "Scrt1.o",
        "rcrt1.o",
        "crti.o",
        "crtn.o",
        "crtstuff.c",
        "crtbegin.o",
        "crtbeginS.o",
        "crtbeginT.o",
        "crtend.o",
        "crtendS.o",
        "start.S",
        "abi-note.c",
        "init.c",
        "static-reloc.c",
    )
)


class ElfFacts(NamedTuple):
    """The identity and hardening of an ELF file, as its headers show them."""

    elf_class: int
    endian: str
    machine: str
    type: str  # a key of TYPES
    entry: int
    interpreter: str | None
    build_id: str | None
    relro: str  # "full", "partial" or "none"
    exec_stack: bool
    wx_segments: tuple[int, ...]  # indexes of segments both writable and executable
    bind_now: bool
    textrel: bool
    needed: tuple[str, ...]
    soname: str | None
    runpath: str | None
    file_size: int

    @classmethod
    def of(cls, layout: ElfLayout, dynamic: DynamicInfo | None) -> ElfFacts:
        dyn = dynamic or DynamicInfo()
        if layout.relro is None:
            relro = "none"
        else:
            relro = "full" if dyn.bind_now else "partial"
        stack = next((s for s in layout.segments if s.type == PT_GNU_STACK), None)
        if stack is not None:
            exec_stack = bool(stack.flags & PF_X)
        elif layout.type == ET_REL:
            # An object file asks for a non-executable stack with an empty .note.GNU-stack.
            note = next((s for s in layout.sections if s.name == ".note.GNU-stack"), None)
            exec_stack = note is None or bool(note.flags & SHF_EXECINSTR)
        else:
            # No PT_GNU_STACK: the kernel falls back to its default, executable on
            # older kernels and on 32-bit x86 (READ_IMPLIES_EXEC).
            exec_stack = layout.type in (ET_EXEC, ET_DYN) and bool(layout.loads)
        loads = set(layout.loads)
        return cls(
            elf_class=layout.elf_class,
            endian=layout.endian,
            machine=layout.machine_name,
            type=_file_type(layout, dyn),
            entry=layout.entry,
            interpreter=layout.interpreter,
            build_id=layout.build_id,
            relro=relro,
            exec_stack=exec_stack,
            wx_segments=tuple(
                i
                for i, s in enumerate(layout.segments)
                if s in loads and s.flags & PF_W and s.flags & PF_X
            ),
            bind_now=dyn.bind_now,
            textrel=dyn.textrel,
            needed=dyn.needed,
            soname=dyn.soname,
            runpath=dyn.runpath,
            file_size=layout.file_size,
        )

    @property
    def nx_stack(self) -> bool:
        return not self.exec_stack

    @property
    def pie(self) -> bool:
        return self.type in ("pie", "static-pie")

    @property
    def static(self) -> bool:
        return self.type in ("static", "static-pie")

    @property
    def loadable(self) -> bool:
        return self.type not in ("relocatable", "core", "unknown")

    @property
    def description(self) -> str:
        return TYPES[self.type]

    def to_dict(self) -> JSONDict:
        return {
            "class": self.elf_class,
            "endian": self.endian,
            "machine": self.machine,
            "type": self.type,
            "pie": self.pie,
            "static": self.static,
            "entry": hex_address(self.entry),
            "interpreter": self.interpreter,
            "build_id": self.build_id,
            "relro": self.relro,
            "nx_stack": self.nx_stack,
            "bind_now": self.bind_now,
            "textrel": self.textrel,
            "wx_segments": list(self.wx_segments),
            "needed": list(self.needed),
            "soname": self.soname,
            "file_size": self.file_size,
        }


def _file_type(layout: ElfLayout, dyn: DynamicInfo) -> str:
    if layout.type == ET_REL:
        return "relocatable"
    if layout.type == ET_CORE:
        return "core"
    if layout.type == ET_EXEC:
        return "executable" if layout.interpreter or dyn.needed else "static"
    if layout.type != ET_DYN:
        return "unknown"
    if layout.interpreter:
        # libc.so.6 has PT_INTERP too, so that it can run; DF_1_PIE (binutils 2.26+)
        # marks a real PIE, and a PIE has no soname.
        return "pie" if dyn.pie or dyn.soname is None else "shared-object"
    if dyn.pie or (not dyn.needed and dyn.soname is None and layout.entry):
        return "static-pie"
    return "shared-object"


class SegmentPlan(NamedTuple):
    """One program header, with what it becomes at run time."""

    number: int  # its index among the program headers
    segment: Segment
    kinds: tuple[str, ...]  # kinds of the plan's regions over its bytes, in address order
    regions: tuple[Region, ...]  # those regions (PT_LOAD only)
    sections: tuple[str, ...]  # sections with bytes inside it

    def to_dict(self) -> JSONDict:
        s = self.segment
        return {
            "type": s.type_name,
            "offset": hex_address(s.offset),
            "vaddr": hex_address(s.vaddr),
            "filesz": s.filesz,
            "memsz": s.memsz,
            "flags": s.perms,
            "align": s.align,
            "kinds": list(self.kinds),
            "sections": list(self.sections),
        }


class SectionPlan(NamedTuple):
    section: Section
    kind: str | None  # None: not loaded (symbols, debug info), or thread-local
    detail: Detail | None  # None: not loaded; Detail.THREAD_LOCAL: a TLS template
    # Why an allocated section is not in memory although the file says it is: a key of
    # MISSING, and the segment whose mapping replaced it.
    missing: str | None = None
    replaced_by: int | None = None

    def to_dict(self) -> JSONDict:
        s = self.section
        return {
            "name": s.name,
            "type": s.type_name,
            "addr": hex_address(s.addr),
            "offset": hex_address(s.offset),
            "size": s.size,
            "flags": _section_flags(s.flags),
            "kind": self.kind,
            "detail": self.detail.value if self.detail else None,
            "description": self.detail.text if self.detail else None,
            "missing": self.missing,
            "replaced_by": self.replaced_by,
        }


# Why an allocated section is not in memory, for the section table.
MISSING = {
    "replaced": "replaced by a later segment's mapping",
    "outside-segments": "in no PT_LOAD segment: not loaded",
    "not-mapped": "its segment cannot be mapped as the headers say",
    "beyond-address-space": "beyond the top of the user address space",
}


class Owner(NamedTuple):
    """The program header a stretch of the plan was mapped for."""

    start: int
    end: int
    segment: int | None  # its index; None: the dynamic linker's reservation of the span


class SymbolPlan(NamedTuple):
    entry: SymbolEntry
    section: str | None
    kind: str | None
    detail: Detail | None
    own: bool  # the program's own, rather than the C library's or the toolchain's

    @property
    def reason(self) -> str:
        """The lesson's reason for the symbol's region (computed when shown: a big
        library has 50,000 symbols and no view shows the reason of each)."""
        return describe_symbol(self.entry.type_name, self.detail)

    def to_dict(self) -> JSONDict:
        e = self.entry
        return {
            "name": e.name,
            "value": hex_address(e.value),
            "size": e.size,
            "type": e.type_name,
            "bind": e.bind_name,
            "section": self.section,
            "kind": self.kind,
        }


class Explanation(NamedTuple):
    """Everything `procmap explain` shows about one ELF file."""

    path: str
    layout: ElfLayout
    facts: ElfFacts
    page_size: int
    loader: str | None  # "kernel", "dynamic linker", or None: not loadable
    mappings: list[Mapping]  # the plan, at load bias 0
    regions: list[Region]  # the plan, classified
    segments: list[SegmentPlan]  # every program header
    sections: list[SectionPlan]
    symbols: list[SymbolPlan]
    symbol_source: str | None  # ".symtab", ".dynsym" or None
    warnings: list[str]
    findings: list[Finding] = []  # lies in the program headers, and what the loader does
    owners: list[Owner] = []  # which program header each stretch of the plan comes from

    @property
    def loads(self) -> list[SegmentPlan]:
        return [p for p in self.segments if p.segment.type == PT_LOAD]

    @property
    def refused(self) -> bool:
        """The loader would not load this file as it is."""
        return any(f.refused for f in self.findings)

    def owner_at(self, address: int) -> int | None:
        """The program header whose mapping holds `address` in the plan."""
        for o in self.owners:
            if o.start <= address < o.end:
                return o.segment
        return None

    @property
    def stripped(self) -> bool:
        return self.symbol_source != ".symtab"

    def kinds(self) -> list[str]:
        """Kinds in the plan, in the lesson's order."""
        present = {r.kind for r in self.regions} | {s.kind for s in self.sections if s.kind}
        return [k for k in KINDS if k in present]

    def to_dict(self) -> JSONDict:
        return {
            "path": self.path,
            "elf": self.facts.to_dict(),
            "page_size": self.page_size,
            "loader": self.loader,
            "refused": self.refused,
            "findings": [f.to_dict() for f in self.findings],
            "segments": [p.to_dict() for p in self.segments],
            "mappings": [
                {**_mapping_dict(m), "segment": self.owner_at(m.start)} for m in self.mappings
            ],
            "regions": [_region_dict(r) for r in self.regions],
            "sections": [s.to_dict() for s in self.sections],
            "symbol_source": self.symbol_source,
            "symbols": _symbol_dicts(self.symbols),
            "warnings": self.warnings,
        }


def _symbol_dicts(symbols: list[SymbolPlan]) -> list[JSONDict]:
    # SymbolPlan.to_dict() inlined: this loop runs 50,000 times for a big library.
    types, binds = SYMBOL_TYPES, SYMBOL_BINDS
    return [
        {
            "name": e.name,
            "value": hex_address(e.value),
            "size": e.size,
            "type": types.get(e.type, str(e.type)),
            "bind": binds.get(e.bind, str(e.bind)),
            "section": section,
            "kind": kind,
        }
        for e, section, kind, _detail, _own in symbols
    ]


def _mapping_dict(m: Mapping) -> JSONDict:
    return {
        "start": hex_address(m.start),
        "end": hex_address(m.end),
        "size": m.end - m.start,
        "perms": m.perms,
        "offset": hex_address(m.offset if m.inode else 0),
        "file": bool(m.inode),
    }


def _region_dict(r: Region) -> JSONDict:
    return {
        "start": hex_address(r.start),
        "end": hex_address(r.end),
        "size": r.end - r.start,
        "perms": r.perms,
        "kind": r.kind,
        "detail": r.detail.value,
        "description": r.description,
        "sections": list(r.sections),
    }


# --- reading -----------------------------------------------------------------------


def explain_elf(path: str | bytes, page_size: int | None = None) -> Explanation:
    """Read the ELF file at `path` and lay out what it becomes in memory.

    Raises BadFile, NotAnELF or CorruptELF for a file that cannot be read as
    ELF at all; damage elsewhere (section headers, symbols, the dynamic section)
    becomes a warning and the rest is still explained.
    """
    page = page_size or os.sysconf("SC_PAGE_SIZE")
    name = os.fsdecode(path)
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        warnings: list[str] = []
        layout = read_elf_fd(fd, name, warnings)
        dynamic = _optional(
            lambda: read_dynamic_fd(fd, layout, name, warnings), warnings, "dynamic section"
        )
        source, entries = _optional(
            lambda: read_symbol_entries_fd(fd, layout, name, warnings), warnings, "symbols"
        ) or (None, [])
    except OSError as err:  # a read error: EIO on a damaged disk, say
        raise BadFile(f"{name}: cannot read: {err.strerror}") from None
    finally:
        os.close(fd)
    return build_explanation(
        name, layout, dynamic, source, entries, page, st.st_dev, st.st_ino, warnings
    )


def _optional(read: Callable[[], T], warnings: list[str], what: str) -> T | None:
    try:
        return read()
    except CorruptELF as err:
        warnings.append(f"{what} ignored: {err.detail}")
        return None


def build_explanation(
    path: str,
    layout: ElfLayout,
    dynamic: DynamicInfo | None,
    symbol_source: str | None,
    entries: list[SymbolEntry],
    page: int,
    dev: int = 0,
    inode: int = 1,
    warnings: list[str] | None = None,
) -> Explanation:
    """The explanation of an already-read file (pure: used by explain_elf and tests)."""
    warnings = list(warnings or [])
    facts = ElfFacts.of(layout, dynamic)
    loader = None
    mappings: list[Mapping] = []
    regions: list[Region] = []
    findings: list[Finding] = []
    owners: list[Owner] = []
    top = user_top(layout)[0]
    if facts.loadable and layout.loads:
        loader = "dynamic linker" if facts.type == "shared-object" else KERNEL
        findings = load_findings(layout, page, loader)
        dev_text = f"{os.major(dev):02x}:{os.minor(dev):02x}"
        plan = _play(layout, page, loader, 0, path, dev_text, inode or 1, True, top)
        mappings, owners = plan.mappings, plan.owners
        # Classified as it lands: with lying headers, what is really mapped where (each
        # segment cut to the pages it keeps, each section only where its bytes are).
        seen = _as_mapped(layout, owners, top, page) if findings else layout
        key = (dev_text, inode or 1)
        program = key if loader == "kernel" else None
        facts_ = Facts(page_size=page, pointer_size=layout.elf_class // 8, exe_key=program)
        regions = classify(mappings, {key: seen}, facts_).regions
    elif facts.type == "relocatable":
        warnings.append(
            "a relocatable object is not a loadable program: the linker places its "
            "sections; kinds below are where each section would land"
        )
    elif facts.type == "core":
        warnings.append(
            "a core file is a memory dump, not a program: its LOAD segments are the "
            "dumped mappings of the process that crashed"
        )
    elif facts.loadable:
        warnings.append("no PT_LOAD segment: nothing of this file is loaded into memory")
    else:
        warnings.append(f"ELF type {layout.type} is none the loaders know: not a loadable program")

    if findings:
        sections = [
            _place_held_section(s, regions, layout, owners, top, page) for s in layout.sections
        ]
    else:
        sections = [_place_section(s, regions) for s in layout.sections]
    held = owners if findings else None
    segments = [_place_segment(i, s, regions, layout, held) for i, s in enumerate(layout.segments)]
    symbols = _place_symbols(entries, layout, sections, facts.static)
    return Explanation(
        path,
        layout,
        facts,
        page,
        loader,
        mappings,
        regions,
        segments,
        sections,
        symbols,
        symbol_source,
        warnings,
        findings,
        owners,
    )


# --- the loader, played ---------------------------------------------------------------


def plan_mappings(
    layout: ElfLayout,
    page: int,
    loader: str = "kernel",
    bias: int = 0,
    *,
    path: str = "",
    dev: str = "00:00",
    inode: int = 1,
    relro: bool = True,
    top: int | None = None,
) -> list[Mapping]:
    """The mappings that loading `layout` at `bias` creates, in address order.

    loader="kernel" is binfmt_elf (fs/binfmt_elf.c, elf_load): each PT_LOAD's
    file pages mapped private, the tail of the last file page zeroed, and
    anonymous pages for the rest of p_memsz; holes between segments stay
    unmapped.  loader="dynamic linker" is glibc's _dl_map_segments
    (elf/dl-map-segments.h): the whole span mapped from the file first, the
    holes between segments left mapped with no access, then each segment and
    its zero pages.  Both map the segments in header order, each over what is
    there (MAP_FIXED).  relro=True then does what _dl_protect_relro does: the
    whole pages of PT_GNU_RELRO made read-only.  With `top`, nothing is planned
    at or above it: the top of the user address space (the file's headers can
    ask for more; procmap.elf.checks says what the loaders do then).
    """
    return _play(layout, page, loader, bias, path, dev, inode, relro, top).mappings


def _play(
    layout: ElfLayout,
    page: int,
    loader: str,
    bias: int,
    path: str,
    dev: str,
    inode: int,
    relro: bool,
    top: int | None,
) -> _Plan:
    plan = _Plan(page, path, dev, inode, top)
    loads = [
        (i, s)
        for i, s in enumerate(layout.segments)
        if s.type == PT_LOAD and (s.memsz > 0 or s.filesz > 0)
    ]
    if not loads:
        return plan
    # ld.so's arithmetic is modulo the address width (a p_memsz that wraps past the top
    # of the address space ends low); the kernel refuses such a file.
    wrap = 1 << layout.elf_class if loader == "dynamic linker" else 1 << 128
    reserved = None  # the segment whose file bytes the dynamic linker's reservation maps
    if loader == "dynamic linker":
        (i0, first), (_, last) = loads[0], loads[-1]
        start = bias + align_down(first.vaddr, page)
        end = bias + align_up((last.vaddr + last.memsz) % wrap, page)
        if end > start:  # otherwise ld.so fails here (procmap.elf.checks says so)
            plan.map(start, end, first.perms + "p", align_down(first.offset, page), None)
            first_end = bias + align_up(first.vaddr + first.filesz, page)
            plan.own(start, first_end, i0)
            reserved = i0
            last_start = bias + align_down(last.vaddr, page)
            if last_start > first_end:
                plan.protect(first_end, last_start, "---p")
    for i, seg in loads:
        lo = bias + align_down(seg.vaddr, page)
        file_end = bias + align_up(seg.vaddr + seg.filesz, page)
        # No mmap() puts an offset at an address it is not congruent with: the loaders
        # fail there, and the plan leaves the segment's file bytes out.
        congruent = (seg.vaddr - seg.offset) % page == 0
        if seg.filesz and congruent and i != reserved:
            plan.map(lo, file_end, seg.perms + "p", align_down(seg.offset, page), i)
        zero_start = file_end if seg.filesz else lo
        zero_end = bias + align_up((seg.vaddr + seg.memsz) % wrap, page)
        if zero_end > zero_start:
            plan.map(zero_start, zero_end, seg.perms + "p", 0, i, anonymous=True)
    if relro and layout.relro is not None:
        r = layout.relro
        lo, hi = bias + align_down(r.vaddr, page), bias + align_down(r.vaddr + r.memsz, page)
        if hi > lo:
            plan.protect(lo, hi, "r--p")
    return plan


class _Plan:
    """An address space being built with mmap(MAP_FIXED) and mprotect(), with the
    program header each stretch was mapped for."""

    def __init__(self, page: int, path: str, dev: str, inode: int, top: int | None = None):
        self.page = page
        self.path, self.dev, self.inode = path, dev, inode
        self.top = top
        self.mappings: list[Mapping] = []
        self.owners: list[Owner] = []

    def map(
        self,
        start: int,
        end: int,
        perms: str,
        offset: int,
        segment: int | None,
        anonymous: bool = False,
    ) -> None:
        if self.top is not None:
            end = min(end, self.top)
        if end <= start:
            return
        self._punch(start, end)
        if anonymous:
            m = Mapping(start, end, perms, 0, "00:00", 0, None)
        else:
            m = Mapping(start, end, perms, offset, self.dev, self.inode, self.path)
        self.mappings.append(m)
        self.mappings.sort()
        self.own(start, end, segment)

    def own(self, start: int, end: int, segment: int | None) -> None:
        if self.top is not None:
            end = min(end, self.top)
        if end <= start:
            return
        kept = _cut(self.owners, start, end, lambda o, a, b: o._replace(start=a, end=b))
        self.owners = sorted([*kept, Owner(start, end, segment)])

    def protect(self, start: int, end: int, perms: str) -> None:
        changed = []
        for m in self._overlapping(start, end):
            a, b = max(m.start, start), min(m.end, end)
            changed.append(_slice(m, a, b)._replace(perms=perms))
        self._punch(start, end)
        self.mappings.extend(changed)
        self.mappings.sort()

    def _overlapping(self, start: int, end: int) -> list[Mapping]:
        return [m for m in self.mappings if m.start < end and m.end > start]

    def _punch(self, start: int, end: int) -> None:
        self.mappings = _cut(self.mappings, start, end, _slice)


_Span = TypeVar("_Span", Mapping, Owner)


def _cut(
    spans: list[_Span], start: int, end: int, piece: Callable[[_Span, int, int], _Span]
) -> list[_Span]:
    """`spans` with [start, end) taken out: a span across it is cut, `piece(span, a, b)`."""
    kept = []
    for x in spans:
        if x.end <= start or x.start >= end:
            kept.append(x)
            continue
        if x.start < start:
            kept.append(piece(x, x.start, start))
        if x.end > end:
            kept.append(piece(x, end, x.end))
    return kept


def _slice(m: Mapping, start: int, end: int) -> Mapping:
    offset = m.offset + (start - m.start) if m.inode else 0
    return m._replace(start=start, end=end, offset=offset)


# --- sections, segments and symbols, placed ---------------------------------------------


def _place_section(s: Section, regions: list[Region]) -> SectionPlan:
    if not s.flags & SHF_ALLOC:
        return SectionPlan(s, None, None)
    if s.flags & SHF_TLS:
        # .tdata/.tbss are templates: each thread's copy lives in its own TLS block.
        return SectionPlan(s, None, Detail.THREAD_LOCAL)
    if regions and s.size:
        # A section can straddle regions (.got.plt across the end of RELRO, .bss from
        # the last file page into anonymous pages): it takes the kind of most of its bytes.
        lo, hi = s.addr, s.addr + s.size
        best, most = None, 0
        for r in regions:
            overlap = min(r.end, hi) - max(r.start, lo)
            if overlap > most:
                best, most = r, overlap
        if best is not None:
            detail = Detail.BSS if best.kind == "bss" else best.detail
            return SectionPlan(s, best.kind, detail)
    kind, detail = _kind_by_flags(s)
    return SectionPlan(s, kind, detail)


def _holders(s: Section, layout: ElfLayout) -> list[int]:
    """The PT_LOADs whose headers put the section's bytes at its address (readelf's
    rule: inside the segment in memory and, for bytes from the file, at the same
    place in the file)."""
    out = []
    lo, hi = s.addr, s.addr + s.size
    for i, seg in enumerate(layout.segments):
        extent = seg.vaddr + max(seg.memsz, seg.filesz)
        if seg.type != PT_LOAD or not (seg.vaddr <= lo and hi <= extent):
            continue
        if s.type != SHT_NOBITS and not (
            seg.offset <= s.offset
            and s.offset + s.size <= seg.offset + seg.filesz
            and s.addr - seg.vaddr == s.offset - seg.offset
        ):
            continue
        out.append(i)
    return out


def _missing(
    s: Section, layout: ElfLayout, owners: list[Owner], top: int, page: int
) -> tuple[str | None, int | None]:
    """(a key of MISSING, the segment that replaced it) for a section not in memory
    where the file says; (None, None) for one that is."""
    holders = _holders(s, layout)
    if not holders:
        return "outside-segments", None
    if s.addr + s.size > top:
        return "beyond-address-space", None
    replacer = None
    segs = layout.segments
    if s.type != SHT_NOBITS and all((segs[h].vaddr - segs[h].offset) % page for h in holders):
        return "not-mapped", None
    for holder in holders:
        pos, end = s.addr, s.addr + s.size
        for o in owners:
            if o.end <= pos:
                continue
            if o.start > pos or o.segment != holder:
                replacer = o.segment if o.start <= pos else None
                break
            pos = o.end
            if pos >= end:
                return None, None
    return "replaced", replacer


def _as_mapped(layout: ElfLayout, owners: list[Owner], top: int, page: int) -> ElfLayout:
    """The layout as it lands: each PT_LOAD cut to the stretches of the plan it keeps,
    and only the sections whose bytes are where the file says."""
    pieces = []
    for i, seg in enumerate(layout.segments):
        if seg.type != PT_LOAD:
            continue
        seg_end = min(seg.vaddr + max(seg.memsz, seg.filesz), top)
        for start, end in _runs(owners, i):
            a, b = max(start, seg.vaddr), min(end, seg_end)
            if a >= b:
                continue
            filesz = max(0, min(seg.vaddr + seg.filesz, b) - a)
            pieces.append(
                seg._replace(
                    offset=seg.offset + (a - seg.vaddr), vaddr=a, filesz=filesz, memsz=b - a
                )
            )
    others = tuple(seg for seg in layout.segments if seg.type != PT_LOAD)
    sections = tuple(
        s
        for s in layout.sections
        if not s.in_image or _missing(s, layout, owners, top, page) == (None, None)
    )
    return layout._replace(segments=others + tuple(pieces), loads=tuple(pieces), sections=sections)


def _runs(owners: list[Owner], segment: int) -> list[tuple[int, int]]:
    """The stretches of the plan held by one segment, adjacent ones merged."""
    runs: list[tuple[int, int]] = []
    for o in owners:
        if o.segment != segment:
            continue
        if runs and runs[-1][1] == o.start:
            runs[-1] = (runs[-1][0], o.end)
        else:
            runs.append((o.start, o.end))
    return runs


def _place_held_section(
    s: Section, regions: list[Region], layout: ElfLayout, owners: list[Owner], top: int, page: int
) -> SectionPlan:
    """A section of a file whose headers lie: placed only where its bytes really are."""
    if s.in_image and not s.flags & SHF_TLS:
        missing, by = _missing(s, layout, owners, top, page)
        if missing is not None:
            return SectionPlan(s, None, None, missing, by)
    return _place_section(s, regions)


def _kind_by_flags(s: Section) -> tuple[str, Detail]:
    """Where an allocated section lands, from its flags alone (object files)."""
    if s.flags & SHF_EXECINSTR:
        return "text", Detail.CODE
    if s.flags & SHF_WRITE:
        if s.name.startswith(".data.rel.ro") or s.name in (
            ".got",
            ".dynamic",
            ".init_array",
            ".fini_array",
        ):
            return "rodata", Detail.RELRO
        if s.type == SHT_NOBITS:
            return "bss", Detail.BSS
        return "data", Detail.DATA
    return "rodata", Detail.READ_ONLY_DATA


def _place_segment(
    i: int,
    seg: Segment,
    regions: list[Region],
    layout: ElfLayout,
    owners: list[Owner] | None = None,
) -> SegmentPlan:
    lo, hi = seg.vaddr, seg.vaddr + seg.memsz
    if owners is not None:
        # Headers that lie: a segment holds only the stretches the plan kept for it.
        runs = _runs(owners, i)
        inside = tuple(r for r in regions if any(r.start < b and r.end > a for a, b in runs))
    else:
        inside = tuple(r for r in regions if r.start < hi and r.end > lo) if seg.memsz else ()
    kinds: list[str] = []
    for r in inside:
        if r.kind not in kinds:
            kinds.append(r.kind)
    # As readelf maps sections to segments: PT_TLS holds the TLS sections (.tbss
    # included); any other segment only sections with bytes of their own.
    if seg.type == PT_TLS:
        chosen = [s for s in layout.sections if s.flags & SHF_TLS]
    else:
        chosen = [s for s in layout.sections if s.in_image]
    if owners is not None and seg.type == PT_LOAD:
        names = tuple(s.name for s in chosen if i in _holders(s, layout))
    else:
        names = tuple(s.name for s in chosen if lo <= s.addr and s.addr + s.size <= hi)
    page_regions = inside if seg in layout.loads else ()
    return SegmentPlan(i, seg, tuple(kinds), page_regions, names)


def _place_symbols(
    entries: list[SymbolEntry], layout: ElfLayout, sections: list[SectionPlan], static: bool
) -> list[SymbolPlan]:
    own = _own_symbols(entries, static)
    # Symbols of one section share its placement: look each section up once.
    Placement = tuple[str | None, str | None, Detail | None]  # section, kind, detail
    by_index: dict[int, Placement] = {
        i: (plan.section.name, plan.kind, plan.detail) for i, plan in enumerate(sections, 1)
    }
    by_index[SHN_COMMON] = (None, "bss", Detail.COMMON)
    nowhere: Placement = (None, None, None)  # SHN_ABS, or an index past the section table
    get = by_index.get
    out = []
    for e in entries:
        section, kind, detail = get(e.shndx, nowhere)
        out.append(SymbolPlan(e, section, kind, detail, id(e) in own))
    return out


def _own_symbols(entries: list[SymbolEntry], static: bool) -> set[int]:
    """The variables of the program itself, not of the C runtime or of libc.

    A local belongs to the source file named before it (STT_FILE): "lesson.c"
    is the program's, "crtstuff.c" the toolchain's, and libc.a's members are
    named as objects ("malloc.o").  Globals carry no file; in a dynamically
    linked file they are its own, but a static link also holds libc's, so
    there a global counts only next to the program's locals, where the linker
    put the program's input sections.
    """
    candidates = [
        e
        for e in entries
        if e.type == STT_OBJECT
        and e.name[:1] not in ("_", "")
        and not e.copied
        and e.shndx < SHN_LORESERVE
    ]
    own_locals = [
        e
        for e in candidates
        if e.bind == STB_LOCAL
        and e.file is not None
        and e.file not in _TOOLCHAIN_FILES
        and not e.file.endswith(".o")
    ]
    chosen = {id(e) for e in own_locals}
    if not static or not own_locals:
        chosen.update(id(e) for e in candidates if e.bind != STB_LOCAL)
        return chosen
    spans: dict[int, tuple[int, int]] = {}
    for e in own_locals:
        lo, hi = spans.get(e.shndx, (e.value, e.value + e.size))
        spans[e.shndx] = (min(lo, e.value), max(hi, e.value + e.size))
    slack = 64  # alignment padding between one input section's variables
    for e in candidates:
        span = spans.get(e.shndx)
        if e.bind != STB_LOCAL and span and span[0] - slack <= e.value <= span[1] + slack:
            chosen.add(id(e))
    return chosen


# --- names ------------------------------------------------------------------------------


def _section_flags(flags: int) -> str:
    """readelf's letters: W write, A alloc, X execute, M merge, S strings, T TLS..."""
    letters = (
        (0x1, "W"),
        (0x2, "A"),
        (0x4, "X"),
        (0x10, "M"),
        (0x20, "S"),
        (0x40, "I"),
        (0x80, "L"),
        (0x100, "O"),
        (0x200, "G"),
        (0x400, "T"),
        (0x800, "C"),
    )
    return "".join(c for bit, c in letters if flags & bit)
