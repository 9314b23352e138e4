"""Fuzzing the whole way through: from hostile bytes to every view procmap draws.

test_maps.py fuzzes parse_maps alone, test_elf.py read_elf alone, and
test_explain_bad_input.py explain_elf on small files built there; this file
feeds what hypothesis makes through everything that comes after a reader:

  maps      maps texts with hostile names (escape sequences, rich markup, \\012,
            trailing spaces, " (deleted)", bytes that are not UTF-8, kernel names),
            odd and overlapping addresses -> snapshot.read (the `--from` path) ->
            classify -> the table, the picture (terminal, UTF-8 and ASCII), the SVG,
            the HTML page, JSON, `where`; and `procmap --from FILE` end to end
  smaps     parse_smaps over any bytes, and smaps texts whose figures must stay
            with their own mapping
  snapshot  any bytes, and a real snapshot of a running sample with bytes changed,
            through snapshot.read and replay to every view
  elf       the samples (samples/bin/) with header bytes changed, through
            explain_elf, its text views, plan_picture, the terminal picture and the SVG

The properties, for every input: a procmap error (procmap/errors.py: one line,
its exit code) or output, never another exception; no ESC or other control
character from the input reaches any drawn text; a name shows as printable()
writes it; JSON round-trips; the SVG parses.

tests/data/fuzz/ keeps, by kind, every input that once broke one of these
(see its README); test_corpus replays each through the same checks.  To keep
what a failing run of this file finds, run it with PROCMAP_FUZZ_SAVE=DIR:
each test's last failing input (the shrunk one) is written there.  For a
longer hunt than the ~15 s of `make test`, PROCMAP_FUZZ_SCALE=N runs N times
as many examples.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from procmap import errors
from procmap.classify.locate import locate
from procmap.elf import read_elf
from procmap.errors import MapsFormatError, ProcmapError
from procmap.kernel.maps import parse_maps
from procmap.kernel.smaps import parse_rollup, parse_smaps
from procmap.live.capture import capture
from procmap.render.diagram import Diagram
from procmap.render.explain import render_explanation, render_facts
from procmap.render.svg import render_html, render_svg
from procmap.render.table import render_map, render_where
from procmap.render.text import printable
from procmap.views import snapshot as snapshots
from procmap.views.explain import explain_elf
from procmap.views.picture import fold, map_picture, plan_picture
from procmap.views.snapshot import replay, where_saved
from tests.conftest import run_sample, sample_path
from tests.helpers import CliResult, procmap_json, render, run_cli

CORPUS = Path(__file__).resolve().parents[1] / "data" / "fuzz"
KINDS = ("maps", "smaps", "snapshot", "elf")
ERROR_CODES = {
    cls.exit_code
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, ProcmapError)
}
# What no drawn text may hold: C0 controls but the newline, DEL, C1 controls.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    """`examples` of each test; PROCMAP_FUZZ_SCALE=N runs N times as many (a longer hunt)."""
    return settings(_FUZZ, max_examples=examples * int(os.environ.get("PROCMAP_FUZZ_SCALE", "1")))


# --- keeping what fails ---------------------------------------------------------------


@contextmanager
def kept_if_failing(kind: str, data: bytes, name: str):
    """With PROCMAP_FUZZ_SAVE=DIR, write `data` to DIR/kind/name when the body fails.

    Hypothesis runs the shrunk example last, so the file left is the smallest.
    """
    try:
        yield
    except Exception:
        where = os.environ.get("PROCMAP_FUZZ_SAVE")
        if where:
            path = Path(where) / kind / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        raise


# --- the checks ------------------------------------------------------------------------


def seen(what: str) -> None:
    """Count an outcome for --hypothesis-show-statistics (the corpus runs outside hypothesis)."""
    if currently_in_test_context():
        event(what)


def drawn(renderable, width: int = 1000, ascii_only: bool = False) -> str:
    """What a terminal without colour would show: no escape sequence of rich's own."""
    # crop=False: the renderer's lines, not the console's cut.
    out = render(renderable, width, ascii_only=ascii_only, crop=False)
    assert_no_control(out)
    return out


