"""classify.sharing.find_sharing on made-up maps and pagemap entries: the rules, one by one.

The real processes are in tests/integration/test_shared.py; here each rule gets a case
no machine produces on demand (a process gone mid-read, an unrelated process whose
pages look shared, a mapping split among regions).
"""

from __future__ import annotations

from procmap.classify.sharing import Neighbour, find_sharing
from procmap.kernel.smaps import PM_EXCLUSIVE, PM_FILE, PM_PRESENT
from procmap.model import Detail, Mapping, Region, Resident

PAGE = 4096
ME, CHILD, STRANGER = 100, 101, 200
PROGRAM = ("fd:00", 42)
ZERO = 7  # the zero page's frame


def mapping(start, pages, perms="r--s", offset=0, inode=0, path=None):
    dev = "fd:00" if inode else "00:00"
    return Mapping(start, start + pages * PAGE, perms, offset, dev, inode, path)


def region(m: Mapping, start=None, end=None, kind="mmap", detail=Detail.FILE) -> Region:
    return Region(start or m.start, end or m.end, m.perms, m.offset, m.dev, m.inode, m.path,
                  kind, detail)  # fmt: skip


def figures(shared_pages=0, private_pages=0) -> Resident:
    return Resident(
        rss=(shared_pages + private_pages) * PAGE,
        shared_clean=shared_pages * PAGE,
        private_dirty=private_pages * PAGE,
    )


def present(frame=0, exclusive=False, file=False) -> int:
    return PM_PRESENT | frame | (PM_EXCLUSIVE if exclusive else 0) | (PM_FILE if file else 0)


def program(start=0x1000) -> Mapping:
    return mapping(start, 1, "r-xp", inode=PROGRAM[1], path="/bin/prog")


