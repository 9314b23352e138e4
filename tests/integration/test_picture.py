"""The picture, drawn from the samples in every link mode: its structure, not its pixels.

Band order is the lesson's (NULL page, the program's image, heap, mapping
area, stack, hole, kernel), the bands tile the whole address space, their
sizes add up to the regions', and the terminal, SVG, HTML and JSON forms all
carry the same bands.
"""

from __future__ import annotations

import platform
import re
import xml.etree.ElementTree as ET

import pytest

from procmap.live.capture import read_map
from procmap.live.sampler import Sampler
from procmap.live.watch import History
from procmap.render.diagram import FILLS, Diagram
from procmap.render.live import LiveView
from procmap.units import human_size
from procmap.views.explain import explain_elf
from procmap.views.picture import MEMBERS, fold, map_picture, plan_picture, rows
from tests.conftest import MODES, SAMPLE_BIN, run_sample, sample_path
from tests.helpers import procmap_json, render, run_cli
from tests.integration.test_watch_cli import WatchSample, _run_in_terminal

X86_64 = platform.machine() == "x86_64"
STATIC = ("static", "static-pie")


def lesson_order(picture, mode: str = "pie") -> None:
    """The checks every process's picture passes, whatever its link mode."""
    bands = picture.bands
    assert bands[0].start == 0 and bands[-1].end == picture.space.top
    for below, above in zip(bands, bands[1:]):
        assert below.end == above.start  # a tiling: no overlap, nothing left out
        assert not below.role == above.role == "gap"  # one break between two bands, not two
    roles = [b.role for b in bands]
    assert roles[0] == "null"
    image = [i for i, role in enumerate(roles) if role == "image"]
    heap, stack, hole = roles.index("heap"), roles.index("stack"), roles.index("hole")
    assert set(roles[image[0] : image[-1] + 1]) <= {"image", "gap"}  # the program in one piece
    assert heap < stack < hole
    assert set(roles[hole + 1 :]) <= {"kernel", "kernel page"}
    assert bands[heap].arrow == "up" and bands[stack].arrow == "down"
    assert "heap grows up" in bands[heap + 1].detail
    assert "stack grows down" in bands[stack - 1].detail
    if mode == "static-pie":
        # Linux loads a static PIE where it would load a dynamic linker, in the
        # mapping area, and moves its brk heap down to ELF_ET_DYN_BASE
        # (fs/binfmt_elf.c): the heap is below the program.
        assert heap < image[0] < stack
    else:
        assert image[-1] < heap  # the lesson's order: the program, then the heap above it
        assert set(roles[heap + 1 : stack]) <= set(MEMBERS) | {"gap"}


@pytest.fixture(params=MODES)
def mapped(request):
    with run_sample(request.param) as s:
        yield s, read_map(s.pid)


def test_the_bands_are_the_lessons_in_the_lessons_order(mapped):
    s, pmap = mapped
    picture = map_picture(pmap)
    lesson_order(picture, s.mode)
    image = [b for b in picture.bands if b.role == "image"]
    # The program's own bands, bottom up, as its linker laid them out: a kind per band.
    assert [b.label for b in image] == [b.kind for b in image]
    assert {"text", "data", "bss"} <= {b.label for b in image}
    assert image[-1].label == "bss" and image[-1].path == str(s.path)
    libraries = {b.label for b in picture.bands if b.role == "library"}
    if s.mode in STATIC:
        assert not libraries
    else:
        assert {"libc.so.6", "ld-linux-x86-64.so.2"} <= libraries or not X86_64
    # The worker thread's stack, with its guard page, and its malloc arena.
    thread = [b for b in picture.bands if b.role == "thread stack"]
    assert len(thread) == 1 and f"TID {s.thread_tid}" in thread[0].detail
    assert thread[0].regions == 2
    assert any(b.role == "arena" for b in picture.bands)
    # The 4 MiB malloc (its own anonymous mmap) and the kernel's vdso.
    assert any(b.role == "anonymous" and b.size >= 4 << 20 for b in picture.bands)
    assert any(b.role == "vdso" and "[vdso]" in b.detail for b in picture.bands)