def assert_no_control(text: str) -> None:
    found = CONTROL.search(text)
    assert found is None, f"a control character {found.group()!r} in {text[:200]!r}"


def assert_json_round_trips(data) -> None:
    assert json.loads(json.dumps(data)) == data


def assert_procmap_error(err: ProcmapError) -> None:
    """A known exit code and a message, which the command layer prints through printable():
    one line, whatever name it quotes (cli_checked checks what it prints)."""
    assert err.exit_code in ERROR_CODES, repr(err)
    assert str(err), repr(err)
    assert_no_control(printable(str(err)))


def assert_bands_in_order(picture, *, whole: bool) -> None:
    """Bands low to high, apart; a process's tile its whole space, from 0 to the top."""
    bands = picture.bands
    placed = [b for b in bands if b.start is not None]
    assert all(b.end is not None and b.start <= b.end for b in placed), placed
    assert all(a.end <= b.start for a, b in zip(placed, placed[1:])), "bands out of order"
    if whole:
        assert placed == bands and bands[0].start == 0 and bands[-1].end == picture.space.top
        assert all(a.end == b.start for a, b in zip(bands, bands[1:])), "a hole in the picture"


def check_picture(picture, *, whole: bool) -> None:
    """The picture's bands (and folded), its JSON, terminal drawings, the SVG and the page."""
    assert_bands_in_order(picture, whole=whole)
    assert_bands_in_order(fold(picture, 8), whole=whole)
    assert_json_round_trips(picture.to_dict())
    drawn(Diagram(picture), width=100)
    drawn(Diagram(picture, height=14), width=100, ascii_only=True)
    drawn(Diagram(picture), width=40)
    svg = render_svg(picture)
    assert_no_control(svg)
    ET.fromstring(svg)  # well-formed
    for band in fold(picture, 120).bands:  # the tooltip holds the whole path
        if band.path and band.role in ("library", "file", "image"):
            assert escape(printable(band.path)) in svg, band.path
    page = render_html(picture)
    assert_no_control(page)
    HTMLParser().feed(page)


def shown_name(region) -> str:
    """What the table's last column says: an ELF object's file name, else the path."""
    if region.object:
        return region.object.rsplit("/", 1)[-1]
    return region.path or ""


