"""procmap.explain.explain_elf (the static view of `procmap explain FILE`) on real files.

Every number explain_elf reports is held to an independent source: program
headers, sections, symbols, the dynamic section and the notes to GNU readelf;
the load plan to the loaders' rules (binfmt_elf for programs, glibc's
_dl_map_segments for libraries) worked out here page by page from readelf's
numbers; the kinds of the lesson's variables to what the sample itself prints
when it runs.  The files are the samples in every link mode, stripped copies,
libraries and programs gcc builds here with the flags that make each fact
(full RELRO, an executable stack, an RWX segment, a relocatable object), 32-bit
files, and the system's own ls, libc, ld.so and Python.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from procmap.elf.layout import SHF_ALLOC, SHF_EXECINSTR
from procmap.model import KINDS, Detail, Mapping
from procmap.views.explain import Explanation, explain_elf
from tests.conftest import MODES, SAMPLE_BIN, SAMPLES, run_sample, sample_path
from tests.unit.test_elf import (  # noqa: F401  (m32_files is a fixture, used by name)
    M32_SOURCE,
    READELF,
    _dynamic_linker,
    _libc,
    build_synthetic,
    m32_files,
    readelf,
    readelf_field,
    readelf_sections,
    readelf_segments,
)

PAGE = os.sysconf("SC_PAGE_SIZE")

# --- the files -------------------------------------------------------------------------

SAMPLE_FILES = [*(f"lesson-{m}" for m in MODES), "libaligned.so"]
BUILT = ["mylib.so", "relro-now", "execstack", "omagic", "reloc.o"]
STRIPPED = [f"{name}.stripped" for name in (*SAMPLE_FILES, "mylib.so")]
SYSTEM = ["ls", "libc", "ld.so", "python"]
M32 = ["m32-exe", "m32-so", "m32-obj"]
ALL_FILES = [*SAMPLE_FILES, *BUILT, *STRIPPED, *SYSTEM, *M32]

# A library of our own: one variable of each kind, and a function.
LIB_SOURCE = """\
int lib_data = 3;
int lib_bss[100];
const int lib_const[32] = {1, 2, 3};
int lib_func(int i) { return lib_data + lib_bss[i] + lib_const[i]; }
"""
# The same as an object file, with a COMMON symbol too (gcc >= 10 defaults to -fno-common).
OBJ_SOURCE = LIB_SOURCE + "__attribute__((common)) int lib_common;\n"
PROGRAM_SOURCE = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'

# name -> (source file, gcc arguments)
BUILDS = {
    "mylib.so": ("lib.c", ["-shared", "-fPIC"]),
    "relro-now": ("prog.c", ["-Wl,-z,relro,-z,now"]),
    "execstack": ("prog.c", ["-z", "execstack"]),
    # -N (--omagic): text and data in one RWX segment; ld 2.39+ warns and links anyway.
    "omagic": ("m32.c", ["-static", "-nostdlib", "-Wl,-N", "-Wl,-e,f"]),
    "reloc.o": ("obj.c", ["-c"]),
    # The lesson compiled alone: its defined OBJECT symbols are the program's own variables.
    "lesson.o": (str(SAMPLES / "lesson.c"), ["-g", "-fPIE", "-pthread", "-c"]),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Build every file above with gcc, then strip copies of the samples and mylib.so."""
    d = tmp_path_factory.mktemp("explain")
    (d / "lib.c").write_text(LIB_SOURCE)
    (d / "obj.c").write_text(OBJ_SOURCE)
    (d / "prog.c").write_text(PROGRAM_SOURCE)
    (d / "m32.c").write_text(M32_SOURCE)
    _run_all(
        [
            ["gcc", "-O1", *flags, "-o", str(d / name), str(d / source)]
            for name, (source, flags) in BUILDS.items()
        ]
    )
    originals = {name: _plain_path(name, d) for name in (*SAMPLE_FILES, "mylib.so")}
    _run_all(
        [["strip", "-o", str(d / f"{name}.stripped"), path] for name, path in originals.items()]
    )
    return d


