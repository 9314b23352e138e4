"""`procmap PID --watch` through the real command, on real processes.

samples/bin/watch makes one memory-map event per command it reads and prints
the addresses involved; each test drives it, and requires the event with the
right kind, direction and addresses from `procmap PID --watch --json`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from contextlib import contextmanager

import pytest

from tests.conftest import SAMPLE_BIN, SAMPLES, Lines, procmap_env, run_sample
from tests.helpers import procmap_json, run_cli

WATCH = SAMPLE_BIN / "watch"
ENV = procmap_env()


class WatchSample:
    """samples/bin/watch, driven one command at a time."""

    def __init__(self):
        self.process = subprocess.Popen([str(WATCH)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.out = Lines(self.process.stdout, "samples/bin/watch")
        first = self.out.next()
        assert first.startswith("ready pid="), first
        self.pid = self.process.pid

    def do(self, command: str) -> dict[str, str]:
        """Run one command; the facts it printed (addresses as ints)."""
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()
        if command.startswith("exit"):
            return {}
        line = self.out.next()
        assert line.startswith("done " + command.split()[0]), line
        facts = dict(word.split("=", 1) for word in line.split()[2:])
        return {k: int(v, 16) if v.startswith("0x") else v for k, v in facts.items()}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Watcher:
    """`procmap PID --watch --json`, its records read as they come."""

    def __init__(self, pid: int, *args: str):
        # A process: its records are read while the test acts on the watched process.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "procmap", str(pid), "--watch", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        self.out = Lines(self.process.stdout, "procmap --watch --json")
        self.snapshot = procmap_json(self.out.next(timeout=20))
        assert self.snapshot["type"] == "snapshot"
        self.seen: list[dict] = []

    def record(self, timeout: float = 10) -> dict:
        record = procmap_json(self.out.next(timeout))
        assert record["type"] in ("change", "resident", "end"), record
        self.seen.append(record)
        return record

    def wait_for(self, wanted, timeout: float = 10) -> tuple[dict, dict]:
        """The first event (and its change record) for which wanted(event) holds."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(max(deadline - time.monotonic(), 0.01))
            assert record["type"] == "change", f"the watch ended first: {record}"
            for event in record["events"]:
                if wanted(event):
                    return event, record

    def end(self, timeout: float = 10) -> dict:
        while True:
            record = self.record(timeout)
            if record["type"] == "end":
                return record

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


@contextmanager
def watching(watcher_class=None):
    """A samples/bin/watch and a watch of it sampling every 50 ms; both ended after."""
    sample = WatchSample()
    watcher = None
    try:
        watcher = (watcher_class or Watcher)(sample.pid, "--interval", "0.05")
        yield sample, watcher
    finally:
        if watcher is not None:
            watcher.close()
        sample.close()


@pytest.fixture
def watched():
    with watching() as pair:
        yield pair


EVENT_KEYS = {
    "event",
    "kind",
    "detail",
    "description",
    "tid",
    "start",
    "end",
    "path",
    "bytes",
    "direction",
}


def _check_contract(record: dict) -> None:
    assert isinstance(record["t"], float)
    for event in record["events"]:
        assert EVENT_KEYS <= set(event), event
        assert event["event"] in ("grow", "shrink", "map", "unmap", "protect", "split", "merge")
        assert isinstance(event["start"], int) and isinstance(event["end"], int)
        assert event["start"] < event["end"] and event["bytes"] > 0
        assert event["direction"] in ("up", "down", None)
        assert (event["direction"] is None) == (event["event"] not in ("grow", "shrink"))


def test_heap_growing_is_a_grow_upward_to_the_new_brk(watched):
    sample, watcher = watched
    facts = sample.do("heap-grow 524288")
    event, record = watcher.wait_for(lambda e: e["kind"] == "heap" and e["event"] == "grow")
    _check_contract(record)
    assert event["direction"] == "up"
    assert event["detail"] == "brk-heap" and event["path"] == "[heap]"
    assert event["end"] == facts["new_brk"]
    assert event["bytes"] == facts["new_brk"] - event["before"]["end"]


def test_heap_shrinking_is_a_shrink_downward(watched):
    sample, watcher = watched
    sample.do("heap-grow 1048576")
    watcher.wait_for(lambda e: e["kind"] == "heap" and e["event"] == "grow")
    facts = sample.do("heap-shrink")
    event, _ = watcher.wait_for(lambda e: e["kind"] == "heap" and e["event"] == "shrink")
    assert event["direction"] == "down"
    assert event["end"] == facts["new_brk"]
    assert event["bytes"] == facts["old_brk"] - facts["new_brk"]


