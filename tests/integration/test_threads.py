"""`procmap PID --threads` on real threads, checked against /proc, ps and gdb.

samples/threads.c starts named threads that each use a known amount of stack
(recursing through 64 KiB frames) and then block in a system call, so each
thread's stack pointer is stable while gdb and procmap look at it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.conftest import SAMPLE_BIN, lines_until_ready, stop, wait_until_blocked
from tests.cores import core_name
from tests.helpers import procmap_json, run_cli
from tests.users import CAP_SYS_PTRACE, NOBODY, needs_root, run_cli_as

THREADS = SAMPLE_BIN / "threads"
FRAME = 64 << 10
DEPTHS = {"pm-deep": 8, "pm-idle": 1, "[bold]pm x": 1, "main": 4}
# Below the deepest 64 KiB array: the frames of report(), the wait and the
# system call's own; a few hundred bytes in practice.
SLACK = 16 << 10
MiB = 1 << 20


@dataclass
class Running:
    process: subprocess.Popen
    tids: dict[str, int] = field(default_factory=dict)  # name -> TID
    deepest: dict[str, int] = field(default_factory=dict)  # name -> lowest array address

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def run_threads(*args: str, prefix: tuple[str, ...] = (), preexec_fn=None, cwd=None):
    """Start samples/threads (after `prefix`, a command that execs it), read its
    threads up to "ready", wait until all are blocked, and always reap it."""
    process = subprocess.Popen(
        [*prefix, str(THREADS), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=preexec_fn,
        cwd=cwd,
    )
    try:
        running = Running(process)
        for line in lines_until_ready(process, "threads"):
            name, tid, deepest = line.removeprefix("thread ").rsplit(" ", 2)
            running.tids[name] = int(tid)
            running.deepest[name] = int(deepest, 16)
        wait_until_blocked(process.pid)
        yield running
    finally:
        stop(process)


def threads_json(*args: str) -> dict:
    result = run_cli(*args, "--threads", "--json")
    assert result.returncode == 0, result.stderr
    return with_sp(procmap_json(result.stdout))


def with_sp(data: dict) -> dict:
    """Each row's "sp" (an address, "0x..." as every address) as an int."""
    for t in data["threads"]:
        if t["sp"] is not None:
            assert re.fullmatch(r"0x[0-9a-f]+", t["sp"]), t["sp"]
            t["sp"] = int(t["sp"], 16)
    return data


def by_tid(data: dict) -> dict[int, dict]:
    return {t["tid"]: t for t in data["threads"]}


@pytest.fixture
def running():
    with run_threads() as r:
        yield r


