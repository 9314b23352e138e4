"""procmap.sampler, the pure parts: diff_maps (changed lines) and diff_events (what they mean).

diff_maps is checked against its contract, not its output: applying the hunks
to the old text gives the new one, every hunk is whole lines on both sides,
hunks are in order, and nothing outside them differs.  The texts are maps
files as format_mapping writes them (unique lines in address order), large
enough (> 8 KiB, changes far apart) that the bytes.find probe splits them.

diff_events is checked on small hand-written maps, classified as a whole
with classify(): one test per kind of kernel change.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procmap.classify import classify
from procmap.kernel.maps import format_mapping, parse_maps
from procmap.live.diff import _GRAIN, _SMALL, Hunk, diff_maps
from procmap.live.events import Change, Event, describe, diff_events
from procmap.live.sampler import _group
from procmap.model import Detail, Facts, Mapping

PAGE = 0x1000
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------- diff_maps: helpers


def text_of(mappings: list[Mapping]) -> bytes:
    return b"".join(os.fsencode(format_mapping(m)) + b"\n" for m in mappings)


def apply(old: bytes, new: bytes, hunks: list[Hunk]) -> bytes:
    out, pos = [], 0
    for h in hunks:
        out.append(old[pos : h.old_start])
        out.append(new[h.new_start : h.new_end])
        pos = h.old_end
    out.append(old[pos:])
    return b"".join(out)


def line_start(text: bytes, i: int) -> bool:
    return 0 <= i <= len(text) and (i == 0 or text[i - 1] == 0x0A)


def check_contract(old: bytes, new: bytes) -> list[Hunk]:
    hunks = diff_maps(old, new)
    assert all(isinstance(h, Hunk) for h in hunks)
    if old == new:
        assert hunks == []
    assert apply(old, new, hunks) == new
    prev_o = prev_n = 0
    for h in hunks:
        assert prev_o <= h.old_start <= h.old_end <= len(old), (h, hunks)
        assert prev_n <= h.new_start <= h.new_end <= len(new), (h, hunks)
        # Outside the hunks both texts are equal, at offsets that agree.
        assert old[prev_o : h.old_start] == new[prev_n : h.new_start], (h, hunks)
        for text, i in (
            (old, h.old_start),
            (old, h.old_end),
            (new, h.new_start),
            (new, h.new_end),
        ):
            assert line_start(text, i), (h, text[max(i - 40, 0) : i + 40])
        # A hunk holds a change (an unchanged stretch is trimmed away, never reported).
        assert old[h.old_start : h.old_end] != new[h.new_start : h.new_end], h
        prev_o, prev_n = h.old_end, h.new_end
    assert old[prev_o:] == new[prev_n:]
    return hunks


# Paths as the kernel prints them: spaces inside and at the end, backslashes,
# the \012 escape, UTF-8 and bytes that are not (surrogateescape), kernel names.
ODD_PATHS = [
    None,
    None,
    None,
    "[heap]",
    "[stack]",
    "[anon:glibc: malloc arena]",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/tmp/with space/lib x.so",
    "/tmp/trailing spaces  ",
    "/tmp/back\\slash\\012newline",
    "/tmp/ünï cödé",
    os.fsdecode(b"/tmp/\xff\xfe not utf-8"),
    "/memfd:x (deleted)",
]


class Slots:
    """A maps text built from numbered slots, each 1 MiB of address space.

    A slot holds at most one mapping, so any choice of slots is a valid maps
    text (unique lines, in address order), and an edit to one slot never
    disturbs another.  Variants are drawn from a seeded Random: hypothesis
    chooses the shape (sizes, which slots, which edits), the Random fills in
    the bytes, so big texts stay cheap to generate.
    """

    def __init__(self, seed: int, base: int):
        self.seed = seed
        self.base = base

    def mapping(self, slot: int, version: int, trap: int | None = None) -> Mapping:
        rng = random.Random(self.seed * 1_000_003 + slot * 101 + version)
        start = self.base + slot * 0x100000 + rng.randrange(0, 64) * PAGE
        end = start + rng.randrange(1, 128) * PAGE
        perms = rng.choice(["r--p", "rw-p", "r-xp", "---p", "rw-s"])
        path = rng.choice(ODD_PATHS)
        if trap is not None:
            # This line ends with the whole text of another line (a path may hold
            # anything but a newline): bytes.find finds that line here first,
            # inside this one, where it is not a line.
            path = "/trap/" + format_mapping(self.mapping(trap, 0))
        if path is None or path.startswith("["):
            return Mapping(start, end, perms, 0, "00:00", 0, path)
        dev = rng.choice(["fe:01", "08:02", "00:2a"])
        return Mapping(
            start, end, perms, rng.randrange(0, 256) * PAGE, dev, rng.randrange(1, 1 << 40), path
        )


@st.composite
def edited_maps(draw, min_lines=1, max_lines=300, min_edits=0, max_edits=12):
    """(old, new): a maps text and the same text after random edits of its lines."""
    seed = draw(st.integers(0, 2**32 - 1))
    # 0xff000000 + 300 MiB crosses 2^32: addresses go from 8 to 9 hex digits mid-text.
    base = draw(st.sampled_from([0x400000, 0xFF000000, 0x7F0000000000]))
    slots = Slots(seed, base)
    count = draw(st.integers(min_lines, max_lines))
    spare = count // 3 + 2  # slots left empty, to insert into
    total = count + spare
    present = sorted(draw(st.permutations(range(total)))[:count])
    traps = draw(st.sets(st.sampled_from(present), max_size=4)) if present else set()
    old_state = {
        slot: slots.mapping(slot, 0, slot + 1 if slot in traps and slot + 1 < total else None)
        for slot in present
    }
    new_state = dict(old_state)
    edits = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["insert", "delete", "modify", "nudge"]),
                st.integers(0, total - 1),
                st.integers(1, 50),
            ),
            min_size=min_edits,
            max_size=max_edits,
        )
    )
    for op, slot, version in edits:
        m = new_state.get(slot)
        if op == "insert" and m is None:
            new_state[slot] = slots.mapping(slot, version)
        elif op == "delete" and m is not None:
            del new_state[slot]
        elif op == "modify" and m is not None:
            new_state[slot] = slots.mapping(slot, version)
        elif op == "nudge" and m is not None:
            # The smallest change: one byte deep inside the line (end, perms or inode).
            which = version % 3
            if which == 0:
                new_state[slot] = m._replace(end=m.end + PAGE)
            elif which == 1:
                new_state[slot] = m._replace(perms="r--p" if m.perms != "r--p" else "rw-p")
            else:
                new_state[slot] = m._replace(inode=m.inode + 1, dev="fe:01")
    old = text_of([old_state[s] for s in sorted(old_state)])
    new = text_of([new_state[s] for s in sorted(new_state)])
    return old, new


# --------------------------------------------------------------- diff_maps: properties


@FAST
@given(edited_maps())
def test_diff_maps_contract_on_random_edits(texts):
    old, new = texts
    check_contract(old, new)
    check_contract(new, old)  # and backwards: inserts become deletes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_maps(min_lines=150, max_lines=400, min_edits=3, max_edits=10))
def test_diff_maps_contract_on_big_texts_with_changes_far_apart(texts):
    # 150+ lines are > 8 KiB: longer than _SMALL on both sides, so the probe
    # (bytes.find of an old line in the new text) splits the work.
    old, new = texts
    assert len(old) > 2 * _SMALL
    check_contract(old, new)
    check_contract(new, old)


@FAST
@given(st.data())
def test_diff_maps_keeps_changes_far_apart_in_separate_hunks(data):
    # Single-line changes spread over a text well over 8 KiB.  Only a stretch
    # shorter than _SMALL is reported whole; a longer one is split at an old
    # line found again in the new text.  So two changes share a hunk only if
    # the hunk is short: correct either way, but the point of the probe.
    seed = data.draw(st.integers(0, 2**32 - 1))
    count = data.draw(st.integers(200, 500))
    slots = Slots(seed, 0x7F0000000000)
    lines = [slots.mapping(i, 0) for i in range(count)]
    changed = sorted(data.draw(st.sets(st.integers(0, count - 1), min_size=2, max_size=8)))
    new_lines = list(lines)
    for i in changed:
        new_lines[i] = lines[i]._replace(perms="---p" if lines[i].perms != "---p" else "rw-p")
    old, new = text_of(lines), text_of(new_lines)
    hunks = check_contract(old, new)
    offsets = [0]
    for m in lines:
        offsets.append(offsets[-1] + len(text_of([m])))
    for i in changed:
        holding = [h for h in hunks if h.old_start <= offsets[i] and offsets[i + 1] <= h.old_end]
        assert len(holding) == 1, (i, hunks)
    for h in hunks:
        inside = [i for i in changed if h.old_start <= offsets[i] < h.old_end]
        assert inside, h  # no hunk without a change
        if len(inside) > 1:
            assert h.old_end - h.old_start <= _SMALL + 2 * SLACK, (h, inside)


# A hunk may start or end up to _GRAIN bytes (then to the line's edge) away
# from the change: the galloping memcmp stops that close and no closer.
SLACK = _GRAIN + 200


def near(h: Hunk, old_a: int, old_b: int, new_a: int, new_b: int) -> None:
    """Hunk h holds old[old_a:old_b] -> new[new_a:new_b], plus at most SLACK bytes a side."""
    assert h.old_start <= old_a and old_b <= h.old_end, h
    assert h.new_start <= new_a and new_b <= h.new_end, h
    assert old_a - h.old_start <= SLACK and h.old_end - old_b <= SLACK, h
    assert h.old_start - h.new_start == old_a - new_a, h  # the same lines before it


# --------------------------------------------------------------- diff_maps: by hand


def lines(*specs: tuple[int, int, str]) -> list[Mapping]:
    """Anonymous-or-not mappings from (start page, end page, path or None)."""
    out = []
    for s, e, path in specs:
        inode = 7 if path and path.startswith("/") else 0
        out.append(
            Mapping(s * PAGE, e * PAGE, "rw-p", 0, "fe:01" if inode else "00:00", inode, path)
        )
    return out


BASE = lines(
    (0x400, 0x401, "/bin/x"),
    (0x500, 0x520, "[heap]"),
    (0x600, 0x610, None),
    (0x7FF0, 0x8000, "[stack]"),
)


def test_diff_maps_identical_texts_give_nothing():
    text = text_of(BASE)
    assert diff_maps(text, text) == []
    assert diff_maps(b"", b"") == []


def test_diff_maps_change_at_the_first_line():
    old = text_of(BASE)
    new = text_of([BASE[0]._replace(perms="r-xp")] + BASE[1:])
    first = len(text_of(BASE[:1]))
    [h] = check_contract(old, new)
    near(h, 0, first, 0, first)
    assert h.old_start == 0


def test_diff_maps_change_at_the_last_line():
    old = text_of(BASE)
    new = text_of(BASE[:-1] + [BASE[-1]._replace(start=BASE[-1].start - 4 * PAGE)])
    head = len(text_of(BASE[:-1]))
    [h] = check_contract(old, new)
    near(h, head, len(old), head, len(new))
    assert (h.old_end, h.new_end) == (len(old), len(new))


def test_diff_maps_line_added_at_either_end():
    head = lines((0x100, 0x101, None))
    tail = lines((0x9000, 0x9001, "[vvar]"))
    old = text_of(BASE)
    assert check_contract(old, text_of(head + BASE)) == [Hunk(0, 0, 0, len(text_of(head)))]
    assert check_contract(old, text_of(BASE + tail)) == [
        Hunk(len(old), len(old), len(old), len(old) + len(text_of(tail)))
    ]


def test_diff_maps_everything_replaced():
    old = text_of(BASE)
    new = text_of(lines((0x10, 0x11, None), (0x20, 0x21, "/y")))
    assert check_contract(old, new) == [Hunk(0, len(old), 0, len(new))]


def test_diff_maps_from_and_to_an_empty_text():
    # A process whose mm went away prints nothing; one that just exec'ed prints all.
    text = text_of(BASE)
    assert check_contract(b"", text) == [Hunk(0, 0, 0, len(text))]
    assert check_contract(text, b"") == [Hunk(0, len(text), 0, 0)]


def test_diff_maps_change_in_the_last_bytes_of_a_line():
    # Lines that differ only at their end (the path's last byte): the common
    # prefix runs deep into the line and must be cut back to its start.
    a = lines((0x400, 0x401, "/tmp/a"), (0x500, 0x501, "/tmp/libx.so.1"), (0x600, 0x601, "/tmp/c"))
    b = a[:1] + [a[1]._replace(path="/tmp/libx.so.2")] + a[2:]
    hunks = check_contract(text_of(a), text_of(b))
    assert len(hunks) == 1


def test_diff_maps_new_line_ends_with_the_whole_old_line():
    # The replacing line's path holds the whole line it replaces, so the texts
    # end alike from inside the new line: the common suffix covers all of the
    # old stretch but starts mid-line in the new one, and must be cut back to
    # the next line start.  Both ways round.
    a, c = anon(0x400000, 0x401000), anon(0x900000, 0x901000)
    x = anon(0x500000, 0x501000)
    y = Mapping(0x500000, 0x502000, "r--p", 0, "fe:01", 5, "/t/" + format_mapping(x))
    old, new = text_of([a, x, c]), text_of([a, y, c])
    assert new.endswith(old[len(text_of([a])) :])
    start = len(text_of([a]))
    [h] = check_contract(old, new)
    near(h, start, start + len(text_of([x])), start, start + len(text_of([y])))
    assert h.old_end == start + len(text_of([x]))  # not in the middle of c's line
    [h] = check_contract(new, old)
    near(h, start, start + len(text_of([y])), start, start + len(text_of([x])))
    assert h.new_end == start + len(text_of([x]))


def test_diff_maps_a_line_that_is_the_tail_of_another_line():
    # Every line's path holds the whole next line, so bytes.find meets each
    # probed line first inside its predecessor.  Changes at both ends keep the
    # changed stretch long (> _SMALL) so the probe runs; a removed line in the
    # middle is one the probe may pick, found only as that tail.
    count = 160
    mappings = []
    for i in reversed(range(count)):
        start = 0x7F0000000000 + i * 0x100000
        nxt = format_mapping(mappings[0]) if mappings else "end"
        mappings.insert(
            0, Mapping(start, start + PAGE, "r--p", 0, "fe:01", 1000 + i, "/trap/" + nxt)
        )
    old = text_of(mappings)
    assert len(old) > 4 * _SMALL
    for gone in (count // 2, count // 4, 3 * count // 4, count // 2 + 1):
        new_maps = list(mappings)
        new_maps[0] = new_maps[0]._replace(perms="r-xp")
        new_maps[-1] = new_maps[-1]._replace(perms="r-xp")
        del new_maps[gone]
        check_contract(old, text_of(new_maps))
        check_contract(text_of(new_maps), old)


def test_diff_maps_lines_that_are_tails_of_others_in_random_texts():
    # The same trap, where the changed line is the trapped one or its neighbour.
    rng = random.Random(7)
    for _ in range(30):
        count = rng.randrange(120, 260)
        mappings = []
        for i in reversed(range(count)):
            start = 0x7F0000000000 + i * 0x100000
            path = (
                None if rng.random() < 0.3 or not mappings else "/t/" + format_mapping(mappings[0])
            )
            inode = 5 if path else 0
            mappings.insert(
                0,
                Mapping(start, start + PAGE, "rw-p", 0, "fe:01" if inode else "00:00", inode, path),
            )
        new_maps = list(mappings)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(new_maps))
            if rng.random() < 0.5:
                del new_maps[i]
            else:
                new_maps[i] = new_maps[i]._replace(perms="r--p")
        check_contract(text_of(mappings), text_of(new_maps))


# --------------------------------------------------------------- diff_events


def state(*mappings: Mapping):
    """(mappings, groups) as the sampler keeps them: classified whole, regions per mapping."""
    maps = parse_maps(text_of(list(mappings)))
    assert maps == list(mappings)  # the test's own lines are valid maps lines
    result = classify(maps, {}, Facts())
    return maps, _group(maps, result.regions)


def events(old: list[Mapping], new: list[Mapping]) -> list[Event]:
    return diff_events(*state(*old), *state(*new))


def anon(start: int, end: int, perms: str = "rw-p", path: str | None = None) -> Mapping:
    return Mapping(start, end, perms, 0, "00:00", 0, path)


def file_map(start, end, path, inode, perms="r--p", offset=0) -> Mapping:
    return Mapping(start, end, perms, offset, "fe:01", inode, path)


HEAP = anon(0x555555560000, 0x555555581000, path="[heap]")
STACK = anon(0x7FFFFFFDE000, 0x7FFFFFFFF000, path="[stack]")
LIB = file_map(0x7F0000100000, 0x7F0000104000, "/usr/lib/libz.so", 42)
MID = anon(0x7F0000000000, 0x7F0000010000)


def test_change_is_falsy_only_when_nothing_happened():
    assert not Change([], [], [])
    assert Change([], [5], [])
    assert Change([], [], [5])
    assert Change([], [], [], exec=True)
    assert Change([events([], [MID])[0]], [], [])


def test_no_change_no_events():
    assert events([HEAP, MID, STACK], [HEAP, MID, STACK]) == []


def test_heap_end_moves_up_is_one_grow():
    grown = HEAP._replace(end=HEAP.end + 0x21000)
    assert events([HEAP, MID, STACK], [grown, MID, STACK]) == [
        Event(
            "grow",
            "heap",
            Detail.BRK_HEAP,
            grown.start,
            grown.end,
            "[heap]",
            0x21000,
            "up",
            "rw-p",
            None,
            (HEAP.start, HEAP.end, "rw-p"),
        )
    ]


def test_stack_start_moves_down_is_one_grow_downward():
    grown = STACK._replace(start=STACK.start - 0x3000)
    [e] = events([HEAP, STACK], [HEAP, grown])
    assert (e.event, e.kind, e.direction, e.bytes) == ("grow", "stack", "down", 0x3000)
    assert (e.start, e.end, e.before) == (grown.start, grown.end, (STACK.start, STACK.end, "rw-p"))


def test_a_reservation_extended_and_committed_is_a_commit_and_a_grow():
    # A runtime's heap (Go's) as read-write memory under its no-access reserve;
    # it reserves the next arena above and commits into both: the old span's
    # reserve is made read-write (the two mappings merge), and the span grows.
    base, mib = 0x7E0000000000, 1 << 20
    old = [anon(base, base + 4 * mib), anon(base + 4 * mib, base + 64 * mib, "---p")]
    new = [anon(base, base + 100 * mib), anon(base + 100 * mib, base + 128 * mib, "---p")]
    found = [(e.event, e.direction, e.bytes, e.perms) for e in events(old, new)]
    assert found == [
        ("merge", None, 64 * mib, "rw-p"),
        ("protect", None, 60 * mib, "rw-p"),
        ("grow", "up", 36 * mib, "rw-p"),
        ("map", None, 28 * mib, "---p"),
    ]
    # Downward, as a stack-like reservation would: the grow comes first.
    low = [anon(base - 8 * mib, base + 4 * mib), old[1]]
    found = [(e.event, e.direction, e.bytes) for e in events(old, low)]
    assert found == [("grow", "down", 8 * mib)]


def test_shrinks_both_ways():
    # direction is the way the moving edge went (watch.py prints "its top moved
    # down" for a shrink with direction "down").
    shrunk = HEAP._replace(end=HEAP.end - 0x10000)
    [e] = events([HEAP], [shrunk])
    assert (e.event, e.kind, e.direction, e.bytes, e.end) == (
        "shrink",
        "heap",
        "down",
        0x10000,
        shrunk.end,
    )
    shrunk = STACK._replace(start=STACK.start + 0x2000)
    [e] = events([STACK], [shrunk])
    assert (e.event, e.kind, e.direction, e.bytes, e.start) == (
        "shrink",
        "stack",
        "up",
        0x2000,
        shrunk.start,
    )


def test_grow_at_both_ends_is_two_events():
    grown = MID._replace(start=MID.start - PAGE, end=MID.end + 2 * PAGE)
    got = events([MID], [grown])
    assert [(e.event, e.direction, e.bytes) for e in got] == [
        ("grow", "down", PAGE),
        ("grow", "up", 2 * PAGE),
    ]


def test_new_mapping_is_map_and_removed_one_is_unmap():
    [e] = events([HEAP, STACK], [HEAP, MID, STACK])
    assert (e.event, e.kind, e.detail, e.start, e.end, e.bytes, e.before) == (
        "map",
        "mmap",
        Detail.ANONYMOUS,
        MID.start,
        MID.end,
        MID.size,
        None,
    )
    [e] = events([HEAP, MID, STACK], [HEAP, STACK])
    assert (e.event, e.kind, e.start, e.end, e.bytes) == (
        "unmap",
        "mmap",
        MID.start,
        MID.end,
        MID.size,
    )


def test_first_page_made_read_only_is_split_and_protect():
    page = MID.start + PAGE
    new = [anon(MID.start, page, "r--p"), anon(page, MID.end)]
    assert events([HEAP, MID, STACK], [HEAP, *new, STACK]) == [
        Event("split", "mmap", Detail.ANONYMOUS, MID.start, MID.end, None, MID.size, None, "rw-p"),
        Event(
            "protect",
            "mmap",
            Detail.ANONYMOUS,
            MID.start,
            page,
            None,
            PAGE,
            None,
            "r--p",
            None,
            (MID.start, page, "rw-p"),
        ),
    ]


def test_first_page_made_writable_again_is_merge_and_protect():
    page = MID.start + PAGE
    old = [anon(MID.start, page, "r--p"), anon(page, MID.end)]
    assert events([HEAP, *old, STACK], [HEAP, MID, STACK]) == [
        Event("merge", "mmap", Detail.ANONYMOUS, MID.start, MID.end, None, MID.size, None, "rw-p"),
        Event(
            "protect",
            "mmap",
            Detail.ANONYMOUS,
            MID.start,
            page,
            None,
            PAGE,
            None,
            "rw-p",
            None,
            (MID.start, page, "r--p"),
        ),
    ]


def test_page_in_the_middle_protected_is_a_three_way_split():
    a, b = MID.start + 4 * PAGE, MID.start + 6 * PAGE
    got = events([MID], [anon(MID.start, a), anon(a, b, "---p"), anon(b, MID.end)])
    assert [(e.event, e.start, e.end) for e in got] == [
        ("split", MID.start, MID.end),
        ("protect", a, b),
    ]
    assert got[1].before == (a, b, "rw-p") and got[1].perms == "---p" and got[1].kind == "mmap"


def test_whole_mapping_protection_change_is_protect_only():
    [e] = events([HEAP, MID, STACK], [HEAP, MID._replace(perms="r--p"), STACK])
    assert (e.event, e.start, e.end, e.bytes, e.perms, e.before) == (
        "protect",
        MID.start,
        MID.end,
        MID.size,
        "r--p",
        (MID.start, MID.end, "rw-p"),
    )


def test_file_replaced_by_another_at_the_same_range_is_unmap_and_map():
    other = LIB._replace(inode=43, path="/usr/lib/libq.so")
    got = events([HEAP, LIB, STACK], [HEAP, other, STACK])
    assert [(e.event, e.path, e.start, e.end) for e in got] == [
        ("unmap", LIB.path, LIB.start, LIB.end),
        ("map", other.path, other.start, other.end),
    ]


def test_file_mapping_at_another_offset_is_not_the_same_memory():
    # Same file, same range, but offset moved: a new mmap, not a change of the old one.
    moved = LIB._replace(offset=LIB.offset + PAGE)
    assert [e.event for e in events([LIB], [moved])] == ["unmap", "map"]


def test_anonymous_replaced_by_file_is_unmap_and_map():
    mapped = file_map(MID.start, MID.end, "/tmp/data", 9)
    assert [(e.event, e.kind) for e in events([MID], [mapped])] == [
        ("unmap", "mmap"),
        ("map", "mmap"),
    ]


def test_file_mapping_shrinks_from_its_start():
    # munmap of a file mapping's first pages: the rest keeps its file offsets.
    shrunk = LIB._replace(start=LIB.start + PAGE, offset=LIB.offset + PAGE)
    [e] = events([LIB], [shrunk])
    assert (e.event, e.direction, e.bytes, e.path) == ("shrink", "up", PAGE, LIB.path)


def test_changes_far_apart_are_reported_in_address_order():
    got = events(
        [HEAP, MID, STACK],
        [HEAP._replace(end=HEAP.end + PAGE), STACK._replace(start=STACK.start - PAGE)],
    )
    assert [(e.event, e.kind) for e in got] == [
        ("grow", "heap"),
        ("unmap", "mmap"),
        ("grow", "stack"),
    ]


def test_regions_of_a_mapping_each_get_an_event():
    # An ELF image is several regions per mapping: each is reported, with its kind.
    old = [HEAP]
    new_maps, new_groups = state(HEAP, LIB)
    assert len(new_groups[1]) == 1  # no layout given: one file-mapping region
    got = diff_events(*state(*old), new_maps, new_groups)
    assert [(e.event, e.kind, e.detail) for e in got] == [("map", "mmap", Detail.FILE)]


def test_event_to_dict_has_before_only_when_known():
    grown = HEAP._replace(end=HEAP.end + PAGE)
    [e] = events([HEAP], [grown])
    d = e.to_dict()
    assert d["before"] == {"start": hex(HEAP.start), "end": hex(HEAP.end), "perms": "rw-p"}
    assert d["event"] == "grow" and d["bytes"] == PAGE and d["direction"] == "up"
    [e] = events([], [MID])
    assert "before" not in e.to_dict()


def every_other_page(whole: Mapping, n: int) -> list[Mapping]:
    """`whole` after mprotect made n pages read-only, every other one from its second."""
    cuts = [whole.start + i * PAGE for i in range(2 * n + 1)] + [whole.end]
    return [anon(a, b, "r--p" if i % 2 else "rw-p") for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_split_into_many_then_merged_back(n):
    # mprotect of every other page, n times, and back: split/merge one event each,
    # and the n protects one event with a count.
    pieces = every_other_page(MID, n)
    got = events([MID], pieces)
    assert [(e.event, e.regions) for e in got] == [("split", 1), ("protect", n)]
    protect = got[1]
    assert protect.bytes == n * PAGE and protect.perms == "r--p"
    assert (protect.start, protect.end) == (MID.start + PAGE, MID.start + 2 * n * PAGE)
    assert protect.before == (protect.start, protect.end, "rw-p")
    back = events(pieces, [MID])
    assert [(e.event, e.regions) for e in back] == [("merge", 1), ("protect", n)]
    assert back[1].bytes == n * PAGE and back[1].perms == "rw-p"


def test_mprotect_churn_over_thousands_of_pages_is_two_events():
    # 2 MiB + 5,000 pages cut into 10,001 mappings and back: a split (a merge) and
    # one protect, counted, and at a cost that grows with the pieces, not their square.
    whole = anon(MID.start, MID.start + 10_001 * PAGE)
    pieces = every_other_page(whole, 5000)
    got = events([HEAP, whole, STACK], [HEAP, *pieces, STACK])
    assert [(e.event, e.regions, e.bytes) for e in got] == [
        ("split", 1, whole.size),
        ("protect", 5000, 5000 * PAGE),
    ]
    assert got[1].to_dict()["regions"] == 5000
    back = events([HEAP, *pieces, STACK], [HEAP, whole, STACK])
    assert [(e.event, e.regions) for e in back] == [("merge", 1), ("protect", 5000)]


def test_protection_moved_by_a_page_pairs_each_overlap():
    # The read-only pages moved down by one: each overlap whose permissions differ
    # is a protect, and nothing is split or merged (three mappings each side).
    a = MID.start
    old = [
        anon(a, a + 2 * PAGE),
        anon(a + 2 * PAGE, a + 4 * PAGE, "r--p"),
        anon(a + 4 * PAGE, MID.end),
    ]
    new = [anon(a, a + PAGE), anon(a + PAGE, a + 3 * PAGE, "r--p"), anon(a + 3 * PAGE, MID.end)]
    got = events(old, new)
    assert [(e.event, e.start, e.end, e.perms, e.before) for e in got] == [
        ("protect", a + PAGE, a + 2 * PAGE, "r--p", (a + PAGE, a + 2 * PAGE, "rw-p")),
        ("protect", a + 3 * PAGE, a + 4 * PAGE, "rw-p", (a + 3 * PAGE, a + 4 * PAGE, "r--p")),
    ]


def test_a_sample_with_many_events_is_bounded():
    # 300 separate mappings (a page apart) unmapped in one sample: 300 components,
    # told as one unmap of 300 regions.
    many = [anon(MID.start + 2 * i * PAGE, MID.start + (2 * i + 1) * PAGE) for i in range(300)]
    got = events([HEAP, *many, STACK], [HEAP, STACK])
    assert [(e.event, e.regions, e.bytes) for e in got] == [("unmap", 300, 300 * PAGE)]
    assert (got[0].start, got[0].end) == (many[0].start, many[-1].end)
    # A few are each told alone, as before.
    got = events([HEAP, *many[:3], STACK], [HEAP, STACK])
    assert [(e.event, e.regions, e.start) for e in got] == [("unmap", 1, m.start) for m in many[:3]]


def test_coalesced_events_are_told_once_with_where():
    whole = anon(MID.start, MID.start + 11 * PAGE)
    pieces = every_other_page(whole, 5)
    low, high = whole.start + PAGE, whole.start + 10 * PAGE
    assert describe(Change(events([whole], pieces), [], [])) == [
        "mprotect made 20 KiB of an anonymous mapping read-only"
        f" in 5 places between {low:#x} and {high:#x} (a mapping split)"
    ]
    assert describe(Change(events(pieces, [whole]), [], [])) == [
        "mprotect made 20 KiB of an anonymous mapping read-write"
        f" in 5 places between {low:#x} and {high:#x} (mappings merged)"
    ]
    many = [anon(MID.start + 2 * i * PAGE, MID.start + (2 * i + 1) * PAGE) for i in range(100)]
    assert describe(Change(events([*many], []), [], [])) == [
        f"400 KiB anonymous mapping went away in 100 places between {many[0].start:#x}"
        f" and {many[-1].end:#x}"
    ]
    # One region's event is told as before.
    assert describe(Change(events([whole], every_other_page(whole, 1)), [], [])) == [
        "mprotect made 4 KiB of an anonymous mapping read-only (a mapping split in two)"
    ]


def test_a_heap_committed_out_of_its_reservation_is_told_as_growth():
    """An allocator that grows by making reserved memory read-write (the JVM, Go's
    arenas, glibc's arenas) commits memory: that is what the sentence says."""
    before = (0xC0000000, 0xC0200000, "---p")
    common = (0xC0000000, 0xC0200000, None, 0x200000, None)
    commit = Event(
        "protect", "heap", Detail.JAVA_HEAP, *common, "rw-p", None, before, None, 1, "jvm"
    )
    back = Event(
        "protect",
        "heap",
        Detail.GO_HEAP_RESERVE,
        *common,
        "---p",
        None,
        (0xC0000000, 0xC0200000, "rw-p"),
        None,
        1,
        "go",
    )
    lines = describe(Change([commit, back], [], []))
    assert lines == [
        "Java heap: 2 MiB committed (made read-write)",
        "Go heap arena, reserved, not yet committed: 2 MiB uncommitted (made inaccessible)",
    ]
    assert commit.to_dict()["allocator"] == "jvm"