def check_map(pmap) -> None:
    """A classified map: its regions tile its mappings; JSON, table, picture, where."""
    regions, mappings = pmap.regions, pmap.mappings
    assert regions, "a map with mappings and no regions"
    it = iter(regions)
    for m in mappings:
        pos = m.start
        while pos < m.end:
            r = next(it)
            assert (r.start, r.path, r.perms) == (pos, m.path, m.perms), (r, m)
            assert r.end > r.start
            pos = r.end
        assert pos == m.end, (m, pos)
    assert next(it, None) is None
    data = pmap.to_dict()
    assert_json_round_trips(data)
    assert [r["path"] for r in data["regions"]] == [r.path for r in regions]
    sort = "address" if pmap.resident is None else "rss"
    table = drawn(render_map(pmap, diagram=True, sections=True, sort=sort, diagram_height=30))
    for r in regions:
        assert printable(shown_name(r)) in table, shown_name(r)
    check_picture(map_picture(pmap), whole=True)
    addresses = {0, 2**64 - 1, regions[0].start, regions[-1].end}
    addresses.update(r.start + r.size // 2 for r in regions[:20])
    locations = [locate(pmap, a) for a in sorted(a for a in addresses if a < 2**64)]
    assert_json_round_trips([loc.to_dict() for loc in locations])
    drawn(render_where(locations), width=200)


def check_snapshot_file(path: Path) -> None:
    """snapshot.read (what `--from` does), then every view of the map it replays."""
    try:
        saved = snapshots.read(str(path))
    except ProcmapError as err:
        assert_procmap_error(err)
        seen(f"refused: {type(err).__name__}")
        return
    seen("read")
    for rss in (False, True):
        try:
            pmap = replay(saved, rss=rss)
        except ProcmapError as err:
            assert_procmap_error(err)
            continue
        check_map(pmap)
    try:
        locations = where_saved(saved, [0x1000, 0x7FFF_FFFF_F000, 2**64 - 1])
    except ProcmapError as err:
        assert_procmap_error(err)
    else:
        assert_json_round_trips([loc.to_dict() for loc in locations])
        drawn(render_where(locations), width=200)


def check_smaps_bytes(data: bytes) -> None:
    """parse_smaps and parse_rollup: MapsFormatError, or one set of figures per mapping."""
    try:
        mappings, figures = parse_smaps(data)
    except MapsFormatError as err:
        assert_procmap_error(err)
    else:
        assert len(figures) == len(mappings), (len(figures), len(mappings))
        assert all(min(f) >= 0 for f in figures), figures
    try:
        parse_rollup(data)
    except MapsFormatError as err:
        assert_procmap_error(err)


def check_elf_file(path: Path) -> None:
    """explain_elf, then what `procmap explain` shows: JSON, text, the plan's picture."""
    try:
        exp = explain_elf(str(path))
    except ProcmapError as err:
        assert_procmap_error(err)
        seen(f"refused: {type(err).__name__}")
        return
    seen("explained" + (" with warnings" if exp.warnings else ""))
    assert_json_round_trips(exp.to_dict())
    drawn(render_explanation(exp, symbols=False), width=160)
    drawn(render_explanation(exp, symbols=True, notes=False), width=100, ascii_only=True)
    drawn(render_facts(exp), width=60)
    check_picture(plan_picture(exp), whole=False)


def cli_checked(*args: str, columns: int | None = None) -> CliResult:
    """`procmap ARGS` in-process (run_cli: a bug raises with its traceback): a procmap
    exit code, one line per message, no control character.

    The output is a pipe, `columns` wide if given (else procmap's own).
    """
    result = run_cli(*args, columns=columns)
    assert result.returncode == 0 or result.returncode in ERROR_CODES, (args, result.stderr)
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
        assert_no_control(stream)
    lines = result.stderr.splitlines()
    assert all(line.startswith("procmap: ") for line in lines), lines
    if result.returncode:
        assert lines and not result.stdout, (args, result.stdout, lines)
    return result


# --- maps texts -------------------------------------------------------------------------

PERMS = [a + b + c + d for a in "r-" for b in "w-" for c in "x-" for d in "ps"]
KERNEL_NAMES = [
    b"[heap]",
    b"[stack]",
    b"[vdso]",
    b"[vvar]",
    b"[vvar_vclock]",
    b"[vsyscall]",
    b"[uprobes]",
    b"[sigpage]",
    b"[vectors]",
    b"[anon:x]",
    b"[anon:glibc: malloc arena]",
    b"[anon:glibc: pthread stack: 77]",
    b"[anon:glibc: pthread stack guard]",
    b"[anon_shmem:shm]",
    b"[stack:123]",
    b"[stack:]",
    b"[anon:]",
    b"[",
    b"[]",
    b"[anon:\x1b[31mred]",
    b"[heap] (deleted)",
]
# Pieces of hostile names: escapes (CSI, OSC, a C1 CSI as UTF-8 and as a lone byte),
# rich markup, XML, the kernel's escaped newline, bytes that are not UTF-8, bidi and
# zero-width characters, wide and combining characters, format strings.
PIECES = [
    b"\x1b[31mred\x1b[0m",
    b"\x1b]0;title\x07",
    b"\x1b[2J",
    b"\xc2\x9b31m",
    b"\x9b",
    b"[bold red]x[/]",
    b"[link=http://x]y[/link]",
    b"[/]",
    b"<script>&\"'",
    b"]]>",
    b"\\012",
    b"new\\012line",
    b"\t",
    b"\r",
    b"\x7f",
    b"\x00",
    b"\x08",
    b"caf\xe9",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xe2\x80\xae",
    b"\xe2\x80\x8b",
    b"\xe4\xb8\xad\xe6\x96\x87",
    b"e\xcc\x81",
    b"\xf0\x9f\x98\x80",
    b"%s%n{0}",
    b"  two  spaces",
    b"libc.so.6",
    b"x" * 300,
]
PREFIXES = [
    b"/",
    b"/tmp/",
    b"/usr/lib/x86_64-linux-gnu/",
    b"/memfd:",
    b"/SYSV00000000",
    b"/dev/zero",
    b"/dev/shm/",
    b"/dev/",
    b"[anon:",
    b"[anon_shmem:",
    b"[stack:",
    b"",
]
SUFFIXES = [b"", b"", b" (deleted)", b" (deleted) (deleted)", b"]", b" ", b"   ", b".so"]


def _kernel_escaped(name: bytes) -> bytes:
    # proc(5): the kernel writes a newline in a path as \012.
    return name.replace(b"\n", b"\\012")


names = st.one_of(
    st.sampled_from(KERNEL_NAMES),
    st.builds(
        lambda prefix, pieces, suffix: prefix + b"".join(pieces) + suffix,
        st.sampled_from(PREFIXES),
        st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=6)), max_size=4),
        st.sampled_from(SUFFIXES),
    ).map(_kernel_escaped),
)

