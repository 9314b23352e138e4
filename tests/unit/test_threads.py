"""The pure parts of --threads: used and left, their bounds, the snapshot key, the table."""

from __future__ import annotations

import json

import pytest

from procmap.classify import classify
from procmap.classify.threads import describe_threads
from procmap.errors import BadSnapshot
from procmap.kernel.maps import parse_maps
from procmap.kernel.procfs import ProcFS
from procmap.model import (
    Facts,
    ProcessInfo,
    ProcessMap,
    Task,
    ThreadFacts,
    stack_use,
)
from procmap.views import snapshot as snap
from tests.helpers import render

MiB = 1 << 20
PAGE = 4096
PID, TID = 100, 101
STACK_END = 0x7FFF_FFFF_F000
MAPS = f"""\
7f0000000000-7f0000001000 ---p 00000000 00:00 0
7f0000001000-7f0000801000 rw-p 00000000 00:00 0
7f0000900000-7f0000901000 {{below}} 00000000 00:00 0
7ffffffde000-{STACK_END:x} rw-p 00000000 00:00 0                          [stack]
"""
MAIN_SP = STACK_END - 0x10000
THREAD_SP = 0x7F00_0080_0000


def process_map(facts: Facts, below: str = "r--p") -> ProcessMap:
    mappings = parse_maps(MAPS.format(below=below).encode())
    result = classify(mappings, {}, facts)
    info = ProcessInfo(PID, "x", (), "root", 0, 2, "S")
    return ProcessMap(info, mappings, result.regions, result.images)


def rows(facts: Facts, tasks=None, gap: int | None = None, below: str = "r--p"):
    tasks = tasks or (Task(PID, "x", "S"), Task(TID, "worker", "S"))
    pmap = process_map(facts, below)
    return {t.tid: t for t in describe_threads(pmap, facts, ThreadFacts(tuple(tasks), gap))}


def facts(**changes) -> Facts:
    base = Facts(thread_sps={PID: MAIN_SP, TID: THREAD_SP}, thread_stack_size=8 * MiB)
    return base._replace(**changes)


def test_stacks_grow_down_in_one_place():
    assert stack_use(top=0x2000, lowest=0x1000, sp=0x1800) == (0x800, 0x800)
    assert stack_use(top=0x2000, lowest=0x1900, sp=0x1800) == (0x800, 0)  # past its bound


def test_a_thread_stack_is_used_from_the_top_and_left_down_to_its_guard_page():
    t = rows(facts())[TID]
    assert (t.stack.start, t.stack.end, t.stack.tid) == (0x7F00_0000_1000, 0x7F00_0080_1000, TID)
    assert (t.sp_in, t.used, t.left) == ("stack", 0x1000, THREAD_SP - 0x7F00_0000_1000)
    assert t.left_bound == "guard-page"
    assert (t.guard.start, t.guard.end, t.guard.kind) == (
        0x7F00_0000_0000,
        0x7F00_0000_1000,
        "guard-page",
    )
    assert t.used + t.left == t.stack.size and not t.main


def test_the_main_stack_is_bounded_by_rlimit_stack_when_it_is_nearer():
    main = rows(facts())[PID]
    assert main.main and main.stack.path == "[stack]" and main.left_bound == "rlimit-stack"
    assert main.used == 0x10000 and main.used + main.left == 8 * MiB
    # The guard gap is still shown: 256 pages above the mapping below.
    assert (main.guard.start, main.guard.end) == (0x7F00_0090_1000, 0x7F00_0090_1000 + 256 * PAGE)


def test_the_main_stack_is_bounded_by_the_guard_gap_without_a_limit():
    main = rows(facts(thread_stack_size=None), gap=8 * PAGE)[PID]
    assert main.left_bound == "stack-guard-gap"
    assert main.sp - main.left == 0x7F00_0090_1000 + 8 * PAGE == main.guard.end


def test_the_guard_gap_is_nearer_than_a_huge_limit():
    main = rows(facts(thread_stack_size=1 << 46))[PID]
    assert main.left_bound == "stack-guard-gap"
    assert main.sp - main.left == 0x7F00_0090_1000 + 256 * PAGE


def test_no_gap_is_kept_from_an_inaccessible_mapping_below():
    main = rows(facts(thread_stack_size=None), below="---p")[PID]
    assert main.left_bound == "mapping-below" and main.guard is None
    assert main.sp - main.left == 0x7F00_0090_1000


def test_a_stack_pointer_in_the_guard_page_overflowed():
    sp = 0x7F00_0000_0800
    t = rows(facts(thread_sps={PID: MAIN_SP, TID: sp}))[TID]
    assert t.sp_in == "guard" and t.left == 0 and t.used == 0x7F00_0080_1000 - sp


def test_a_stack_pointer_outside_every_stack_or_map():
    t = rows(facts(thread_sps={PID: MAIN_SP, TID: 0x7F00_0090_0010}))[TID]
    assert t.sp_in == "elsewhere" and t.stack is None and t.used is None
    t = rows(facts(thread_sps={PID: MAIN_SP, TID: 0x10}))[TID]
    assert t.sp_in == "unmapped" and t.stack is None


