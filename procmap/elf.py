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

import bisect
import os
import stat
import struct
from typing import NamedTuple

from .errors import BadFile, CorruptELF, NotAnELF
from .files import file_type

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


class ElfLayout:
    """What procmap needs of an ELF file: its identity, segments and sections."""

    __slots__ = (
        "elf_class",
        "endian",
        "machine",
        "type",
        "entry",
        "segments",
        "sections",
        "interpreter",
        "build_id",
        "file_size",
        "loads",
        "relro",
    )
    _FIELDS = __slots__[:10]

    def __init__(
        self,
        elf_class: int,  # 32 or 64
        endian: str,  # "little" or "big"
        machine: int,
        type: int,  # ET_EXEC, ET_DYN...
        entry: int,
        segments: tuple[Segment, ...],
        sections: tuple[Section, ...],
        interpreter: str | None,
        build_id: str | None,
        file_size: int,
    ):
        self.elf_class = elf_class
        self.endian = endian
        self.machine = machine
        self.type = type
        self.entry = entry
        self.segments = tuple(segments)
        self.sections = tuple(sections)
        self.interpreter = interpreter
        self.build_id = build_id
        self.file_size = file_size
        self.loads = tuple(s for s in self.segments if s.type == PT_LOAD)
        self.relro = next((s for s in self.segments if s.type == PT_GNU_RELRO), None)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ElfLayout):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"ElfLayout({fields})"

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


