"""`procmap explain` on bad input: a one-line procmap error or a warned view, never a
traceback, never a hang.

The contract (procmap/errors.py, explain_elf's docstring): a path that is not a
regular file is BadFile (exit 10) and is never opened, let alone read; a file
without the ELF magic is NotAnELF (11); damaged ELF headers or program headers are
CorruptELF (12), one line on stderr starting "procmap: "; damage anywhere else
(section headers, symbol table, dynamic section) becomes a warning on a
best-effort explanation, exit 0.  A PT_LOAD that lies (past the end of the file,
smaller in memory than in the file) is read: the explanation carries a finding
that says what the loader does with it (tests/unit/test_explain_lies.py).  Bad input that is explained without a warning
breaks the contract as surely as a traceback does: the user is shown a damaged
file as if it were sound.

In-process, every input goes through what the CLI does with it (explain_elf,
to_dict and json.dumps for --json, the text view with and without --symbols),
each call under a SIGALRM guard so that a hang fails the test instead of
stalling the run.  The inputs are files gcc builds here (a tiny dynamic PIE, a
-nostdlib static program, its stripped copy, an object file, a core dump),
damaged one header field at a time, truncated at every interesting length, and
mutated at random by hypothesis.  A handful go through the command line
(`procmap explain`, in-process: tests.helpers.run_cli) to see the exit code and
the one stderr line.

tests/data/elf-corpus/ holds inputs that once broke the contract, each under
64 KiB; every file there is run.  They were made from the files built here:

  many-load-segments.elf        an ELF64 ET_DYN header and 1000 PT_LOADs, all
                                offset 0, filesz 0x80, memsz 0x2000, vaddr 0x3000*i:
                                the classifier proposes one load bias per
                                (mapping, segment) pair and lays out an image for
                                each, O(n^3): minutes for a 56 KiB file.  Its
                                headers are sound: the kernel maps all 1000 (its
                                limit is 64 KiB of program headers), so it is
                                explained without a warning
  shstrndx-out-of-range.elf     the static program with e_shstrndx 0x7ff0
  symtab-size-not-multiple.elf  the static program with .symtab sh_size - 5
  symbol-names-past-strtab.elf  the static program with every st_name past .strtab
  section-names-past-shstrtab.elf  the static program with every sh_name past .shstrtab
  dynamic-strtab-unmapped.elf   the dynamic PIE with DT_STRTAB outside every PT_LOAD
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procmap.errors import BadFile, CorruptELF, NotAnELF, ProcmapError
from procmap.render.explain import render_explanation
from procmap.views.explain import Explanation, explain_elf
from tests.helpers import procmap_json, render, run_cli

CORPUS = Path(__file__).resolve().parents[1] / "data" / "elf-corpus"
HANG_LIMIT = 10  # seconds: every input here takes milliseconds
EXIT_CODES = {BadFile: 10, NotAnELF: 11, CorruptELF: 12}

# The three files every other input is made from.
TINY_C = """\
int counter = 1;
int zeroed;
const char greeting[] = "hi";
int main(void) { return counter + zeroed + greeting[0] - 'h' - 1; }
"""
NOSTDLIB_C = """\
volatile int value = 3;
int zero;
void _start(void) { for (;;) value += zero; }
"""


# --- watching for hangs and for opens ----------------------------------------------------


@contextmanager
def hang_guard(what: str, seconds: float = HANG_LIMIT):
    """Fail, rather than hang, if the body runs for `seconds`."""

    def expired(signum, frame):
        raise TimeoutError(f"{what}: still running after {seconds} s, a hang")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_opened: list | None = None  # paths os.open() was given, while a test records them


def _audit(event: str, args) -> None:
    if event == "open" and _opened is not None:
        _opened.append(args[0])


_hook_added = False


@contextmanager
def recording_opens():
    """The paths opened in the body, seen through the interpreter's audit hook."""
    global _opened, _hook_added
    if not _hook_added:
        sys.addaudithook(_audit)  # cannot be removed: it records only inside this block
        _hook_added = True
    _opened = seen = []
    try:
        yield seen
    finally:
        _opened = None


# --- what the CLI does with a file, in-process ------------------------------------------


def explain_or_error(path) -> Explanation | ProcmapError:
    """explain_elf, then --json and both text views; a ProcmapError is returned,
    anything else (a bug) propagates with its traceback."""
    with hang_guard(f"explain {path}"):
        try:
            exp = explain_elf(path)
        except ProcmapError as err:
            return err
        json.dumps(exp.to_dict())
        for symbols in (False, True):
            assert render(render_explanation(exp, symbols=symbols), 200)
    return exp


