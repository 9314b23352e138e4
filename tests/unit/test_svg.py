"""procmap.render.svg: the picture as a standalone SVG document and an HTML page.

The documents are parsed back (xml.etree for the SVG, html.parser for the
page) and held to the picture they came from: one band group per band of the
folded picture, high addresses first, with its role, kind, range and size; a
legend with every kind; nothing fetched from anywhere; and hostile names from
the process shown as literal text in a document that still parses.  The
pictures come from hand-made regions, one real lesson-pie and its load plan.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from procmap.classify.notes import describe_kind
from procmap.live.capture import read_map
from procmap.model import KINDS, Detail, Region
from procmap.render.diagram import FILLS, legend_items
from procmap.render.svg import band_height, render_html, render_svg
from procmap.render.text import printable
from procmap.render.theme import KIND_COLOURS
from procmap.views.explain import explain_elf
from procmap.views.picture import fold, picture_of, plan_picture
from tests.conftest import run_sample, sample_path

SVG = "{http://www.w3.org/2000/svg}"
PAGE = 4096
BASE = 0x5555_5555_4000
LIBS = 0x7F00_0000_0000
STACK = 0x7FFF_F000_0000

# A path with everything a file name may hold: an ESC sequence, markup for XML and
# for rich, the end of a CDATA section, quotes, a newline, a byte that is not UTF-8
# (surrogateescape) and a right-to-left override.
HOSTILE = "evil\x1b[2J<script>alert(1)<script>]]>[bold red]&\"q'\nline\udcff\u202e.so"


def _region(start, end, kind, detail, path=None, obj=None, perms="rw-p", sections=()):
    return Region(start, end, perms, 0, "00:00", 0, path, kind, detail, obj, tuple(sections))


def _regions(extra=()):
    """A small program's regions, in address order: its image, heap, a library, stack."""
    prog = "/usr/bin/prog"
    libc = "/usr/lib/libc.so.6"
    p = BASE
    return [
        _region(p, p + PAGE, "rodata", Detail.ELF_HEADERS, prog, prog, "r--p"),
        _region(p + PAGE, p + 3 * PAGE, "text", Detail.CODE, prog, prog, "r-xp", (".text",)),
        _region(p + 3 * PAGE, p + 4 * PAGE, "rodata", Detail.READ_ONLY_DATA, prog, prog, "r--p"),
        _region(p + 4 * PAGE, p + 5 * PAGE, "data", Detail.DATA, prog, prog),
        _region(p + 5 * PAGE, p + 6 * PAGE, "bss", Detail.BSS, None, prog),
        _region(p + 0x100000, p + 0x121000, "heap", Detail.BRK_HEAP, "[heap]"),
        _region(LIBS, LIBS + 0x28000, "rodata", Detail.ELF_HEADERS, libc, libc, "r--p"),
        _region(LIBS + 0x28000, LIBS + 0x1BD000, "text", Detail.CODE, libc, libc, "r-xp"),
        _region(
            LIBS + 0x1BD000, LIBS + 0x215000, "rodata", Detail.READ_ONLY_DATA, libc, libc, "r--p"
        ),
        _region(LIBS + 0x215000, LIBS + 0x217000, "data", Detail.DATA, libc, libc),
        _region(LIBS + 0x217000, LIBS + 0x224000, "bss", Detail.BSS, None, libc),
        *extra,
        _region(STACK, STACK + 0x21000, "stack", Detail.MAIN_STACK, "[stack]"),
    ]


def _bands(root):
    return root.findall(f".//{SVG}g[@class='band']")


def _texts(element):
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def picture():
    return picture_of(_regions(), title="PID 42 (prog)")


@pytest.fixture(scope="module")
def lesson_pie():
    """A real lesson-pie's picture, read while it runs."""
    with run_sample("pie") as s:
        pm = read_map(s.pid)
        return picture_of(pm.regions, pm.images, title=f"PID {s.pid} ({pm.info.name})")


# --- the structure -----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["picture", "lesson_pie"])
def test_one_band_group_per_band_high_addresses_first(which, request):
    pic = request.getfixturevalue(which)
    root = ET.fromstring(render_svg(pic))
    assert root.tag == f"{SVG}svg" and root.get("version") == "1.1"
    groups = _bands(root)
    bands = list(reversed(fold(pic, 120).bands))
    assert len(groups) == len(bands)
    for g, band in zip(groups, bands):
        assert g.get("data-role") == band.role
        assert g.get("data-kind") == band.kind
        assert g.get("data-start") == f"0x{band.start:x}"
        assert g.get("data-end") == f"0x{band.end:x}"
        assert int(g.get("data-size")) == band.size
        assert g.find(f"{SVG}title") is not None
    starts = [int(g.get("data-start"), 16) for g in groups]
    assert starts == sorted(starts, reverse=True)
    # The boxes are drawn top to bottom in the same order, each below the last.
    tops = [float(g.find(f"{SVG}rect").get("y")) for g in groups]
    assert tops == sorted(tops)