def test_band_sizes_add_up_to_the_regions(mapped):
    _, pmap = mapped
    picture = map_picture(pmap)
    by_kind: dict[str, int] = {}
    for r in pmap.regions:
        by_kind[r.kind] = by_kind.get(r.kind, 0) + r.size
    drawn: dict[str, int] = {}
    for b in picture.bands:
        for kind, n in b.parts:
            drawn[kind] = drawn.get(kind, 0) + n
    assert drawn == by_kind
    assert sum(b.regions for b in picture.bands) == len(pmap.regions)
    for b in picture.bands:
        if b.parts:
            inside = [r for r in pmap.regions if b.start <= r.start and r.end <= b.end]
            assert b.size == sum(r.size for r in inside)
            assert b.regions == len(inside)


@pytest.mark.skipif(not X86_64, reason="the 128 TiB halves are x86-64's (4-level paging)")
def test_the_kernel_half_and_the_hole_on_x86_64(mapped):
    _, pmap = mapped
    picture = map_picture(pmap)
    assert picture.space.user_end == 1 << 47
    kernel = [b for b in picture.bands if b.role in ("kernel", "kernel page")]
    assert kernel[0].start == (1 << 64) - (1 << 47)
    assert sum(b.span for b in kernel) == 128 << 40
    [hole] = [b for b in picture.bands if b.role == "hole"]
    assert (hole.start, hole.end) == (1 << 47, (1 << 64) - (1 << 47))
    pages = [b.label for b in kernel if b.role == "kernel page"]
    assert pages in ([], ["[vsyscall]"])  # vsyscall=none leaves the kernel's half whole


def test_folding_keeps_landmarks_and_the_tiling():
    with run_sample("pie") as s:
        picture = map_picture(read_map(s.pid))
    images = [b.role for b in picture.bands].count("image")
    members = sum(b.role in MEMBERS for b in picture.bands)
    for limit in (8, 12, 16, 20, len(picture.bands)):
        folded = fold(picture, limit)
        lesson_order(folded)
        roles = [b.role for b in folded.bands]
        if limit >= len(picture.bands) - members + 1:  # the members alone made the room
            assert roles.count("image") == images and roles.count("kernel") > 1
        if roles.count("image") == 1:  # the last resort: the program in one band
            [program] = [b for b in folded.bands if b.role == "image"]
            assert program.label == "lesson-pie" and program.members[-1] == "bss"
        assert len(folded.bands) <= max(limit, 11)
        assert folded.folded == len(picture.bands) - len(folded.bands)
        user = picture.space.user_end
        mapped = sum(b.size for b in folded.bands if b.parts and b.end <= user)
        assert mapped == sum(b.size for b in picture.bands if b.parts and b.end <= user)


def test_heights_grow_with_size_and_fit_the_room():
    with run_sample("pie") as s:
        picture = map_picture(read_map(s.pid))
    bands = picture.bands
    for room in (None, 40, 30, len(bands)):
        heights = rows(bands, room)
        if room is not None:
            assert sum(heights) <= max(room, len(bands))
        for a, ha in zip(bands, heights):
            if a.empty:
                assert ha == 1  # a break, not to scale
            for b, hb in zip(bands, heights):
                if a.parts and b.parts and a.size > b.size:
                    assert ha >= hb


# --- the terminal --------------------------------------------------------------------


def draw(picture, width: int, height: int | None = None, ascii_only: bool = False) -> list[str]:
    return render(Diagram(picture, height=height), width, ascii_only=ascii_only).splitlines()


def test_the_terminal_picture_fits_any_width_and_height():
    with run_sample("pie") as s:
        picture = map_picture(read_map(s.pid))
    for width in (30, 40, 56, 80, 120, 200):
        for height in (None, 60, 40, 25, 16):
            lines = draw(picture, width, height)
            assert all(len(line) <= width for line in lines), (width, height)
            if height is not None:
                assert len(lines) <= max(height, 11 + 3), (width, height, len(lines))
            joined = "\n".join(lines)
            for word in ("heap", "stack", "kernel"):
                assert word in joined, (word, width, height)
            if height is None or height >= 40:
                assert "text" in joined  # the program's kinds, unfolded