# Where a real process's mappings are (x86-64, i386), and the edges of 32 and 64 bits.
BASES = [
    0,
    0x1000,
    0x8048000,
    0x400000,
    0x5555_5555_4000,
    0x7F00_0000_0000,
    0x7FFC_0000_0000,
    0x7FFF_FFFF_F000,
    0xBF00_0000,
    0xFFFF_E000,
    0x1_0000_0000,
    0x8000_0000_0000,
    0xFFFF_8000_0000_0000,
    0xFFFF_FFFF_FF60_0000,
    0xFFFF_FFFF_FFFF_F000,
]
SIZES = [1, 0xFFF, 0x1000, 0x2000, 0x21000, 0x400000, 0x800000, 0x801000, 64 << 20, 1 << 40]
near_bases = st.builds(
    lambda base, pages: base + (pages << 12), st.sampled_from(BASES), st.integers(0, 0x10)
)
sizes = st.one_of(st.sampled_from(SIZES), st.integers(1, 2**48))
inodes = st.one_of(st.sampled_from([0, 0, 1, 7, 260131]), st.integers(0, 2**64))
devs = st.sampled_from([b"00:00", b"fe:01", b"08:02", b"fff:fffff", b"0:0"])
U64 = 2**64 - 1


@st.composite
def map_lines(draw, max_lines: int = 12) -> list[bytes]:
    """Lines in the kernel's layout: in address order, or not; overlapping, or not.

    One text in ten may also hold what no kernel prints: addresses past 64 bits.
    """
    wild = draw(st.integers(0, 9)) == 0
    low32 = draw(st.booleans())
    lines = []
    for _ in range(draw(st.integers(1, max_lines))):
        start = draw(st.one_of(near_bases, st.integers(0, U64 - 1)))
        size = draw(sizes)
        if wild:
            start, size = draw(st.integers(0, 2**72)), draw(st.integers(1, 2**72))
        elif low32:
            start, size = start & 0xFFFF_F000, max(size & 0xFFF_FFFF, 1)
        end = start + size if wild else min(start + size, U64)
        perms = draw(st.sampled_from(PERMS)).encode()
        offset = draw(st.one_of(st.just(0), st.integers(0, U64)))
        inode = draw(inodes)
        name = draw(st.one_of(st.none(), names))
        head = b"%08x-%08x %s %08x %s %d " % (start, end, perms, offset, draw(devs), inode)
        if name is not None:
            head = head.ljust(draw(st.sampled_from([0, 73]))) + b" " + name
        lines.append((start, head))
    if draw(st.booleans()):
        lines.sort()
    return [line for _, line in lines]


