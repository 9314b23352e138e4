"""procmap.elf against real files and two independent readers.

Every program header, section, interpreter, build ID and entry point that
read_elf() finds must be what GNU readelf prints (the way pyelftools'
test/run_readelf_tests.py checks itself), and the whole layout must equal the one
pyelftools builds.  Symbols are compared with pyelftools.  Files of the other
class and byte order are made by hand with struct, so the expected values are
known exactly.  Bad input must end in a procmap error, never a hang or another
exception.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from elftools.elf import enums as elf_enums
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import given, settings
from hypothesis import strategies as st

from procmap.elf import ElfLayout, Section, Segment, Symbol, SymbolTable, read_elf, read_symbols
from procmap.elf.layout import (
    PF_R,
    PF_W,
    PF_X,
    PT_GNU_RELRO,
    PT_INTERP,
    PT_LOAD,
    PT_NOTE,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_TLS,
    SHF_WRITE,
    SHT_DYNSYM,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_STRTAB,
    SHT_SYMTAB,
    STT_FUNC,
    STT_OBJECT,
)
from procmap.errors import BadFile, CorruptELF, NotAnELF
from tests.conftest import MODES, sample_path

READELF = shutil.which("readelf") or "/usr/bin/readelf"
SAMPLES = [f"lesson-{m}" for m in MODES]


# --- the files -------------------------------------------------------------------


def _mapped_by_this_process(wanted) -> str | None:
    """The first file mapped into this test process whose basename `wanted` accepts."""
    with open("/proc/self/maps", "rb") as f:
        for line in f.read().splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith(b"/"):
                path = os.fsdecode(fields[5])
                if wanted(os.path.basename(path)):
                    return path
    return None


def _libc() -> str | None:
    return _mapped_by_this_process(lambda name: "libc.so" in name)


def _dynamic_linker() -> str | None:
    return _mapped_by_this_process(lambda name: name.startswith("ld-") and ".so" in name)


M32_SOURCE = "int g = 1; int u; int f(int x) { return x + g + u; }\n"


@pytest.fixture(scope="module")
def m32_files(tmp_path_factory):
    """Real 32-bit files from gcc -m32: -nostdlib needs no 32-bit C library."""
    d = tmp_path_factory.mktemp("m32")
    (d / "t.c").write_text(M32_SOURCE)
    builds = {
        "m32-exe": ["-nostdlib", "-static", "-Wl,-e,f"],
        "m32-so": ["-nostdlib", "-shared", "-fPIC"],
        "m32-obj": ["-c"],
    }
    for name, flags in builds.items():
        r = subprocess.run(
            ["gcc", "-m32", "-O1", *flags, "-o", str(d / name), str(d / "t.c")],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"gcc -m32 cannot build here: {r.stderr.strip().splitlines()[-1:]}")
    return d


REAL_FILES = [
    *SAMPLES,
    "libaligned.so",
    "libc",
    "ld.so",
    "python",
    "cat",
    "m32-exe",
    "m32-so",
    "m32-obj",
]


def resolve(name: str, request) -> str:
    if name.startswith("lesson-"):
        return str(sample_path(name.removeprefix("lesson-")))
    if name == "libaligned.so":
        return str(sample_path("pie").parent / "libaligned.so")
    if name.startswith("m32-"):
        return str(request.getfixturevalue("m32_files") / name)
    path = {
        "libc": _libc,
        "ld.so": _dynamic_linker,
        "python": lambda: os.path.realpath(sys.executable),
        "cat": lambda: "/bin/cat",
    }[name]()
    if path is None or not os.path.exists(path):
        pytest.skip(f"{name} is not mapped into this process or missing")
    return path


@pytest.fixture(params=REAL_FILES)
def real_file(request) -> str:
    return resolve(request.param, request)


# --- GNU readelf, parsed -----------------------------------------------------------


@functools.cache
def readelf(path: str) -> str:
    """readelf -W (never truncates names) of the header, segments, sections and notes."""
    r = subprocess.run(
        [READELF, "-W", "-h", "-l", "-S", "-n", path],
        capture_output=True,
        text=True,
        env=dict(os.environ, LC_ALL="C"),
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


# "  LOAD  0x001000 0x0000000000001000 0x0000000000001000 0x0006b9 0x0006b9 R E 0x1000"
# The flags are three characters, each a letter or a space ("R E", "RW ").
PHDR_LINE = re.compile(
    r"^\s+(\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)"
    r"\s+0x([0-9a-f]+)\s+0x([0-9a-f]+) ([R ][W ][E ]) 0x([0-9a-f]+)$"
)


def readelf_segments(path: str) -> list[tuple]:
    """(type, offset, vaddr, filesz, memsz, perms, align) per program header."""
    rows = []
    for line in readelf(path).splitlines():
        m = PHDR_LINE.match(line)
        if m:
            kind, offset, vaddr, _paddr, filesz, memsz, flg, align = m.groups()
            perms = (
                ("r" if flg[0] == "R" else "-")
                + ("w" if flg[1] == "W" else "-")
                + ("x" if flg[2] == "E" else "-")
            )
            rows.append(
                (
                    kind,
                    int(offset, 16),
                    int(vaddr, 16),
                    int(filesz, 16),
                    int(memsz, 16),
                    perms,
                    int(align, 16),
                )
            )
    return rows


SECTION_INDEX = re.compile(r"^\s+\[\s*(\d+)\]\s(.*)$")
SECTION_REST = re.compile(
    r"^\s*(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(.*)$"
)

# readelf's names for section types; others (machine-specific) are not compared by name.
SHT_BY_NAME = {
    "NULL": 0,
    "PROGBITS": SHT_PROGBITS,
    "SYMTAB": SHT_SYMTAB,
    "STRTAB": SHT_STRTAB,
    "RELA": 4,
    "HASH": 5,
    "DYNAMIC": 6,
    "NOTE": 7,
    "NOBITS": SHT_NOBITS,
    "REL": 9,
    "DYNSYM": SHT_DYNSYM,
    "INIT_ARRAY": 14,
    "FINI_ARRAY": 15,
    "PREINIT_ARRAY": 16,
    "GROUP": 17,
    "GNU_HASH": 0x6FFFFFF6,
    "VERDEF": 0x6FFFFFFD,
    "VERNEED": 0x6FFFFFFE,
    "VERSYM": 0x6FFFFFFF,
}
KEY_TYPES = {SHT_PROGBITS, SHT_NOBITS, SHT_SYMTAB, SHT_DYNSYM, SHT_STRTAB}
FLAG_LETTERS = ((SHF_WRITE, "W"), (SHF_ALLOC, "A"), (SHF_EXECINSTR, "X"), (SHF_TLS, "T"))


def readelf_sections(path: str) -> list[tuple]:
    """(name, type name, addr, offset, size, flag letters) per section but the null one."""
    rows = []
    for line in readelf(path).splitlines():
        m = SECTION_INDEX.match(line)
        if not m or int(m.group(1)) == 0:
            continue
        rest = SECTION_REST.match(m.group(2))
        assert rest, line
        name, kind, addr, offset, size, _es, tail = rest.groups()
        tail = tail.split()  # [flags] link info align
        flags = tail[0] if len(tail) == 4 else ""
        rows.append((name, kind, int(addr, 16), int(offset, 16), int(size, 16), flags))
    return rows


def readelf_field(path: str, pattern: str) -> str | None:
    m = re.search(pattern, readelf(path), re.MULTILINE)
    return m.group(1) if m else None


# --- pyelftools, as a second reader -------------------------------------------------


def _number(value, *tables) -> int:
    """pyelftools decodes enums to names; turn a name back into its number."""
    if isinstance(value, int):
        return value
    for table in tables:
        if value in table:
            return table[value]
    raise KeyError(value)


P_TYPES = (
    elf_enums.ENUM_P_TYPE_BASE,
    elf_enums.ENUM_P_TYPE_ARM,
    elf_enums.ENUM_P_TYPE_AARCH64,
    elf_enums.ENUM_P_TYPE_MIPS,
    elf_enums.ENUM_P_TYPE_RISCV,
)
SH_TYPES = (
    elf_enums.ENUM_SH_TYPE_BASE,
    elf_enums.ENUM_SH_TYPE_AMD64,
    elf_enums.ENUM_SH_TYPE_ARM,
    elf_enums.ENUM_SH_TYPE_AARCH64,
    elf_enums.ENUM_SH_TYPE_MIPS,
    elf_enums.ENUM_SH_TYPE_RISCV,
)


def pyelftools_layout(path: str) -> ElfLayout:
    """The ElfLayout that pyelftools sees in the file."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        segments = tuple(
            Segment(
                _number(s["p_type"], *P_TYPES),
                s["p_flags"],
                s["p_offset"],
                s["p_vaddr"],
                s["p_filesz"],
                s["p_memsz"],
                s["p_align"],
            )
            for s in elf.iter_segments()
        )
        sections = tuple(
            Section(
                s.name,
                _number(s["sh_type"], *SH_TYPES),
                s["sh_flags"],
                s["sh_addr"],
                s["sh_offset"],
                s["sh_size"],
                s["sh_link"],
            )
            for i, s in enumerate(elf.iter_sections())
            if i > 0
        )
        interpreter = None
        build_id = None
        for s in elf.iter_segments():
            if s["p_type"] == "PT_INTERP" and interpreter is None:
                interpreter = s.get_interp_name()
            elif s["p_type"] == "PT_NOTE" and build_id is None:
                for note in s.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                        build_id = note["n_desc"]
                        break
        return ElfLayout.build(
            elf_class=elf.elfclass,
            endian="little" if elf.little_endian else "big",
            machine=_number(elf["e_machine"], elf_enums.ENUM_E_MACHINE),
            type=_number(elf["e_type"], elf_enums.ENUM_E_TYPE),
            entry=elf["e_entry"],
            segments=segments,
            sections=sections,
            interpreter=interpreter,
            build_id=build_id,
            file_size=os.path.getsize(path),
        )