def test_the_landmarks_carry_their_words_and_arrows(picture):
    root = ET.fromstring(render_svg(picture))
    by_role = {g.get("data-role"): g for g in _bands(root)}
    assert {"image", "heap", "library", "stack", "hole", "kernel", "null", "gap"} <= set(by_role)
    for role, label in (("heap", "heap ↑"), ("stack", "stack ↓"), ("library", "libc.so.6")):
        assert label in _texts(by_role[role])
    # The drawn arrows: the heap's tip is above its tail, the stack's below.
    for role, up in (("heap", True), ("stack", False)):
        (arrow,) = by_role[role].iter(f"{SVG}polygon")
        ys = [float(p.split(",")[1]) for p in arrow.get("points").split()]
        assert (ys[0] == min(ys)) is up
    # A library holds several kinds: one stripe each.
    stripes = [r.get("data-part") for r in by_role["library"].iter(f"{SVG}rect")]
    assert [s for s in stripes if s] == ["text", "rodata", "data", "bss"]
    assert "unmapped" in _texts(by_role["gap"])
    assert "/usr/bin/prog" in by_role["image"].find(f"{SVG}title").text


def test_the_top_of_the_space_and_each_start_address_are_shown(picture):
    texts = _texts(ET.fromstring(render_svg(picture)))
    assert "ffffffffffffffff" in texts
    assert f"{BASE:016x}" in texts and f"{STACK:016x}" in texts


def test_the_legend_has_every_kind_and_sign(picture):
    root = ET.fromstring(render_svg(picture))
    (legend,) = [g for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]
    swatches = {g.get("data-kind") for g in legend.iter(f"{SVG}g") if g.get("data-kind")}
    assert swatches == set(KINDS)
    words = " ".join(_texts(legend))
    for kind in KINDS:
        assert describe_kind(kind).title in words
    for _, _, _, item in legend_items():
        assert item in words
    assert "logarithm" in words and "not to scale" in words
    assert "folded" not in words


def test_every_kind_has_a_colour_and_a_pattern_like_its_fill(picture):
    svg = render_svg(picture)
    assert set(KIND_COLOURS) == set(KINDS) == set(FILLS)
    for kind in FILLS:
        assert f'<pattern id="fill-{kind}"' in svg
        assert re.fullmatch(r"#[0-9a-f]{6}", KIND_COLOURS[kind])


def test_heights_grow_with_size_and_the_kernel_does_not_dominate(picture):
    mapped = sorted((b for b in picture.bands if not b.empty), key=lambda b: b.size)
    heights = [band_height(b) for b in mapped]
    assert heights == sorted(heights)
    kernel = next(b for b in picture.bands if b.role == "kernel" and b.size == 1 << 47)
    heap = next(b for b in picture.bands if b.role == "heap")
    assert band_height(kernel) < 4 * band_height(heap)
    assert {band_height(b) for b in picture.bands if b.role in ("gap", "null")} == {30}


def test_text_is_readable_in_print(picture):
    root = ET.fromstring(render_svg(picture))
    sizes = [float(t.get("font-size")) for t in root.iter(f"{SVG}text")]
    assert min(sizes) >= 10
    for t in root.iter(f"{SVG}text"):
        assert t.get("font-family").endswith(("monospace", "sans-serif"))
    assert root.find(f"{SVG}rect").get("fill") == "#ffffff"  # the white page


# --- self-contained and safe ----------------------------------------------------------------


def _external(document: str) -> list[str]:
    """Anything that could fetch from outside the document."""
    found = [u for u in re.findall(r"https?://[^\s\"'<>]+", document) if "www.w3.org" not in u]
    found += re.findall(r"<(?:image|script|link|iframe|object|embed|use)\b", document, re.I)
    found += re.findall(r"@import|@font-face|javascript:", document, re.I)
    found += [h for h in re.findall(r"href\s*=\s*[\"']([^\"']*)", document) if h[:1] != "#"]
    found += [u for u in re.findall(r"url\(([^)]*)\)", document) if u[:1] != "#"]
    return found


def test_nothing_external_in_either_document(picture):
    assert _external(render_svg(picture)) == []
    assert _external(render_html(picture)) == []
    xmlns = re.findall(r"xmlns(?::\w+)?=\"([^\"]*)\"", render_svg(picture))
    assert xmlns == ["http://www.w3.org/2000/svg"]