maps_texts = map_lines().map(lambda lines: b"\n".join(lines) + b"\n")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


@fuzz(120)
@given(maps_texts)
def test_any_maps_text_is_drawn_safely_everywhere(scratch, text):
    with kept_if_failing("maps", text, "test_any_maps_text_is_drawn_safely_everywhere"):
        check_snapshot_file(write(scratch, "fuzzed.maps", text))


@fuzz(25)
@given(
    maps_texts,
    st.sampled_from(
        [
            [],
            ["--json"],
            ["--diagram"],
            ["--diagram", "--json"],
            ["--sections", "--no-notes"],
            ["--kind", "heap,stack,mmap"],
            ["--sort", "size"],
            ["--rss"],
            ["--svg", "SVG", "--html", "HTML"],
        ]
    ),
)
def test_procmap_from_a_maps_file_ends_cleanly(scratch, text, options):
    with kept_if_failing("maps", text, "test_procmap_from_a_maps_file_ends_cleanly"):
        path = write(scratch, "cli.maps", text)
        args = [str(scratch / o) if o in ("SVG", "HTML") else o for o in options]
        result = cli_checked("--from", str(path), *args)
        if result.returncode == 0 and "--json" in args:
            procmap_json(result.stdout)
        if result.returncode == 0 and "--svg" in args:
            ET.parse(scratch / "SVG")
        where = cli_checked("where", "--from", str(path), "0x1000", "7fff00000000")
        if where.returncode == 0:
            assert where.stdout


# --- smaps texts ------------------------------------------------------------------------

# smaps' name for a figure, and Resident's.
FIELDS = {
    b"Rss": "rss",
    b"Pss": "pss",
    b"Shared_Clean": "shared_clean",
    b"Private_Dirty": "private_dirty",
    b"Swap": "swap",
    b"SwapPss": "swap_pss",
    b"Anonymous": "anonymous",
}


@st.composite
def smaps_texts(draw) -> tuple[bytes, list[tuple[bytes, list[int]]]]:
    """An smaps text and its blocks: (header line, figures in kB), repeats and all."""
    blocks = []
    for header in draw(map_lines(max_lines=6)):
        values = [draw(st.integers(0, 2**40)) for _ in FIELDS]
        blocks.append((header, values))
        if draw(st.integers(0, 3)) == 0:  # a repeat, as a read() split in two may give
            blocks.append((header, [draw(st.integers(0, 9)) for _ in FIELDS]))
    text = b"".join(
        header
        + b"\n"
        + b"".join(b"%s:%s%d kB\n" % (f, b" " * (16 - len(f)), v) for f, v in zip(FIELDS, vs))
        + b"VmFlags: rd wr mr mw me ac\n"
        for header, vs in blocks
    )
    return text, blocks


def kept_blocks(blocks):
    """The blocks whose header parse_maps keeps: each starts at or above the last end."""
    kept, last_end = [], 0
    for header, values in blocks:
        (m,) = parse_maps(header)
        if m.start >= last_end:
            kept.append(values)
            last_end = m.end
    return kept


@fuzz(150)
@given(st.one_of(st.binary(max_size=300), smaps_texts().map(lambda t: t[0])))
def test_any_bytes_as_smaps_give_figures_or_a_maps_error(data):
    with kept_if_failing("smaps", data, "test_any_bytes_as_smaps_give_figures_or_a_maps_error"):
        check_smaps_bytes(data)