def pyelftools_symbols(path: str) -> tuple[str | None, Counter]:
    """FUNC and OBJECT symbols with a name, a nonzero value and a real section, from
    .symtab if the file has one, else .dynsym."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        tables = [s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)]
        table = next((t for t in tables if t["sh_type"] == "SHT_SYMTAB"), None) or next(
            (t for t in tables if t["sh_type"] == "SHT_DYNSYM"), None
        )
        if table is None:
            return None, Counter()
        found = Counter(
            (sym.name, sym["st_value"], sym["st_size"])
            for sym in table.iter_symbols()
            if sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT")
            and sym.name
            and sym["st_value"] != 0
            and isinstance(sym["st_shndx"], int)
            and sym["st_shndx"] != 0
        )
        return table.name, found


def procmap_symbols(path: str) -> tuple[str | None, Counter]:
    table = read_symbols(path)
    return table.source, Counter(
        (s.name, s.value, s.size) for s in table.symbols if s.type in (STT_FUNC, STT_OBJECT)
    )


# --- real files against readelf ------------------------------------------------------


def _row(s: Segment) -> tuple:
    return (s.type_name, s.offset, s.vaddr, s.filesz, s.memsz, s.perms, s.align)


def assert_program_headers_match_readelf(path: str) -> None:
    layout = read_elf(path)
    ours = [_row(s) for s in layout.segments]
    theirs = readelf_segments(path)
    assert len(ours) == len(theirs)
    for mine, gnu in zip(ours, theirs):
        if mine[0].startswith("0x"):  # a type procmap does not name (GNU_SFRAME...)
            mine, gnu = mine[1:], gnu[1:]
        assert mine == gnu
    assert [_row(s) for s in layout.loads] == [row for row in theirs if row[0] == "LOAD"]
    relro = [row for row in theirs if row[0] == "GNU_RELRO"]
    assert ([_row(layout.relro)] if layout.relro else []) == relro[:1]


def assert_sections_match_readelf(path: str) -> None:
    layout = read_elf(path)
    theirs = readelf_sections(path)
    assert len(layout.sections) == len(theirs)
    for s, (name, kind, addr, offset, size, flags) in zip(layout.sections, theirs):
        assert (s.name, s.addr, s.offset, s.size) == (name, addr, offset, size)
        if kind in SHT_BY_NAME:
            assert s.type == SHT_BY_NAME[kind], (s.name, kind)
        else:
            assert s.type not in KEY_TYPES, (s.name, kind)
        for bit, letter in FLAG_LETTERS:
            assert bool(s.flags & bit) == (letter in flags), (s.name, flags)


def assert_header_interpreter_and_build_id_match_readelf(real_file: str) -> None:
    layout = read_elf(real_file)
    entry = readelf_field(real_file, r"^\s*Entry point address:\s+0x([0-9a-f]+)")
    assert layout.entry == int(entry, 16)
    assert f"ELF{layout.elf_class}" == readelf_field(real_file, r"^\s*Class:\s+(\S+)")
    assert layout.endian == readelf_field(real_file, r"^\s*Data:\s+2's complement, (\w+) endian")
    assert layout.interpreter == readelf_field(
        real_file, r"\[Requesting program interpreter: (.*)\]$"
    )
    # -W prints each note on one line: "GNU  0x14\tNT_GNU_BUILD_ID (...)\t    Build ID: e997..."
    assert layout.build_id == readelf_field(real_file, r"Build ID: ([0-9a-f]+)$")
    assert layout.file_size == os.path.getsize(real_file)


def test_program_headers_match_readelf(real_file):
    assert_program_headers_match_readelf(real_file)


def test_sections_match_readelf(real_file):
    assert_sections_match_readelf(real_file)


def test_header_interpreter_and_build_id_match_readelf(real_file):
    assert_header_interpreter_and_build_id_match_readelf(real_file)


def test_layout_equals_pyelftools(real_file):
    assert read_elf(real_file) == pyelftools_layout(real_file)


def test_bytes_path_reads_the_same():
    path = str(sample_path("pie"))
    assert read_elf(os.fsencode(path)) == read_elf(path)


def test_what_the_samples_are():
    """The link modes differ where the lesson says they do."""
    pie, nopie, static = (read_elf(str(sample_path(m))) for m in ("pie", "nopie", "static"))
    assert (pie.type, nopie.type, static.type) == (3, 2, 2)  # ET_DYN, ET_EXEC, ET_EXEC
    assert pie.interpreter and nopie.interpreter and static.interpreter is None
    assert read_elf(str(sample_path("norelro"))).relro is None
    assert pie.relro is not None
    assert pie.machine_name == "x86-64"
    # -z noseparate-code puts .rodata in the same (executable) segment as .text.
    for mode, perms in (("pie", "r--"), ("nosep", "r-x")):
        layout = read_elf(str(sample_path(mode)))
        rodata = next(s for s in layout.sections if s.name == ".rodata")
        (load,) = [s for s in layout.loads if s.vaddr <= rodata.addr < s.vaddr + s.memsz]
        assert load.perms == perms, mode
        assert layout.section_at(rodata.addr) == rodata


# --- symbols ----------------------------------------------------------------------------

SYMBOL_FILES = [*SAMPLES, "libaligned.so", "libc", "ld.so", "m32-exe", "m32-so"]


@pytest.mark.parametrize("name", SYMBOL_FILES)
def test_symbols_match_pyelftools(name, request):
    path = resolve(name, request)
    assert procmap_symbols(path) == pyelftools_symbols(path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("symbol", ["main", "global_init", "global_uninit"])
def test_lookup_finds_sample_symbols(mode, symbol):
    path = str(sample_path(mode))
    _, theirs = pyelftools_symbols(path)
    ((value, size),) = {(v, s) for (n, v, s) in theirs if n == symbol}
    table = read_symbols(path)
    assert table.source == ".symtab"
    found, offset = table.lookup(value)
    assert (found.name, found.value, found.size, offset) == (symbol, value, size, 0)
    found, offset = table.lookup(value + 1)
    assert (found.name, offset) == (symbol, 1)
    if symbol.startswith("global_"):
        assert found.type == STT_OBJECT and found.size == 4  # an int
    else:
        assert found.type == STT_FUNC
    assert table.lookup(0) is None


def test_lookup_prefers_the_symbol_that_covers_the_address():
    table = SymbolTable.build(
        [
            Symbol("label", 0x1000, 0, STT_FUNC),
            Symbol("big", 0x1000, 0x100, STT_OBJECT),
            Symbol("next", 0x2000, 8, STT_FUNC),
        ],
        ".symtab",
    )
    assert table.lookup(0xFFF) is None
    assert table.lookup(0x1000) == (Symbol("big", 0x1000, 0x100, STT_OBJECT), 0)
    assert table.lookup(0x10FF)[0].name == "big"
    assert table.lookup(0x2010) == (Symbol("next", 0x2000, 8, STT_FUNC), 0x10)


def test_a_file_without_symbol_tables_has_no_symbols(tmp_path):
    path = tmp_path / "nosyms"
    path.write_bytes(build_synthetic(64, "little", with_symtab=False)[0])
    table = read_symbols(str(path))
    assert (table.symbols, table.source, table.lookup(0x400000)) == ([], None, None)


# --- synthetic files of either class and byte order --------------------------------------


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


MACHINE = {(64, "little"): 62, (64, "big"): 21, (32, "little"): 3, (32, "big"): 20}
INTERP = "/lib/ld-procmap-test.so.1"
BUILD_ID = bytes(range(0xA0, 0xB4))


def build_synthetic(bits: int, endian: str, extended: bool = False, with_symtab: bool = True):
    """An ELF executable made field by field: (bytes, expected layout, expected symbols).

    `extended` uses extended numbering: e_phnum = PN_XNUM, e_shnum = 0 and
    e_shstrndx = SHN_XINDEX, with the real values in section 0.
    """
    e = "<" if endian == "little" else ">"
    is64 = bits == 64
    ehsize, phentsize, shentsize, symsize = (64, 56, 64, 24) if is64 else (52, 32, 40, 16)
    base = 0x400000 if is64 else 0x08048000

    def phdr(p_type, flags, offset, vaddr, filesz, memsz, align):
        if is64:
            fields = (p_type, flags, offset, vaddr, vaddr, filesz, memsz, align)
            return struct.pack(e + "IIQQQQQQ", *fields)
        fields = (p_type, offset, vaddr, vaddr, filesz, memsz, flags, align)
        return struct.pack(e + "IIIIIIII", *fields)

    def shdr(name, sh_type, flags, addr, offset, size, link=0, info=0, align=1, entsize=0):
        fmt = "IIQQQQIIQQ" if is64 else "IIIIIIIIII"
        fields = (name, sh_type, flags, addr, offset, size, link, info, align, entsize)
        return struct.pack(e + fmt, *fields)

    def sym(name, value, size, kind, bind, shndx):
        info = (bind << 4) | kind
        if is64:
            return struct.pack(e + "IBBHQQ", name, info, 0, shndx, value, size)
        return struct.pack(e + "IIIBBH", name, value, size, info, 0, shndx)

    phnum = 5
    phoff = ehsize
    interp = INTERP.encode() + b"\0"
    interp_off = phoff + phnum * phentsize
    note = struct.pack(e + "III", 4, len(BUILD_ID), 3) + b"GNU\0" + BUILD_ID
    note_off = _align(interp_off + len(interp), 4)
    text = bytes(range(32))
    text_off = _align(note_off + len(note), 16)
    data = b"\x2a\0\0\0\x07\0\0\0"
    data_off = _align(text_off + len(text), 16)
    text_vaddr = base + text_off
    data_vaddr = base + 0x1000 + data_off  # next page, same offset within it
    bss_size = 0x20

    strtab = b"\0start.c\0tail\0func\0var\0zeros\0ext\0absval\0label\0"

    def s(name: str) -> int:
        return strtab.index(b"\0" + name.encode() + b"\0") + 1

    # (name, value, size, type, bind, shndx); locals first, as sh_info requires.
    symbols = [
        ("", 0, 0, 0, 0, 0),
        ("start.c", 0, 0, 4, 0, 0xFFF1),  # STT_FILE, SHN_ABS: not an address
        ("tail", text_vaddr + 16, 16, STT_FUNC, 0, 3),
        ("func", text_vaddr, 16, STT_FUNC, 1, 3),
        ("var", data_vaddr, 8, STT_OBJECT, 1, 4),
        ("zeros", data_vaddr + 8, bss_size, STT_OBJECT, 1, 5),
        ("ext", 0, 0, STT_FUNC, 1, 0),  # undefined
        ("absval", 0x1234, 4, STT_OBJECT, 1, 0xFFF1),  # absolute
        ("label", text_vaddr + 8, 0, 0, 1, 3),  # STT_NOTYPE: kept for lookup
    ]
    symtab = b"".join(sym(s(n) if n else 0, v, z, k, b, x) for n, v, z, k, b, x in symbols)
    symtab_off = _align(data_off + len(data), 8)
    strtab_off = symtab_off + len(symtab)

    names = [".interp", ".note.gnu.build-id", ".text", ".data", ".bss"]
    names += [".symtab", ".strtab", ".shstrtab"]
    if not with_symtab:
        names = [n for n in names if n not in (".symtab", ".strtab")]
    shstrtab = b"\0" + b"".join(n.encode() + b"\0" for n in names)

    def n(name: str) -> int:
        return shstrtab.index(name.encode() + b"\0")

    shstrtab_off = strtab_off + len(strtab) if with_symtab else symtab_off
    shoff = _align(shstrtab_off + len(shstrtab), 8)

    A, W, X = SHF_ALLOC, SHF_WRITE, SHF_EXECINSTR
    sections = [
        Section(".interp", SHT_PROGBITS, A, base + interp_off, interp_off, len(interp)),
        Section(".note.gnu.build-id", 7, A, base + note_off, note_off, len(note)),
        Section(".text", SHT_PROGBITS, A | X, text_vaddr, text_off, len(text)),
        Section(".data", SHT_PROGBITS, A | W, data_vaddr, data_off, len(data)),
        Section(".bss", SHT_NOBITS, A | W, data_vaddr + 8, data_off + 8, bss_size),
    ]
    if with_symtab:
        sections += [
            Section(".symtab", SHT_SYMTAB, 0, 0, symtab_off, len(symtab), link=7),
            Section(".strtab", SHT_STRTAB, 0, 0, strtab_off, len(strtab)),
        ]
    sections.append(Section(".shstrtab", SHT_STRTAB, 0, 0, shstrtab_off, len(shstrtab)))
    shnum = len(sections) + 1
    shstrndx = shnum - 1

    segments = (
        Segment(PT_LOAD, PF_R | PF_X, 0, base, text_off + len(text), text_off + len(text), 0x1000),
        Segment(
            PT_LOAD, PF_R | PF_W, data_off, data_vaddr, len(data), len(data) + bss_size, 0x1000
        ),
        Segment(PT_INTERP, PF_R, interp_off, base + interp_off, len(interp), len(interp), 1),
        Segment(PT_NOTE, PF_R, note_off, base + note_off, len(note), len(note), 4),
        Segment(PT_GNU_RELRO, PF_R, data_off, data_vaddr, 4, 4, 1),
    )

    ei_class, ei_data = (1 if bits == 32 else 2), (1 if endian == "little" else 2)
    ident = b"\x7fELF" + bytes([ei_class, ei_data, 1]) + bytes(9)
    counts = (0xFFFF, 0, 0xFFFF) if extended else (phnum, shnum, shstrndx)
    ehdr = ident + struct.pack(
        e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH"),
        2,  # ET_EXEC
        MACHINE[bits, endian],
        1,
        text_vaddr,
        phoff,
        shoff,
        0,
        ehsize,
        phentsize,
        counts[0],
        shentsize,
        counts[1],
        counts[2],
    )
    out = bytearray(shoff + shnum * shentsize)
    out[0 : len(ehdr)] = ehdr
    out[phoff : phoff + phnum * phentsize] = b"".join(
        phdr(g.type, g.flags, g.offset, g.vaddr, g.filesz, g.memsz, g.align) for g in segments
    )
    for offset, blob in (
        (interp_off, interp),
        (note_off, note),
        (text_off, text),
        (data_off, data),
        (shstrtab_off, shstrtab),
    ):
        out[offset : offset + len(blob)] = blob
    if with_symtab:
        out[symtab_off : symtab_off + len(symtab)] = symtab
        out[strtab_off : strtab_off + len(strtab)] = strtab
    if extended:
        null = shdr(0, 0, 0, 0, 0, shnum, link=shstrndx, info=phnum)
    else:
        null = shdr(0, 0, 0, 0, 0, 0)
    headers = [null]
    for sec in sections:
        extra = {}
        if sec.type == SHT_SYMTAB:
            extra = {"info": 3, "align": 8, "entsize": symsize}
        headers.append(
            shdr(
                n(sec.name), sec.type, sec.flags, sec.addr, sec.offset, sec.size, sec.link, **extra
            )
        )
    out[shoff:] = b"".join(headers)

    layout = ElfLayout.build(
        elf_class=bits,
        endian=endian,
        machine=MACHINE[bits, endian],
        type=2,
        entry=text_vaddr,
        segments=segments,
        sections=tuple(sections),
        interpreter=INTERP,
        build_id=BUILD_ID.hex(),
        file_size=len(out),
    )
    expected_symbols = {
        Symbol("tail", text_vaddr + 16, 16, STT_FUNC),
        Symbol("func", text_vaddr, 16, STT_FUNC),
        Symbol("var", data_vaddr, 8, STT_OBJECT),
        Symbol("zeros", data_vaddr + 8, bss_size, STT_OBJECT),
        Symbol("label", text_vaddr + 8, 0, 0),
    }
    return bytes(out), layout, expected_symbols


CLASSES = [(64, "big"), (32, "little"), (64, "little"), (32, "big")]


@pytest.mark.parametrize("extended", [False, True], ids=["plain", "extended-numbering"])
@pytest.mark.parametrize(("bits", "endian"), CLASSES, ids=[f"{b}-{e}" for b, e in CLASSES])
def test_synthetic_file_reads_as_built(tmp_path, bits, endian, extended):
    blob, expected, expected_symbols = build_synthetic(bits, endian, extended)
    path = str(tmp_path / f"synthetic-{bits}-{endian}")
    Path(path).write_bytes(blob)

    layout = read_elf(path)
    assert layout == expected
    assert layout.loads == expected.segments[:2]
    assert layout.relro == expected.segments[4]
    assert pyelftools_layout(path) == expected

    table = read_symbols(path)
    assert table.source == ".symtab"
    assert set(table.symbols) == expected_symbols
    assert procmap_symbols(path) == pyelftools_symbols(path)
    text = expected.sections[2].addr
    assert table.lookup(text + 17) == (Symbol("tail", text + 16, 16, STT_FUNC), 1)
    assert table.lookup(text + 9)[0].name == "label"  # the nearest below wins


@pytest.mark.parametrize(("bits", "endian"), CLASSES, ids=[f"{b}-{e}" for b, e in CLASSES])
def test_synthetic_file_matches_readelf(tmp_path, bits, endian):
    """GNU readelf reads the hand-made files as read_elf does: the builder is right."""
    path = str(tmp_path / f"synthetic-{bits}-{endian}")
    Path(path).write_bytes(build_synthetic(bits, endian)[0])
    assert_program_headers_match_readelf(path)
    assert_sections_match_readelf(path)
    assert_header_interpreter_and_build_id_match_readelf(path)


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def alarm():
    """Fail, rather than hang, if the test blocks for 5 seconds."""

    def expired(signum, frame):
        raise TimeoutError("read_elf blocked")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_missing_file_is_bad_file(tmp_path):
    with pytest.raises(BadFile, match="no such file"):
        read_elf(str(tmp_path / "missing"))
    with pytest.raises(BadFile, match="no such file"):
        read_symbols(str(tmp_path / "missing"))
    with pytest.raises(BadFile):
        read_elf("/bin/cat/below-a-file")


def test_directory_is_bad_file(tmp_path):
    with pytest.raises(BadFile, match="a directory"):
        read_elf(str(tmp_path))


def test_device_is_bad_file(alarm):
    with pytest.raises(BadFile, match="a device"):
        read_elf("/dev/null")


def test_fifo_is_bad_file_and_never_blocks(tmp_path, alarm):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(BadFile, match="a FIFO"):
        read_elf(str(fifo))
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    with pytest.raises(BadFile, match="a FIFO"):
        read_symbols(str(link))


def test_socket_is_bad_file(tmp_path, monkeypatch, alarm):
    monkeypatch.chdir(tmp_path)  # a relative name stays under the 108-byte sun_path limit
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind("sock")
        server.listen()
        with pytest.raises(BadFile, match="a socket"):
            read_elf("sock")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_bad_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"\x7fELF")
    path.chmod(0)
    with pytest.raises(BadFile, match="permission denied"):
        read_elf(str(path))


@pytest.mark.parametrize("kind", ["symlink-loop", "name-too-long", "nul-byte"])
def test_unstattable_path_is_bad_file(tmp_path, kind):
    if kind == "symlink-loop":
        path = tmp_path / "loop"
        path.symlink_to(path)
    elif kind == "nul-byte":
        path = str(tmp_path) + "/a\0b"
    else:
        path = tmp_path / ("x" * 300)
    with pytest.raises(BadFile):
        read_elf(str(path))


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", NotAnELF),
        (b"#!/bin/sh\necho not an ELF file\n", NotAnELF),
        (b"\x7fEL", NotAnELF),
        (b"\x7fELF", CorruptELF),
        (b"\x7fELF" + b"garbage, not a header" * 8, CorruptELF),
        (b"\x7fELF\x03\x01" + bytes(58), CorruptELF),  # no such class
        (b"\x7fELF\x02\x03" + bytes(58), CorruptELF),  # no such byte order
        (b"\x7fELF\x02\x01" + bytes(40), CorruptELF),  # header cut short
        (b"\x7fELF\x01\x01" + bytes(40), CorruptELF),  # ELF32 header is 52 bytes
    ],
    ids=[
        "empty",
        "text",
        "3-bytes-of-magic",
        "magic-only",
        "garbage",
        "class-3",
        "data-3",
        "short-64",
        "short-32",
    ],
)
def test_not_elf_and_corrupt_input(tmp_path, content, error):
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(error):
        read_elf(str(path))
    with pytest.raises(error):
        read_symbols(str(path))


def test_bare_header_is_an_empty_layout(tmp_path):
    """An ELF header with no program or section headers is valid (readelf agrees)."""
    path = tmp_path / "bare"
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 1, 62) + bytes(44))
    layout = read_elf(str(path))
    assert (layout.segments, layout.sections, layout.loads, layout.relro) == ((), (), (), None)
    assert (layout.interpreter, layout.build_id, layout.type) == (None, None, 1)


def _headers_end(path: str) -> int:
    """How much of the file read_elf needs: every header, and every byte LOADs or
    sections claim, measured by pyelftools on the whole file."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        ends = [
            elf["e_ehsize"],
            elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"],
            elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"],
        ]
        ends += [
            s["p_offset"] + s["p_filesz"]
            for s in elf.iter_segments()
            if s["p_type"] in ("PT_LOAD", "PT_INTERP", "PT_NOTE")
        ]
        ends += [
            s["sh_offset"] + s["sh_size"]
            for s in elf.iter_sections()
            if s["sh_type"] != "SHT_NOBITS"
        ]
        return max(ends)