def assert_error_or_warned(result, expected=None) -> None:
    """The contract: a procmap error with its exit code and a one-line message, or an
    explanation with a warning.  `expected` narrows it to an error class or "warning"."""
    if isinstance(result, ProcmapError):
        assert type(result) in EXIT_CODES, f"unexpected error class: {result!r}"
        assert result.exit_code == EXIT_CODES[type(result)]
        message = str(result)
        assert message and "\n" not in message, repr(message)
        assert expected in (None, type(result)), f"expected {expected}, got {result!r}"
    else:
        assert isinstance(result, Explanation)
        said = result.warnings or result.findings
        assert said, f"{result.path}: bad input explained without a warning"
        assert expected in (None, "warning"), f"expected {expected}, got warnings {result.warnings}"


# --- the files ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elves(tmp_path_factory) -> dict[str, Path]:
    """dynamic (gcc -O1, a PIE), static (-nostdlib -static), stripped, object (gcc -c)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to build the inputs")
    d = tmp_path_factory.mktemp("elves")
    (d / "tiny.c").write_text(TINY_C)
    (d / "nostdlib.c").write_text(NOSTDLIB_C)
    builds = {
        "dynamic": ["-O1", "-o", "dynamic", "tiny.c"],
        "static": ["-O1", "-nostdlib", "-static", "-o", "static", "nostdlib.c"],
        "object": ["-O1", "-c", "-o", "object.o", "tiny.c"],
    }
    for args in builds.values():
        subprocess.run([gcc, *args], cwd=d, check=True, capture_output=True, timeout=60)
    files = {"dynamic": d / "dynamic", "static": d / "static", "object": d / "object.o"}
    strip = shutil.which("strip")
    if strip:
        subprocess.run([strip, "-o", "stripped", "dynamic"], cwd=d, check=True, timeout=60)
        files["stripped"] = d / "stripped"
    for path in files.values():
        if path.read_bytes()[4:6] != b"\x02\x01":
            pytest.skip("the damage below is written for ELF64 little-endian files")
    return files


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad")


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


# ELF64 field offsets (gABI): the ELF header, a program header, a section header.
E_TYPE, E_PHOFF, E_SHOFF = 0x10, 0x20, 0x28
E_PHENTSIZE, E_PHNUM, E_SHENTSIZE, E_SHNUM, E_SHSTRNDX = 0x36, 0x38, 0x3A, 0x3C, 0x3E
P_OFFSET, P_VADDR, P_FILESZ, P_MEMSZ = 8, 16, 32, 40
SH_NAME, SH_TYPE, SH_OFFSET, SH_SIZE, SH_LINK = 0, 4, 24, 32, 40
PT_LOAD, PT_DYNAMIC = 1, 2
SHT_SYMTAB = 2
DT_STRTAB = 5
ET_REL, ET_DYN, ET_CORE = 1, 3, 4


class Elf64:
    """An ELF64 little-endian file as bytes, to damage one field at a time."""

    def __init__(self, blob: bytes):
        self.b = bytearray(blob)

    def get(self, fmt: str, offset: int) -> int:
        return struct.unpack_from("<" + fmt, self.b, offset)[0]

    def put(self, fmt: str, offset: int, value: int) -> Elf64:
        struct.pack_into("<" + fmt, self.b, offset, value)
        return self

    @property
    def size(self) -> int:
        return len(self.b)

    def phdrs(self, p_type: int) -> list[int]:
        """Offsets of the program headers of one type."""
        phoff, n, size = self.get("Q", E_PHOFF), self.get("H", E_PHNUM), self.get("H", E_PHENTSIZE)
        return [phoff + i * size for i in range(n) if self.get("I", phoff + i * size) == p_type]

    def shdr(self, index: int) -> int:
        return self.get("Q", E_SHOFF) + index * self.get("H", E_SHENTSIZE)

    def shdrs(self, sh_type: int | None = None) -> list[int]:
        """Offsets of the section headers (of one type), the null section left out."""
        offsets = [self.shdr(i) for i in range(1, self.get("H", E_SHNUM))]
        return [o for o in offsets if sh_type is None or self.get("I", o + SH_TYPE) == sh_type]

    def table_ranges(self) -> list[tuple[int, int]]:
        """[start, end) of the program header table and of the section header table."""
        ph = self.get("Q", E_PHOFF), self.get("H", E_PHNUM) * self.get("H", E_PHENTSIZE)
        sh = self.get("Q", E_SHOFF), self.get("H", E_SHNUM) * self.get("H", E_SHENTSIZE)
        return [(start, start + length) for start, length in (ph, sh) if length]


# --- paths that are not regular files ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("below-a-file", "no such file"),
        ("directory", "a directory"),
        ("/dev/null", "a device"),
        ("/dev/zero", "a device"),
        ("fifo", "a FIFO"),
        ("socket", "a socket"),
    ],
)
def test_not_a_regular_file_is_bad_file_and_never_opened(
    tmp_path, monkeypatch, request, kind, message
):
    """A FIFO with no writer would block an open(); /dev/zero would never end a read."""
    if kind == "missing":
        path = str(tmp_path / "missing")
    elif kind == "below-a-file":
        (tmp_path / "file").write_bytes(b"")
        path = str(tmp_path / "file" / "below")
    elif kind == "directory":
        path = str(tmp_path)
    elif kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    elif kind == "socket":
        monkeypatch.chdir(tmp_path)  # a relative name stays under the 108-byte sun_path limit
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind("sock")
        server.listen()
        request.addfinalizer(server.close)
        path = "sock"
    else:
        path = kind
    with recording_opens() as opened:
        result = explain_or_error(path)
    assert isinstance(result, BadFile), result
    assert message in str(result) and path in str(result)
    assert_error_or_warned(result, BadFile)
    assert path not in opened, f"{path} was opened: {opened}"


def test_the_open_recorder_sees_a_regular_file_opened(elves):
    """The control for the test above: the audit hook does see explain_elf's open()."""
    with recording_opens() as opened:
        assert isinstance(explain_or_error(str(elves["static"])), Explanation)
    assert str(elves["static"]) in opened