@fuzz(60)
@given(smaps_texts())
def test_each_mapping_keeps_its_own_figures(text_and_blocks):
    text, blocks = text_and_blocks
    with kept_if_failing("smaps", text, "test_each_mapping_keeps_its_own_figures"):
        try:
            mappings, figures = parse_smaps(text)
        except MapsFormatError:
            return  # a header parse_maps refuses (an address past 2**64 and so on)
        expected = kept_blocks(blocks)
        assert len(mappings) == len(expected)
        got = [[getattr(f, name) >> 10 for name in FIELDS.values()] for f in figures]
        assert got == expected


@fuzz(50)
@given(
    smaps_texts(),
    st.sampled_from([None] * 5 + [b"abc", b"", b"-4", b"4 MB", b"1_0", b"+7", b"9" * 30, b"\xff"]),
    st.integers(0, 100),
)
def test_an_smaps_text_through_from_with_its_figures(scratch, text_and_blocks, value, where):
    """`--from` an smaps text, with --rss; a figure that is not a number of kB is refused."""
    text = text_and_blocks[0]
    if value is not None:
        lines = text.split(b"\n")
        figures = [i for i, line in enumerate(lines) if line[:4] in (b"Rss:", b"Pss:", b"Swap")]
        i = figures[where % len(figures)]
        lines[i] = lines[i].partition(b":")[0] + b": " + value + b" kB"
        text = b"\n".join(lines)
    with kept_if_failing("smaps", text, "test_an_smaps_text_through_from_with_its_figures"):
        check_smaps_bytes(text)
        check_snapshot_file(write(scratch, "fuzzed.smaps", text))


# --- snapshots ----------------------------------------------------------------------------