def test_the_terminal_picture_reads_top_down_by_address_and_tells_kinds_by_characters():
    with run_sample("nopie") as s:
        pmap = read_map(s.pid)
    picture = map_picture(pmap)
    lines = draw(picture, 120)
    addresses = [
        int(m.group(1), 16) for m in map(re.compile(r"^ ([0-9a-f]{16}) ").match, lines) if m
    ]
    assert addresses == sorted(addresses, reverse=True)
    assert addresses[0] == (1 << 64) - 1 and addresses[-1] == 0
    starts = [b.start for b in reversed(picture.bands)]
    assert addresses[1:] == starts  # every band's start, on its lowest row
    body = "\n".join(lines)
    for kind in ("text", "rodata", "data", "bss", "heap", "stack", "kernel"):
        assert FILLS[kind][0] in body, kind  # no colour here: the fill tells the kinds apart
    assert "heap ↑" in body and "stack ↓" in body
    for band in picture.bands:  # every band says its size; breaks too, with what they are
        assert f"{human_size(band.size):>9}  {band.detail[:20]}" in body, band
    assert "0000000000400000 │ rodata" in body  # the non-PIE program at its link address
    ascii_lines = draw(picture, 120, ascii_only=True)
    assert all(line.isascii() for line in ascii_lines)
    assert "heap ^" in "\n".join(ascii_lines) and "stack v" in "\n".join(ascii_lines)


def test_the_picture_has_the_tables_colours():
    with run_sample("pie") as s:
        picture = map_picture(read_map(s.pid))
    out = render(Diagram(picture), 120, color_system="standard")
    # theme.py: text red (31), rodata magenta (35), data green (32), bss cyan (36),
    # heap yellow (33), stack bright blue (94), as in the region table.
    for code, kind in ((31, "text"), (35, "rodata"), (32, "data"), (36, "bss"), (33, "heap")):
        assert re.search(rf"\x1b\[(?:[0-9;]*;)?{code}m{FILLS[kind][0]}", out), kind
    assert re.search(rf"\x1b\[(?:[0-9;]*;)?94m{FILLS['stack'][0]}", out)


def test_diagram_command_in_every_link_mode(sample):
    result = run_cli(str(sample.pid), "--diagram", columns=100)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"PID {sample.pid}")
    assert "What each kind is" not in out and "by kind" not in out  # the picture alone
    assert all(len(line) <= 100 for line in out.splitlines())
    for words in ("kernel space", "non-canonical hole", "heap ↑", "stack ↓", "bss", "text"):
        assert words in out, words
    as_json = procmap_json(run_cli(str(sample.pid), "--diagram", "--json").stdout)
    picture = map_picture(read_map(sample.pid))
    assert [b["label"] for b in as_json["bands"]] == [b.label for b in picture.bands]
    assert [b["start"] for b in as_json["bands"]] == [b.start for b in picture.bands]


def test_on_a_terminal_the_picture_fits_the_screen_above_the_table():
    with run_sample("pie") as s:
        # A process: a real terminal is the point.
        output = _run_in_terminal([str(s.pid), "--no-notes"], 100, 40)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", output.decode("utf-8", "replace"))
    lines = text.replace("\r", "").split("\n")
    table = next(i for i, line in enumerate(lines) if line.lstrip().startswith("start "))
    assert "non-canonical hole" in "\n".join(lines[:table])
    assert table <= 40  # header and picture in one screen, the table starts below
    assert all(len(line) <= 100 for line in lines[:table])


def test_the_full_view_carries_the_picture_first_and_no_diagram_leaves_it_out():
    with run_sample("pie") as s:
        full = run_cli(str(s.pid), "--no-notes").stdout
        without = run_cli(str(s.pid), "--no-notes", "--no-diagram").stdout
        only_heap = run_cli(str(s.pid), "--no-notes", "--kind", "heap").stdout
        wrong = run_cli(str(s.pid), "--diagram", "--kind", "heap")
    assert full.index("non-canonical hole") < full.index("   start  ") < full.index("by kind")
    assert "non-canonical hole" not in without and "   start  " in without
    assert "non-canonical hole" not in only_heap
    assert wrong.returncode == 2 and "--diagram" in wrong.stderr


