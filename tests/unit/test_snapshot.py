"""procmap.snapshot: the file `--save` writes and `--from` reads, both ways.

Round trips start from real data: the ELF layouts and symbol tables of /bin/ls,
this Python, the libc and dynamic linker it runs on and the lesson's samples,
with this process's own maps and smaps; and from hypothesis's hostile bytes and
names (not UTF-8, lone surrogates), which must come back exactly in a file that
strict UTF-8 JSON readers (json, jq) take.  Damaged files (cut short, one field
wrong at each level, not JSON, not a regular file) must each give one line
naming what is wrong: never a traceback, never a hang.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procmap.elf import ElfLayout, Section, Symbol, SymbolTable, read_elf, read_symbols
from procmap.errors import BadFile, BadSnapshot, NotAnELF
from procmap.kernel.maps import parse_maps
from procmap.kernel.procfs import dev_string
from procmap.model import Facts, ProcessInfo, Snapshot
from procmap.views import snapshot as snap
from procmap.views.snapshot import FORMAT, VERSION
from tests.conftest import MODES, SAMPLE_BIN, sample_path

PAGE = os.sysconf("SC_PAGE_SIZE")


def file_key(path) -> tuple[str, int]:
    st_ = os.stat(path)
    return dev_string(st_.st_dev), st_.st_ino


def loaded(basename_prefix: str) -> str:
    """The path of a file this process has mapped whose name starts with the prefix."""
    maps = parse_maps(Path("/proc/self/maps").read_bytes())
    paths = {
        m.path for m in maps if m.path and os.path.basename(m.path).startswith(basename_prefix)
    }
    assert len(paths) == 1, f"expected one mapped {basename_prefix}*, found {sorted(paths)}"
    return paths.pop()


def real_binaries() -> list[str]:
    paths = ["/bin/ls", os.path.realpath(sys.executable), loaded("libc.so"), loaded("ld-linux")]
    samples = [str(sample_path(m)) for m in MODES] + [str(SAMPLE_BIN / "libaligned.so")]
    for path in samples:
        assert os.path.exists(path), f"{path}: not built (the session fixture builds the samples)"
    return paths + samples


def page_pattern(pages: int) -> str:
    return ("rrs." * pages)[:pages]


def assert_same(a: Snapshot, b: Snapshot) -> None:
    """Every field of two snapshots equal, and of the same types."""
    for name in (
        "maps",
        "smaps",
        "page_states",
        "warnings",
        "kernel",
        "machine",
        "hostname",
        "saved_at",
        "procmap_version",
        "source",
    ):
        assert getattr(a, name) == getattr(b, name), name
    for name in ProcessInfo.__slots__:
        assert getattr(a.info, name) == getattr(b.info, name), f"info.{name}"
    for name in Facts.__slots__:
        assert getattr(a.facts, name) == getattr(b.facts, name), f"facts.{name}"
    assert type(b.facts.unknown_threads) is tuple
    assert list(a.layouts) == list(b.layouts)  # the order too
    for key, layout in a.layouts.items():
        assert b.layouts[key] == layout, key
        if layout is not None:  # what the constructor derives comes back too
            assert b.layouts[key].loads == layout.loads
            assert b.layouts[key].relro == layout.relro
            assert all(type(s) is Section for s in b.layouts[key].sections)
    assert list(a.symbols) == list(b.symbols)
    for key, table in a.symbols.items():
        assert b.symbols[key].symbols == table.symbols, key
        assert b.symbols[key].source == table.source, key
        assert all(type(s) is Symbol for s in b.symbols[key].symbols)


def round_trip(s: Snapshot, path: Path) -> Snapshot:
    snap.write(s, str(path))
    return snap.read(str(path))


def strict_json(path: Path):
    """The file as a strict UTF-8 JSON reader sees it (no lone surrogates, no NaN)."""
    with open(path, encoding="utf-8", errors="strict") as f:
        text = f.read()

    def refuse(name):
        raise AssertionError(f"{name} in the file")

    return json.loads(text, parse_constant=refuse)


# --- real data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Snapshot:
    layouts: dict = {}
    symbols: dict = {}
    for path in real_binaries():
        layout = read_elf(path)
        layouts[file_key(path)] = layout
        symbols[file_key(path)] = read_symbols(path, layout)
    with pytest.raises(NotAnELF):
        read_elf(__file__)
    layouts[file_key(__file__)] = None  # a mapped file that is not ELF
    maps = Path("/proc/self/maps").read_bytes()
    smaps = Path("/proc/self/smaps").read_bytes()
    mappings = parse_maps(maps)
    stack = next(m for m in mappings if m.path == "[stack]")
    raw_cmdline = Path("/proc/self/cmdline").read_bytes()
    info = ProcessInfo(
        pid=os.getpid(),
        name=Path("/proc/self/comm").read_bytes().strip().decode("utf-8", "surrogateescape"),
        cmdline=[a.decode("utf-8", "surrogateescape") for a in raw_cmdline.split(b"\0")[:-1]],
        user=pwd.getpwuid(os.getuid()).pw_name,
        uid=os.getuid(),
        threads=threading.active_count(),
        state="R",
    )
    facts = Facts(
        page_size=PAGE,
        pointer_size=8,
        exe_key=file_key(sys.executable),
        interp_key=file_key(loaded("ld-linux")),
        thread_sps={
            os.getpid(): stack.end - 0x2A8,
            threading.get_native_id() + 1: 0x7F00_0000_1230,
        },
        unknown_threads=(4242, 4243),
        thread_stack_size=8 << 20,
    )
    uname = os.uname()
    return Snapshot(
        maps=maps,
        smaps=smaps,
        page_states={m.start: page_pattern(m.size // PAGE) for m in mappings[:3] + [stack]},
        info=info,
        facts=facts,
        layouts=layouts,
        symbols=symbols,
        warnings=["thread stacks found by shape: /proc/1/task/*/syscall is not readable"],
        kernel=uname.release,
        machine=uname.machine,
        hostname=uname.nodename,
        saved_at=1_717_171_717.125,
        procmap_version="0.1.0",
    )


def test_real_snapshot_round_trips(real, tmp_path):
    assert any(t.source == ".symtab" and len(t.symbols) > 10 for t in real.symbols.values())
    assert any(t.source == ".dynsym" for t in real.symbols.values())
    assert_same(real, round_trip(real, tmp_path / "real.json"))


def test_real_snapshot_file_has_the_documented_shape(real, tmp_path):
    path = tmp_path / "real.json"
    snap.write(real, str(path))
    data = path.read_bytes()
    assert data.count(b"\n") == 1 and data.endswith(b"}\n")  # compact: one line
    d = strict_json(path)
    assert list(d) == list(snap._TOP)
    assert d["format"] == FORMAT and d["version"] == VERSION
    assert d["facts"]["page_size"] == PAGE
    assert d["maps"] == real.maps.decode()  # UTF-8 text is stored as text
    stack = next(m for m in parse_maps(real.maps) if m.path == "[stack]")
    assert d["page_states"][f"0x{stack.start:x}"] == real.page_states[stack.start]
    ls = next(f for f in d["files"] if [f["dev"], f["inode"]] == list(file_key("/bin/ls")))
    assert len(ls["layout"]["segments"][0]) == 7 and len(ls["layout"]["sections"][0]) == 7
    assert ls["symbols"]["source"] in (".symtab", ".dynsym")
    assert snap.to_dict(real) == d


def test_jq_reads_the_file(real, tmp_path):
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    path = tmp_path / "real.json"
    snap.write(real, str(path))
    out = subprocess.run(
        ["jq", "-r", ".format, .process.pid, (.files | length)", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == [FORMAT, str(os.getpid()), str(len(real.layouts))]


# --- hostile bytes and names ------------------------------------------------------------


@functools.cache
def pie() -> tuple[ElfLayout, SymbolTable]:
    layout = read_elf(sample_path("pie"))
    return layout, read_symbols(sample_path("pie"), layout)


def small(**changes) -> Snapshot:
    """A small valid snapshot: two mappings, one ELF file with symbols, one not ELF."""
    layout, table = pie()
    fields = dict(
        maps=(
            b"55d4c0de0000-55d4c0de2000 r--p 00000000 fe:01 1319                       /usr/bin/cat\n"
            b"7ffd1c2a0000-7ffd1c2c1000 rw-p 00000000 00:00 0                          [stack]\n"
        ),
        smaps=None,
        page_states={0x7FFD1C2A0000: page_pattern(0x21000 // PAGE)},
        info=ProcessInfo(1319, "cat", ["cat", "-"], "ada", 1000, 1, "S"),
        facts=Facts(PAGE, 8, ("fe:01", 1319), None, {1319: 0x7FFD1C2BF000}, (), 8 << 20),
        layouts={("fe:01", 1319): layout, ("fe:01", 77): None},
        symbols={("fe:01", 1319): SymbolTable.build(table.symbols[:5], table.source)},
        warnings=[],
        kernel="6.18.0",
        machine="x86_64",
        hostname="box",
        saved_at=1_717_171_717.0,
        procmap_version="0.1.0",
    )
    fields.update(changes)
    return Snapshot(**fields)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hypothesis") / "snapshot.json"


line_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
# Names as procmap makes them (bytes decoded with surrogateescape), and any text at all.
names = st.one_of(
    line_bytes.map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20),
)


@given(st.binary())
def test_any_bytes_survive_the_bytes_encoding(data):
    encoded = json.loads(json.dumps(snap._bytes(data), ensure_ascii=False))
    assert snap._read_bytes(encoded, "maps") == data


@given(names)
def test_any_text_survives_the_text_encoding(text):
    encoded = snap._text(text)
    json.dumps(encoded, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate
    assert snap._read_text(encoded, "name") == text


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(line_bytes, min_size=1, max_size=6), values=st.lists(line_bytes, max_size=6))
def test_maps_and_smaps_with_any_bytes_round_trip(scratch, paths, values):
    maps = b"".join(
        b"%x-%x r--p 00000000 fe:01 %d    " % (0x10000 * (i + 1), 0x10000 * (i + 1) + PAGE, i)
        + path
        + b"\n"
        for i, path in enumerate(paths)
    )
    lines = maps.split(b"\n")[:-1]
    smaps = b"".join(
        line + b"\nRss:  4 kB\n" + b"".join(b"VmFlags: " + v + b"\n" for v in values)
        for line in lines
    )
    s = small(maps=maps, smaps=smaps, page_states={})
    assert_same(s, round_trip(s, scratch))
    strict_json(scratch)


@settings(max_examples=60, deadline=None)
@given(
    name=names,
    cmdline=st.lists(names, max_size=4),
    other=names,
    warnings=st.lists(names, max_size=3),
)
def test_any_names_round_trip_in_strict_json(scratch, name, cmdline, other, warnings):
    layout = pie()[0]
    sections = list(layout.sections)
    sections[0] = sections[0]._replace(name=name)
    odd = ElfLayout.build(
        elf_class=layout.elf_class,
        endian=layout.endian,
        machine=layout.machine,
        type=layout.type,
        entry=layout.entry,
        segments=layout.segments,
        sections=sections,
        interpreter=other,
        build_id=layout.build_id,
        file_size=layout.file_size,
    )
    s = small(
        info=ProcessInfo(7, name, cmdline, other, 0, 1, other),
        layouts={("fe:01", 1319): odd},
        symbols={("fe:01", 1319): SymbolTable.build([Symbol(name, 0x1000, 8, 2)], ".symtab")},
        warnings=warnings,
        kernel=other,
        machine=name,
        hostname=other,
        procmap_version=name,
    )
    assert_same(s, round_trip(s, scratch))
    strict_json(scratch)


def test_non_utf8_names_are_stored_as_their_bytes(tmp_path):
    s = small(info=ProcessInfo(7, "caf\udce9", ["./caf\udce9"], "ada", 0, 1, "S"))
    path = tmp_path / "s.json"
    snap.write(s, str(path))
    process = strict_json(path)["process"]
    assert process["name"] == {"base64": base64.b64encode(b"caf\xe9").decode()}
    assert process["cmdline"] == [{"base64": base64.b64encode(b"./caf\xe9").decode()}]


# --- damaged snapshots ----------------------------------------------------------------

DELETE = object()


def first_load(d):
    segments = d["files"][0]["layout"]["segments"]
    return next(i for i, s in enumerate(segments) if s[0] == 1)


def stack_hex(d):
    return next(iter(d["page_states"]))


# (where, new value or a function of the whole dict, what the message must say)
MUTATIONS = [
    (("format",), "procmap-snap", "format: 'procmap-snap', not 'procmap-snapshot'"),
    (("format",), DELETE, "no 'format' key"),
    (("version",), 0, "version: expected an integer from 1, not 0"),
    (("version",), "1", "version: expected an integer"),
    (("version",), True, "version: expected an integer"),
    (("version",), 1.0, "version: expected an integer"),
    (("version",), DELETE, "version: expected an integer"),
    (("extra",), 1, "unexpected key 'extra'"),
    (("maps",), DELETE, "the key 'maps' is missing"),
    (("procmap",), 1, "procmap: expected a string"),
    (("saved_at",), "now", "saved_at: expected a unix time"),
    (("saved_at",), True, "saved_at: expected a unix time"),
    (("saved_at",), -1, "saved_at: expected a unix time"),
    (("saved_at",), 1e400, "Infinity is not a JSON number"),
    (("saved_at",), 10**400, "saved_at: expected a unix time, not an integer of 1329 bits"),
    (("kernel",), None, "kernel: expected a string"),
    (("hostname",), {"base64": "!!"}, "hostname.base64: not base64"),
    (("machine",), {"base64": "AA==", "x": 1}, "machine: expected a string"),
    (("process",), [], "process: expected an object"),
    (("process", "pid"), "12", "process.pid: expected an integer"),
    (("process", "pid"), -5, "process.pid: -5 is out of range"),
    (("process", "uid"), -2, "process.uid: -2 is out of range"),
    (("process", "threads"), 1.5, "process.threads: expected an integer"),
    (("process", "cmdline"), "cat -", "process.cmdline: expected an array"),
    (("process", "cmdline", 0), 7, "process.cmdline[0]: expected a string"),
    (("process", "name"), {"codepoints": [0x110000]}, "process.name.codepoints"),
    (("process", "state"), DELETE, "process: the key 'state' is missing"),
    (("facts",), None, "facts: expected an object"),
    (("facts", "page_size"), 4095, "facts.page_size: 4095 is not a power of two"),
    (("facts", "page_size"), 0, "facts.page_size: 0 is out of range"),
    (("facts", "pointer_size"), 16, "facts.pointer_size"),
    (("facts", "pointer_size"), 6, "facts.pointer_size: expected 4 or 8"),
    (("facts", "exe_key"), ["fe:01"], "facts.exe_key: expected [dev, inode]"),
    (("facts", "exe_key"), ["FE01", 5], "facts.exe_key[0]: expected a device"),
    (("facts", "interp_key"), ["fe:01", -1], "facts.interp_key[1]: -1 is out of range"),
    (("facts", "program_key"), ["FE01", 5], "facts.program_key[0]: expected a device"),
    (("facts", "program_key"), ["fe:01", 5], "facts.program_from: expected one of auxv,"),
    (("facts", "program_from"), "guess", "facts.program_from: expected one of auxv,"),
    (("facts", "program_from"), DELETE, "facts: the key 'program_from' is missing"),
    (("facts", "thread_sps"), {"1": 2}, "facts.thread_sps: expected an array"),
    (("facts", "thread_sps", 0), [1], "facts.thread_sps[0]: expected 2 integers"),
    (("facts", "thread_sps", 0, 1), "0x10000000000000000", "facts.thread_sps[0][1]: expected an"),
    (("facts", "thread_sps", 0, 1), 4096, "facts.thread_sps[0][1]: expected an address"),
    (("facts", "thread_sps", 1), lambda d: d["facts"]["thread_sps"][0], "appears twice"),
    (("facts", "unknown_threads"), None, "facts.unknown_threads: expected an array"),
    (("facts", "unknown_threads", 0), "x", "facts.unknown_threads[0]: expected an integer"),
    (("facts", "thread_stack_size"), -1, "facts.thread_stack_size: -1 is out of range"),
    (("maps",), 5, "maps: expected a string"),
    (("maps",), "hello\n", "maps: line 1 is not in /proc/PID/maps format"),
    (("maps",), "", "maps: no mappings"),
    (("maps",), {"base64": "@@"}, "maps.base64: not base64"),
    (("maps",), {"codepoints": [65]}, 'maps: expected a string or {"base64"'),
    (("maps",), "\udcff", "maps: a lone surrogate"),
    (("smaps",), "Rss:  4 kB\n", "smaps: line 1 comes before any mapping line"),
    (("smaps",), 7, "smaps: expected a string"),
    (("page_states",), [], "page_states: expected an object"),
    (("page_states", "zz"), "r", "page_states['zz']: expected a mapping's start"),
    (("page_states", "10000000000000000"), "r", "page_states['10000000000000000']"),
    (("page_states", "1000"), "r", "page_states['1000']: expected a mapping's start address"),
    (("page_states", "0x1000"), "r", "page_states['0x1000']: no mapping starts there"),
    (("page_states", stack_hex), "r", "1 page states for a mapping of 135168 bytes"),
    (("page_states", stack_hex), lambda d: "x" * (0x21000 // PAGE), "'r', 's' or '.' only"),
    (("page_states", stack_hex), 5, "expected a string, not an integer"),
    (("files",), {}, "files: expected an array"),
    (("files", 0), [], "files[0]: expected an object"),
    (("files", 0, "dev"), 5, "files[0].dev: expected a device"),
    (("files", 0, "inode"), -1, "files[0].inode: -1 is out of range"),
    (("files", 0, "inode"), 1 << 64, "files[0].inode: 18446744073709551616 is out of range"),
    (("files", 0, "inode"), 10**200, "files[0].inode: an integer of 665 bits"),
    (("files", 0, "layout"), "ELF", "files[0].layout: expected an object"),
    (("files", 0, "layout", "elf_class"), 48, "files[0].layout.elf_class: expected 32 or 64"),
    (("files", 0, "layout", "elf_class"), 64.0, "files[0].layout.elf_class: expected 32 or 64"),
    (("files", 0, "layout", "endian"), "middle", "files[0].layout.endian"),
    (("files", 0, "layout", "machine"), 1 << 16, "files[0].layout.machine: 65536"),
    (("files", 0, "layout", "entry"), None, "files[0].layout.entry: expected an address"),
    (("files", 0, "layout", "entry"), 4096, "files[0].layout.entry: expected an address"),
    (("files", 0, "layout", "segments"), None, "files[0].layout.segments: expected an array"),
    (
        ("files", 0, "layout", "segments", 0),
        [1, 2],
        "files[0].layout.segments[0]: expected 7 integers",
    ),
    (
        ("files", 0, "layout", "segments", 0, 3),
        True,
        "files[0].layout.segments[0][3]: expected an address",
    ),
    (
        ("files", 0, "layout", "segments", 0, 4),
        True,
        "files[0].layout.segments[0]: expected 7 integers",
    ),
    (
        ("files", 0, "layout", "segments", 0, 0),
        1 << 32,
        "files[0].layout.segments[0][0]: 4294967296",
    ),
    (("files", 0, "layout", "file_size"), 1, "a LOAD segment reaches past the end of the file"),
    (
        ("files", 0, "layout", "segments", first_load),
        lambda d: [1, 4, "0x0", "0x0", 0x20, 0x10, 0x1000],
        "a LOAD segment smaller in memory than in the file",
    ),
    (
        ("files", 0, "layout", "sections", 0),
        [1, 2, 3, "0x4", "0x5", 6, 7],
        "files[0].layout.sections[0][0]: expected a string",
    ),
    (
        ("files", 0, "layout", "sections", 0, 6),
        -1,
        "files[0].layout.sections[0][6]: -1 is out of range",
    ),
    (
        ("files", 0, "layout", "sections", 0),
        ["x"],
        "files[0].layout.sections[0]: expected a name and 6 integers",
    ),
    (("files", 0, "layout", "interpreter"), 5, "files[0].layout.interpreter: expected a string"),
    (("files", 0, "layout", "build_id"), "xyz", "files[0].layout.build_id: expected hex digits"),
    (("files", 0, "layout", "color"), "red", "files[0].layout: unexpected key 'color'"),
    (
        ("files", 0, "layout", "file_size"),
        DELETE,
        "files[0].layout: the key 'file_size' is missing",
    ),
    (("files", 0, "symbols"), [], "files[0].symbols: expected an object"),
    (("files", 0, "symbols", "source"), ".strtab", "files[0].symbols.source"),
    (("files", 0, "symbols", "source"), None, "files[0].symbols.symbols: symbols without a source"),
    (("files", 0, "symbols", "symbols"), None, "files[0].symbols.symbols: expected an array"),
    (
        ("files", 0, "symbols", "symbols", 0),
        ["main", 1, 2],
        "files[0].symbols.symbols[0]: expected [name, value, size, type]",
    ),
    (
        ("files", 0, "symbols", "symbols", 0, 0),
        5,
        "files[0].symbols.symbols[0][0]: expected a string",
    ),
    (
        ("files", 0, "symbols", "symbols", 0, 3),
        16,
        "files[0].symbols.symbols[0][3]: 16 is out of range",
    ),
    (
        ("files", 0, "symbols", "symbols", 0, 1),
        1.0,
        "files[0].symbols.symbols[0][1]: expected an address",
    ),
    (
        ("files", 0, "symbols", "symbols", 0, 2),
        1.0,
        "files[0].symbols.symbols[0]: expected a name and 3 integers",
    ),
    (("files", 1), lambda d: d["files"][0], "files[1]: the file fe:01 1319 appears twice"),
    (
        ("files", 1, "symbols"),
        lambda d: d["files"][0]["symbols"],
        "files[1].symbols: symbols for a file that is not ELF",
    ),
    (("warnings",), "oops", "warnings: expected an array"),
    (("warnings",), [None], "warnings[0]: expected a string"),
]


def mutate(root: dict, where: tuple, value) -> None:
    """Set (or delete, or append) the value at `where`; a function there is given `root`."""
    *parents, last = (key(root) if callable(key) else key for key in where)
    if callable(value):
        value = value(root)
    d = root
    for key in parents:
        d = d[key]
    if value is DELETE:
        del d[last]
    elif isinstance(d, list) and last == len(d):
        d.append(value)
    else:
        d[last] = value


def test_mutations_start_from_a_valid_snapshot():
    d = snap.to_dict(small())
    assert_same(small(), snap.from_dict(copy.deepcopy(d), "x"))
    assert d["files"][1]["layout"] is None and d["facts"]["thread_sps"]


def read_error(path: Path, cls=BadSnapshot) -> str:
    with pytest.raises(cls) as info:
        snap.read(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def mutation_id(where: tuple) -> str:
    return ".".join(getattr(key, "__name__", str(key)) for key in where)


@pytest.mark.parametrize(
    "where,value,expected", MUTATIONS, ids=[mutation_id(m[0]) for m in MUTATIONS]
)
def test_a_damaged_field_is_named(tmp_path, where, value, expected):
    d = snap.to_dict(small())
    mutate(d, where, value)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(d))  # ensure_ascii: a lone surrogate goes in as \udcff
    message = read_error(path)
    assert message.startswith(f"{path}: damaged snapshot: "), message
    assert expected in message, message


def paths_in(d, where=()):
    """Where each value of the JSON shape is: every key, the first few items of each array."""
    yield where
    items = d.items() if isinstance(d, dict) else enumerate(d[:3]) if isinstance(d, list) else ()
    for key, value in items:
        yield from paths_in(value, (*where, key))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_damage_is_bad_snapshot_from_a_check(data):
    d = snap.to_dict(small())
    paths = [p for p in paths_in(d) if p]
    for where in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        try:
            mutate(d, where, data.draw(json_values))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change took the path away
    try:
        snap.from_dict(d, "fuzzed")
    except BadSnapshot as err:
        # Named by a check, not by the net that catches what the checks missed.
        assert not re.search(r"damaged snapshot: \w+Error: ", str(err)), err


@pytest.mark.parametrize("cut", [1, 2, 20, 0.25, 0.5, 0.75, -3, -1])
def test_a_snapshot_cut_short_is_damaged(tmp_path, cut):
    data = snap.dumps(small()).rstrip()
    at = cut if isinstance(cut, int) else int(len(data) * cut)
    path = tmp_path / "cut.json"
    path.write_bytes(data[:at])
    message = read_error(path)
    assert message.startswith(f"{path}: damaged snapshot: not JSON: "), message
    assert "cut short" in message, message


@pytest.mark.parametrize(
    "text,expected",
    [
        (b'{"format":"procmap-snapshot","version":1,"saved_at":NaN}', "NaN is not a JSON number"),
        (b'{"format":"procmap-snapshot","format":"procmap-snapshot"}', "the key 'format' twice"),
        (
            b'{"format":"procmap-snapshot","version":1,"x":'
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            "nested too deeply",
        ),
        (b'{"format":"caf\xe9"}', "not UTF-8 (byte 14)"),
        (b'{"format":"procmap-snapshot","version":1' + b"0" * 5000 + b"}", "digits"),
        (b'{"format":"procmap-snapshot","version":1}{}', "not JSON: extra data"),
        (b'  \n {"format":"procmap-snapshot","version":1}', "the key 'procmap' is missing"),
        (
            b'{"format":"procmap-snapshot","version":1,"maps":"a\nb"}',
            "not JSON: invalid control character",
        ),
    ],
    ids=[
        "nan",
        "duplicate-key",
        "deep",
        "not-utf8",
        "huge-int",
        "extra-data",
        "leading-space",
        "raw-newline",
    ],
)
def test_text_that_is_not_a_snapshot_is_damaged(tmp_path, text, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(text)
    message = read_error(path)
    assert message.startswith(f"{path}: damaged snapshot: "), message
    assert expected in message, message


def test_a_newer_version_says_so_whatever_else_it_holds(tmp_path):
    path = tmp_path / "v3.json"
    path.write_text(
        json.dumps({"format": FORMAT, "version": VERSION + 1, "everything": "else new"})
    )
    assert read_error(path) == (
        f"{path}: a snapshot of format version {VERSION + 1}, newer than this procmap reads "
        f"({VERSION}); "
        "a newer procmap reads it"
    )


def test_from_dict_takes_what_read_would_refuse_only_as_bad_snapshot():
    for data in (None, [], "x", {"format": FORMAT, "version": 1}):
        with pytest.raises(BadSnapshot):
            snap.from_dict(data, "given")


# --- not a regular file -------------------------------------------------------------------


@contextmanager
def no_hang(seconds: int = 5):
    def timeout(signum, frame):
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_directory_a_fifo_a_device_and_a_missing_file_are_bad_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {
        tmp_path: "a directory, not a regular file",
        fifo: "a FIFO, not a regular file",
        Path("/dev/null"): "a device, not a regular file",
        tmp_path / "missing.json": "no such file",
    }
    with no_hang():
        for path, what in cases.items():
            assert read_error(path, BadFile) == f"{path}: {what}"


def test_a_file_over_2_gib_is_refused_unread(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(snap.MAX_SIZE + 1)  # sparse: nothing is written
    assert read_error(path) == f"{path}: larger than a snapshot can be (2 GiB)"


# --- plain maps and smaps texts ---------------------------------------------------------


def test_a_plain_maps_text(tmp_path):
    data = Path("/proc/self/maps").read_bytes()
    path = tmp_path / "cat.maps"
    path.write_bytes(data)
    s = snap.read(str(path))
    assert (s.source, s.maps, s.smaps) == ("maps", data, None)
    assert (s.info.pid, s.info.name, s.info.uid, s.info.state) == (0, "cat.maps", -1, "?")
    pointer_size = 8 if parse_maps(data)[-1].end > 1 << 32 else 4
    assert (s.facts.page_size, s.facts.pointer_size) == (PAGE, pointer_size)
    assert s.facts.thread_sps == {} and s.layouts == {} and s.symbols == {}
    assert s.saved_at == os.stat(path).st_mtime
    assert s.warnings == [
        "cat.maps: a plain maps text, without ELF headers or thread stack pointers: "
        "regions are classified by names and permissions alone"
    ]


def test_a_plain_smaps_text(tmp_path):
    data = Path("/proc/self/smaps").read_bytes()
    path = tmp_path / "smaps"
    path.write_bytes(data)
    s = snap.read(str(path))
    headers = [line for line in data.splitlines() if b"-" in line.split(b" ", 1)[0]]
    assert (s.source, s.smaps) == ("smaps", data)
    assert s.maps == b"".join(line + b"\n" for line in headers)
    assert len(parse_maps(s.maps)) == data.count(b"\nVmFlags:")
    assert "a plain smaps text" in s.warnings[0]


def test_proc_maps_itself_is_read_to_its_end():
    # /proc files are regular files of size 0: read to the end, not to st_size.
    s = snap.read("/proc/self/maps")
    assert s.source == "maps" and len(parse_maps(s.maps)) > 10


def test_a_32_bit_maps_text_has_4_byte_pointers(tmp_path):
    path = tmp_path / "maps"
    path.write_bytes(
        b"08048000-08049000 r-xp 00000000 08:01 12 /bin/a\nffffe000-fffff000 r-xp 00000000 00:00 0 [vdso]\n"
    )
    assert snap.read(str(path)).facts.pointer_size == 4


@pytest.mark.parametrize(
    "text,expected",
    [
        (b"", "an empty file, neither a procmap snapshot nor a maps text"),
        (b" \n\t\n", "an empty file, neither a procmap snapshot nor a maps text"),
        (
            b"hello world\n",
            "neither a procmap snapshot nor a maps text: line 1 is not in /proc/PID/maps format: 'hello world'",
        ),
        (
            b"[1, 2]",
            "neither a procmap snapshot nor a maps text: line 1 is not in /proc/PID/maps format: '[1, 2]'",
        ),
        (
            b"Rss:  4 kB\n",
            "neither a procmap snapshot nor a maps text: line 1 comes before any mapping line: 'Rss:  4 kB'",
        ),
        (
            b"10000-11000 r--p 00000000 fe:01 5 /a\nRss:  4 kB\nthis is not smaps\nVmFlags: rd\n",
            "neither a procmap snapshot nor a maps text: line 3 is neither a mapping in /proc/PID/maps format nor a 'Name: value' line of smaps: 'this is not smaps'",
        ),
    ],
    ids=["empty", "blank", "garbage", "json-array", "smaps-without-mapping", "smaps-garbage-line"],
)
def test_text_that_is_neither_snapshot_nor_maps(tmp_path, text, expected):
    path = tmp_path / "text"
    path.write_bytes(text)
    assert read_error(path) == f"{path}: {expected}"


def test_an_elf_file_is_neither(tmp_path):
    message = read_error(Path("/bin/ls"))
    assert message.startswith("/bin/ls: neither a procmap snapshot nor a maps text: line 1 ")


# --- writing ------------------------------------------------------------------------------


def test_write_replaces_a_file_atomically_and_a_new_one_is_private(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("")
    snap.write(small(), str(path))
    assert os.listdir(tmp_path) == ["s.json"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    new = tmp_path / "new.json"
    snap.write(small(), str(new))
    assert os.stat(new).st_mode & 0o777 == 0o600 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    snap.write(small(), str(path))
    old = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BadFile) as info:
        snap.write(small(), str(path))
    assert str(info.value) == f"{path}: cannot write: No space left on device"
    assert os.listdir(tmp_path) == ["s.json"] and path.read_bytes() == old


def test_write_through_a_symlink_replaces_its_target(tmp_path):
    target = tmp_path / "target.json"
    snap.write(small()._replace(info=small().info._replace(name="old")), str(target))
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert snap.write(small(), str(link)) == str(target)
    assert link.is_symlink() and snap.read(str(target)).info.name == "cat"


def test_write_errors_are_one_line_naming_the_path(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {
        tmp_path / "no" / "s.json": f"cannot write: no such directory: {tmp_path / 'no'}",
        tmp_path: "a directory, not a regular file: not replaced",
        fifo: "a FIFO, not a regular file: not replaced",
        Path("/dev/null"): "a device, not a regular file: not replaced",
        Path("/sys/snapshot.json"): "cannot write: permission denied (in /sys)",  # even root
    }
    with no_hang():
        for path, what in cases.items():
            with pytest.raises(BadFile) as info:
                snap.write(small(), str(path))
            assert str(info.value) == f"{path}: {what}"
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()
    assert sorted(os.listdir(tmp_path)) == ["fifo"]


def test_symbols_without_a_layout_are_a_bug_not_a_file():
    table = SymbolTable.build([Symbol("main", 0x1000, 8, 2)], ".symtab")
    with pytest.raises(ValueError, match="symbols for"):
        snap.to_dict(small(symbols={("fe:01", 77): table}))
    with pytest.raises(ValueError, match="no layout"):
        snap.to_dict(small(symbols={("fe:01", 5): table}))


def test_the_docstring_names_every_key():
    doc = snap.__doc__
    for key in snap._TOP + snap._PROCESS + snap._FACTS + snap._FILE + snap._LAYOUT + snap._SYMBOLS:
        assert re.search(rf'"{key}"', doc), key


# --- format version 1 ----------------------------------------------------------------------

V1 = Path(__file__).resolve().parents[1] / "data" / "snapshots" / "lesson-pie-v1.json"


def test_a_version_1_snapshot_still_loads_and_answers_where():
    """Saved by procmap 0.1 (format 1, addresses as JSON numbers) from lesson-pie."""
    assert json.loads(V1.read_bytes())["version"] == 1
    saved = snap.read(V1)
    assert saved.rollup is None and saved.smaps is not None
    variables = {}
    for line in V1.with_suffix(".variables").read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] != "thread_tid":
            variables[fields[0]] = (int(fields[1], 16), fields[2])
    found = snap.where_saved(saved, [a for a, _ in variables.values()])
    assert [loc.kind for loc in found] == [kind for _, kind in variables.values()]
    pmap = snap.replay(saved, rss=True)
    # No smaps_rollup in a version-1 file: the totals are the regions' sum, and say so.
    assert pmap.rollup is None and pmap.summary()["total"]["figures_from"] == "sum"


# --- the program started by the dynamic linker run as a command (format 3) ---------------


def test_the_program_of_a_loader_run_process_round_trips(real, tmp_path):
    """`ld.so PROGRAM`: exe and interp_key are ld.so, program_key the program."""
    ld_so, program = file_key(loaded("ld-linux")), file_key(str(sample_path("pie")))
    facts = real.facts._replace(
        exe_key=ld_so, interp_key=ld_so, program_key=program, program_from="link-map"
    )
    saved = real._replace(facts=facts)
    again = round_trip(saved, tmp_path / "loader.json")
    assert again.facts == facts
    d = strict_json(tmp_path / "loader.json")
    assert d["facts"]["program_key"] == list(program)
    assert d["facts"]["program_from"] == "link-map"
    assert strict_json_of(real, tmp_path)["facts"]["program_key"] is None


def strict_json_of(s: Snapshot, tmp_path: Path):
    path = tmp_path / "plain.json"
    snap.write(s, str(path))
    return strict_json(path)


def test_a_version_2_snapshot_still_loads_and_has_no_program_key(real, tmp_path):
    d = snap.to_dict(real)
    d["version"] = 2
    del d["facts"]["program_key"], d["facts"]["program_from"], d["threads"], d["sharing"]
    del d["facts"]["runtimes"], d["facts"]["heap_ranges"]
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(d))
    again = snap.read(str(path))
    assert again.facts == real.facts._replace(runtimes=None) and again.facts.program_key is None
    # A version-2 file never has the keys version 3 added.
    d["facts"]["program_key"] = None
    path.write_text(json.dumps(d))
    with pytest.raises(BadSnapshot, match="facts: unexpected key 'program_key'"):
        snap.read(str(path))


def test_a_version_1_snapshot_saved_again_is_the_current_version_and_the_same(tmp_path):
    saved = snap.read(V1)
    again = tmp_path / "again.json"
    snap.write(saved, again)
    data = json.loads(again.read_bytes())
    assert data["version"] == snap.VERSION == 5
    assert data["facts"]["thread_sps"][0][1].startswith("0x")
    assert snap.read(again) == saved


# --- allocators and runtimes (format 5) ----------------------------------------------------


def test_runtimes_and_heap_ranges_round_trip(real, tmp_path):
    """What was found of allocators, and what a runtime reported, are kept exactly."""
    from procmap.model import Detail, HeapRange, Runtime

    facts = real.facts._replace(
        runtimes=(
            Runtime("glibc", "/usr/lib/x86_64-linux-gnu/libc.so.6", False, "name"),
            Runtime("jemalloc", "/opt/x/\udcff-redis", True, "symbols"),
        ),
        heap_ranges=(
            HeapRange(0xC0000000, 0x100000000, "heap", Detail.JAVA_HEAP, "jvm"),
            HeapRange(
                0xF0000000,
                0x100000000,
                "heap",
                Detail.JAVA_HEAP,
                "jvm",
                True,
                Detail.JAVA_HEAP_RESERVE,
            ),
        ),
    )
    again = round_trip(real._replace(facts=facts), tmp_path / "runtimes.json")
    assert again.facts == facts
    assert round_trip(real, tmp_path / "plain.json").facts == real.facts


def test_a_version_4_snapshot_loads_without_runtimes(real, tmp_path):
    d = snap.to_dict(real)
    d["version"] = 4
    del d["facts"]["runtimes"], d["facts"]["heap_ranges"]
    path = tmp_path / "v4.json"
    path.write_text(json.dumps(d))
    again = snap.read(str(path))
    assert again.facts.runtimes is None and again.facts.heap_ranges == ()


@pytest.mark.parametrize(
    "where, value, words",
    [
        (
            "runtimes",
            [{"name": "ptmalloc9", "object": "x", "malloc": True, "found_by": "name"}],
            "facts.runtimes[0].name: expected one of glibc",
        ),
        (
            "runtimes",
            [{"name": "go", "object": "x", "malloc": 1, "found_by": "name"}],
            "facts.runtimes[0].malloc",
        ),
        (
            "heap_ranges",
            [["0x2000", "0x1000", "heap", "java-heap", "jvm", False, None]],
            "is empty",
        ),
        (
            "heap_ranges",
            [["0x1000", "0x2000", "heap", "java-heap", "dlmalloc", False, None]],
            "expected an allocator's key",
        ),
        (
            "heap_ranges",
            [["0x1000", "0x2000", "heap", "no-such-detail", "jvm", False, None]],
            "expected a detail's key",
        ),
        (
            "heap_ranges",
            [["0x1000", "0x2000", "heap", "java-heap", "jvm", False, "no-such-reserve"]],
            "facts.heap_ranges[0][6]: expected a detail's key or null",
        ),
        (
            "heap_ranges",
            [["0x1000", "0x2000", "heap", "java-heap", "jvm", False]],
            "expected [start, end, kind, detail, allocator, heuristic, reserve]",
        ),
    ],
)
def test_damaged_runtimes_are_one_line_naming_where(real, tmp_path, where, value, words):
    d = snap.to_dict(real)
    d["facts"][where] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(BadSnapshot, match=re.escape(words)):
        snap.read(str(path))