def run(mine: list[Mapping], figs, others, pages=None, zero=None, regions=None, ppid=1):
    pages = pages or {}

    def read(pid, start, end):
        got = pages.get((pid, start))
        return None if got is None else got[: (end - start) // PAGE]

    regions = regions or [region(m) for m in mine]
    return find_sharing(ME, ppid, mine, figs, regions, others, read, PAGE, zero, program=PROGRAM)


def test_object_sharers_map_an_overlapping_part_and_writers_map_it_shared_writable():
    file = mapping(0x10000, 4, inode=5, path="/data")
    others = [
        Neighbour(CHILD, "reader", 1, [mapping(0x50000, 2, "r--s", 0x2000, 5, "/data")]),
        Neighbour(STRANGER, "writer", 1, [mapping(0x60000, 1, "rw-s", 0x3000, 5, "/data")]),
        Neighbour(300, "elsewhere", 1, [mapping(0x70000, 1, "rw-s", 0x8000, 5, "/data")]),
        Neighbour(301, "private", 1, [mapping(0x80000, 4, "rw-p", 0, 5, "/data")]),
        Neighbour(ME, "me", 1, [file]),  # the process itself, if listed, is no sharer
    ]
    pages = {(ME, 0x10000): [present(file=True)] * 4}
    (s,) = run([file], [figures(2, 2)], others, pages)
    assert s.processes == [CHILD, STRANGER, 301]
    assert s.writers == [STRANGER]  # a private writable mapping writes its own copies
    assert (s.shared_pages, s.exclusive_pages, s.method) == (2, 2, "exclusive-bit")
    assert all(x.via == "object" and x.pages is None for x in s.sharers)


def test_with_frames_an_object_sharer_gets_the_pages_it_maps_at_the_same_offset():
    file = mapping(0x10000, 4, inode=5, path="/data")
    theirs = mapping(0x50000, 3, "r--s", 0x1000, 5, "/data")  # file pages 1-3
    pages = {
        (ME, 0x10000): [present(10), present(11), present(12), 0],
        (CHILD, 0x50000): [present(11), present(99), 0],  # page 1 the same; 2 another
    }
    others = [Neighbour(CHILD, "c", ME, [theirs])]
    (s,) = run([file], [figures(1, 2)], others, pages, zero=ZERO)
    assert s.method == "frames"
    assert [(x.pid, x.pages) for x in s.sharers] == [(CHILD, 1)]


def test_with_frames_copy_on_write_is_the_same_frame_at_the_same_address_not_the_zero_page():
    heap = mapping(0x20000, 4, "rw-p", path="[heap]")
    pages = {
        (ME, 0x20000): [present(50), present(51), present(ZERO), present(53, exclusive=True)],
        (CHILD, 0x20000): [present(50), present(61), present(ZERO), present(63)],
        (STRANGER, 0x21000): [present(51)],  # a frame the stranger holds too (KSM, say)
    }
    others = [
        Neighbour(CHILD, "child", ME, [mapping(0x20000, 4, "rw-p", path="[heap]")]),
        Neighbour(STRANGER, "s", 1, [mapping(0x21000, 1, "rw-p")]),
        Neighbour(300, "far", 1, [mapping(0x90000, 4, "rw-p")]),
    ]
    (s,) = run([heap], [figures(2, 1)], others, pages, zero=ZERO)
    assert [(x.pid, x.via, x.pages) for x in s.sharers] == [
        (CHILD, "copy-on-write", 1),
        (STRANGER, "copy-on-write", 1),
    ]
    assert s.writers == []


def test_without_frames_copy_on_write_sharers_are_relatives_running_the_same_program():
    anon = mapping(0x20000, 2, "rw-p")
    shared_anon = [present(), present()]  # not exclusive, not file: shared (or the zero page)
    pages = {(pid, 0x20000): shared_anon for pid in (ME, CHILD, STRANGER, 301, 302)}
    same = [anon, program()]
    others = [
        Neighbour(CHILD, "child", ME, same),
        Neighbour(STRANGER, "stranger", 1, same),  # same program, unrelated
        Neighbour(301, "exec'd", ME, [anon]),  # a child that ran another program
        Neighbour(302, "sibling", 50, same),
        Neighbour(50, "parent", 1, [program()]),
    ]
    (s,) = run([anon], [figures(2, 0)], others, pages, ppid=50)
    assert [(x.pid, x.pages) for x in s.sharers] == [(CHILD, 2), (302, 2)]


def test_without_frames_no_copy_on_write_when_smaps_shares_nothing():
    """Present, not exclusive, anonymous: with no Shared_* in smaps, only the zero page."""
    anon = mapping(0x20000, 2, "rw-p")
    pages = {(pid, 0x20000): [present(), present()] for pid in (ME, CHILD)}
    others = [Neighbour(CHILD, "child", ME, [anon, program()])]
    (s,) = run([anon], [figures(0, 0)], others, pages)
    assert s.sharers == ()


def test_a_process_gone_mid_read_is_no_sharer_and_no_error():
    anon = mapping(0x20000, 2, "rw-p")
    pages = {(ME, 0x20000): [present(5), present(6)]}  # the child's pagemap: gone
    others = [Neighbour(CHILD, "child", ME, [anon, program()])]
    (s,) = run([anon], [figures(2, 0)], others, pages, zero=ZERO)
    assert s.sharers == () and s.shared_pages == 2


def test_pagemap_unreadable_leaves_object_sharers_from_maps():
    file = mapping(0x10000, 2, inode=5, path="/data")
    others = [Neighbour(CHILD, "c", 1, [mapping(0x50000, 2, "r--s", 0, 5, "/data")])]
    (s,) = run([file], [figures(2, 0)], others)  # no pagemap for anyone
    assert s.method == "maps" and s.processes == [CHILD]


def test_a_split_mapping_shares_its_counts_out_by_the_exclusive_bit():
    m = mapping(0x30000, 4, "rw-p", 0, 9, "/lib")
    data = region(m, end=0x31800, kind="data", detail=Detail.DATA)
    bss = region(m, start=0x31800, kind="bss", detail=Detail.BSS_FILE_PAGE)
    entries = [present(exclusive=True), present(), present(), present(exclusive=True)]
    (d, b) = run([m], [figures(2, 2)], [], {(ME, 0x30000): entries}, regions=[data, bss])
    assert d.shared_pages + b.shared_pages == 2
    assert d.exclusive_pages + b.exclusive_pages == 2
    assert (b.shared_pages, b.exclusive_pages) == (1, 1)


# --- a watch's changes ----------------------------------------------------------------


def _read(*entries):
    """A watch's read: {(start, end): (region, sharing)}."""
    from procmap.model import Sharing

    out = {}
    for r, sharers, shared, own in entries:
        out[(r.start, r.end)] = (r, Sharing(tuple(sharers), shared, own, "frames"))
    return out


def test_a_watch_reports_sharers_coming_and_going_and_pages_copied_not_elf_images():
    from procmap.classify.sharing import change_sentences, sharing_changes
    from procmap.model import Sharer

    shm = region(mapping(0x10000, 4, "rw-s", inode=9, path="/dev/shm/ring"))
    heap = region(mapping(0x20000, 4, "rw-p", path="[heap]"), kind="heap", detail=Detail.BRK_HEAP)
    lib = region(mapping(0x30000, 4, "r-xp", inode=3, path="/lib/libc.so.6"), kind="text")
    lib = lib._replace(object="/lib/libc.so.6")
    writer = Sharer(CHILD, "writer", "object", True, 4)
    cow = Sharer(CHILD, "child", "copy-on-write", False, 4)
    other = Sharer(STRANGER, "ls", "object", False, 4)
    before = _read((shm, [], 4, 0), (heap, [cow], 4, 0), (lib, [], 4, 0))
    after = _read(
        (shm, [writer], 4, 0), (heap, [cow._replace(pages=1)], 1, 3), (lib, [other], 4, 0)
    )
    changes = sharing_changes(before, after)
    assert [(c.start, [s.pid for s in c.joined]) for c in changes] == [
        (0x10000, [CHILD]),
        (0x20000, []),
    ]
    shm_change, heap_change = changes
    assert change_sentences(shm_change) == [
        "mmap at 0x10000: now shared with writer 101 (it can write it)"
    ]
    assert change_sentences(heap_change) == [
        "heap at 0x20000: 3 pages now its own, copied on write (1 still shared)"
    ]
    assert heap_change.to_dict()["shared_pages"] == [4, 1]
    gone = sharing_changes(after, _read((heap, [], 0, 4)))
    assert change_sentences(gone[0]) == [
        "heap at 0x20000: no longer shared with child 101",
        "heap at 0x20000: 1 page now its own, their sharer is gone (0 still shared)",
    ]