def open_regular(path: str | bytes) -> int:
    """Open a regular file for reading, refusing anything else before it can block.

    stat() first, so that a FIFO or a device is never opened (opening either can
    block or have side effects), then O_NONBLOCK and fstat() again against a
    swap between the two.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BadFile(f"{_show(path)}: no such file") from None
    except NotADirectoryError:
        raise BadFile(f"{_show(path)}: no such file (a parent is not a directory)") from None
    except PermissionError:
        raise BadFile(f"{_show(path)}: permission denied") from None
    except OSError as err:  # a symlink loop, a name too long...
        raise BadFile(f"{_show(path)}: {err.strerror}") from None
    except ValueError:
        raise BadFile(f"{_show(path)!r}: a path cannot hold a NUL byte") from None
    _require_regular(path, st.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except PermissionError:
        raise BadFile(f"{_show(path)}: permission denied") from None
    except OSError as err:
        raise BadFile(f"{_show(path)}: {err.strerror}") from None
    try:
        _require_regular(path, os.fstat(fd).st_mode)
    except BadFile:
        os.close(fd)
        raise
    return fd


def _require_regular(path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise BadFile(f"{_show(path)}: {file_type(mode)}, not a regular file")


def _show(path) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else path


def read_elf(path: str | bytes) -> ElfLayout:
    """Read the ELF layout of the file at `path`."""
    fd = open_regular(path)
    try:
        return read_elf_fd(fd, _show(path))
    finally:
        os.close(fd)


def read_elf_fd(fd: int, name: str = "file", warnings: list[str] | None = None) -> ElfLayout:
    """Read the ELF layout from an open file descriptor (positioned reads only).

    With a `warnings` list, damaged section headers are not fatal: the layout
    comes without sections, and the list says why.  (The loader never reads
    section headers, so the program headers alone still say how it loads.)
    """
    size = os.fstat(fd).st_size
    return _Reader(fd, size, name, warnings).layout()


class _Reader:
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
        return ElfLayout(
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
            if p_type == PT_LOAD and p_offset + p_filesz > self.size:
                raise self.corrupt(
                    f"segment {i} (LOAD) reaches past the end of the file "
                    f"(offset 0x{p_offset:x} + 0x{p_filesz:x} > 0x{self.size:x})"
                )
            if p_type == PT_LOAD and p_memsz < p_filesz:
                raise self.corrupt(f"segment {i} (LOAD) is smaller in memory than in the file")
            if p_type == PT_LOAD and p_vaddr + p_memsz > 1 << self.bits:
                raise self.corrupt(
                    f"segment {i} (LOAD) reaches past the top of the address space "
                    f"(0x{p_vaddr:x} + 0x{p_memsz:x})"
                )
            segments.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align))
        return tuple(segments)

    def section_headers(self, shoff, shentsize, shnum, shstrndx):
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

    def name_sections(self, raw, shstrndx) -> tuple[Section, ...]:
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
            name = _cstr(names, sh_name)
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


def _string_reader(table: bytes):
    """name_at(offset) for a string table: _cstr, but decoding the table once when it
    is ASCII (as symbol names nearly always are), which halves the cost a name."""
    if not table.isascii():
        return lambda offset: _cstr(table, offset)
    text = table.decode("ascii")
    find = text.find

    def name_at(offset: int) -> str:
        end = find("\0", offset)
        return text[offset : end if end >= 0 else len(text)]

    return name_at


def _cstr(table: bytes, offset: int) -> str:
    if offset >= len(table):
        return ""
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "surrogateescape")


# --- symbols ----------------------------------------------------------------------


class Symbol(NamedTuple):
    name: str
    value: int
    size: int
    type: int  # STT_*


class SymbolTable:
    """Functions and objects of one ELF file, for nearest-symbol lookup."""

    def __init__(self, symbols: list[Symbol], source: str | None):
        symbols.sort(key=lambda s: (s.value, -s.size))
        self.symbols = symbols
        self.source = source  # ".symtab", ".dynsym" or None
        self._values = [s.value for s in symbols]

    def lookup(self, vaddr: int) -> tuple[Symbol, int] | None:
        """The symbol at or nearest below `vaddr` (file addresses), with the offset."""
        i = bisect.bisect_right(self._values, vaddr) - 1
        if i < 0:
            return None
        # Among symbols at the same value, prefer one whose extent covers vaddr.
        best = self.symbols[i]
        j = i
        while j >= 0 and self._values[j] == best.value:
            if self.symbols[j].value + self.symbols[j].size > vaddr:
                best = self.symbols[j]
            j -= 1
        return best, vaddr - best.value


def read_symbols(path: str | bytes, layout: ElfLayout | None = None) -> SymbolTable:
    """Functions and objects from .symtab, or .dynsym when the file is stripped."""
    fd = open_regular(path)
    try:
        return read_symbols_fd(fd, _show(path), layout)
    finally:
        os.close(fd)


def read_symbols_fd(fd: int, name: str = "file", layout: ElfLayout | None = None) -> SymbolTable:
    reader = _Reader(fd, os.fstat(fd).st_size, name)
    layout = reader.layout() if layout is None else layout
    for wanted, source in ((SHT_SYMTAB, ".symtab"), (SHT_DYNSYM, ".dynsym")):
        table = next((s for s in layout.sections if s.type == wanted), None)
        if table is not None:
            return SymbolTable(_read_symbol_table(reader, layout, table), source)
    return SymbolTable([], None)


def _symbol_table_bytes(reader: _Reader, layout: ElfLayout, table: Section):
    """(string table, symbol table bytes, entry struct) of one symbol table section."""
    # Section indexes count the null section, which layout.sections leaves out.
    if not (0 < table.link <= len(layout.sections)):
        raise reader.corrupt(f"{table.name} names no string table")
    strtab = layout.sections[table.link - 1]
    if strtab.type == SHT_NOBITS:
        raise reader.corrupt(f"the string table of {table.name} has no bytes in the file")
    strings = reader.read(strtab.offset, strtab.size, f"the strings of {table.name}")
    if table.type == SHT_NOBITS:
        raise reader.corrupt(f"{table.name} has no bytes in the file")
    data = reader.read(table.offset, table.size, table.name)
    e = "<" if layout.endian == "little" else ">"
    st = struct.Struct(e + ("IBBHQQ" if layout.elf_class == 64 else "IIIBBH"))
    return strings, data, st


def _read_symbol_table(reader: _Reader, layout: ElfLayout, table: Section) -> list[Symbol]:
    strings, data, st = _symbol_table_bytes(reader, layout, table)
    symbols = []
    usable = len(data) - len(data) % st.size
    for fields in st.iter_unpack(data[:usable]):
        if layout.elf_class == 64:
            name, info, _other, shndx, value, size = fields
        else:
            name, value, size, info, _other, shndx = fields
        kind = info & 0xF
        if kind not in _LOOKUP_TYPES or not name:
            continue
        if shndx in (SHN_UNDEF, SHN_ABS) or value == 0:
            continue
        symbols.append(Symbol(_cstr(strings, name), value, size, kind))
    return symbols


SYMBOL_TYPES = {STT_OBJECT: "object", STT_FUNC: "function", STT_GNU_IFUNC: "ifunc"}
SYMBOL_BINDS = {
    STB_LOCAL: "local",
    STB_GLOBAL: "global",
    STB_WEAK: "weak",
    STB_GNU_UNIQUE: "unique",
}


class SymbolEntry(NamedTuple):
    """A defined function or object, as the symbol table describes it."""

    name: str
    value: int
    size: int
    type: int  # STT_OBJECT, STT_FUNC or STT_GNU_IFUNC
    bind: int  # STB_*
    shndx: int  # index of its section, counting the null section; or SHN_ABS, SHN_COMMON
    file: str | None = None  # for a local symbol, the source file named before it (STT_FILE)
    # Defined here under a version of a library this file needs: a copy relocation,
    # the library's variable (stdout, optarg) copied into the program's bss.
    # .symtab says so in the name ("stdout@GLIBC_2.2.5"), .dynsym through .gnu.version.
    copied: bool = False

    @property
    def type_name(self) -> str:
        return SYMBOL_TYPES.get(self.type, str(self.type))

    @property
    def bind_name(self) -> str:
        return SYMBOL_BINDS.get(self.bind, str(self.bind))


def read_symbol_entries_fd(
    fd: int, layout: ElfLayout, name: str = "file", warnings: list[str] | None = None
) -> tuple[str | None, list[SymbolEntry]]:
    """The defined objects and functions of .symtab, or of .dynsym when stripped.

    Returns the table's name (None when the file has neither) and its entries in
    table order.  One bulk unpack per table: pyelftools takes ~20 us a symbol,
    this ~1 us, which matters for a library with 50,000 of them.
    """
    reader = _Reader(fd, os.fstat(fd).st_size, name, warnings)
    for wanted, source in ((SHT_SYMTAB, ".symtab"), (SHT_DYNSYM, ".dynsym")):
        table = next((s for s in layout.sections if s.type == wanted), None)
        if table is None:
            continue
        strings, data, st = _symbol_table_bytes(reader, layout, table)
        if len(data) % st.size:
            reader.warn(
                f"{source} is {len(data)} bytes, not a whole number of {st.size}-byte "
                f"entries: the last {len(data) % st.size} bytes are ignored"
            )
        is64 = layout.elf_class == 64
        name_at = _string_reader(strings)
        copies = _needed_versions(reader, layout) if wanted == SHT_DYNSYM else None
        entries = []
        append = entries.append
        usable = len(data) - len(data) % st.size
        file = None
        unnamed = 0
        for index, fields in enumerate(st.iter_unpack(data[:usable])):
            if is64:
                st_name, info, _other, shndx, value, size = fields
            else:
                st_name, value, size, info, _other, shndx = fields
            kind = info & 0xF
            if kind not in _ENTRY_TYPES or shndx == SHN_UNDEF:
                if kind == STT_FILE:
                    file = name_at(st_name)
                continue  # not code or data, or defined in another file (an import)
            bind = info >> 4
            if st_name >= len(strings):
                unnamed += 1
            symbol_name = name_at(st_name)
            if copies:
                copied = index < len(copies[0]) and copies[0][index] & 0x7FFF in copies[1]
            else:
                copied = "@" in symbol_name
            append(
                SymbolEntry(
                    symbol_name,
                    value,
                    size,
                    kind,
                    bind,
                    shndx,
                    file if bind == STB_LOCAL else None,
                    copied,
                )
            )
        if unnamed:
            reader.warn(f"{unnamed} symbol name(s) in {source} point past its string table")
        return source, entries
    return None, []


_ENTRY_TYPES = frozenset((STT_OBJECT, STT_FUNC, STT_GNU_IFUNC))
SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF


def _needed_versions(reader: _Reader, layout: ElfLayout):
    """(version index of each .dynsym entry, the indexes that name a needed library's
    versions), or None when the file has no symbol versions."""
    versym = next((s for s in layout.sections if s.type == SHT_GNU_VERSYM), None)
    verneed = next((s for s in layout.sections if s.type == SHT_GNU_VERNEED), None)
    if versym is None or verneed is None:
        return None
    e = "<" if layout.endian == "little" else ">"
    raw = reader.read(versym.offset, versym.size - versym.size % 2, ".gnu.version")
    indexes = struct.unpack(f"{e}{len(raw) // 2}H", raw)
    data = reader.read(verneed.offset, verneed.size, ".gnu.version_r")
    need, aux = struct.Struct(e + "HHIII"), struct.Struct(e + "IHHII")
    needed: set[int] = set()
    pos, seen = 0, 0
    while pos + need.size <= len(data) and seen < 1 << 12:  # a cycle cannot loop forever
        _version, count, _file, aux_off, next_off = need.unpack_from(data, pos)
        a = pos + aux_off
        for _ in range(min(count, 1 << 12)):
            if a + aux.size > len(data):
                break
            _hash, _flags, other, _name, aux_next = aux.unpack_from(data, a)
            needed.add(other & 0x7FFF)
            if not aux_next:
                break
            a += aux_next
        if not next_off:
            break
        pos += next_off
        seen += 1
    return indexes, needed


# Symbols worth naming an address after: code, data, and untyped labels (_start,
# _end...) that assemblers leave; not files, sections or TLS offsets.
_LOOKUP_TYPES = frozenset((STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_GNU_IFUNC))


# --- the dynamic section --------------------------------------------------------------


class DynamicInfo(NamedTuple):
    """What PT_DYNAMIC says about how the file is linked and loaded."""

    needed: tuple[str, ...] = ()  # DT_NEEDED: the libraries the dynamic linker loads first
    soname: str | None = None
    runpath: str | None = None  # DT_RUNPATH, or the older DT_RPATH
    flags: int = 0  # DT_FLAGS
    flags_1: int = 0  # DT_FLAGS_1
    bind_now: bool = False  # every symbol resolved at start-up: what makes RELRO full
    textrel: bool = False  # code patched at load time, so text is written to

    @property
    def pie(self) -> bool:
        return bool(self.flags_1 & DF_1_PIE)


def read_dynamic_fd(
    fd: int, layout: ElfLayout, name: str = "file", warnings: list[str] | None = None
) -> DynamicInfo | None:
    """The dynamic section of the file behind `fd`, or None if it has none.

    Found through PT_DYNAMIC (section headers may be stripped); its strings
    through DT_STRTAB, a memory address turned into a file offset by the
    PT_LOAD that holds it.
    """
    seg = next((s for s in layout.segments if s.type == PT_DYNAMIC), None)
    if seg is None or seg.filesz == 0:
        return None
    reader = _Reader(fd, os.fstat(fd).st_size, name, warnings)
    e = "<" if layout.endian == "little" else ">"
    st = struct.Struct(e + ("qQ" if layout.elf_class == 64 else "iI"))
    data = reader.read(seg.offset, seg.filesz, "the dynamic section")
    tags: dict[int, int] = {}
    needed_offsets: list[int] = []
    for tag, value in st.iter_unpack(data[: len(data) - len(data) % st.size]):
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed_offsets.append(value)
        else:
            tags.setdefault(tag, value)
    strings = b""
    if DT_STRTAB in tags:
        offset = _file_offset(layout, tags[DT_STRTAB])
        if offset is not None:
            size = min(tags.get(DT_STRSZ, 0), max(reader.size - offset, 0))
            strings = reader.read(offset, size, "the dynamic string table")
        else:
            reader.warn("DT_STRTAB lies in no PT_LOAD: library names are unreadable")

    def string(offset: int | None) -> str | None:
        return None if offset is None or not strings else _cstr(strings, offset)

    flags, flags_1 = tags.get(DT_FLAGS, 0), tags.get(DT_FLAGS_1, 0)
    return DynamicInfo(
        needed=tuple(string(o) or "" for o in needed_offsets),
        soname=string(tags.get(DT_SONAME)),
        runpath=string(tags.get(DT_RUNPATH, tags.get(DT_RPATH))),
        flags=flags,
        flags_1=flags_1,
        bind_now=DT_BIND_NOW in tags or bool(flags & DF_BIND_NOW) or bool(flags_1 & DF_1_NOW),
        textrel=DT_TEXTREL in tags or bool(flags & DF_TEXTREL),
    )


def _file_offset(layout: ElfLayout, vaddr: int) -> int | None:
    """The file offset holding memory address `vaddr` (as linked), if a PT_LOAD maps it."""
    for seg in layout.loads:
        if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
            return seg.offset + (vaddr - seg.vaddr)
    return None