# --- files that are not ELF, or barely -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", NotAnELF),
        (b"just some text\nin a file\n", NotAnELF),
        (b"#!/bin/sh\necho not an ELF file\n", NotAnELF),
        (b"\x7fEL", NotAnELF),
        (b"\x7fELF", CorruptELF),
        (b"\x7fELF\x02\x01\x01" + bytes(9), CorruptELF),  # identification, no header
        (b"\x7fELF" + bytes(4096), CorruptELF),  # class 0
    ],
    ids=["empty", "text", "shell-script", "3-bytes-of-magic", "magic-only", "ident-only", "zeros"],
)
def test_not_elf_and_bare_magic(scratch, content, expected):
    path = write(scratch, "not-elf", content)
    assert_error_or_warned(explain_or_error(str(path)), expected)


# --- truncations -----------------------------------------------------------------------------


def cut_points(blob: bytes) -> list[int]:
    """0..64 byte by byte, every 97 bytes, and each side of both header tables' edges."""
    e = Elf64(blob)
    points = set(range(65)) | set(range(0, e.size, 97)) | {e.size - 1, e.size}
    for start, end in e.table_ranges():
        points |= {start - 1, start, start + 1, end - 1, end, end + 1}
    return sorted(p for p in points if 0 <= p <= e.size)


@pytest.mark.parametrize("which", ["dynamic", "static", "stripped", "object"])
def test_every_truncation_is_an_error_or_a_warned_view(elves, scratch, which):
    """gcc and ld put the section headers last, so any cut damages something."""
    if which not in elves:
        pytest.skip("no strip")
    whole = elves[which].read_bytes()
    path = scratch / f"cut-{which}"
    for length in cut_points(whole):
        path.write_bytes(whole[:length])
        result = explain_or_error(str(path))
        if length == len(whole):
            assert isinstance(result, Explanation), result
            assert bool(result.warnings) == (which == "object"), result.warnings
            continue
        expected = NotAnELF if length < 4 else CorruptELF if length < 64 else None
        try:
            assert_error_or_warned(result, expected)
        except AssertionError as err:
            raise AssertionError(f"{which} cut to {length} of {len(whole)} bytes: {err}") from None


# --- one damaged field at a time ----------------------------------------------------------


def _last_load(e: Elf64) -> int:
    return [o for o in e.phdrs(PT_LOAD) if e.get("Q", o + P_FILESZ)][-1]


def _symtab_and_strtab(e: Elf64) -> tuple[int, int]:
    symtab = e.shdrs(SHT_SYMTAB)[0]
    return symtab, e.shdr(e.get("I", symtab + SH_LINK))