def _run_all(commands: list[list[str]]) -> None:
    """Run the commands side by side; every one must succeed."""
    running = [
        (cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for cmd in commands
    ]
    for cmd, process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{' '.join(cmd)} failed:\n{err}"


def _plain_path(name: str, built_dir: Path) -> str:
    if name.startswith("lesson-"):
        return str(sample_path(name.removeprefix("lesson-")))
    if name == "libaligned.so":
        return str(SAMPLE_BIN / "libaligned.so")
    return str(built_dir / name)


def file_path(name: str, request) -> str:
    if name.startswith("m32-"):
        return str(request.getfixturevalue("m32_files") / name)
    if name in SYSTEM:
        path = {
            "ls": lambda: "/usr/bin/ls",
            "libc": _libc,
            "ld.so": _dynamic_linker,
            "python": lambda: os.path.realpath(sys.executable),
        }[name]()
        if path is None or not os.path.exists(path):
            # The only skip: a system without this file (libc and ld.so are found
            # through this process's own maps, so a static Python has neither).
            pytest.skip(f"{name} is absent on this system")
        return path
    built_dir = request.getfixturevalue("built")
    if name.endswith(".stripped"):
        return str(built_dir / name)
    return _plain_path(name, built_dir)


@functools.cache
def explained(path: str) -> Explanation:
    return explain_elf(path)


@pytest.fixture(params=ALL_FILES)
def any_file(request) -> str:
    return file_path(request.param, request)


# --- GNU readelf, the parts test_elf does not parse ---------------------------------------


@functools.cache
def readelf_dynamic_and_symbols(path: str) -> str:
    r = subprocess.run(
        [READELF, "-W", "-d", "-s", path],
        capture_output=True,
        text=True,
        env=dict(os.environ, LC_ALL="C"),
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


DYNAMIC_LINE = re.compile(r"^\s*0x[0-9a-f]+ \((\w+)\)\s*(.*)$")


def readelf_dynamic(path: str) -> list[tuple[str, str]]:
    """(tag, value text) per entry of the dynamic section."""
    rows = []
    for line in readelf_dynamic_and_symbols(path).splitlines():
        if line.startswith("Symbol table"):
            break
        m = DYNAMIC_LINE.match(line)
        if m:
            rows.append((m.group(1), m.group(2).strip()))
    return rows


def readelf_bind_now(path: str) -> bool:
    """DT_BIND_NOW, DF_BIND_NOW in DT_FLAGS or DF_1_NOW in DT_FLAGS_1."""
    for tag, value in readelf_dynamic(path):
        words = value.replace("Flags:", "").split()
        if tag == "BIND_NOW" or (tag == "FLAGS" and "BIND_NOW" in words):
            return True
        if tag == "FLAGS_1" and "NOW" in words:
            return True
    return False


SYMBOL_TABLE = re.compile(r"^Symbol table '([^']+)' contains \d+ entr")
SYMBOL_TYPES = {"OBJECT": "object", "FUNC": "function", "IFUNC": "ifunc"}


def readelf_symbols(path: str, table: str) -> list[tuple]:
    """(name, value, size, type, bind, ndx) per entry of one symbol table, as readelf -sW
    prints it: .dynsym names carry their version ("stdout@GLIBC_2.2.5 (3)")."""
    rows: list[tuple] = []
    current = None
    for line in readelf_dynamic_and_symbols(path).splitlines():
        m = SYMBOL_TABLE.match(line)
        if m:
            current = m.group(1)
            continue
        if current != table:
            continue
        parts = line.split(None, 7)
        if len(parts) < 7 or not parts[0].endswith(":") or not parts[0][:-1].isdigit():
            continue
        name = parts[7] if len(parts) == 8 else ""
        # readelf prints a size above 99999 in hex ("0x100000"), smaller ones in decimal.
        rows.append((name, int(parts[1], 16), int(parts[2], 0), parts[3], parts[4], parts[6]))
    return rows


def _unversioned(name: str) -> str:
    return name.split("@", 1)[0].split(" (", 1)[0]


def readelf_segment_sections(path: str) -> list[list[str]]:
    """readelf -l's "Section to Segment mapping", one list of names per program header."""
    text = readelf(path)
    if "Section to Segment mapping:" not in text:
        return []
    rows: list[list[str]] = []
    for line in text.split("Section to Segment mapping:", 1)[1].splitlines():
        m = re.match(r"^\s+(\d+)\s*(.*)$", line)
        if m:
            assert int(m.group(1)) == len(rows), line
            rows.append(m.group(2).split())
        elif rows:
            break
    return rows


# The section type names procmap must give as readelf does; others it prints as 0x...
SECTION_TYPE_NAMES = {
    "NULL",
    "PROGBITS",
    "SYMTAB",
    "STRTAB",
    "RELA",
    "HASH",
    "DYNAMIC",
    "NOTE",
    "NOBITS",
    "REL",
    "DYNSYM",
    "INIT_ARRAY",
    "FINI_ARRAY",
    "PREINIT_ARRAY",
    "GROUP",
    "RELR",
    "GNU_ATTRIBUTES",
    "GNU_HASH",
    "VERDEF",
    "VERNEED",
    "VERSYM",
}
# The flag letters procmap prints, in readelf's order; readelf has more (E, l, o, p...).
SECTION_FLAG_LETTERS = "WAXMSILOGTC"
MACHINES = {"Advanced Micro Devices X86-64": "x86-64", "Intel 80386": "x86"}


def readelf_type(path: str) -> str:
    """What the file is, in explain's words, from readelf's ELF type, PT_INTERP and
    DT_NEEDED; readelf says "Position-Independent Executable" when DF_1_PIE is set."""
    kind = readelf_field(path, r"^\s*Type:\s+(.*)$")
    interp = readelf_field(path, r"\[Requesting program interpreter: (.*)\]$")
    needed = any(tag == "NEEDED" for tag, _ in readelf_dynamic(path))
    if kind.startswith("REL "):
        return "relocatable"
    if kind.startswith("EXEC "):
        return "executable" if interp or needed else "static"
    if kind == "DYN (Position-Independent Executable file)":
        return "pie" if interp else "static-pie"
    if kind == "DYN (Shared object file)":
        return "shared-object"
    if kind.startswith("CORE "):
        return "core"
    raise AssertionError(f"readelf type {kind!r}")


def readelf_symbol_source(path: str) -> str | None:
    kinds = {row[1] for row in readelf_sections(path)}
    return ".symtab" if "SYMTAB" in kinds else ".dynsym" if "DYNSYM" in kinds else None


# --- 1. program headers and sections, against readelf ---------------------------------------


def test_every_program_header_matches_readelf(any_file):
    ours = [
        (
            s["type"],
            int(s["offset"], 16),
            int(s["vaddr"], 16),
            s["filesz"],
            s["memsz"],
            s["flags"],
            s["align"],
        )
        for s in explained(any_file).to_dict()["segments"]
    ]
    theirs = readelf_segments(any_file)
    assert len(ours) == len(theirs)
    # A type procmap does not name (0x6474e554...) is compared by its other fields only.
    ours = [(None, *o[1:]) if o[0].startswith("0x") else o for o in ours]
    theirs = [(None, *t[1:]) if o[0] is None else t for o, t in zip(ours, theirs)]
    assert ours == theirs
    loads = [p.segment for p in explained(any_file).loads]
    assert [s.vaddr for s in loads] == [t[2] for t in theirs if t[0] == "LOAD"]


def test_every_section_matches_readelf(any_file):
    sections = explained(any_file).to_dict()["sections"]
    ours = [
        (s["name"], s["type"], int(s["addr"], 16), int(s["offset"], 16), s["size"], s["flags"])
        for s in sections
    ]
    theirs = []
    for name, kind, addr, offset, size, flags in readelf_sections(any_file):
        letters = "".join(c for c in flags if c in SECTION_FLAG_LETTERS)
        theirs.append(
            (name, kind if kind in SECTION_TYPE_NAMES else None, addr, offset, size, letters)
        )
    assert len(ours) == len(theirs)
    ours = [(o[0], None if o[1].startswith("0x") else o[1], *o[2:]) for o in ours]
    assert ours == theirs
    # The allocated ones above all: what explain places in memory.
    assert [o for o in ours if "A" in o[5]] == [t for t in theirs if "A" in t[5]]


def test_segment_sections_match_readelf(any_file):
    """Each program header's sections are readelf's section-to-segment mapping, less the
    sections with no bytes (empty, or not allocated): .tbss belongs to PT_TLS only, since
    in the image its addresses are those of the sections after it."""
    sizes = {(n, a): (size, "A" in f) for n, _, a, _, size, f in readelf_sections(any_file)}
    names_with_bytes = {n for (n, _), (size, alloc) in sizes.items() if size and alloc}
    theirs = [
        [n for n in names if n in names_with_bytes] for names in readelf_segment_sections(any_file)
    ]
    segments = explained(any_file).to_dict()["segments"]
    assert len(segments) == len(theirs)
    wrong = [
        (i, seg["type"], seg["sections"], names)
        for i, (seg, names) in enumerate(zip(segments, theirs))
        if seg["sections"] != names
    ]
    assert wrong == [], "(index, type, procmap's sections, readelf's)"


# --- 2. the JSON contract -------------------------------------------------------------------

INT, STR, BOOL, LIST, DICT = (int,), (str,), (bool,), (list,), (dict,)
OPT_STR = (str, type(None))
HEX = "an address: a string of hex digits"  # JSON's numbers are doubles: addresses are text
CONTRACT = {
    "top": {"path": STR, "elf": DICT, "segments": LIST, "sections": LIST, "symbols": LIST},
    "elf": {
        "class": INT,
        "endian": STR,
        "machine": STR,
        "type": STR,
        "pie": BOOL,
        "static": BOOL,
        "entry": HEX,
        "interpreter": OPT_STR,
        "build_id": OPT_STR,
        "relro": STR,
        "nx_stack": BOOL,
    },
    "segment": {
        "type": STR,
        "offset": HEX,
        "vaddr": HEX,
        "filesz": INT,
        "memsz": INT,
        "flags": STR,
        "align": INT,
        "kinds": LIST,
    },
    "section": {
        "name": STR,
        "type": STR,
        "addr": HEX,
        "offset": HEX,
        "size": INT,
        "flags": STR,
        "kind": OPT_STR,
    },
    "symbol": {
        "name": STR,
        "value": HEX,
        "size": INT,
        "type": STR,
        "bind": STR,
        "section": OPT_STR,
        "kind": OPT_STR,
    },
}


def assert_contract(obj: dict, what: str, where: str) -> None:
    assert isinstance(obj, dict), where
    spec = CONTRACT[what]
    missing = set(spec) - set(obj)
    assert not missing, f"{where}: missing {sorted(missing)}"
    for key, types in spec.items():
        if types is HEX:
            assert type(obj[key]) is str, f"{where}.{key} = {obj[key]!r}"
            assert re.fullmatch(r"0x[0-9a-f]+", obj[key]), f"{where}.{key} = {obj[key]!r}"
            continue
        # type() is exact: a bool is not an int here, nor an int a bool.
        assert type(obj[key]) in types, f"{where}.{key} = {obj[key]!r}"


def test_to_dict_keeps_the_json_contract(any_file):
    d = explained(any_file).to_dict()
    assert_contract(d, "top", "explanation")
    assert d["path"] == any_file
    elf = d["elf"]
    assert_contract(elf, "elf", "elf")
    assert elf["class"] in (32, 64)
    assert elf["endian"] in ("little", "big")
    assert elf["relro"] in ("none", "partial", "full")
    assert elf["type"] in (
        "executable",
        "pie",
        "static",
        "static-pie",
        "shared-object",
        "relocatable",
        "core",
        "unknown",
    )
    for i, seg in enumerate(d["segments"]):
        assert_contract(seg, "segment", f"segments[{i}]")
        assert re.fullmatch(r"[r-][w-][x-]", seg["flags"]), seg
        assert all(type(k) is str and k in KINDS for k in seg["kinds"]), seg
    for i, sec in enumerate(d["sections"]):
        assert_contract(sec, "section", f"sections[{i}]")
        assert sec["kind"] is None or sec["kind"] in KINDS, sec
    for i, sym in enumerate(d["symbols"]):
        assert_contract(sym, "symbol", f"symbols[{i}]")
        assert sym["type"] in ("object", "function", "ifunc"), sym
        assert sym["bind"] in ("local", "global", "weak", "unique"), sym
        assert sym["kind"] is None or sym["kind"] in KINDS, sym
    # Plain JSON all the way down: dumps succeeds and reads back the very same data.
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_json_has_every_program_header_and_section(any_file):
    d = explained(any_file).to_dict()
    assert len(d["segments"]) == len(readelf_segments(any_file))
    assert len(d["sections"]) == len(readelf_sections(any_file))


# --- 3. facts, against readelf ------------------------------------------------------------


def test_facts_match_readelf(any_file):
    exp = explained(any_file)
    elf = exp.to_dict()["elf"]
    assert elf["class"] == int(readelf_field(any_file, r"^\s*Class:\s+ELF(\d+)"))
    assert elf["endian"] == readelf_field(any_file, r"^\s*Data:\s+2's complement, (\w+) endian")
    assert elf["machine"] == MACHINES[readelf_field(any_file, r"^\s*Machine:\s+(.*)$")]
    assert int(elf["entry"], 16) == int(
        readelf_field(any_file, r"Entry point address:\s+0x([0-9a-f]+)"), 16
    )
    assert elf["interpreter"] == readelf_field(
        any_file, r"\[Requesting program interpreter: (.*)\]$"
    )
    assert elf["build_id"] == readelf_field(any_file, r"Build ID: ([0-9a-f]+)$")
    assert elf["type"] == readelf_type(any_file)
    assert elf["pie"] == (elf["type"] in ("pie", "static-pie"))
    assert elf["static"] == (elf["type"] in ("static", "static-pie"))
    assert exp.loader == {"shared-object": "dynamic linker", "relocatable": None}.get(
        elf["type"], "kernel"
    )

    segments = readelf_segments(any_file)
    has_relro = any(row[0] == "GNU_RELRO" for row in segments)
    relro = "none" if not has_relro else "full" if readelf_bind_now(any_file) else "partial"
    assert elf["relro"] == relro
    assert elf["bind_now"] == readelf_bind_now(any_file)

    stack = [row for row in segments if row[0] == "GNU_STACK"]
    if stack:
        exec_stack = "x" in stack[0][5]
    else:  # an object file asks for a non-executable stack with .note.GNU-stack
        assert elf["type"] == "relocatable"
        note = [s for s in readelf_sections(any_file) if s[0] == ".note.GNU-stack"]
        exec_stack = not note or "X" in note[0][5]
    assert (elf["nx_stack"], exp.facts.exec_stack) == (not exec_stack, exec_stack)
    rwx = [i for i, row in enumerate(segments) if row[0] == "LOAD" and row[5] == "rwx"]
    assert elf["wx_segments"] == rwx


EXPECTED_TYPE = {
    "lesson-pie": "pie",
    "lesson-nopie": "executable",
    "lesson-static": "static",
    "lesson-static-pie": "static-pie",
    "lesson-nosep": "pie",
    "lesson-norelro": "pie",
    "libaligned.so": "shared-object",
    "mylib.so": "shared-object",
    "libc": "shared-object",
    "ld.so": "shared-object",
    "reloc.o": "relocatable",
    "omagic": "static",
    "m32-exe": "static",
    "m32-so": "shared-object",
    "m32-obj": "relocatable",
}
PIE_STATIC = {
    "pie": (True, False),
    "executable": (False, False),
    "static": (False, True),
    "static-pie": (True, True),
    "shared-object": (False, False),
    "relocatable": (False, False),
}


@pytest.mark.parametrize(
    "name", [*EXPECTED_TYPE, *(f"{n}.stripped" for n in SAMPLE_FILES)], ids=str
)
def test_what_each_file_is(name, request):
    kind = EXPECTED_TYPE[name.removesuffix(".stripped")]
    elf = explained(file_path(name, request)).to_dict()["elf"]
    assert elf["type"] == kind
    assert (elf["pie"], elf["static"]) == PIE_STATIC[kind]


@pytest.mark.parametrize(
    "name, relro",
    [("lesson-norelro", "none"), ("lesson-pie", "partial"), ("relro-now", "full")],
)
def test_relro(name, relro, request):
    path = file_path(name, request)
    assert explained(path).facts.relro == relro
    # readelf agrees: GNU_RELRO, and BIND_NOW (or FLAGS NOW / FLAGS_1 NOW) for full.
    has_relro = any(row[0] == "GNU_RELRO" for row in readelf_segments(path))
    assert has_relro == (relro != "none")
    assert readelf_bind_now(path) == (relro == "full")


@pytest.mark.parametrize("name", [*SAMPLE_FILES, "execstack"])
def test_nx_stack(name, request):
    path = file_path(name, request)
    facts = explained(path).facts
    (stack,) = [row for row in readelf_segments(path) if row[0] == "GNU_STACK"]
    if name == "execstack":
        assert stack[5] == "rwx"
        assert (facts.nx_stack, facts.exec_stack) == (False, True)
    else:
        assert stack[5] == "rw-"
        assert (facts.nx_stack, facts.exec_stack) == (True, False)


def test_rwx_load_segment_is_reported(request):
    path = file_path("omagic", request)
    facts = explained(path).facts
    rows = readelf_segments(path)
    rwx = [i for i, row in enumerate(rows) if row[0] == "LOAD" and row[5] == "rwx"]
    assert rwx, "ld -N made no RWX PT_LOAD"
    assert list(facts.wx_segments) == rwx
    for name in SAMPLE_FILES:
        assert explained(file_path(name, request)).facts.wx_segments == ()


# --- 4. kinds: the samples' variables and sections ---------------------------------------

LESSON_SYMBOLS = ("global_init", "global_uninit", "file_scoped", "big_zeroes")
LESSON_SYMBOLS += ("const_table", "greetings", "main")


@pytest.fixture(scope="module")
def printed() -> dict[str, dict[str, tuple[int, str]]]:
    """What each sample prints when it runs: name -> (address, the kind procmap must find)."""
    out = {}
    for mode in MODES:
        with run_sample(mode) as sample:
            out[mode] = dict(sample.variables)
    return out


def _only(exp: Explanation, name: str):
    found = [s for s in exp.symbols if s.entry.name == name]
    assert len(found) == 1, (name, found)
    return found[0]


def _regions_over(exp: Explanation, start: int, end: int):
    return [r for r in exp.regions if r.start < end and r.end > start]


@pytest.mark.parametrize("mode", MODES)
def test_sample_symbols_have_the_kinds_the_sample_prints(mode, printed):
    exp = explained(str(sample_path(mode)))
    said = printed[mode]
    biases = set()
    for name in LESSON_SYMBOLS:
        address, kind = said[name]
        plan = _only(exp, name)
        assert plan.kind == kind, name
        assert plan.reason and isinstance(plan.reason, str), name
        biases.add(address - plan.entry.value)
        # Every byte of the symbol lies in regions of that kind in the plan.
        lo, hi = plan.entry.value, plan.entry.value + max(plan.entry.size, 1)
        assert {r.kind for r in _regions_over(exp, lo, hi)} == {kind}, name
    # One load bias for the whole file: the symbols' values are where the sample put them.
    (bias,) = biases
    assert bias % PAGE == 0
    if mode in ("nopie", "static"):
        assert bias == 0
    # The string literal has no symbol; its address still falls in a region of its kind.
    address, kind = said["literal"]
    assert [r.kind for r in _regions_over(exp, address - bias, address - bias + 1)] == [kind]


@pytest.fixture(scope="module")
def lesson_objects(built) -> set[str]:
    """The variables lesson.c defines, as gcc -c leaves them in its symbol table."""
    rows = readelf_symbols(str(built / "lesson.o"), ".symtab")
    names = {r[0] for r in rows if r[3] == "OBJECT" and r[5] not in ("UND", "ABS")}
    assert set(LESSON_SYMBOLS) - {"main"} <= names
    return names


RUNTIME_SYMBOLS = ("completed.0", "__dso_handle", "_IO_stdin_used")


@pytest.mark.parametrize("mode", MODES)
def test_own_variables_are_the_lessons(mode, lesson_objects):
    exp = explained(str(sample_path(mode)))
    own = [s.entry.name for s in exp.symbols if s.own]
    assert sorted(own) == sorted(lesson_objects)
    # The C runtime's and libc's: completed.0 (crtstuff.c; no such local in a static link),
    # __dso_handle, _IO_stdin_used.
    runtime = [s for s in exp.symbols if s.entry.name in RUNTIME_SYMBOLS]
    assert {"__dso_handle", "_IO_stdin_used"} <= {s.entry.name for s in runtime}
    assert [s.entry.name for s in runtime if s.own] == []


def _section_kinds(mode: str) -> dict[str, str]:
    return {
        ".text": "text",
        ".rodata": "rodata",  # with -z noseparate-code too: r-x, but read-only data
        ".data": "data",
        ".bss": "bss",
        ".data.rel.ro": "data" if mode == "norelro" else "rodata",
    }


@pytest.mark.parametrize("mode", MODES)
def test_sample_sections_have_their_kinds(mode):
    exp = explained(str(sample_path(mode)))
    kinds = {p.section.name: p.kind for p in exp.sections}
    for name, kind in _section_kinds(mode).items():
        if name == ".data.rel.ro" and mode == "nopie":
            # Non-PIC code needs no relocation for greetings: it stays in .rodata.
            assert name not in kinds
            continue
        assert kinds[name] == kind, name
    assert kinds[".symtab"] is None
    debug = [n for n in kinds if n.startswith(".debug_")]
    assert debug, "the samples are built with -g"
    assert all(kinds[n] is None for n in debug)
    for p in exp.sections:
        if not p.section.flags & SHF_ALLOC:  # never in memory
            assert (p.kind, p.detail) == (None, None), p.section.name


@pytest.mark.parametrize(
    "name, wanted",
    [
        ("libaligned.so", {"aligned_data": "data", "aligned_bss": "bss"}),
        ("libaligned.so", {"aligned_const": "rodata", "aligned_func": "text"}),
        ("mylib.so", {"lib_data": "data", "lib_bss": "bss"}),
        ("mylib.so", {"lib_const": "rodata", "lib_func": "text"}),
    ],
)
def test_library_symbols_have_their_kinds(name, wanted, request):
    exp = explained(file_path(name, request))
    for symbol, kind in wanted.items():
        plan = _only(exp, symbol)
        assert plan.kind == kind, symbol
        lo, hi = plan.entry.value, plan.entry.value + max(plan.entry.size, 1)
        assert {r.kind for r in _regions_over(exp, lo, hi)} == {kind}, symbol
        assert plan.own == (plan.entry.type_name == "object"), symbol


# --- 5. the load plan ------------------------------------------------------------------------


def _down(x: int) -> int:
    return x - x % PAGE


def _up(x: int) -> int:
    return -(-x // PAGE) * PAGE


def expected_pages(path: str, loader: str) -> dict[int, tuple[str, int | None]]:
    """page -> (perms, file offset, or None for anonymous zero pages), from readelf's numbers.

    Each PT_LOAD, in order (a later one wins a shared page): its file pages, then zero
    pages up to p_memsz.  The dynamic linker maps the whole span from the file first,
    and what no segment covers stays there with no access.  Then whole RELRO pages
    become read-only.
    """
    rows = readelf_segments(path)
    loads = [r for r in rows if r[0] == "LOAD" and r[4] > 0]
    pages: dict[int, tuple[str, int | None]] = {}
    if loader == "dynamic linker":
        first, last = loads[0], loads[-1]
        for p in range(_down(first[2]), _up(last[2] + last[4]), PAGE):
            pages[p] = ("---p", _down(first[1]) + p - _down(first[2]))
    for _, offset, vaddr, filesz, memsz, perms, _ in loads:
        file_end = _up(vaddr + filesz) if filesz else _down(vaddr)
        for p in range(_down(vaddr), file_end, PAGE):
            pages[p] = (perms + "p", _down(offset) + p - _down(vaddr))
        for p in range(file_end, _up(vaddr + memsz), PAGE):
            pages[p] = (perms + "p", None)
    for _, _, vaddr, _, memsz, _, _ in (r for r in rows if r[0] == "GNU_RELRO"):
        for p in range(_down(vaddr), _down(vaddr + memsz), PAGE):
            pages[p] = ("r--p", pages[p][1])
    return pages


LOADABLE = [n for n in ALL_FILES if n not in ("reloc.o", "m32-obj")]


@pytest.mark.parametrize("name", LOADABLE)
def test_mappings_are_what_the_loader_makes(name, request):
    path = file_path(name, request)
    exp = explained(path)
    assert exp.page_size == PAGE
    assert exp.mappings and all(isinstance(m, Mapping) for m in exp.mappings)
    for a, b in zip(exp.mappings, exp.mappings[1:]):
        assert a.end <= b.start, (a, b)  # sorted, no overlap
    pages = {}
    for m in exp.mappings:
        assert m.start % PAGE == 0 and m.end % PAGE == 0 and m.start < m.end, m
        assert m.perms[3] == "p", m
        if m.inode:
            assert m.path == path, m
        else:
            assert (m.offset, m.dev, m.path) == (0, "00:00", None), m
        for p in range(m.start, m.end, PAGE):
            pages[p] = (m.perms, m.offset + p - m.start if m.inode else None)
    assert pages == expected_pages(path, exp.loader)


@pytest.mark.parametrize("name", LOADABLE)
def test_regions_tile_the_mappings(name, request):
    exp = explained(file_path(name, request))
    regions = list(exp.regions)
    assert regions == sorted(regions, key=lambda r: r.start)
    i = 0
    for m in exp.mappings:
        pos = m.start
        while pos < m.end:
            r = regions[i]
            assert (r.start, r.perms) == (pos, m.perms), (m, r)
            assert pos < r.end <= m.end, (m, r)
            pos = r.end
            i += 1
    assert i == len(regions)
    for r in regions:
        # A loaded file is nothing but its image kinds, and the gaps the dynamic linker leaves.
        assert r.kind in ("text", "rodata", "data", "bss", "mmap"), r
        if r.kind == "mmap":
            assert (r.perms, r.detail) == ("---p", Detail.SEGMENT_GAP), r
        if r.perms == "---p":
            assert r.kind == "mmap", r


@pytest.mark.parametrize("name", LOADABLE)
def test_bss_starts_where_the_file_bytes_end(name, request):
    path = file_path(name, request)
    exp = explained(path)
    for _, _, vaddr, filesz, memsz, perms, _ in readelf_segments(path):
        if perms != "rw-" or memsz <= filesz:
            continue
        bss_start, bss_end = vaddr + filesz, _up(vaddr + memsz)
        (first,) = [r for r in exp.regions if r.start <= bss_start < r.end]
        assert (first.start, first.kind) == (bss_start, "bss"), first
        assert {r.kind for r in _regions_over(exp, bss_start, bss_end)} == {"bss"}
        if filesz:
            (before,) = [r for r in exp.regions if r.end == bss_start]
            assert before.kind in ("data", "rodata"), before


@pytest.mark.parametrize("name", LOADABLE)
def test_segment_kinds_follow_their_flags(name, request):
    exp = explained(file_path(name, request))
    relro = exp.layout.relro
    for plan in exp.loads:
        seg = plan.segment
        if seg.memsz == 0:
            continue
        if "x" in seg.perms:
            # Code; and the read-only data that shares its segment when the
            # linker put no page boundary between them (-z noseparate-code).
            assert "text" in plan.kinds and set(plan.kinds) <= {"text", "rodata"}, plan
            sections = exp.layout.sections_between(seg.vaddr, seg.vaddr + seg.memsz)
            if all(s.flags & SHF_EXECINSTR for s in sections) and seg.offset:
                assert plan.kinds == ("text",), plan
        elif "w" not in seg.perms:
            assert plan.kinds == ("rodata",), plan
        else:
            expected = {"data", "bss"} | ({"rodata"} if relro is not None else set())
            assert plan.kinds and set(plan.kinds) <= expected, plan


def test_libaligned_gaps_are_no_access_mappings_of_the_file(request):
    """64 KiB-aligned segments on 4 KiB pages: ld.so leaves the padding mapped ---p."""
    path = file_path("libaligned.so", request)
    exp = explained(path)
    assert exp.loader == "dynamic linker"
    loads = [r for r in readelf_segments(path) if r[0] == "LOAD"]
    assert all(r[6] == 0x10000 for r in loads)
    gaps = [
        (_up(a[2] + a[4]), _down(b[2]))
        for a, b in zip(loads, loads[1:])
        if _down(b[2]) > _up(a[2] + a[4])
    ]
    assert len(gaps) == len(loads) - 1
    none = [(m.start, m.end) for m in exp.mappings if m.perms == "---p"]
    assert none == gaps
    for start, end in gaps:
        (m,) = [m for m in exp.mappings if m.start == start]
        assert (m.end, m.inode != 0, m.path) == (end, True, path)
        (r,) = _regions_over(exp, start, end)
        assert (r.start, r.end, r.kind, r.detail) == (start, end, "mmap", Detail.SEGMENT_GAP)


# --- 6. stripped copies -----------------------------------------------------------------------


def _facts_but_size(exp: Explanation) -> dict:
    elf = exp.to_dict()["elf"]
    elf.pop("file_size")
    return elf


@pytest.mark.parametrize("name", [*SAMPLE_FILES, "mylib.so"])
def test_stripped_copy_has_the_same_plan(name, request):
    full = explained(file_path(name, request))
    path = file_path(f"{name}.stripped", request)
    stripped = explained(path)
    assert full.symbol_source == ".symtab"
    assert stripped.symbol_source == readelf_symbol_source(path)
    if name == "lesson-static":
        assert stripped.symbol_source is None and stripped.symbols == []
    else:
        assert stripped.symbol_source == ".dynsym"
    assert stripped.stripped and not full.stripped
    assert _facts_but_size(stripped) == _facts_but_size(full)
    ds, df = stripped.to_dict(), full.to_dict()
    assert ds["segments"] == df["segments"]
    assert ds["mappings"] == df["mappings"]
    assert ds["regions"] == df["regions"]
    assert (ds["loader"], ds["warnings"]) == (df["loader"], df["warnings"])
    alloc = [s for s in df["sections"] if "A" in s["flags"]]
    assert [s for s in ds["sections"] if "A" in s["flags"]] == alloc
    gone = [s["name"] for s in ds["sections"] if s["type"] == "SYMTAB" or ".debug_" in s["name"]]
    assert gone == []


@pytest.mark.parametrize("name", [*SAMPLE_FILES, "mylib.so"])
def test_stripped_copy_keeps_symbol_kinds_and_ownership(name, request):
    """A symbol of .dynsym is the same symbol as in .symtab: same kind, and the program's
    own only if it was the program's own with its .symtab."""
    full = explained(file_path(name, request))
    stripped = explained(file_path(f"{name}.stripped", request))
    before = {}
    for s in full.symbols:
        key = (_unversioned(s.entry.name), s.entry.value, s.entry.size, s.entry.type)
        before.setdefault(key, []).append(s)
    for s in stripped.symbols:
        key = (s.entry.name, s.entry.value, s.entry.size, s.entry.type)
        assert key in before, key
        same = before[key]
        assert {(p.section, p.kind, p.detail) for p in same} == {(s.section, s.kind, s.detail)}
        assert s.own == any(p.own for p in same), (s.entry.name, s.own)


@pytest.mark.parametrize("name", ["ls", "lesson-nopie.stripped", "lesson-pie.stripped"])
def test_libc_variables_copied_into_a_program_are_not_its_own(name, request):
    """A program that reads stdout, optarg... gets a copy of each in its .bss (a copy
    relocation) and exports it in .dynsym under libc's version (stdout@GLIBC_2.2.5):
    libc's variable, not the program's."""
    path = file_path(name, request)
    exp = explained(path)
    assert exp.symbol_source == ".dynsym"
    libc_copies = {
        _unversioned(row[0])
        for row in readelf_symbols(path, ".dynsym")
        if row[3] == "OBJECT" and row[5] != "UND" and "@GLIBC_" in row[0] and "@@" not in row[0]
    }
    assert libc_copies, "no copy-relocated libc variable to check"
    own = {s.entry.name for s in exp.symbols if s.own}
    assert own & libc_copies == set()


# --- 7. a relocatable object --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, sections, symbols",
    [
        (
            "reloc.o",
            {".text": "text", ".data": "data", ".bss": "bss", ".rodata": "rodata"},
            {
                "lib_func": ("function", ".text", "text"),
                "lib_data": ("object", ".data", "data"),
                "lib_bss": ("object", ".bss", "bss"),
                "lib_const": ("object", ".rodata", "rodata"),
                "lib_common": ("object", None, "bss"),  # SHN_COMMON: the linker puts it in .bss
            },
        ),
        (
            "m32-obj",
            {".text": "text", ".data": "data", ".bss": "bss"},
            {
                "f": ("function", ".text", "text"),
                "g": ("object", ".data", "data"),
                "u": ("object", ".bss", "bss"),
            },
        ),
    ],
)
def test_relocatable_object(name, sections, symbols, request):
    path = file_path(name, request)
    exp = explained(path)
    d = exp.to_dict()
    assert d["elf"]["type"] == "relocatable"
    assert (exp.loader, exp.mappings, exp.regions, d["segments"]) == (None, [], [], [])
    assert any("not a loadable program" in w for w in exp.warnings), exp.warnings
    kinds = {s["name"]: s["kind"] for s in d["sections"]}
    for section, kind in sections.items():
        assert kinds[section] == kind, section
    for s in d["sections"]:
        if "A" not in s["flags"]:
            assert s["kind"] is None, s
    found = {s["name"]: (s["type"], s["section"], s["kind"]) for s in d["symbols"]}
    for symbol, expected in symbols.items():
        assert found.get(symbol) == expected, symbol
    if name == "reloc.o":
        (row,) = [r for r in readelf_symbols(path, ".symtab") if r[0] == "lib_common"]
        assert row[5] == "COM"


# --- 8. symbols, against readelf -sW ------------------------------------------------------------


def test_symbols_match_readelf(any_file):
    """The chosen table's defined OBJECT, FUNC and IFUNC symbols, every one, as readelf
    lists them: name, value, size, type, binding and section."""
    exp = explained(any_file)
    source = readelf_symbol_source(any_file)
    assert exp.symbol_source == source
    if source is None:
        assert exp.symbols == []
        return
    names = [row[0] for row in readelf_sections(any_file)]
    theirs = Counter()
    for name, value, size, kind, bind, ndx in readelf_symbols(any_file, source):
        if kind not in SYMBOL_TYPES or ndx == "UND":
            continue
        section = names[int(ndx) - 1] if ndx.isdigit() else None
        if source == ".dynsym":
            name = _unversioned(name)
        theirs[(name, value, size, SYMBOL_TYPES[kind], bind.lower(), section)] += 1
    d = exp.to_dict()
    ours = Counter(
        (s["name"], int(s["value"], 16), s["size"], s["type"], s["bind"], s["section"])
        for s in d["symbols"]
    )
    assert len(d["symbols"]) == sum(theirs.values())
    assert ours == theirs


# --- 32-bit and big-endian files carried by the tests themselves -------------------------
# gcc -m32 may be missing (no multilib); these hand-made files, which test_elf checks
# against readelf, still put the 32-bit and big-endian paths of explain under test.


@pytest.mark.parametrize(("bits", "endian"), [(32, "little"), (32, "big"), (64, "big")], ids=str)
def test_hand_made_files_are_explained_as_readelf_reads_them(tmp_path, bits, endian):
    path = tmp_path / f"synthetic-{bits}-{endian}"
    path.write_bytes(build_synthetic(bits, endian)[0])
    data = explain_elf(str(path)).to_dict()
    assert data["elf"]["class"] == bits and data["elf"]["endian"] == endian
    loads = [s for s in data["segments"] if s["type"] == "LOAD"]
    theirs = [row for row in readelf_segments(str(path)) if row[0] == "LOAD"]
    assert len(loads) == len(theirs) and loads
    for ours, row in zip(loads, theirs):
        assert (
            int(ours["offset"], 16),
            int(ours["vaddr"], 16),
            ours["filesz"],
            ours["memsz"],
        ) == row[1:5]
        assert ours["flags"] == row[5] and ours["kinds"]