class Quiet(bytes):
    """Bytes that a failing example's report names in a few words, not in full."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


@pytest.fixture(scope="module")
def real_snapshot() -> bytes:
    """A snapshot of a running lesson-pie, as `procmap PID --save` writes it."""
    with run_sample("pie") as s:
        saved = capture(s.pid)
    return Quiet(snapshots.dumps(saved))


def _spans(blob: bytes) -> list[tuple[int, int]]:
    """Where a change does most: the maps and smaps texts, the facts, the layouts."""
    spans = [(0, len(blob))]
    for key in (b'"maps":', b'"smaps":', b'"facts":', b'"page_states":', b'"process":'):
        at = blob.find(key)
        if at >= 0:
            spans.append((at, min(at + 3000, len(blob))))
    for m in re.finditer(rb'"layout":', blob):
        spans.append((m.start(), min(m.start() + 1500, len(blob))))
    return spans


HEX = b"0123456789abcdef"
# Values that make offsets, sizes and counts interesting: zero, one, all ones, a sign bit.
WORDS = [0, 1, 2, 0x40, 0x1000, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 63, (1 << 64) - 1, 0x10000]


@st.composite
def mutated(draw, blob: bytes, spans: list[tuple[int, int]], ops: tuple[str, ...]) -> bytes:
    """`blob` with one to four changes, each at a place in one of `spans`:

    digit   a (hex) digit for another: numbers change, a JSON file stays JSON
    byte    any byte
    word    a little-endian 2-, 4- or 8-byte value from WORDS
    cut     up to 40 bytes taken out
    insert  a piece of a hostile name put in
    """
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        start, end = draw(st.sampled_from(spans))
        at = draw(st.integers(start, max(start, min(end, len(data)) - 1)))
        if at >= len(data):
            continue
        how = draw(st.sampled_from(ops))
        if how == "digit":
            j = next((k for k in range(at, min(at + 64, len(data))) if data[k] in HEX), None)
            if j is not None:
                data[j] = draw(st.sampled_from(HEX[:10] if data[j] < 0x3A else HEX))
        elif how == "byte":
            data[at] = draw(st.integers(0, 255))
        elif how == "word":
            size = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(WORDS)) & ((1 << 8 * size) - 1)
            data[at : at + size] = value.to_bytes(size, "little")
        elif how == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.sampled_from(PIECES))
    return bytes(data)


@fuzz(100)
@given(st.data())
def test_a_damaged_real_snapshot_is_refused_or_drawn_safely(scratch, real_snapshot, data):
    ops = ("digit",) * 6 + ("byte", "cut", "insert")
    blob = data.draw(mutated(real_snapshot, _spans(real_snapshot), ops), label="snapshot")
    with kept_if_failing(
        "snapshot", blob, "test_a_damaged_real_snapshot_is_refused_or_drawn_safely"
    ):
        check_snapshot_file(write(scratch, "damaged.json", blob))


def _load_bytes(value) -> bytes:
    """A BYTES of the snapshot format (snapshot.py's docstring): a string, or its base64."""
    return value.encode() if isinstance(value, str) else base64.b64decode(value["base64"])


def _dump_bytes(data: bytes):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _renamed(text: bytes, new_names: dict[bytes, bytes]) -> bytes:
    """A maps or smaps text with each mapping's path replaced as `new_names` says."""
    out = []
    for line in text.split(b"\n"):
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[0][0] in HEX:  # a header, not a 'Name: value' line
            line = line[: len(line) - len(fields[5])] + new_names.get(fields[5], fields[5])
        out.append(line)
    return b"\n".join(out)


@fuzz(25)
@given(st.data())
def test_a_real_snapshot_with_hostile_names_is_drawn_safely(scratch, real_snapshot, data):
    """The files of a real map (with their ELF headers) and the process, renamed."""
    d = json.loads(real_snapshot)
    maps = _load_bytes(d["maps"])
    paths = sorted(
        {line.split(None, 5)[5] for line in maps.splitlines() if len(line.split(None, 5)) == 6}
    )
    new_names = {
        p: data.draw(names, label=p.decode(errors="replace"))
        for p in paths
        if data.draw(st.booleans())
    }
    d["maps"] = _dump_bytes(_renamed(maps, new_names))
    if d["smaps"] is not None:
        d["smaps"] = _dump_bytes(_renamed(_load_bytes(d["smaps"]), new_names))
    process = data.draw(names, label="process name")
    d["process"]["name"] = _dump_bytes(process)
    d["process"]["cmdline"] = [
        _dump_bytes(process),
        _dump_bytes(data.draw(names, label="argument")),
    ]
    blob = json.dumps(d).encode()
    with kept_if_failing(
        "snapshot", blob, "test_a_real_snapshot_with_hostile_names_is_drawn_safely"
    ):
        check_snapshot_file(write(scratch, "renamed.json", blob))


@fuzz(80)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=200).map(lambda b: b"{" + b),
        st.binary(max_size=100).map(lambda b: b'{"format":"procmap-snapshot","version":1,' + b),
    )
)
def test_any_bytes_as_a_snapshot_are_refused_in_one_line_or_drawn(scratch, blob):
    with kept_if_failing(
        "snapshot", blob, "test_any_bytes_as_a_snapshot_are_refused_in_one_line_or_drawn"
    ):
        check_snapshot_file(write(scratch, "any.json", blob))


# --- ELF files through explain ------------------------------------------------------------

ELF_SAMPLES = ("pie", "nopie", "nosep", "norelro", "static-pie")
TABLES = (".dynamic", ".dynsym", ".dynstr", ".symtab", ".strtab", ".shstrtab", ".interp")
TABLES += (".note.gnu.build-id", ".tdata", ".tbss", ".data", ".bss")