def load_filesz_over_memsz(e: Elf64) -> Elf64:
    o = _last_load(e)
    return e.put("Q", o + P_MEMSZ, e.get("Q", o + P_FILESZ) - 1)


def load_filesz_past_end(e: Elf64) -> Elf64:
    o = _last_load(e)
    return e.put("Q", o + P_FILESZ, 1 << 40).put("Q", o + P_MEMSZ, 1 << 41)


def symtab_size_not_multiple(e: Elf64) -> Elf64:
    symtab, _ = _symtab_and_strtab(e)
    return e.put("Q", symtab + SH_SIZE, e.get("Q", symtab + SH_SIZE) - 5)


def symbol_names_past_strtab(e: Elf64) -> Elf64:
    symtab, strtab = _symtab_and_strtab(e)
    past = e.get("Q", strtab + SH_SIZE) + 0x100
    start, size = e.get("Q", symtab + SH_OFFSET), e.get("Q", symtab + SH_SIZE)
    for entry in range(start, start + size, 24):
        e.put("I", entry, past)  # st_name
    return e


def section_names_past_shstrtab(e: Elf64) -> Elf64:
    past = e.get("Q", e.shdr(e.get("H", E_SHSTRNDX)) + SH_SIZE) + 0x100
    for o in e.shdrs():
        e.put("I", o + SH_NAME, past)
    return e


def dynamic_strtab_unmapped(e: Elf64) -> Elf64:
    beyond = max(e.get("Q", o + P_VADDR) + e.get("Q", o + P_MEMSZ) for o in e.phdrs(PT_LOAD))
    dynamic = e.phdrs(PT_DYNAMIC)[0]
    start, size = e.get("Q", dynamic + P_OFFSET), e.get("Q", dynamic + P_FILESZ)
    for entry in range(start, start + size, 16):
        if e.get("q", entry) == DT_STRTAB:
            e.put("Q", entry + 8, beyond + 0x100000)
    return e


# (id, file, damage, expected): CorruptELF for the ELF header and program headers, a
# warning for the rest, None where either is right.
Damage = Callable[[Elf64], Elf64]
DAMAGE: list[tuple[str, str, Damage, object]] = [
    ("e_phoff-past-end", "static", lambda e: e.put("Q", E_PHOFF, e.size + 8), CorruptELF),
    ("e_shoff-past-end", "static", lambda e: e.put("Q", E_SHOFF, e.size + 8), "warning"),
    ("e_phnum-0xffff", "dynamic", lambda e: e.put("H", E_PHNUM, 0xFFFF), None),  # PN_XNUM
    ("e_phnum-0xfffe", "static", lambda e: e.put("H", E_PHNUM, 0xFFFE), CorruptELF),
    ("e_shnum-0xffff", "static", lambda e: e.put("H", E_SHNUM, 0xFFFF), "warning"),
    ("e_shnum-0xfffe", "dynamic", lambda e: e.put("H", E_SHNUM, 0xFFFE), "warning"),
    ("e_phentsize-0", "static", lambda e: e.put("H", E_PHENTSIZE, 0), CorruptELF),
    ("e_phentsize-8", "dynamic", lambda e: e.put("H", E_PHENTSIZE, 8), CorruptELF),
    ("e_shentsize-0", "static", lambda e: e.put("H", E_SHENTSIZE, 0), "warning"),
    ("e_shentsize-8", "dynamic", lambda e: e.put("H", E_SHENTSIZE, 8), "warning"),
    ("e_shstrndx-out-of-range", "static", lambda e: e.put("H", E_SHSTRNDX, 0x7FF0), "warning"),
    ("ei_class-0", "static", lambda e: e.put("B", 4, 0), CorruptELF),
    ("ei_class-3", "static", lambda e: e.put("B", 4, 3), CorruptELF),
    ("ei_data-0", "static", lambda e: e.put("B", 5, 0), CorruptELF),
    ("ei_data-3", "static", lambda e: e.put("B", 5, 3), CorruptELF),
    ("load-filesz-over-memsz", "static", load_filesz_over_memsz, "warning"),
    ("load-filesz-over-memsz-pie", "dynamic", load_filesz_over_memsz, "warning"),
    (
        "load-offset-past-end",
        "static",
        lambda e: e.put("Q", e.phdrs(PT_LOAD)[0] + P_OFFSET, e.size + 8),
        "warning",
    ),
    ("load-filesz-past-end", "dynamic", load_filesz_past_end, "warning"),
    (
        "dynamic-offset-past-end",
        "dynamic",
        lambda e: e.put("Q", e.phdrs(PT_DYNAMIC)[0] + P_OFFSET, e.size + 8),
        "warning",
    ),
    (
        "dynamic-filesz-huge",
        "dynamic",
        lambda e: e.put("Q", e.phdrs(PT_DYNAMIC)[0] + P_FILESZ, 1 << 40),
        "warning",
    ),
    ("dynamic-strtab-unmapped", "dynamic", dynamic_strtab_unmapped, "warning"),
    (
        "symtab-link-out-of-range",
        "static",
        lambda e: e.put("I", _symtab_and_strtab(e)[0] + SH_LINK, 999),
        "warning",
    ),
    (
        "symtab-link-0",
        "dynamic",
        lambda e: e.put("I", _symtab_and_strtab(e)[0] + SH_LINK, 0),
        "warning",
    ),
    ("symtab-size-not-multiple", "static", symtab_size_not_multiple, "warning"),
    (
        "strtab-offset-past-end",
        "static",
        lambda e: e.put("Q", _symtab_and_strtab(e)[1] + SH_OFFSET, e.size + 8),
        "warning",
    ),
    (
        "shstrtab-offset-past-end",
        "dynamic",
        lambda e: e.put("Q", e.shdr(e.get("H", E_SHSTRNDX)) + SH_OFFSET, e.size + 8),
        "warning",
    ),
    ("symbol-names-past-strtab", "static", symbol_names_past_strtab, "warning"),
    ("section-names-past-shstrtab", "static", section_names_past_shstrtab, "warning"),
]


