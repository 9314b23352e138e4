"""procmap system's pure parts: the lean smaps parse, the classifier's memo, the sums,
the shared objects, the sorting, the one line on unreadable processes, the JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from procmap.classify import classify
from procmap.classify.rules import ClassifyMemo
from procmap.elf import read_elf
from procmap.errors import ProcmapError
from procmap.kernel.smaps import parse_rollup, parse_smaps
from procmap.model import KINDS, ObjectUse, ProcessUsage, Unreadable, Usage, usage_of
from procmap.views.system import (
    Filters,
    SystemView,
    add_up,
    kind_totals,
    name_groups,
    partial_reason,
    shared_objects,
    sort_processes,
    system_json,
    unreadable_line,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "maps"
FIVE = frozenset(("rss", "pss", "private_clean", "private_dirty", "swap"))


# --- the lean parse ---------------------------------------------------------------------


def test_parse_smaps_only_some_fields_gives_those_exactly():
    text = (DATA / "lesson-pie.smaps").read_bytes()
    mappings, figures = parse_smaps(text)
    lean_mappings, lean = parse_smaps(text, FIVE)
    assert lean_mappings == mappings
    for whole, part in zip(figures, lean):
        assert usage_of(part) == usage_of(whole)
        assert part.anonymous == part.referenced == 0  # not parsed


def test_parse_rollup_only_some_fields():
    text = (DATA / "lesson-pie.smaps_rollup").read_bytes()
    assert usage_of(parse_rollup(text, FIVE)) == usage_of(parse_rollup(text))


# --- the classifier, for many processes -----------------------------------------------


def _lesson_map():
    """The lesson sample's saved map, and the layouts of those of its files found here
    (another machine's files may differ: the test compares two classifications of
    the same input, not what they find)."""
    mappings, _ = parse_smaps((DATA / "lesson-pie.smaps").read_bytes())
    layouts = {}
    for m in mappings:
        if m.inode and m.path and Path(m.path).is_file():
            try:
                layouts[m.file_key] = read_elf(m.path)
            except ProcmapError:
                pass
    return mappings, layouts


def test_classify_without_sections_gives_the_same_kinds():
    mappings, layouts = _lesson_map()
    full = classify(mappings, layouts)
    lean = classify(mappings, layouts, sections=False)
    assert [r._replace(sections=()) for r in full.regions] == lean.regions
    assert all(not r.sections for r in lean.regions)


def test_a_memo_kept_across_calls_changes_nothing():
    """The same map at another load bias (as another process has it), classified
    with one memo: the regions are those classified without one."""
    mappings, layouts = _lesson_map()
    memo = ClassifyMemo()
    shift = 0x1000_0000
    moved = [m._replace(start=m.start - shift, end=m.end - shift) for m in mappings]
    for maps in (mappings, moved, mappings, moved):
        plain = classify(maps, layouts)
        memoed = classify(maps, layouts, memo=memo)
        assert memoed.regions == plain.regions
        assert memoed.images == plain.images
    assert memo.pieces  # it was used


# --- sums, objects, order --------------------------------------------------------------


def _process(pid, name, total, kinds=None, objects=None, user="root", uid=0):
    return ProcessUsage(
        pid=pid,
        name=name,
        user=user,
        uid=uid,
        threads=1,
        total=Usage(*total),
        kinds={k: Usage(*v) for k, v in (kinds or {}).items()},
        objects=objects or {},
        figures_from="smaps_rollup",
    )


LIBC = ("fe:00", 42)
DATAFILE = ("fe:00", 43)
ALONE = ("fe:00", 44)


def _machine():
    a = _process(
        10,
        "web",
        (400, 300, 200, 8),
        {"text": (100, 20, 0, 0), "heap": (300, 280, 200, 8)},
        {LIBC: ObjectUse("/lib/libc.so.6", 100, 25), ALONE: ObjectUse("/opt/a", 10, 10)},
    )
    b = _process(
        11,
        "web",
        (500, 350, 250, 0),
        {"text": (100, 20, 0, 0), "mmap": (400, 330, 250, 0)},
        {LIBC: ObjectUse("/lib/libc.so.6", 100, 25), DATAFILE: ObjectUse("/srv/db", 60, 30)},
    )
    c = _process(
        5,
        "Cron",
        (200, 120, 100, 16),
        {"text": (100, 20, 0, 0), "stack": (100, 100, 100, 16)},
        {LIBC: ObjectUse("/lib/libc.so.6", 100, 50), DATAFILE: ObjectUse("/srv/db", 60, 30)},
        user="daemon",
        uid=1,
    )
    return [a, b, c]


def test_shared_objects_are_those_of_two_processes_or_more_most_saved_first():
    objects = shared_objects(_machine())
    assert [(o.path, o.processes, o.rss, o.pss, o.saved) for o in objects] == [
        ("/lib/libc.so.6", 3, 300, 100, 200),
        ("/srv/db", 2, 120, 60, 60),
    ]
    assert shared_objects(_machine(), at_least=1)[-1].path == "/opt/a"


def test_sorting():
    procs = _machine()
    assert [p.pid for p in sort_processes(procs, "pss")] == [11, 10, 5]
    assert [p.pid for p in sort_processes(procs, "rss")] == [11, 10, 5]
    assert [p.pid for p in sort_processes(procs, "swap")] == [5, 10, 11]
    assert [p.pid for p in sort_processes(procs, "uss")] == [11, 10, 5]
    assert [p.pid for p in sort_processes(procs, "pid")] == [5, 10, 11]
    assert [p.pid for p in sort_processes(procs, "name")] == [5, 10, 11]  # casefolded
    with pytest.raises(ValueError):
        sort_processes(procs, "size")


def test_totals_add_up():
    procs = _machine()
    assert add_up(p.total for p in procs) == Usage(1100, 770, 550, 24)
    kinds = kind_totals(procs)
    assert list(kinds) == [k for k in KINDS if k in kinds]  # in the lesson's order
    assert kinds["text"] == Usage(300, 60, 0, 0)
    assert kinds["stack"] == Usage(100, 100, 100, 16)
    groups = name_groups(procs)
    assert [(g.name, g.processes, g.total.pss) for g in groups] == [
        ("Cron", 1, 120),
        ("web", 2, 650),
    ]
    assert groups[1].kinds["text"] == Usage(200, 40, 0, 0)


def test_filters():
    assert Filters().wants("anything", 1000)
    assert Filters(users=frozenset({0})).wants("sshd", 0)
    assert not Filters(users=frozenset({0})).wants("sshd", 1000)
    assert Filters(name="SSH").wants("sshd", 0)  # a piece of the name, any case
    assert not Filters(name="cron").wants("sshd", 0)


# --- what is said about the processes not read ------------------------------------------


def test_one_line_counts_and_names_the_unreadable():
    denied = [
        Unreadable(812, "sshd", "permission-denied"),
        Unreadable(1, "init", "permission-denied"),
    ]
    line = unreadable_line(denied)
    assert line == (
        "2 processes not readable (permission denied; run as root or as their owner): "
        "sshd (812), init (1)"
    )
    assert "\n" not in line
    mixed = [*denied, Unreadable(99, "sleep", "exited")]
    line = unreadable_line(mixed)
    assert line.startswith("3 processes not readable (2 permission denied; run as root")
    assert "1 exited while procmap was reading them" in line
    assert "sleep (99)" in line
    assert unreadable_line([]) is None


def test_one_line_names_at_most_so_many_and_escapes_names():
    many = [Unreadable(i, "evil\x1b[31m", "permission-denied") for i in range(30)]
    line = unreadable_line(many, names=5)
    assert "\x1b" not in line and "evil\\x1b[31m (0)" in line
    assert line.endswith("and 25 more (--json lists them all)")
    assert line.startswith("30 processes not readable")


def _view(unreadable=()):
    return SystemView(_machine(), list(unreadable), kernel_threads=7, zombies=1, seconds=0.01)


def test_partial_only_when_some_process_was_denied():
    assert not _view().partial
    assert partial_reason(_view()) is None
    exited = _view([Unreadable(99, "sleep", "exited")])
    assert not exited.partial  # its memory is gone: nothing is missing
    denied = _view([Unreadable(1, "init", "permission-denied")])
    assert denied.partial
    assert "1 process could not be read" in partial_reason(denied)


def test_the_json_shape():
    view = _view([Unreadable(1, "init", "permission-denied")])
    data = system_json(view, sort="pid", limit=2)
    assert [p["pid"] for p in data["processes"]] == [5, 10]
    first = data["processes"][0]
    assert {"pid", "name", "user", "rss", "pss", "uss", "swap", "kinds"} <= first.keys()
    assert first["kinds"]["stack"] == {"rss": 100, "pss": 100, "uss": 100, "swap": 16}
    assert list(first["kinds"]) == ["text", "stack"]  # the lesson's order
    assert data["objects"][0] == {
        "object": "/lib/libc.so.6",
        "dev": "fe:00",
        "inode": 42,
        "processes": 3,
        "rss": 300,
        "pss": 100,
        "saved": 200,
    }
    totals = data["totals"]
    assert totals["processes"] == 3  # every process read, not only those shown
    assert (totals["rss"], totals["pss"], totals["uss"], totals["swap"]) == (1100, 770, 550, 24)
    assert totals["saved"] == 260 and totals["shared_objects"] == 2
    assert totals["kernel_threads"] == 7 and totals["zombies"] == 1
    assert data["unreadable"] == [{"pid": 1, "name": "init", "reason": "permission-denied"}]
    assert data["partial"] is True and data["partial_reason"]
    assert data["figures_from"] == "smaps_rollup"
    assert system_json(view, objects=1)["objects"][0]["object"] == "/lib/libc.so.6"
    assert len(system_json(view, objects=1)["objects"]) == 1


# --- the table ------------------------------------------------------------------------


def test_the_table_shows_processes_kinds_sums_and_objects():
    from procmap.render.system import render_system
    from tests.helpers import render

    text = render(render_system(_view(), width=200), width=200)
    lines = text.splitlines()
    assert lines[0].startswith("3 processes; totals from smaps_rollup")
    header = next(line for line in lines if line.lstrip().startswith("PID"))
    assert header.split() == [
        "PID",
        "user",
        "name",
        "RSS",
        "PSS",
        "USS",
        "swap",
        "text",
        "heap",
        "stack",
        "mmap",
    ]
    row = next(line for line in lines if line.lstrip().startswith("11 "))
    assert row.split()[:4] == ["11", "root", "web", "500"]
    assert "all" in text and "770 B" in text  # the sums' row: PSS of every process
    assert "2 shared objects" in text and "/lib/libc.so.6" in text


def test_a_narrow_table_leaves_kinds_out_but_never_cuts_a_size():
    from procmap.render.system import render_processes
    from tests.helpers import render

    text = render(render_processes(_view(), width=60), width=60)
    assert "…" not in text
    assert "not shown for want of width: PSS of" in text
    assert all(len(line) <= 60 for line in text.splitlines())


def test_the_progress_bar_draws_on_a_terminal():
    import io

    from rich.console import Console

    from procmap.render.system import progress_bar

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    with progress_bar(console) as advance:
        for done in range(1, 11):
            advance(done, 10)
    assert "reading processes" in out.getvalue()
