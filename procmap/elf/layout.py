"""ELF headers, read into plain records.

Classification needs only the ELF header, the program headers (how the file is
loaded) and the section headers (what each part holds), so those are read with
a few bulk struct reads, cheap enough to do for every mapped file of a process.
Symbols are read the same way, and only when asked (`where`).  Both 32- and
64-bit files of either byte order are read; nothing assumes the machine that
runs procmap.

Every read is bounds-checked: a truncated or inconsistent file raises
CorruptELF, a file that is not ELF raises NotAnELF, and a path that is not a
regular file raises BadFile, before anything blocks (a FIFO is never opened).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..errors import BadFile, CorruptELF, NotAnELF
from ..files import open_regular, shown_path

# e_type
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
# p_type
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_SHLIB, PT_PHDR, PT_TLS = range(8)
PT_GNU_EH_FRAME, PT_GNU_STACK, PT_GNU_RELRO, PT_GNU_PROPERTY = (
    0x6474E550,
    0x6474E551,
    0x6474E552,
    0x6474E553,
)
# p_flags
PF_X, PF_W, PF_R = 1, 2, 4
# sh_type
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 0, 1, 2, 3
SHT_NOBITS, SHT_DYNSYM = 8, 11
# sh_flags
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
# special section indexes
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFFF
PN_XNUM = 0xFFFF
# symbols
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_COMMON, STT_TLS = range(7)
STT_GNU_IFUNC = 10
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
SHN_COMMON = 0xFFF2
NT_GNU_BUILD_ID = 3
# d_tag, and the flags that say how the dynamic linker binds and what the file is
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH = 0, 1, 5, 10, 14, 15
DT_TEXTREL, DT_BIND_NOW, DT_RUNPATH, DT_FLAGS = 22, 24, 29, 30
DT_FLAGS_1 = 0x6FFFFFFB
DF_TEXTREL, DF_BIND_NOW = 0x4, 0x8
DF_1_NOW, DF_1_PIE = 0x1, 0x08000000

_P_TYPES = {
    PT_NULL: "NULL",
    PT_LOAD: "LOAD",
    PT_DYNAMIC: "DYNAMIC",
    PT_INTERP: "INTERP",
    PT_NOTE: "NOTE",
    PT_SHLIB: "SHLIB",
    PT_PHDR: "PHDR",
    PT_TLS: "TLS",
    PT_GNU_EH_FRAME: "GNU_EH_FRAME",
    PT_GNU_STACK: "GNU_STACK",
    PT_GNU_RELRO: "GNU_RELRO",
    PT_GNU_PROPERTY: "GNU_PROPERTY",
}

_SECTION_TYPES = {
    0: "NULL",
    1: "PROGBITS",
    2: "SYMTAB",
    3: "STRTAB",
    4: "RELA",
    5: "HASH",
    6: "DYNAMIC",
    7: "NOTE",
    8: "NOBITS",
    9: "REL",
    11: "DYNSYM",
    14: "INIT_ARRAY",
    15: "FINI_ARRAY",
    16: "PREINIT_ARRAY",
    17: "GROUP",
    18: "SYMTAB_SHNDX",
    19: "RELR",
    0x6FFFFFF5: "GNU_ATTRIBUTES",
    0x6FFFFFF6: "GNU_HASH",
    0x6FFFFFFD: "VERDEF",
    0x6FFFFFFE: "VERNEED",
    0x6FFFFFFF: "VERSYM",
}

# The machines procmap is likely to meet; others print as their number.
MACHINES = {
    3: "x86",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "S/390",
    40: "ARM",
    43: "SPARC V9",
    50: "IA-64",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}


def align_down(x: int, align: int) -> int:
    return x - x % align


def align_up(x: int, align: int) -> int:
    return -(-x // align) * align


def describe_machine(machine: int) -> str:
    return MACHINES.get(machine, f"machine {machine}")


class Segment(NamedTuple):
    """A program header: how a part of the file is loaded."""

    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    @property
    def type_name(self) -> str:
        return _P_TYPES.get(self.type, f"0x{self.type:x}")

    @property
    def perms(self) -> str:
        """Flags as "r-x", the way maps prints permissions."""
        f = self.flags
        return ("r" if f & PF_R else "-") + ("w" if f & PF_W else "-") + ("x" if f & PF_X else "-")


class Section(NamedTuple):
    """A section header: a named part of the file (.text, .data, .bss...)."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int = 0  # sh_link: for a symbol table, the index of its string table

    @property
    def type_name(self) -> str:
        return _SECTION_TYPES.get(self.type, f"0x{self.type:x}")

    @property
    def is_alloc(self) -> bool:
        """Occupies memory when loaded."""
        return bool(self.flags & SHF_ALLOC)

    @property
    def in_image(self) -> bool:
        """Has bytes of its own at [addr, addr+size) in the loaded image.

        .tbss is the exception among allocated sections: it is a template for
        each thread's TLS block and overlaps the sections that follow it.
        """
        return (
            self.is_alloc
            and self.size > 0
            and not (self.flags & SHF_TLS and self.type == SHT_NOBITS)
        )