@pytest.fixture(scope="module")
def elf_samples() -> dict[str, tuple[bytes, list[tuple[int, int]]]]:
    """Each sample's bytes and the ranges worth changing: headers, tables, sections."""
    out = {}
    for mode in ELF_SAMPLES:
        path = sample_path(mode)
        blob = path.read_bytes()
        phoff, shoff = struct.unpack_from("<QQ", blob, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", blob, 0x36)
        # The ELF header past its magic, the program and section header tables.
        spans = [(4, 64), (phoff, phoff + phentsize * phnum), (shoff, shoff + shentsize * shnum)]
        for sec in read_elf(str(path)).sections:
            if sec.name in TABLES and sec.offset < len(blob):
                spans.append((sec.offset, sec.offset + max(sec.size, 1)))
        out[mode] = Quiet(blob), spans
    return out


@fuzz(100)
@given(st.data(), st.sampled_from(ELF_SAMPLES))
def test_a_damaged_sample_is_refused_or_explained_safely(scratch, elf_samples, data, mode):
    blob, spans = elf_samples[mode]
    mutant = data.draw(mutated(blob, spans, ("byte", "word", "word", "insert")), label="elf")
    assume(mutant != blob)
    with kept_if_failing(
        "elf", mutant, f"test_a_damaged_sample_is_refused_or_explained_safely-{mode}"
    ):
        check_elf_file(write(scratch, "mutant.elf", mutant))


# --- the corpus -----------------------------------------------------------------------------

# Corpus files whose bug is in a module this file's author may not change: each is an
# xfail(strict=True) with the reason, so it flips to a failure once it is fixed.
KNOWN_BUGS: dict[str, str] = {}


def _corpus():
    files = sorted(
        p for kind in KINDS if (CORPUS / kind).is_dir() for p in (CORPUS / kind).iterdir()
    )
    for path in files:
        key = f"{path.parent.name}/{path.name}"
        marks = (
            [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key])] if key in KNOWN_BUGS else []
        )
        yield pytest.param(path, id=key, marks=marks)


def test_the_corpus_has_every_kind_and_a_readme():
    assert (CORPUS / "README.md").is_file()
    readme = (CORPUS / "README.md").read_text()
    for kind in KINDS:
        files = list((CORPUS / kind).iterdir())
        assert files, f"{CORPUS / kind} is empty"
        for path in files:
            assert path.stat().st_size < 64 * 1024, path
            assert f"`{kind}/{path.name}`" in readme, f"{kind}/{path.name} is not in the README"
    keys = {f"{p.parent.name}/{p.name}" for kind in KINDS for p in (CORPUS / kind).iterdir()}
    assert set(KNOWN_BUGS) <= keys


def check_cli_from(path: Path, scratch: Path) -> None:
    """`procmap --from FILE` as a user runs it, piped: each region's name in the table,
    whole; the JSON, the picture, the SVG and `where` end cleanly."""
    for options in ([], ["--rss"]):
        result = cli_checked("--from", str(path), "--no-diagram", *options)
        if result.returncode == 0:
            pmap = replay(snapshots.read(str(path)), rss=bool(options))
            for r in pmap.regions:
                assert printable(shown_name(r)) in result.stdout, shown_name(r)
    result = cli_checked("--from", str(path), "--json", "--rss")
    if result.returncode == 0:
        data = procmap_json(result.stdout)
        again = replay(snapshots.read(str(path)), rss=True).to_dict()
        assert data["regions"] == procmap_json(json.dumps(again))["regions"]
    cli_checked("--from", str(path), "--diagram", columns=80)
    result = cli_checked("--from", str(path), "--svg", str(scratch / "picture.svg"))
    if result.returncode == 0:
        ET.parse(scratch / "picture.svg")
    cli_checked("where", "--from", str(path), "0x1000", "7ffffffde000")


@pytest.mark.parametrize("path", list(_corpus()))
def test_corpus(path, tmp_path):
    kind = path.parent.name
    if kind == "elf":
        check_elf_file(path)
        cli_checked("explain", str(path))
        cli_checked("explain", "--json", str(path))
        cli_checked("explain", "--diagram", str(path), columns=80)
        return
    if kind == "smaps":
        check_smaps_bytes(path.read_bytes())
    check_snapshot_file(path)
    check_cli_from(path, tmp_path)