def test_hostile_names_are_literal_text_and_the_document_parses():
    evil = _region(
        LIBS + 0x300000,
        LIBS + 0x301000,
        "mmap",
        Detail.FILE,
        "/tmp/" + HOSTILE,
        perms="r--p",
        sections=(HOSTILE,),
    )
    # A name the process gave its memory: hostile words in the detail, too.
    named = _region(
        LIBS + 0x400000, LIBS + 0x401000, "mmap", Detail.NAMED_ANONYMOUS, f"[anon:{HOSTILE}]"
    )
    pic = picture_of(_regions([evil, named]), title="PID 1 " + HOSTILE)
    pic = pic._replace(notes=(*pic.notes, HOSTILE))
    svg = render_svg(pic)
    root = ET.fromstring(svg)  # well-formed
    for raw in ("\x1b", "\n" + "line", "\udcff", "\u202e", "<script", "]]>"):
        assert raw not in svg
    shown = printable(HOSTILE)
    assert "\\x1b[2J<script>alert(1)<script>]]>[bold red]&\"q'\\x0aline\\xff\\u202e" in shown
    files = [g for g in _bands(root) if g.get("data-role") == "file"]
    (band,) = [g for g in files if "/tmp/" in g.find(f"{SVG}title").text]
    # The label, cut to the box, and the whole path in the tooltip, as literal text.
    assert _texts(band)[0] == "evil\\x1b[2J<script>alert(1)<scri…"
    assert "/tmp/" + shown in band.find(f"{SVG}title").text.splitlines()
    assert root.find(f"{SVG}title").text == "PID 1 " + shown
    page = render_html(pic)
    for raw in ("\x1b", "\udcff", "<script", "]]>"):
        assert raw not in page
    parsed = _parse_html(page)
    assert "PID 1 " + shown in parsed.data
    assert "/tmp/" + shown in parsed.data  # in the table, whole
    assert "anonymous, named " + shown in parsed.data  # the detail's words, too
    assert "script" not in parsed.tags


# --- the HTML page -----------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.data = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.data += data
        if self._cell is not None:
            self._cell.append(data)


def _parse_html(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    parser.close()
    return parser


def test_the_page_holds_the_svg_and_a_row_per_band(picture):
    page = render_html(picture)
    assert page.startswith("<!DOCTYPE html>")
    assert "@media print" in page and "<?xml" not in page
    parsed = _parse_html(page)
    assert parsed.tags.count("svg") == 1 and "style" in parsed.tags
    assert {"title", "h1", "table"} <= set(parsed.tags)
    assert "script" not in parsed.tags
    rows = [r for r in parsed.rows if r]  # the head's row has <th>s, no cells
    bands = list(reversed(picture.bands))
    assert len(rows) == len(bands)
    for row, band in zip(rows, bands):
        start, end, size, kind, label, details = row
        assert kind == (band.kind or "")
        assert details.startswith(printable(band.detail))
        if band.start is not None:
            assert int(start, 16) == band.start and int(end, 16) == band.end
    assert "libc.so.6" in [r[4] for r in rows]
    for kind in KINDS:
        assert describe_kind(kind).title in parsed.data


# --- plans and big pictures ----------------------------------------------------------------


def test_a_load_plan_renders_with_offsets_and_placeholders():
    pic = plan_picture(explain_elf(str(sample_path("pie"))))
    root = ET.fromstring(render_svg(pic))
    groups = _bands(root)
    assert len(groups) == len(pic.bands)
    planned = [g for g in groups if g.get("data-role") == "planned"]
    assert [g.get("data-kind") for g in planned] == ["stack", "mmap", "heap"]
    for g in planned:
        assert g.get("data-start") is None and g.get("data-end") is None
        assert g.get("data-size") == "0"
    relative = [g for g in groups if g.get("data-relative") == "true"]
    assert relative and all(g.get("data-role") == "image" for g in relative)
    assert "+0x0" in _texts(root)
    assert _parse_html(render_html(pic)).tags.count("svg") == 1


def test_thousands_of_bands_are_folded_to_max_bands():
    files = [
        _region(
            LIBS + 0x1000000 + 2 * i * PAGE,
            LIBS + 0x1000000 + (2 * i + 1) * PAGE,
            "mmap",
            Detail.FILE,
            f"/tmp/f{i}",
            perms="r--p",
        )
        for i in range(2000)
    ]
    pic = picture_of(_regions(files), title="many")
    assert len(pic.bands) > 4000
    svg = render_svg(pic, max_bands=60)
    root = ET.fromstring(svg)
    folded = fold(pic, 60)
    assert len(_bands(root)) == len(folded.bands) <= 60
    assert sum(int(g.get("data-size")) for g in _bands(root) if g.get("data-role") == "folded") > 0
    (legend,) = [g for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]
    assert f"{folded.folded} small bands" in " ".join(_texts(legend))
    rows = [r for r in _parse_html(render_html(pic, max_bands=60)).rows if r]
    assert len(rows) == len(folded.bands)


def test_a_32_bit_picture_and_an_empty_one_render():
    regions = [
        _region(0x0804_8000, 0x0804_9000, "text", Detail.CODE, "/bin/p", "/bin/p", "r-xp"),
        _region(0xBFFD_F000, 0xC000_0000, "stack", Detail.MAIN_STACK, "[stack]"),
    ]
    root = ET.fromstring(render_svg(picture_of(regions, title="32-bit")))
    texts = _texts(root)
    assert {"ffffffff", "c0000000", "bffdf000", "08048000", "00000000"} <= set(texts)
    assert [g.get("data-role") for g in _bands(root)] == ["kernel", "stack", "gap", "image", "null"]
    empty = ET.fromstring(render_svg(picture_of([])))
    assert [g.get("data-role") for g in _bands(empty)] == ["kernel", "null"]