class ElfLayout(NamedTuple):
    """What procmap needs of an ELF file: its identity, segments and sections.

    Made with ElfLayout.build(), which derives `loads` and `relro`.
    """

    elf_class: int  # 32 or 64
    endian: str  # "little" or "big"
    machine: int
    type: int  # ET_EXEC, ET_DYN...
    entry: int
    segments: tuple[Segment, ...]
    sections: tuple[Section, ...]
    interpreter: str | None
    build_id: str | None
    file_size: int
    loads: tuple[Segment, ...]  # the PT_LOAD segments, in header order
    relro: Segment | None  # the PT_GNU_RELRO segment

    @classmethod
    def build(
        cls,
        *,
        elf_class: int,
        endian: str,
        machine: int,
        type: int,
        entry: int,
        segments: Iterable[Segment],
        sections: Iterable[Section],
        interpreter: str | None,
        build_id: str | None,
        file_size: int,
    ) -> ElfLayout:
        segments = tuple(segments)
        return cls(
            elf_class,
            endian,
            machine,
            type,
            entry,
            segments,
            tuple(sections),
            interpreter,
            build_id,
            file_size,
            tuple(s for s in segments if s.type == PT_LOAD),
            next((s for s in segments if s.type == PT_GNU_RELRO), None),
        )

    @property
    def machine_name(self) -> str:
        return describe_machine(self.machine)

    def sections_between(self, start: int, end: int) -> tuple[Section, ...]:
        """Sections with bytes in [start, end), addresses as in the file (no load bias)."""
        return tuple(
            s for s in self.sections if s.in_image and s.addr < end and s.addr + s.size > start
        )

    def section_at(self, vaddr: int) -> Section | None:
        best = None
        for s in self.sections:
            if s.in_image and s.addr <= vaddr < s.addr + s.size:
                # Prefer the smallest: .tdata inside a larger section, say.
                if best is None or s.size < best.size:
                    best = s
        return best


# --- reading --------------------------------------------------------------------


def read_elf(path: str | bytes) -> ElfLayout:
    """Read the ELF layout of the file at `path`."""
    fd = open_regular(path)
    try:
        return read_elf_fd(fd, shown_path(path))
    finally:
        os.close(fd)


def read_elf_fd(fd: int, name: str = "file", warnings: list[str] | None = None) -> ElfLayout:
    """Read the ELF layout from an open file descriptor (positioned reads only).

    With a `warnings` list, damaged section headers are not fatal: the layout
    comes without sections, and the list says why.  (The loader never reads
    section headers, so the program headers alone still say how it loads.)
    """
    size = os.fstat(fd).st_size
    return Reader(fd, size, name, warnings).layout()