def test_one_row_per_thread_named_as_proc_and_ps_name_them(running):
    data = threads_json(str(running.pid))
    rows = by_tid(data)
    tasks = sorted(int(t) for t in os.listdir(f"/proc/{running.pid}/task"))
    assert sorted(rows) == tasks == sorted(running.tids.values())
    ps = subprocess.run(
        ["ps", "-L", "-o", "tid=,comm=", "-p", str(running.pid)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in ps.stdout.splitlines():
        tid, name = line.strip().split(None, 1)
        assert rows[int(tid)]["name"] == name
    names = {t["name"]: t for t in data["threads"]}
    assert set(names) == {"threads", "pm-deep", "pm-idle", "[bold]pm x", "pm-altstack"}
    assert [t["tid"] for t in data["threads"] if t["main"]] == [running.pid]
    for t in data["threads"]:  # all blocked: in a futex or in read()
        assert (t["state"], t["state_code"]) == ("sleeping", "S")


def test_stack_pointers_are_gdbs(running):
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed")
    rows = by_tid(threads_json(str(running.pid)))
    gdb = subprocess.run(
        ["gdb", "-nx", "-batch", "-p", str(running.pid), "-ex", "info threads"]
        + ["-ex", "thread apply all p/x $sp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    seen = dict(re.findall(r"\(LWP (\d+)\)[^\n]*\n\$\d+ = (0x[0-9a-f]+)", gdb.stdout))
    if not seen:
        pytest.skip(f"gdb could not attach here: {gdb.stderr.strip()[:200]}")
    assert {int(tid) for tid in seen} == set(rows)
    for tid, sp in seen.items():
        assert rows[int(tid)]["sp"] == int(sp, 16), f"TID {tid}"
    # gdb's names: "Thread 0x... (LWP 123) "pm-deep"".
    for tid, name in re.findall(r'\(LWP (\d+)\) "([^"]*)"', gdb.stdout):
        assert rows[int(tid)]["name"] == name


def test_used_is_what_each_thread_pushed_and_used_plus_left_fills_the_stack(running):
    data = threads_json(str(running.pid))
    regions = data["regions"]
    for name, depth in DEPTHS.items():
        tid = running.pid if name == "main" else running.tids[name]
        t = by_tid(data)[tid]
        stack = t["stack"]
        assert t["sp_in"] == "stack" and stack["start"] <= t["sp"] < stack["end"]
        assert t["used"] == stack["end"] - t["sp"]
        pushed = stack["end"] - running.deepest[name]
        assert depth * FRAME <= pushed <= t["used"] < pushed + SLACK, name
        if name == "main":
            continue
        # A pthread stack: left runs down to its guard page, which is right below it.
        assert t["left_bound"] == "guard-page"
        assert t["used"] + t["left"] == stack["size"]
        guard = t["guard"]
        assert guard["kind"] == "guard-page" and guard["end"] == stack["start"]
        (region,) = [r for r in regions if r["start"] == guard["start"]]
        assert (region["detail"], region["tid"], region["perms"]) == ("guard-page", tid, "---p")


def test_every_thread_stack_of_the_map_has_its_row_and_every_row_its_region(running):
    data = threads_json(str(running.pid))
    rows = by_tid(data)
    stacks = [r for r in data["regions"] if r["kind"] == "stack" and r["tid"] is not None]
    assert stacks
    for r in stacks:  # the map to the rows
        row = rows[r["tid"]]
        if r["detail"] == "thread-stack":
            assert (row["stack"]["start"], row["stack"]["end"]) == (r["start"], r["end"])
        else:
            assert r["detail"] == "guard-page" and row["guard"]["start"] == r["start"]
    for row in rows.values():  # the rows to the map
        if row["stack"] is None:
            continue
        (r,) = [r for r in data["regions"] if r["start"] == row["stack"]["start"]]
        if row["main"]:
            assert r["detail"] == "main-stack" and r["path"] == "[stack]"
        else:
            assert (r["detail"], r["tid"], r["end"]) == (
                "thread-stack",
                row["tid"],
                row["stack"]["end"],
            )


def test_a_thread_on_a_signal_stack_is_outside_every_stack(running):
    data = threads_json(str(running.pid))
    t = by_tid(data)[running.tids["pm-altstack"]]
    assert t["sp_in"] == "elsewhere" and t["stack"] is None
    assert t["used"] is None and t["left"] is None
    # Its stack pointer is in the program's .bss, where the sample put its sigaltstack.
    (region,) = [r for r in data["regions"] if r["start"] <= t["sp"] < r["end"]]
    assert region["kind"] == "bss"


def test_the_text_view_prints_names_as_they_are():
    with run_threads() as r:
        result = run_cli(str(r.pid), "--threads")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"PID {r.pid}  threads")
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["TID", "name", "state"])
    rows = {line.split()[0]: line for line in lines[head + 1 : head + 1 + len(r.tids)]}
    assert set(rows) == {str(tid) for tid in r.tids.values()}
    assert "[bold]pm x" in rows[str(r.tids["[bold]pm x"])]  # markup stays text
    assert "(elsewhere)" in rows[str(r.tids["pm-altstack"])]
    assert "[stack]" in rows[str(r.pid)] and "guard page" in rows[str(r.tids["pm-deep"])]


def _rlimit_stack(size: int):
    def set_it() -> None:
        resource.setrlimit(resource.RLIMIT_STACK, (size, resource.RLIM_INFINITY))

    return set_it


def test_the_main_stack_is_bounded_by_rlimit_stack():
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit is not installed")
    with run_threads(prefix=("prlimit", f"--stack={MiB}:unlimited")) as r:
        data = threads_json(str(r.pid))
        limits = open(f"/proc/{r.pid}/limits").read()
    assert re.search(rf"Max stack size\s+{MiB}\s", limits)
    main = by_tid(data)[r.pid]
    assert main["left_bound"] == "rlimit-stack"
    # The whole [stack] may not exceed the limit: used and left make it up.
    assert main["used"] + main["left"] == MiB
    assert main["used"] >= DEPTHS["main"] * FRAME
    # glibc sizes thread stacks by the same limit.
    assert by_tid(data)[r.tids["pm-deep"]]["stack"]["size"] == MiB


def test_without_a_stack_limit_the_guard_gap_bounds_the_main_stack():
    with run_threads(preexec_fn=_rlimit_stack(resource.RLIM_INFINITY)) as r:
        data = threads_json(str(r.pid))
    main = by_tid(data)[r.pid]
    gap = main["guard"]
    assert main["left_bound"] == "stack-guard-gap" and gap["kind"] == "stack-guard-gap"
    page = os.sysconf("SC_PAGE_SIZE")
    assert gap["size"] == 256 * page or "stack_guard_gap=" in open("/proc/cmdline").read()
    below = max(
        (r for r in data["regions"] if r["end"] <= main["stack"]["start"]), key=lambda r: r["end"]
    )
    assert gap["start"] == below["end"]
    assert main["sp"] - main["left"] == gap["end"]


def test_a_single_threaded_process_has_its_main_thread_row():
    with run_threads("--solo") as r:
        data = threads_json(str(r.pid))
    (main,) = data["threads"]
    assert main["tid"] == r.pid and main["main"] and main["name"] == "threads"
    assert main["sp"] is not None and main["sp_in"] == "stack"  # read because --threads asked
    assert main["stack"]["detail"] == "main-stack"
    assert main["used"] >= DEPTHS["main"] * FRAME


def test_a_snapshot_shows_the_same_rows(tmp_path):
    saved = tmp_path / "threads.json"
    with run_threads() as r:
        live = run_cli(str(r.pid), "--threads", "--json", "--save", str(saved))
        live_text = run_cli(str(r.pid), "--threads")
    assert live.returncode == 0, live.stderr
    assert json.loads(saved.read_text())["threads"]["tasks"]
    replayed = threads_json("--from", str(saved))
    assert replayed["threads"] == with_sp(procmap_json(live.stdout))["threads"]
    text = run_cli("--from", str(saved), "--threads")
    assert text.returncode == 0, text.stderr
    # The same view as live (read a moment apart, of a process whose threads are blocked).
    assert text.stdout == live_text.stdout


@needs_root
def test_a_user_who_may_not_read_syscall_gets_rows_without_stack_pointers():
    """nobody with CAP_SYS_PTRACE reads a root process's maps and task/TID/stat, but not
    its task/TID/syscall (mode 0400, root's): the rows say why the sp is unknown."""
    with run_threads() as r:
        result = run_cli_as(
            NOBODY, [str(r.pid), "--threads", "--json"], keep_caps=(CAP_SYS_PTRACE,)
        )
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    assert len(data["threads"]) == 5
    for t in data["threads"]:
        assert t["sp"] is None and t["sp_unknown"] == "denied" and t["used"] is None
        assert t["name"] and t["state"] == "sleeping"
    assert any("syscall is not readable" in w for w in data["warnings"])


def test_a_core_gives_its_threads(tmp_path):
    def unlimited_core() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)

    with run_threads(preexec_fn=unlimited_core, cwd=tmp_path) as r:
        live = by_tid(threads_json(str(r.pid)))
        os.kill(r.pid, signal.SIGABRT)
        r.process.wait(timeout=20)
    core = tmp_path / core_name(r.pid)
    for _ in range(50):
        if core.exists():
            break
        time.sleep(0.1)
    if not core.exists():
        pytest.skip(f"SIGABRT left no {core}")
    data = threads_json("--from", str(core))
    assert any("does not hold RLIMIT_STACK" in w for w in data["warnings"])
    rows = by_tid(data)
    assert rows[r.pid]["left_bound"] == "stack-guard-gap"
    assert set(rows) == set(live)
    assert rows[r.pid]["name"] == "threads" and rows[r.pid]["main"]
    for tid, t in rows.items():
        if tid != r.pid:
            assert t["name"] is None  # a core names only the main thread
            assert t["stack"] == live[tid]["stack"] or live[tid]["stack"] is None
        assert t["state"] is None and t["sp"] is not None
    # The threads that were blocked are where they were (the main one took the signal).
    deep = r.tids["pm-deep"]
    assert rows[deep]["sp"] == live[deep]["sp"] and rows[deep]["used"] == live[deep]["used"]


@pytest.mark.parametrize(
    "extra", [["--diagram"], ["--sections"], ["--watch"], ["--svg", "x.svg"], ["--no-diagram"]]
)
def test_threads_with_a_view_of_the_map_is_a_usage_error(extra):
    result = run_cli("self", "--threads", *extra)
    assert result.returncode == 2
    assert "--threads shows the threads, not the map" in result.stderr


def test_kind_and_sort_go_with_threads_only_in_json():
    result = run_cli("self", "--threads", "--kind", "stack")
    assert result.returncode == 2 and "only with --json" in result.stderr
    data = threads_json("self", "--kind", "stack")
    assert {r["kind"] for r in data["regions"]} == {"stack"} and data["threads"]


def test_a_thread_that_ends_while_read_is_left_out(running, monkeypatch):
    from procmap.kernel.procfs import ProcessDir

    gone = running.tids["pm-idle"]
    stat, sp = ProcessDir.task_stat, ProcessDir.thread_sp
    monkeypatch.setattr(
        ProcessDir, "task_stat", lambda pd, tid: None if tid == gone else stat(pd, tid)
    )
    data = threads_json(str(running.pid))
    assert gone not in by_tid(data) and len(data["threads"]) == 4
    monkeypatch.setattr(ProcessDir, "task_stat", stat)
    monkeypatch.setattr(
        ProcessDir, "thread_sp", lambda pd, tid: (None, "gone") if tid == gone else sp(pd, tid)
    )
    data = threads_json(str(running.pid))
    assert gone not in by_tid(data) and not data["warnings"]


def test_a_plain_maps_text_has_no_threads(tmp_path):
    maps = tmp_path / "x.maps"
    maps.write_bytes(open("/proc/self/maps", "rb").read())
    assert threads_json("--from", str(maps))["threads"] == []
    result = run_cli("--from", str(maps), "--threads")
    assert result.returncode == 0 and "no threads" in result.stdout