@pytest.mark.parametrize(
    ("which", "damage", "expected"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE]
)
def test_damaged_field_is_an_error_or_a_warned_view(elves, scratch, which, damage, expected):
    blob = damage(Elf64(elves[which].read_bytes())).b
    path = write(scratch, "damaged", bytes(blob))
    assert_error_or_warned(explain_or_error(str(path)), expected)


# --- not programs: object files and core dumps -----------------------------------------------


@pytest.fixture(scope="module")
def core_dump(elves, scratch) -> Path | None:
    """A real core file: gdb stops the static program at its first instruction and dumps it."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return None
    core = scratch / "core"
    try:
        subprocess.run(
            [gdb, "-nx", "-batch", "-ex", "starti", "-ex", f"generate-core-file {core}"]
            + [str(elves["static"])],
            capture_output=True,
            timeout=60,
            env=dict(os.environ, DEBUGINFOD_URLS=""),
        )
    except subprocess.TimeoutExpired:
        return None
    if not core.exists() or Elf64(core.read_bytes()).get("H", E_TYPE) != ET_CORE:
        return None
    return core


@pytest.mark.parametrize("which", ["object", "patched-core", "gdb-core"])
def test_object_and_core_are_explained_as_not_programs(elves, scratch, core_dump, which):
    if which == "object":
        path, kind = elves["object"], "relocatable"
    elif which == "patched-core":
        blob = Elf64(elves["static"].read_bytes()).put("H", E_TYPE, ET_CORE).b
        path, kind = write(scratch, "patched-core", bytes(blob)), "core"
    else:
        if core_dump is None:
            pytest.skip("gdb could not dump a core here (no gdb, or no ptrace)")
        path, kind = core_dump, "core"
    exp = explain_or_error(str(path))
    assert isinstance(exp, Explanation), exp
    assert exp.facts.type == kind and not exp.facts.loadable and exp.loader is None
    assert exp.mappings == [] and exp.regions == []
    assert any("not a loadable program" in w or "not a program" in w for w in exp.warnings), (
        exp.warnings
    )


# --- random damage ------------------------------------------------------------------------------


def _mutations(size: int, tables: list[tuple[int, int]]):
    """Up to 16 (position, overwrite?, byte): most in the first 4 KiB and the header tables."""
    position = st.one_of(
        st.integers(0, 63),
        st.integers(0, min(4096, size) - 1),
        *(st.integers(start, min(end, size) - 1) for start, end in tables if start < size),
        st.integers(0, size - 1),
    )
    byte = st.one_of(st.sampled_from([0, 1, 2, 3, 0x7F, 0x80, 0xFF]), st.integers(0, 255))
    return st.lists(st.tuples(position, st.booleans(), byte), min_size=1, max_size=16)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), which=st.sampled_from(["dynamic", "stripped", "static"]))
def test_random_damage_raises_only_procmap_errors(elves, scratch, data, which):
    """Whatever 16 bytes say, explain_elf ends in a ProcmapError or an explanation that
    survives to_dict and json.dumps (and the text views): never another exception."""
    if which not in elves:
        which = "dynamic"
    blob = bytearray(elves[which].read_bytes())
    for position, overwrite, byte in data.draw(
        _mutations(len(blob), Elf64(blob).table_ranges()), label="mutations"
    ):
        blob[position] = byte if overwrite else blob[position] ^ (byte or 0x01)
    path = write(scratch, "mutant", bytes(blob))
    result = explain_or_error(str(path))
    if isinstance(result, ProcmapError):
        assert type(result) in EXIT_CODES, repr(result)


# --- the corpus of inputs that once broke the contract ---------------------------------------


def _corpus() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file()) if CORPUS.is_dir() else []


def test_corpus_files_are_small():
    files = _corpus()
    assert files, f"{CORPUS} is empty"
    assert all(p.stat().st_size < 64 * 1024 for p in files)


# Corpus files whose headers are sound: they broke explain's speed, not its contract.
SOUND = {"many-load-segments.elf"}


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_corpus_file_is_an_error_or_a_warned_view(path):
    result = explain_or_error(str(path))
    if path.name in SOUND:
        assert isinstance(result, Explanation) and not result.findings, result
    else:
        assert_error_or_warned(result)


# --- the real command ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_inputs(elves, scratch) -> dict[str, tuple[str, int]]:
    """name -> (path, the exit code `procmap explain` must end with)."""
    d = scratch / "cli"
    d.mkdir()
    os.mkfifo(d / "fifo")
    static = elves["static"].read_bytes()
    return {
        "missing": (str(d / "missing"), 10),
        "directory": (str(d), 10),
        "/dev/zero": ("/dev/zero", 10),
        "fifo": (str(d / "fifo"), 10),
        "shell-script": (str(write(d, "script.sh", b"#!/bin/sh\nexit 0\n")), 11),
        "empty": (str(write(d, "empty", b"")), 11),
        "magic-only": (str(write(d, "magic", b"\x7fELF")), 12),
        "e_phoff-past-end": (
            str(write(d, "phoff", bytes(Elf64(static).put("Q", E_PHOFF, 1 << 20).b))),
            12,
        ),
        "ei_class-3": (str(write(d, "class3", bytes(Elf64(static).put("B", 4, 3).b))), 12),
        "e_shoff-past-end": (
            str(write(d, "shoff", bytes(Elf64(static).put("Q", E_SHOFF, 1 << 20).b))),
            0,
        ),
        "object": (str(elves["object"]), 0),
        "core": (str(write(d, "core", bytes(Elf64(static).put("H", E_TYPE, ET_CORE).b))), 0),
    }


def test_cli_prints_one_line_or_a_warned_view(cli_inputs):
    runs = [
        (name, path, code, mode)
        for name, (path, code) in cli_inputs.items()
        for mode in ([], ["--json"], ["--symbols"])
    ]
    results = [run_cli("explain", *mode, path, timeout=HANG_LIMIT) for _, path, _, mode in runs]
    problems = []
    for (name, _path, code, mode), result in zip(runs, results):
        where = f"{name} {' '.join(mode)}: exit {result.returncode}, stderr {result.stderr!r}"
        lines = result.stderr.splitlines()
        if result.returncode != code or "Traceback" in result.stderr:
            problems.append(where)
        elif code:
            if len(lines) != 1 or not lines[0].startswith("procmap: ") or result.stdout:
                problems.append(where)
        elif result.stderr:
            problems.append(where)
        elif mode == ["--json"]:
            if not procmap_json(result.stdout)["warnings"]:
                problems.append(f"{name} --json: no warnings")
        elif "note: " not in result.stdout:
            problems.append(f"{name} {' '.join(mode)}: no note in the text view")
    assert not problems, "\n".join(problems)


def test_cli_debug_shows_the_traceback(cli_inputs):
    path, _ = cli_inputs["e_phoff-past-end"]
    # Not made a line and an exit code: the error goes on, to Python's traceback.
    with pytest.raises(CorruptELF):
        run_cli("explain", "--debug", path)
    plain = run_cli("explain", path)
    assert plain.returncode == 12 and "Traceback" not in plain.stderr