class Reader:
    def __init__(self, fd: int, size: int, name: str, warnings: list[str] | None = None):
        self.fd = fd
        self.size = size
        self.name = name
        self.warnings = warnings

    def corrupt(self, what: str) -> CorruptELF:
        return CorruptELF(f"{self.name}: corrupt ELF file: {what}", what)

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise self.corrupt(f"{what}: outside the file ({self.size} bytes)")
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as err:
            raise BadFile(f"{self.name}: cannot read: {err.strerror}") from None
        if len(data) != length:
            raise self.corrupt(f"{what}: cut short")
        return data

    def layout(self) -> ElfLayout:
        try:
            ident = os.pread(self.fd, 64, 0)
        except OSError as err:
            raise BadFile(f"{self.name}: cannot read: {err.strerror}") from None
        if len(ident) < 4 or ident[:4] != b"\x7fELF":
            raise NotAnELF(f"{self.name}: not an ELF file (no \\x7fELF magic)")
        if len(ident) < 16:
            raise self.corrupt("the ELF identification is cut short")
        ei_class, ei_data = ident[4], ident[5]
        if ei_class not in (1, 2):
            raise self.corrupt(f"unknown ELF class {ei_class}")
        if ei_data not in (1, 2):
            raise self.corrupt(f"unknown data encoding {ei_data}")
        self.bits = 32 if ei_class == 1 else 64
        e = "<" if ei_data == 1 else ">"
        self.endian = "little" if ei_data == 1 else "big"
        if self.bits == 64:
            ehdr_fmt, self.phdr_fmt, self.shdr_fmt = "16xHHIQQQIHHHHHH", "IIQQQQQQ", "IIQQQQIIQQ"
        else:
            ehdr_fmt, self.phdr_fmt, self.shdr_fmt = "16xHHIIIIIHHHHHH", "IIIIIIII", "IIIIIIIIII"
        ehdr = struct.Struct(e + ehdr_fmt)
        if len(ident) < ehdr.size:
            raise self.corrupt("the ELF header is cut short")
        (
            e_type,
            e_machine,
            _version,
            e_entry,
            e_phoff,
            e_shoff,
            _flags,
            _ehsize,
            e_phentsize,
            e_phnum,
            e_shentsize,
            e_shnum,
            e_shstrndx,
        ) = ehdr.unpack_from(ident)
        self.e = e

        try:
            sections_raw, shstrndx = self.section_headers(e_shoff, e_shentsize, e_shnum, e_shstrndx)
            sections = self.name_sections(sections_raw, shstrndx)
        except CorruptELF as err:
            if self.warnings is None:
                raise
            self.warnings.append(f"section headers ignored: {err.detail}")
            sections_raw, sections = [], ()
        if e_phnum == PN_XNUM:
            # sh_info of section 0 holds the real count (there must be a section 0).
            e_phnum = sections_raw[0][7] if sections_raw else 0
            if e_phnum == 0:
                raise self.corrupt("e_phnum says section 0 holds the count, which it does not")
        segments = self.program_headers(e_phoff, e_phentsize, e_phnum)

        interpreter = None
        build_id = None
        for seg in segments:
            if seg.type == PT_INTERP and interpreter is None:
                raw = self.read(seg.offset, seg.filesz, "the interpreter path (PT_INTERP)")
                interpreter = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif seg.type == PT_NOTE and build_id is None and seg.filesz <= 1 << 16:
                build_id = self.find_build_id(seg)
        return ElfLayout.build(
            elf_class=self.bits,
            endian=self.endian,
            machine=e_machine,
            type=e_type,
            entry=e_entry,
            segments=segments,
            sections=sections,
            interpreter=interpreter,
            build_id=build_id,
            file_size=self.size,
        )

    def program_headers(self, phoff: int, phentsize: int, phnum: int) -> tuple[Segment, ...]:
        if phnum == 0:
            return ()
        st = struct.Struct(self.e + self.phdr_fmt)
        if phentsize < st.size:
            raise self.corrupt(f"program header entries of {phentsize} bytes are too small")
        raw = self.read(phoff, phentsize * phnum, f"the program headers ({phnum})")
        segments = []
        for i in range(phnum):
            v = st.unpack_from(raw, i * phentsize)
            if self.bits == 64:
                p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align = v
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_flags, p_align = v
            if p_type == PT_LOAD and self.warnings is None:
                self.check_load(i, p_offset, p_vaddr, p_filesz, p_memsz)
            segments.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align))
        return tuple(segments)

    def check_load(self, i: int, offset: int, vaddr: int, filesz: int, memsz: int) -> None:
        """A PT_LOAD no loader maps as it says is corrupt, unless the caller asked for
        warnings: explain reads past it, and says what each loader does with it
        (procmap.elf.checks)."""
        if offset + filesz > self.size:
            raise self.corrupt(
                f"segment {i} (LOAD) reaches past the end of the file "
                f"(offset 0x{offset:x} + 0x{filesz:x} > 0x{self.size:x})"
            )
        if memsz < filesz:
            raise self.corrupt(f"segment {i} (LOAD) is smaller in memory than in the file")
        if vaddr + memsz > 1 << self.bits:
            raise self.corrupt(
                f"segment {i} (LOAD) reaches past the top of the address space "
                f"(0x{vaddr:x} + 0x{memsz:x})"
            )

    def section_headers(
        self, shoff: int, shentsize: int, shnum: int, shstrndx: int
    ) -> tuple[list[tuple[int, ...]], int]:
        if shoff == 0:
            return [], 0
        st = struct.Struct(self.e + self.shdr_fmt)
        if shentsize < st.size:
            raise self.corrupt(f"section header entries of {shentsize} bytes are too small")
        first = st.unpack_from(self.read(shoff, st.size, "section header 0"))
        if shnum == 0:
            shnum = first[5]  # sh_size of section 0 holds the real count
        if shstrndx == SHN_XINDEX:
            shstrndx = first[6]  # sh_link of section 0
        if shnum > 1 << 20:
            raise self.corrupt(f"{shnum} sections is not plausible")
        raw = self.read(shoff, shentsize * shnum, f"the section headers ({shnum})")
        return [st.unpack_from(raw, i * shentsize) for i in range(shnum)], shstrndx

    def name_sections(self, raw: list[tuple[int, ...]], shstrndx: int) -> tuple[Section, ...]:
        if not raw:
            return ()
        names = b""
        if 0 < shstrndx < len(raw):
            strtab = raw[shstrndx]
            if strtab[1] != SHT_NOBITS:
                names = self.read(strtab[4], strtab[5], "the section name table")
        elif shstrndx != 0:
            self.warn(f"e_shstrndx {shstrndx} names no section: sections are unnamed")
        sections = []
        unnamed = 0
        for i, (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, *_) in enumerate(
            raw
        ):
            if i == 0:
                continue  # the null section; its fields only extend counts
            if sh_type != SHT_NOBITS and sh_size and sh_offset + sh_size > self.size:
                raise self.corrupt(f"section {i} reaches past the end of the file")
            if names and sh_name >= len(names):
                unnamed += 1
            name = c_string(names, sh_name)
            sections.append(Section(name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link))
        if unnamed:
            self.warn(f"{unnamed} section name(s) point past the section name table")
        return tuple(sections)

    def warn(self, what: str) -> None:
        """Damage the reader can read past: kept when the caller asked for warnings."""
        if self.warnings is not None:
            self.warnings.append(what)

    def find_build_id(self, seg: Segment) -> str | None:
        data = self.read(seg.offset, seg.filesz, "a note segment")
        head = struct.Struct(self.e + "III")
        pos = 0
        while pos + head.size <= len(data):
            namesz, descsz, ntype = head.unpack_from(data, pos)
            pos += head.size
            name_end = pos + namesz
            desc = (name_end + 3) & ~3
            if desc + descsz > len(data):
                return None
            if ntype == NT_GNU_BUILD_ID and data[pos:name_end].rstrip(b"\0") == b"GNU":
                return data[desc : desc + descsz].hex()
            pos = (desc + descsz + 3) & ~3
        return None


def string_reader(table: bytes) -> Callable[[int], str]:
    """name_at(offset) for a string table: c_string, but decoding the table once when it
    is ASCII (as symbol names nearly always are), which halves the cost a name."""
    if not table.isascii():
        return lambda offset: c_string(table, offset)
    text = table.decode("ascii")
    find = text.find

    def name_at(offset: int) -> str:
        end = find("\0", offset)
        return text[offset : end if end >= 0 else len(text)]

    return name_at


def c_string(table: bytes, offset: int) -> str:
    if offset >= len(table):
        return ""
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "surrogateescape")