def _assert_consistent(layout: ElfLayout, size: int) -> None:
    for seg in layout.loads:
        assert seg.offset + seg.filesz <= size
        assert seg.memsz >= seg.filesz
    for sec in layout.sections:
        assert sec.type == SHT_NOBITS or sec.size == 0 or sec.offset + sec.size <= size


@pytest.mark.parametrize("cut", [0, 3, 4, 10, 16, 40, 63, 64, 100, 500, 4096, "size//2", "size-1"])
def test_every_truncation_is_an_error_or_consistent(tmp_path, cut):
    whole = sample_path("pie").read_bytes()
    length = {"size//2": len(whole) // 2, "size-1": len(whole) - 1}.get(cut, cut)
    path = tmp_path / "truncated"
    path.write_bytes(whole[:length])
    needed = _headers_end(str(sample_path("pie")))
    expected = NotAnELF if length < 4 else CorruptELF if length < needed else None
    try:
        layout = read_elf(str(path))
    except (NotAnELF, CorruptELF) as err:
        assert type(err) is expected, (length, err)
    else:
        assert expected is None, (length, layout)
        _assert_consistent(layout, length)


def _without_sections(blob: bytes) -> bytearray:
    """lesson-pie (ELF64, little-endian) with e_shoff, e_shnum and e_shstrndx zeroed."""
    out = bytearray(blob)
    struct.pack_into("<Q", out, 0x28, 0)
    struct.pack_into("<HH", out, 0x3C, 0, 0)
    return out


def test_truncated_load_segments_are_corrupt(tmp_path):
    """With the program headers inside the file, a LOAD past its end is still caught."""
    whole = _without_sections(sample_path("pie").read_bytes())
    loads = read_elf(str(sample_path("pie"))).loads
    load_end = max(s.offset + s.filesz for s in loads)
    path = tmp_path / "cut"
    for length in (4096, load_end - 1):
        path.write_bytes(whole[:length])
        with pytest.raises(CorruptELF, match="LOAD"):
            read_elf(str(path))
    path.write_bytes(whole[:load_end])
    layout = read_elf(str(path))
    assert layout.loads == loads and layout.sections == ()
    _assert_consistent(layout, load_end)


def test_load_smaller_in_memory_than_in_file_is_corrupt(tmp_path):
    blob, expected, _ = build_synthetic(64, "little")
    out = bytearray(blob)
    # Second program header (the RW LOAD): p_memsz at +40 within the 56-byte entry.
    struct.pack_into("<Q", out, 64 + 56 + 40, expected.segments[1].filesz - 1)
    path = tmp_path / "memsz"
    path.write_bytes(out)
    with pytest.raises(CorruptELF, match="smaller in memory"):
        read_elf(str(path))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _fuzz(fuzz_dir: Path, blob: bytes, flips: list[tuple[int, int]]) -> None:
    out = bytearray(blob)
    for position, mask in flips:
        out[position] ^= mask
    path = fuzz_dir / "mutant"
    path.write_bytes(out)
    try:
        layout = read_elf(str(path))
    except (NotAnELF, CorruptELF):
        pass
    else:
        assert isinstance(layout, ElfLayout)
        _assert_consistent(layout, len(out))
    try:
        table = read_symbols(str(path))
    except (NotAnELF, CorruptELF):
        pass
    else:
        assert isinstance(table, SymbolTable)


def _shoff(blob: bytes) -> int:
    """e_shoff, read with the file's own class and byte order."""
    e = "<" if blob[5] == 1 else ">"
    if blob[4] == 2:
        return struct.unpack_from(e + "Q", blob, 0x28)[0]
    return struct.unpack_from(e + "I", blob, 0x20)[0]


def _flip_strategy(size: int, shoff: int, shend: int):
    position = st.one_of(st.integers(0, min(4096, size) - 1), st.integers(shoff, shend - 1))
    return st.lists(st.tuples(position, st.integers(1, 255)), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_flipped_bytes_give_a_layout_or_a_procmap_error(fuzz_dir, data):
    path = str(sample_path("pie"))
    blob = Path(path).read_bytes()
    shoff = _shoff(blob)
    flips = data.draw(_flip_strategy(len(blob), shoff, len(blob)), label="flips")
    _fuzz(fuzz_dir, blob, flips)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data(), which=st.sampled_from(CLASSES))
def test_flipped_bytes_in_synthetic_files(fuzz_dir, data, which):
    blob = build_synthetic(*which)[0]
    shoff = _shoff(blob)
    flips = data.draw(_flip_strategy(len(blob), shoff, len(blob)), label="flips")
    _fuzz(fuzz_dir, blob, flips)


# --- the layering -----------------------------------------------------------------------------


# --- which names a file defines (allocator detection) ------------------------------------


def pyelftools_defined(path: str, table_type: str) -> set[str]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        out: set[str] = set()
        for section in elf.iter_sections():
            if isinstance(section, SymbolTableSection) and section["sh_type"] == table_type:
                out |= {
                    s.name
                    for s in section.iter_symbols()
                    if s.name and s["st_shndx"] != "SHN_UNDEF" and s["st_name"]
                }
        return out


DEFINES_FILES = ["libc", "ld.so", "python", "lesson-pie", "lesson-static", "m32-so"]


@pytest.mark.parametrize("name", DEFINES_FILES)
def test_defined_names_agree_with_pyelftools(name, request):
    """.dynsym is asked through its GNU hash table, .symtab by its strings; both must
    answer as a full read of the table does, for names defined, undefined and absent."""
    from procmap.elf.symbols import defined_names

    path = resolve(name, request)
    dynamic = pyelftools_defined(path, "SHT_DYNSYM")
    full = pyelftools_defined(path, "SHT_SYMTAB")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        undefined = {
            s.name
            for section in elf.iter_sections()
            if isinstance(section, SymbolTableSection)
            for s in section.iter_symbols()
            if s.name and s["st_shndx"] == "SHN_UNDEF"
        }
    every = sorted(dynamic | full)
    asked = frozenset(every[:: max(1, len(every) // 300)]) | frozenset(
        sorted(undefined - dynamic - full)[:50]
    )
    asked |= {"no_such_symbol_anywhere", "malloc", "mallctl", "je_mallctl"}
    layout = read_elf(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = defined_names(fd, layout, asked, path)
    finally:
        os.close(fd)
    # The full table is asked only where the exported symbols define none of them.
    want = asked & dynamic or asked & full
    assert got == want


def test_a_damaged_gnu_hash_table_is_a_corrupt_file_not_a_crash(tmp_path):
    from procmap.elf.symbols import defined_names

    source = resolve("libaligned.so", None)
    with open(source, "rb") as f:
        elf = ELFFile(f)
        offset = elf.get_section_by_name(".gnu.hash")["sh_offset"]
    damaged = tmp_path / "libdamaged.so"
    data = bytearray(Path(source).read_bytes())
    data[offset : offset + 16] = struct.pack("<4I", 1, 1, 0xFFFFFFF, 6)  # a huge bloom filter
    damaged.write_bytes(bytes(data))
    layout = read_elf(str(damaged))  # the layout is intact: only the hash table is not
    fd = os.open(damaged, os.O_RDONLY)
    try:
        with pytest.raises(CorruptELF, match="gnu.hash"):
            defined_names(fd, layout, frozenset({"aligned_value"}), str(damaged))
    finally:
        os.close(fd)