def test_stack_growing_by_recursion_is_a_grow_downward(watched):
    sample, watcher = watched
    facts = sample.do("stack-grow 1024")
    event, _ = watcher.wait_for(lambda e: e["kind"] == "stack" and e["event"] == "grow")
    assert event["direction"] == "down"
    assert event["detail"] == "main-stack" and event["path"] == "[stack]"
    assert event["start"] <= facts["lowest"] < event["end"]


def test_a_new_thread_maps_its_stack_and_guard_page(watched):
    sample, watcher = watched
    facts = sample.do("thread-start")
    tid = int(facts["tid"])

    def is_its_stack(e):
        return (
            e["event"] == "map" and e["kind"] == "stack" and e["start"] <= facts["stack"] < e["end"]
        )

    event, record = watcher.wait_for(is_its_stack)
    _check_contract(record)
    # Its TID comes with the stack in the same sample, or in a later one.
    started = [t for r in watcher.seen for t in r.get("threads", {}).get("started", [])]
    while tid not in started:
        started += watcher.record().get("threads", {}).get("started", [])
    guards = [
        e
        for e in record["events"]
        if e["event"] == "map" and e["detail"] == "guard-page" and e["end"] == event["start"]
    ]
    assert guards and guards[0]["bytes"] == os.sysconf("SC_PAGE_SIZE")
    assert event["end"] - facts["stack"] == int(facts["size"])


def test_a_stopped_thread_unmaps_its_stack(watched):
    sample, watcher = watched
    facts = sample.do("thread-start")
    watcher.wait_for(lambda e: e["event"] == "map" and e["kind"] == "stack")
    sample.do("thread-stop")
    event, record = watcher.wait_for(
        lambda e: (
            e["event"] == "unmap"
            and e["kind"] == "stack"
            and e["start"] <= facts["stack"] < e["end"]
        )
    )
    ended = [t for r in watcher.seen for t in r.get("threads", {}).get("ended", [])]
    while int(facts["tid"]) not in ended:
        ended += watcher.record().get("threads", {}).get("ended", [])


def test_mmap_and_munmap_are_map_and_unmap_of_the_exact_range(watched):
    sample, watcher = watched
    facts = sample.do("mmap 3145728")
    event, _ = watcher.wait_for(lambda e: e["event"] == "map" and e["start"] == facts["start"])
    assert (event["end"], event["bytes"]) == (facts["end"], 3 << 20)
    assert (event["kind"], event["detail"], event["path"]) == ("mmap", "anonymous", None)
    facts = sample.do("munmap")
    event, _ = watcher.wait_for(lambda e: e["event"] == "unmap" and e["start"] == facts["start"])
    assert (event["end"], event["kind"]) == (facts["end"], "mmap")


def test_mprotect_splits_a_mapping_and_undoing_it_merges_them(watched):
    sample, watcher = watched
    mapped = sample.do("mmap 65536")
    watcher.wait_for(lambda e: e["event"] == "map" and e["start"] == mapped["start"])
    page = sample.do("mprotect")
    protect, record = watcher.wait_for(lambda e: e["event"] == "protect")
    assert (protect["start"], protect["end"]) == (page["start"], page["end"])
    assert protect["perms"] == "r--p" and protect["before"]["perms"] == "rw-p"
    splits = [e for e in record["events"] if e["event"] == "split"]
    assert [(e["start"], e["end"]) for e in splits] == [(mapped["start"], mapped["end"])]

    sample.do("unprotect")
    protect, record = watcher.wait_for(lambda e: e["event"] == "protect")
    assert (protect["start"], protect["end"], protect["perms"]) == (
        page["start"],
        page["end"],
        "rw-p",
    )
    merges = [e for e in record["events"] if e["event"] == "merge"]
    assert [(e["start"], e["end"]) for e in merges] == [(mapped["start"], mapped["end"])]


def test_dlopen_maps_a_library_and_dlclose_unmaps_it(watched):
    sample, watcher = watched
    facts = sample.do("dlopen libm.so.6")

    def libm(e):
        return (e["object"] or "").endswith("libm.so.6")

    event, record = watcher.wait_for(lambda e: e["event"] == "map" and libm(e))
    mapped = [e for e in record["events"] if e["event"] == "map" and libm(e)]
    assert {"text", "rodata", "data"} <= {e["kind"] for e in mapped}
    assert min(e["start"] for e in mapped) == facts["base"]
    sample.do("dlclose")
    event, record = watcher.wait_for(lambda e: e["event"] == "unmap" and libm(e))
    unmapped = [e for e in record["events"] if e["event"] == "unmap" and libm(e)]
    assert sorted((e["start"], e["end"]) for e in unmapped) == sorted(
        (e["start"], e["end"]) for e in mapped
    )


