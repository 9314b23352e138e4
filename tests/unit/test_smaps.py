"""smaps parsing and the sharing of a split mapping's figures: pure, over saved bytes."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from procmap.classify.resident import _share, attribute, split_mappings
from procmap.kernel.maps import parse_maps
from procmap.kernel.smaps import maps_text_of, page_states, parse_rollup, parse_smaps
from procmap.model import BY_PAGES, BY_SIZE, FIGURES, WHOLE, Mapping, Region, Resident, total

DATA = Path(__file__).resolve().parents[1] / "data" / "maps"
PAGE = 4096


def test_parse_saved_smaps_of_the_lesson_sample():
    text = (DATA / "lesson-pie.smaps").read_bytes()
    mappings, figures = parse_smaps(text)
    assert mappings == parse_maps(maps_text_of(text))
    assert len(mappings) == text.count(b"\nVmFlags:") + (text[:8] == b"VmFlags:")
    assert len(figures) == len(mappings)
    # Summed, the figures are smaps_rollup's, read right after (PSS apart: rounding).
    rolled = parse_rollup((DATA / "lesson-pie.smaps_rollup").read_bytes())
    ours = total(figures)
    for name in ("rss", "shared_clean", "private_clean", "private_dirty", "anonymous", "swap"):
        assert getattr(ours, name) == getattr(rolled, name), name
    assert 0 <= rolled.pss - ours.pss < len(mappings) << 10
    heap = next(f for m, f in zip(mappings, figures) if m.path == "[heap]")
    assert heap.rss == heap.anonymous == heap.private_dirty > 0


def test_fields_missing_on_older_kernels_are_zero():
    text = b"00400000-00401000 r-xp 00000000 08:01 12 /bin/x\nSize: 4 kB\nRss: 4 kB\n"
    [m], [f] = parse_smaps(text)
    assert m.path == "/bin/x" and f == Resident(rss=4096)


def test_page_states_reads_present_and_swapped_bits():
    entries = [1 << 63 | 0x1234, 0, 1 << 62 | 5 << 5, 1 << 63 | 1 << 61]
    assert page_states(struct.pack("=4Q", *entries)) == "r.sr"


def region(start, end, kind="data"):
    return Region(start, end, "rw-p", 0, "08:01", 1, "/x", kind, kind)


def test_data_and_bss_in_one_page_share_by_bytes():
    # One 2-page mapping: data is the first page and a quarter of the second,
    # bss the rest.  Both pages resident, 8 KiB of RSS.
    m = Mapping(0x10000, 0x12000, "rw-p", 0, "08:01", 1, "/x")
    regions = [region(0x10000, 0x11400), region(0x11400, 0x12000, "bss")]
    f = Resident(rss=8192, pss=8192, private_dirty=8192, anonymous=4096)
    out, how = attribute([m], [f], regions, {m.start: "rr"}, PAGE)
    assert how == [BY_PAGES, BY_PAGES]
    assert [r.rss for r in out] == [5120, 3072]  # 5 KiB of bytes, 3 KiB of bytes
    assert [r.anonymous for r in out] == [3072, 1024]  # 2.5 and 1.5 KiB, in whole KiB
    assert total(out) == f


def test_swap_follows_swapped_pages():
    m = Mapping(0x10000, 0x14000, "rw-p", 0, "00:00", 0, None)
    regions = [region(0x10000, 0x12000, "heap"), region(0x12000, 0x14000, "mmap")]
    f = Resident(rss=8192, swap=8192, swap_pss=8192)
    out, _ = attribute([m], [f], regions, {m.start: "rrss"}, PAGE)
    assert [(r.rss, r.swap) for r in out] == [(8192, 0), (0, 8192)]


def test_without_pagemap_figures_are_shared_by_size():
    m = Mapping(0x10000, 0x14000, "rw-p", 0, "00:00", 0, None)
    regions = [region(0x10000, 0x11000), region(0x11000, 0x14000)]
    out, how = attribute([m], [Resident(rss=4096)], regions, {}, PAGE)
    assert how == [BY_SIZE, BY_SIZE] and [r.rss for r in out] == [1024, 3072]


def test_whole_mappings_keep_their_figures():
    maps = [
        Mapping(0x10000, 0x11000, "r--p", 0, "08:01", 1, "/x"),
        Mapping(0x11000, 0x13000, "rw-p", 0, "00:00", 0, None),
    ]
    regions = [region(0x10000, 0x11000), region(0x11000, 0x12000), region(0x12000, 0x13000)]
    figures = [Resident(rss=4096), Resident(rss=8192)]
    assert split_mappings(maps, regions) == [maps[1]]
    out, how = attribute(maps, figures, regions, {}, PAGE)
    assert how == [WHOLE, BY_SIZE, BY_SIZE] and out[0] == figures[0]


@given(
    st.integers(0, 1 << 30).map(lambda k: k << 10),
    st.lists(st.integers(0, 1 << 40), min_size=1, max_size=20),
)
def test_shares_add_up_exactly(value, weights):
    parts = _share(value, weights)
    assert sum(parts) == value
    assert all(p >= 0 and p % 1024 == 0 for p in parts)
    whole = sum(weights)
    if whole:
        # Each part is within one KiB of its exact proportion.
        for p, w in zip(parts, weights):
            assert abs(p - value * w / whole) <= 1024


@given(st.data())
def test_attribute_keeps_every_total(data):
    pages = data.draw(st.integers(1, 64))
    m = Mapping(0x100000, 0x100000 + pages * PAGE, "rw-p", 0, "00:00", 0, None)
    cuts = sorted(set(data.draw(st.lists(st.integers(m.start + 1, m.end - 1), max_size=6))))
    bounds = [m.start, *cuts, m.end]
    regions = [region(a, b) for a, b in zip(bounds, bounds[1:])]
    f = Resident(*(data.draw(st.integers(0, 1 << 20)) << 10 for _ in FIGURES))
    state = data.draw(st.text("rs.", min_size=pages, max_size=pages))
    states = data.draw(st.sampled_from([{}, {m.start: state}]))
    out, how = attribute([m], [f], regions, states, PAGE)
    assert len(out) == len(regions) and total(out) == f