# --- SVG and HTML ------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def test_svg_and_html_in_every_link_mode(sample, tmp_path):
    svg, html = tmp_path / "map.svg", tmp_path / "map.html"
    result = run_cli(str(sample.pid), "--svg", str(svg), "--html", str(html))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # only the files were asked for
    assert result.stderr.count("picture written to") == 2
    picture = map_picture(read_map(sample.pid))
    root = ET.parse(svg).getroot()
    assert root.tag == SVG + "svg"
    groups = [g for g in root.iter(SVG + "g") if g.get("class") == "band"]
    labels = [g.get("data-role") for g in groups]
    assert labels == [b.role for b in reversed(picture.bands)]  # top down, high addresses first
    assert [int(g.get("data-start"), 16) for g in groups] == [b.start for b in picture.bands][::-1]
    assert [int(g.get("data-size")) for g in groups] == [b.size for b in picture.bands][::-1]
    text = "".join(root.itertext())
    for words in ("kernel space", "heap", "stack", "text", "bss", "libc.so.6"):
        if words == "libc.so.6" and sample.mode in STATIC:
            continue
        assert words in text, words
    page = html.read_text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "<svg" in page and "<script" not in page.lower()
    for document in (svg.read_text(), page):
        assert not re.search(r"""(?:href|src)\s*=\s*["'](?!#)""", document)  # self-contained
        assert "@import" not in document and "url(http" not in document


def test_the_picture_file_is_never_written_over_a_device_or_into_nowhere(tmp_path):
    with run_sample("pie") as s:
        device = run_cli(str(s.pid), "--svg", "/dev/null")
        nowhere = run_cli(str(s.pid), "--html", str(tmp_path / "no" / "such" / "x.html"))
    assert device.returncode == 10 and device.stderr.count("\n") == 1
    assert "a device, not a regular file" in device.stderr
    assert nowhere.returncode == 10 and "no such directory" in nowhere.stderr


# --- explain --diagram --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_explain_draws_the_load_plan(mode):
    path = sample_path(mode)
    exp = explain_elf(str(path))
    picture = plan_picture(exp)
    image = [b for b in picture.bands if b.role == "image"]
    assert [b.kind for b in image] == [b.label for b in image]
    assert sum(b.size for b in image) == sum(r.size for r in exp.regions)
    planned = [b.label for b in picture.bands if b.role == "planned"]
    assert planned == ["heap", "memory-mapped area", "stack"]  # bottom up
    pie = mode not in ("nopie", "static")  # loaded at a base chosen at run time
    assert all(b.relative == pie for b in image)
    out = run_cli("explain", str(path), "--diagram", columns=100).stdout
    assert "heap ↑" in out and "at run time" in out and "kernel space" in out
    if not pie:
        assert f"{image[0].start:016x} │" in out
    else:
        assert "+0x0 │" in out
    data = procmap_json(run_cli("explain", str(path), "--diagram", "--json").stdout)
    assert [b["role"] for b in data["bands"]] == [b.role for b in picture.bands]


def test_a_shared_librarys_plan_sits_in_the_mapping_area():
    exp = explain_elf(str(SAMPLE_BIN / "libaligned.so"))
    picture = plan_picture(exp)
    roles = [b.role for b in picture.bands]
    assert roles[0] == "null" and "the program that loads it" in picture.bands[0].detail
    assert [b.label for b in picture.bands if b.role == "planned"] == [
        "memory-mapped area",
        "stack",
    ]  # a library has no heap of its own
    assert all(b.relative for b in picture.bands if b.role == "image")
    # -z max-page-size=0x10000: the segments are 64 KiB apart, and the dynamic
    # linker keeps the holes between them mapped, with no access.
    holes = [b for b in picture.bands if b.detail == "gap between segments"]
    assert len(holes) >= 2 and all(b.perms == "---p" for b in holes)


def test_explain_run_draws_the_stopped_process(tmp_path):
    svg = tmp_path / "run.svg"
    result = run_cli(
        "explain",
        str(sample_path("nopie")),
        "--run",
        "--stop-at",
        "entry",
        "--diagram",
        "--svg",
        str(svg),
        columns=100,
    )
    assert result.returncode == 0, result.stderr
    # Stopped at exec: the kernel has mapped the program, the dynamic linker and a stack.
    assert "stack ↓" in result.stdout and "ld-linux" in result.stdout
    assert "at run time" not in result.stdout
    ET.parse(svg)