def test_the_watch_ends_cleanly_when_the_process_exits(watched):
    sample, watcher = watched
    sample.do("heap-grow 262144")
    watcher.wait_for(lambda e: e["kind"] == "heap")
    sample.do("exit 3")
    end = watcher.end()
    assert end["reason"] == "exited"
    assert end["samples"] >= 2
    assert end["summary"]["growth"]["heap"] > 0
    assert watcher.process.wait(timeout=10) == 0
    assert watcher.process.stderr.read() == b""


def test_not_a_terminal_gives_one_plain_line_per_event_and_a_summary():
    sample = WatchSample()
    try:
        # A process: its lines are read while the test acts on the watched process.
        watcher = subprocess.Popen(
            [sys.executable, "-m", "procmap", str(sample.pid), "--watch", "--interval", "0.05"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        out = Lines(watcher.stdout, "procmap --watch")
        assert out.next(20).startswith(f"watching PID {sample.pid} (watch)")
        facts = sample.do("heap-grow 524288")
        line = out.next()
        assert re.fullmatch(
            r" *\d+\.\d{3}s  heap grew [\d.]+ KiB upward \(brk moved from 0x[0-9a-f]+ to "
            + hex(facts["new_brk"])
            + r"\)",
            line,
        ), line
        facts = sample.do("mmap 3145728")
        assert out.next().endswith(f"3 MiB anonymous mapping appeared at {facts['start']:#x}")
        sample.do("thread-start")
        assert re.search(r"new thread stack \(8 MiB \+ 4 KiB guard page\), TID \d+", out.next())
        sample.do("dlopen libm.so.6")
        assert re.search(r"libm\.so\.6 loaded: \d regions \(.*text.*\)", out.next())
        sample.do("exit 0")
        rest = watcher.stdout.read().decode()
        assert watcher.wait(timeout=10) == 0
        assert f"watch of PID {sample.pid} (watch) ended: the process exited" in rest
        assert re.search(r"net growth: .*heap \+", rest)
        assert "\x1b" not in rest
    finally:
        watcher.kill()
        watcher.wait()
        sample.close()


def test_count_ends_the_watch_after_that_many_samples_first_included():
    result = run_cli("self", "--watch", "--json", "--count", "3", "--interval", "0")
    assert result.returncode == 0, result.stderr
    records = [procmap_json(line) for line in result.stdout.splitlines()]
    assert records[0]["type"] == "snapshot" and records[-1]["type"] == "end"
    assert records[-1]["reason"] == "count" and records[-1]["samples"] == 3
    assert all(r["type"] == "change" for r in records[1:-1])


def test_the_snapshot_holds_the_regions_of_procmap_pid_json():
    with run_sample("pie") as s:
        shown = procmap_json(run_cli(str(s.pid), "--json").stdout)
        result = run_cli(str(s.pid), "--watch", "--json", "--count", "1")
        snapshot = procmap_json(result.stdout.splitlines()[0])
    assert snapshot["pid"] == s.pid and isinstance(snapshot["t"], float)
    assert snapshot["regions"] == shown["regions"]


def test_kind_filters_the_snapshot_and_the_events(watched):
    sample = WatchSample()
    watcher = Watcher(sample.pid, "--interval", "0.05", "--kind", "heap")
    try:
        assert {r["kind"] for r in watcher.snapshot["regions"]} == {"heap"}
        sample.do("mmap 65536")
        sample.do("heap-grow 524288")
        event, record = watcher.wait_for(lambda e: True)
        assert {e["kind"] for r in watcher.seen for e in r["events"]} == {"heap"}
    finally:
        watcher.close()
        sample.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_a_kill_ends_the_watch_with_its_summary(sig):
    # A process: the signal is the point.
    with watching() as (sample, watcher):
        sample.do("heap-grow 262144")
        watcher.wait_for(lambda e: e["kind"] == "heap")  # a later sample: the watch goes on
        watcher.process.send_signal(sig)
        end = watcher.end()
        assert end["reason"] == "interrupted" and end["samples"] >= 2
        assert watcher.process.wait(timeout=10) == 0
        assert watcher.process.stderr.read() == b""


@contextmanager
def churning(pages: int = 1024):
    """samples/bin/churn: `pages` pages split into `pages` mappings and merged back,
    about a thousand times a second; yields it and its mapping's (start, end)."""
    process = subprocess.Popen(
        [str(SAMPLE_BIN / "churn"), str(pages)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        out = Lines(process.stdout, "samples/bin/churn")
        facts = dict(word.split("=") for word in out.next().split())
        assert out.next() == "ready"
        yield process, (int(facts["base"], 16), int(facts["end"], 16))
    finally:
        process.kill()
        process.wait()


def test_mprotect_churn_is_a_few_events_a_sample_each_with_its_regions():
    with churning() as (process, (base, end)):
        watcher = Watcher(process.pid, "--interval", "0.05")
        try:
            counted = []
            while len(counted) < 3:  # three samples that caught the churn half done
                record = watcher.record()
                # A split or merge, and at most one protect each way, whatever the state.
                assert len(record["events"]) <= 3, [e["event"] for e in record["events"]]
                for e in record["events"]:
                    assert e["kind"] == "mmap" and e["regions"] >= 1
                    assert base <= e["start"] < e["end"] <= end
                counted += [e for e in record["events"] if e["regions"] > 1]
        finally:
            watcher.close()
    for e in counted:
        assert e["event"] == "protect" and e["bytes"] == e["regions"] * 4096
        assert {e["perms"], e["before"]["perms"]} == {"r--p", "rw-p"}


def test_mprotect_churn_is_a_few_lines_a_sample():
    with churning() as (process, _):
        # A process: the line view of a long watch is the point.
        watch = subprocess.Popen(
            [sys.executable, "-m", "procmap", str(process.pid), "--watch", "--interval", "0.05"],
            stdout=subprocess.PIPE,
            env=ENV,
        )
        try:
            out = Lines(watch.stdout, "procmap --watch")
            assert out.next().startswith(f"watching PID {process.pid}")
            per_sample: Counter[str] = Counter()
            told = 0
            while told < 3:  # three samples that caught the churn half done
                line = out.next()
                t, sentence = line.split("s  ", 1)
                per_sample[t] += 1
                assert per_sample[t] <= 3, line
                told += " places between " in sentence
        finally:
            watch.kill()
            watch.wait()
            watch.stdout.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="taking a PID back needs root (ns_last_pid)")
def test_a_pid_given_to_another_process_ends_the_watch_as_reused():
    victim = subprocess.Popen(["sleep", "60"])
    pid = victim.pid
    watcher = Watcher(pid, "--interval", "1")
    other = None
    try:
        victim.kill()
        victim.wait()
        # Make the kernel give the PID out again: the next PID is ns_last_pid + 1.
        for _ in range(50):
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
            other = subprocess.Popen(["sleep", "60"])
            if other.pid == pid:
                break
            other.kill()
            other.wait()
            other = None
        if other is None:
            pytest.skip("another process kept taking the PID (a busy machine)")
        end = watcher.end()
        assert end["reason"] == "reused"
        assert end["samples"] == 1  # the snapshot; the next read found the process gone
        assert watcher.process.wait(timeout=10) == 0
    finally:
        watcher.close()
        victim.kill()
        victim.wait()
        if other is not None:
            other.kill()
            other.wait()


def test_watch_options_need_watch_and_bad_targets_get_one_line():
    result = run_cli("self", "--count", "3")
    assert result.returncode == 2 and "--interval and --count go with --watch" in result.stderr
    result = run_cli("self", "--watch", "--interval", "-1")
    assert result.returncode == 2
    result = run_cli("99999999", "--watch")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "no process with PID 99999999" in result.stderr
    result = run_cli("2", "--watch")  # kthreadd
    assert result.returncode == 5 and result.stderr.count("\n") == 1


def _run_in_terminal(args: list[str], columns: int, lines: int, timeout: float = 30) -> bytes:
    """Run procmap under a pseudo-terminal of the given size; everything it wrote."""
    # A process: a real terminal (its size, a full screen) is the point.
    pid, fd = pty.fork()
    if pid == 0:
        env = dict(ENV, COLUMNS=str(columns), LINES=str(lines), TERM="xterm-256color")
        env.pop("NO_COLOR")
        os.execve(sys.executable, [sys.executable, "-m", "procmap", *args], env)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, output[-2000:]
    finally:
        os.close(fd)
    return output


def test_the_live_view_fits_the_terminal_and_redraws_at_most_ten_times_a_second():
    with run_sample("pie") as s:
        started = time.monotonic()
        # A process: a real terminal is the point.
        output = _run_in_terminal(
            [str(s.pid), "--watch", "--interval", "0", "--count", "30000"], 100, 30
        )
        elapsed = time.monotonic() - started
    text = output.decode("utf-8", "replace")
    # rich's full-screen Live paints each frame from the top-left corner.
    frames = text.count("\x1b[H")
    assert 1 <= frames <= 10 * elapsed + 3, (frames, elapsed)
    screen, _, after = text.partition("\x1b[?1049l")  # the full screen closes here
    last = screen.rsplit("\x1b[H", 1)[-1]
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", last)
    assert f"PID {s.pid}" in plain and "lesson-pie" in plain
    assert "heap" in plain and "mapped" in plain
    for row in plain.split("\n"):
        assert len(row.rstrip("\r")) <= 100
    # After the full screen closes, the summary stays on the terminal.
    assert f"watch of PID {s.pid} (lesson-pie) ended: the count of samples was reached" in after


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT])
def test_the_terminal_is_given_back_on_a_hangup_a_quit_or_a_kill(sig):
    """Whatever ends the live view, the terminal leaves the full screen and shows
    its cursor again, and the watch's summary follows."""
    with run_sample("pie") as s:
        # A process: a real terminal, and a signal to the watch, are the point.
        pid, fd = pty.fork()
        if pid == 0:
            env = dict(ENV, COLUMNS="100", LINES="30", TERM="xterm-256color")
            env.pop("NO_COLOR")
            args = [sys.executable, "-m", "procmap", str(s.pid), "--watch", "--interval", "0.05"]
            os.execve(sys.executable, args, env)
        output = b""
        try:

            def read_until(done) -> None:
                nonlocal output
                deadline = time.monotonic() + 30
                while not done() and time.monotonic() < deadline:
                    if select.select([fd], [], [], 0.5)[0]:
                        try:
                            chunk = os.read(fd, 65536)
                        except OSError:  # EIO: the watch closed the terminal
                            return
                        if not chunk:
                            return
                        output += chunk

            # The full screen is up, the cursor hidden, and a frame drawn.
            read_until(lambda: b"\x1b[?25l" in output and f"PID {s.pid}".encode() in output)
            assert b"\x1b[?1049h" in output, output[-500:]
            os.kill(pid, sig)
            read_until(lambda: False)
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output[-2000:]
    after = output.rpartition(b"\x1b[?1049l")[2]  # what follows the full screen
    assert b"\x1b[?1049l" in output and b"\x1b[?25h" in output.rpartition(b"\x1b[?25l")[2]
    assert b"\x1b[?1049h" not in after
    assert f"watch of PID {s.pid} (lesson-pie) ended".encode() in after


def test_memory_stays_bounded_over_ten_times_more_samples():
    """Past the ring buffers' size, nothing a watch keeps grows with its length.

    The history is made small, so it fills up in both runs; what is left to
    grow would be a leak.  (make bench measures the whole command's peak RSS
    over 2,000 and 20,000 samples.)
    """
    from procmap.live.sampler import Sampler
    from procmap.live.watch import History, change_record, run_watch

    # samples/pages.py flips a page (a split, or a merge) for each byte it reads:
    # every fourth sample is a change, however busy the machine.
    flipper = subprocess.Popen(
        [sys.executable, str(SAMPLES / "pages.py"), "64"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert flipper.stdout.readline() == b"ready\n"

        def flip() -> None:
            os.write(flipper.stdin.fileno(), b"f")
            assert os.read(flipper.stdout.fileno(), 1) == b"k"  # the page flipped

        def peak(samples: int) -> tuple[int, int]:
            changed = ticks = 0

            def on_tick(tick, _sentences):
                nonlocal changed, ticks
                record = change_record(tick)
                if record is not None:
                    changed += 1
                    json.dumps(record)
                ticks += 1
                if ticks % 4 == 0:
                    flip()  # seen by the next sample

            tracemalloc.start()
            with Sampler(flipper.pid) as sampler:
                history = History(sampler, points=50, log_size=50)
                end = run_watch(sampler, history, 0, samples, on_tick)
                _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert end.reason == "count"
            return top, changed if len(history.log) == 50 else 0  # the log filled up

        peak(1000)  # first-time costs (imports, caches) are not the watch's growth
        small, changed_small = peak(1000)
        large, changed_large = peak(10000)
    finally:
        flipper.kill()
        flipper.wait()
    # The target really changed, and the watch saw each change: N samples are
    # N - 1 ticks, a flip at every fourth, each seen by the next sample.
    assert (changed_small, changed_large) == (999 // 4, 9999 // 4)
    assert large <= 1.3 * small, (small, large)