def test_an_unknown_stack_pointer_says_why():
    unknown = facts(thread_sps={PID: MAIN_SP}, unknown_threads=(TID,))
    t = rows(unknown, tasks=(Task(PID, "x", "S"), Task(TID, "w", "R", "running")))[TID]
    assert (t.sp, t.sp_unknown, t.sp_in, t.stack, t.used) == (None, "running", None, None, None)
    assert t.to_dict()["state"] == "running"


def test_a_map_without_thread_facts_gives_rows_from_its_stack_pointers():
    pmap = process_map(facts())
    out = describe_threads(pmap, facts(unknown_threads=(102,)), None)
    assert [(t.tid, t.name, t.state, t.sp_unknown) for t in out] == [
        (PID, None, None, None),
        (TID, None, None, None),
        (102, None, None, "not-saved"),
    ]
    alone = describe_threads(pmap, Facts(), None)
    assert [(t.tid, t.sp_unknown, t.main) for t in alone] == [(PID, "not-saved", True)]


def test_the_json_row():
    d = rows(facts())[TID].to_dict()
    assert d["sp"] == hex(THREAD_SP) and d["state"] == "sleeping" and d["state_code"] == "S"
    assert d["stack"]["start"] == "0x7f0000001000" and d["stack"]["detail"] == "thread-stack"
    assert d["guard"] == {
        "kind": "guard-page",
        "start": "0x7f0000000000",
        "end": "0x7f0000001000",
        "size": PAGE,
    }
    assert json.loads(json.dumps(d)) == d


def test_stack_guard_gap_from_the_kernel_command_line(tmp_path):
    (tmp_path / "cmdline").write_bytes(b"quiet stack_guard_gap=1 ro -- stack_guard_gap=9\n")
    assert ProcFS(str(tmp_path)).stack_guard_gap(PAGE) == PAGE
    (tmp_path / "cmdline").write_bytes(b"quiet\n")
    assert ProcFS(str(tmp_path)).stack_guard_gap(PAGE) == 256 * PAGE
    assert ProcFS(str(tmp_path / "none")).stack_guard_gap(PAGE) is None


# --- the snapshot's "threads" -------------------------------------------------------------


def saved(threads: ThreadFacts | None):
    plain = snap.loads(MAPS.format(below="r--p").encode(), "x.maps", 0.0)
    info = ProcessInfo(PID, "x", (), "root", 0, 2, "S")
    return plain._replace(info=info, facts=facts(), threads=threads, source="snapshot", warnings=[])


TF = ThreadFacts((Task(PID, "x", "S"), Task(TID, "w\udcff\x1b", None, "denied")), 1 << 20)


def test_threads_round_trip_in_a_snapshot():
    s = saved(TF)
    again = snap.loads(snap.dumps(s), "s.json", 0.0)
    assert again.threads == TF and again == s
    assert snap.loads(snap.dumps(saved(None)), "s.json", 0.0).threads is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[PID, "x", "S"]], r"threads.tasks\[0\]: expected \[tid, name, state, sp_unknown\]"),
        ([[0, "x", "S", None]], r"threads.tasks\[0\]\[0\]: 0 is out of range"),
        ([[PID, "x", "SS", None]], r"threads.tasks\[0\]\[2\]: expected a state letter"),
        ([[PID, "x", "S", "bogus"]], r"threads.tasks\[0\]\[3\]: expected one of running"),
        ([[PID, 7, "S", None]], r"threads.tasks\[0\]\[1\]: expected a string"),
        ([[PID, "x", "S", None]] * 2, r"threads.tasks\[1\]: thread 100 appears twice"),
    ],
)
def test_a_bad_threads_value_is_one_line(value, message):
    d = json.loads(snap.dumps(saved(TF)))
    d["threads"]["tasks"] = value
    with pytest.raises(BadSnapshot, match=message) as err:
        snap.loads(json.dumps(d).encode(), "s.json", 0.0)
    assert "\n" not in str(err.value) and str(err.value).startswith("s.json: damaged snapshot")


def test_version_3_has_no_threads_key_and_version_4_must_have_it():
    d = json.loads(snap.dumps(saved(TF)))
    del d["threads"]
    with pytest.raises(BadSnapshot, match="the key 'threads' is missing"):
        snap.loads(json.dumps(d).encode(), "s.json", 0.0)
    d["version"] = 3
    del d["sharing"]  # version 4's other new key
    del d["facts"]["runtimes"], d["facts"]["heap_ranges"]  # version 5's
    assert snap.loads(json.dumps(d).encode(), "s.json", 0.0).threads is None
    d["threads"] = None
    with pytest.raises(BadSnapshot, match="unexpected key 'threads'"):
        snap.loads(json.dumps(d).encode(), "s.json", 0.0)


# --- the table ----------------------------------------------------------------------------


def test_names_are_text_never_markup_and_never_escape_sequences():
    from procmap.render.threads import render_threads

    tasks = (Task(PID, "[bold]x[/bold]", "S"), Task(TID, "evil\x1b[31m", "t"))
    pmap = process_map(facts())
    pmap = pmap._replace(threads=describe_threads(pmap, facts(), ThreadFacts(tasks, None)))
    out = render(render_threads(pmap), width=200)
    assert "[bold]x[/bold]" in out and "\x1b" not in out and "evil\\x1b[31m" in out
    assert "t tracing-stop" in out and "RLIMIT_STACK" in out and "guard page" in out