# --- --from and --watch -----------------------------------------------------------------


def test_a_saved_map_draws_the_same_picture(tmp_path):
    saved = tmp_path / "snap.json"
    with run_sample("pie") as s:
        live = run_cli(str(s.pid), "--diagram", "--save", str(saved), columns=120)
    replayed = run_cli("--from", str(saved), "--diagram", columns=120)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == live.stdout
    maps = tmp_path / "maps.txt"
    with run_sample("pie") as s:
        maps.write_bytes(open(f"/proc/{s.pid}/maps", "rb").read())
    plain = run_cli("--from", str(maps), "--diagram", "--json")
    assert plain.returncode == 0, plain.stderr
    bands = procmap_json(plain.stdout)["bands"]
    assert [b["role"] for b in bands].count("heap") == 1 and bands[0]["role"] == "null"


def test_the_live_pictures_bands_resize_as_the_heap_grows():
    sample = WatchSample()
    try:
        with Sampler(sample.pid) as sampler:
            view = LiveView(sampler, History(sampler), 0.5)
            before = view.picture()
            assert view.picture() is before  # nothing changed: not drawn again
            sample.do("heap-grow 67108864")
            sampler.sample()
            after = view.picture()
    finally:
        sample.close()
    heap_before = next(b for b in before.bands if b.role == "heap")
    heap_after = next(b for b in after.bands if b.role == "heap")
    assert heap_after.size >= heap_before.size + (64 << 20)
    assert rows([heap_after])[0] > rows([heap_before])[0]
    screen = render(view, 100, 40)
    assert "heap ↑" in screen
    assert human_size(heap_after.size) in screen


def test_live_view_in_a_wide_terminal_has_the_picture_beside_the_rows():
    with run_sample("pie") as s:
        with Sampler(s.pid) as sampler:
            view = LiveView(sampler, History(sampler), 0.5)
            lines = render(view, 200, 50).splitlines()
    beside = [ln for ln in lines if "│" in ln and re.search(r"[0-9a-f]{16} [0-9a-f]{16}", ln)]
    assert beside, "no line has both the picture and a region row"
    assert all(len(ln) <= 200 for ln in lines)


def test_a_map_of_thirty_thousand_separate_mappings_is_drawn_whole_or_folded(tmp_path):
    # As samples/pages.py maps them, but a page apart: every one is a band.
    n, page = 30_000, 0x1000
    low = 0x7F00_0000_0000
    lines = ["55d0c8a00000-55d0c8a01000 r-xp 00000000 fe:00 100 /usr/bin/huge\n"]
    lines += [
        f"{low + 2 * i * page:x}-{low + (2 * i + 1) * page:x} {'r--p' if i % 2 else 'rw-p'}"
        " 00000000 00:00 0 \n"
        for i in range(n)
    ]
    lines.append("7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n")
    maps = tmp_path / "huge.maps"
    maps.write_text("".join(lines))
    result = run_cli("--from", str(maps), "--diagram")
    assert result.returncode == 0, result.stderr
    # In a pipe, nothing is folded: each mapping is a box, in address order.
    rows = [line.split() for line in result.stdout.splitlines()]
    starts = [int(r[0], 16) for r in rows if len(r) > 2 and re.fullmatch("[0-9a-f]{16}", r[0])]
    assert starts == sorted(starts, reverse=True) and len(set(starts)) == len(starts)
    assert sum(1 for line in result.stdout.splitlines() if "anonymous" in line) == n
    # In a terminal 40 rows high, folded to fit, the landmarks kept, in order.
    from procmap.views import snapshot as snapshots
    from procmap.views.snapshot import replay

    picture = map_picture(replay(snapshots.read(str(maps))))
    drawn = render(Diagram(picture, height=40), 120, 40).splitlines()
    assert len(drawn) <= 40
    labels = [b.label for b in fold(picture, 40 - 2 - 3).bands]
    assert labels.index("stack") > labels.index("text")
    assert " mappings " in "".join(drawn)  # a folded band: "N mappings"
