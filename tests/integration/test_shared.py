"""procmap PID --shared on real processes: samples/share.c forks, and the sharers and the
page split must be what it did, read as root (frames compared) and without the privilege."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import pytest

from tests.conftest import (
    SAMPLE_BIN,
    Lines,
    procmap_env,
    run_sample,
    stop,
    wait_until_blocked,
)
from tests.helpers import procmap_json, run_cli
from tests.users import (
    CAP_SYS_PTRACE,
    NOBODY,
    become,
    needs_root,
    run_cli_as,
    world_readable_copy,
)

PAGE = os.sysconf("SC_PAGESIZE")


@contextmanager
def share_sample(path=None, preexec_fn=None, directory=None):
    """samples/bin/share: a parent and its child; yields what the parent printed."""
    directory = directory or tempfile.mkdtemp(prefix="procmap-share-")
    process = subprocess.Popen(
        [str(path or SAMPLE_BIN / "share"), os.path.join(directory, "shared-file")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    try:
        lines = Lines(process.stdout, "share")
        line = lines.next()
        words = line.split()
        assert words[0] == "ready", line
        facts = ShareFacts((k, int(v, 0)) for k, v in (w.split("=") for w in words[1:]))
        facts.process, facts.lines = process, lines
        wait_until_blocked(facts["parent"])
        wait_until_blocked(facts["child"])
        yield facts
    finally:
        stop(process)


class ShareFacts(dict):
    """What the sample printed (name -> number), and a way to give it a command."""

    process: subprocess.Popen
    lines: Lines

    def command(self, line: str) -> str:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        reply = self.lines.next()
        assert reply.startswith("done "), reply
        return reply


def regions_at(data: dict) -> dict[int, dict]:
    return {r["start"]: r for r in data["regions"]}


def shared_map(pid: int, *, as_uid: int | None = None, keep_caps=()) -> dict:
    args = [str(pid), "--shared", "--json"]
    if as_uid is None:
        result = run_cli(*args)
    else:
        result = run_cli_as(as_uid, args, keep_caps=keep_caps)
    assert result.returncode == 0, result.stderr
    return procmap_json(result.stdout)


def check_what_the_sample_did(data: dict, facts: dict, method: str) -> None:
    """The parent's four regions, as samples/share.c made them."""
    regions = regions_at(data)
    child = facts["child"]
    frames = method == "frames"
    expected = {
        # start: (pages, kind of sharing, a writer?)
        facts["anon"]: (16, "object", True),  # the child's inherited rw-s mapping
        facts["memfd"]: (8, "object", True),  # the child made its copy writable
        facts["file"]: (4, "object", True),  # the child mapped it again, rw-s
        facts["sysv"]: (4, "object", True),  # shmat'ed read-write, inherited
    }
    for start, (pages, via, writes) in expected.items():
        r = regions[start]
        s = r["sharing"]
        assert s["method"] == method
        assert child in s["processes"], (r["path"], s)
        assert (child in s["writers"]) is writes, (r["path"], s)
        assert facts["parent"] not in s["processes"]  # never itself
        assert s["shared_pages"] == pages and s["exclusive_pages"] == 0, (r["path"], s)
        (mine,) = [x for x in s["sharers"] if x["pid"] == child]
        assert mine["via"] == via and mine["name"] == "share"
        assert mine["pages"] == (pages if frames else None)
    assert regions[facts["anon"]]["detail"] == "shared-anonymous"
    assert regions[facts["memfd"]]["detail"] == "memfd"
    assert regions[facts["sysv"]]["detail"] == "sysv-shm"
    assert regions[facts["memfd"]]["perms"] == "r--s"  # the parent's own copy stays read-only
    # The private region: the child rewrote half, the other half is still shared.
    private = regions[facts["private"]]["sharing"]
    half = facts["pages"] - facts["rewritten"]
    assert private["processes"] == [child] and private["writers"] == []
    assert private["shared_pages"] == half
    assert private["exclusive_pages"] == facts["rewritten"]
    assert private["sharers"] == [
        {"pid": child, "name": "share", "via": "copy-on-write", "writable": False, "pages": half}
    ]


@needs_root
def test_sharers_and_pages_as_root_compare_frames():
    with share_sample() as facts:
        check_what_the_sample_did(shared_map(facts["parent"]), facts, "frames")


@needs_root
def test_without_cap_sys_admin_the_same_answer_from_the_exclusive_bit():
    """Root without CAP_SYS_ADMIN reads pagemap without frame numbers."""
    with share_sample() as facts:
        data = shared_map(facts["parent"], as_uid=0, keep_caps=(CAP_SYS_PTRACE,))
        check_what_the_sample_did(data, facts, "exclusive-bit")


@needs_root
def test_as_an_ordinary_user_others_processes_are_counted_not_named():
    copy = world_readable_copy(SAMPLE_BIN / "share")
    directory = tempfile.mkdtemp(prefix="procmap-share-")
    os.chmod(directory, 0o777)
    with share_sample(copy, preexec_fn=become(NOBODY), directory=directory) as facts:
        data = shared_map(facts["parent"], as_uid=NOBODY)
        check_what_the_sample_did(data, facts, "exclusive-bit")
        (warning,) = [w for w in data["warnings"] if w.startswith("sharers:")]
        assert "could not be read" in warning and "run as root" in warning
        scope = data["sharing"]
        assert scope["partial"] is True and scope["processes_read"] >= 1
        assert {"pid": 1, "name": scope["unreadable"][0]["name"]} in scope["unreadable"]
        # libc is mapped by root's processes too, which nobody cannot see: its
        # sharers are the child and whatever else nobody runs (other tests may).
        libc = [r for r in data["regions"] if r["kind"] == "text" and "libc" in (r["path"] or "")]
        assert libc
        for r in libc:
            sharers = r["sharing"]["processes"]
            assert facts["child"] in sharers
            assert all(_owner(pid) in (NOBODY, None) for pid in sharers), sharers


@needs_root
def test_the_child_sees_its_parent_and_its_own_writable_mapping():
    with share_sample() as facts:
        regions = regions_at(shared_map(facts["child"]))
        parent = facts["parent"]
        rw = regions[facts["file_rw"]]
        assert rw["perms"] == "rw-s" and parent in rw["sharing"]["processes"]
        # The parent maps the file read-only: it shares the pages but writes none.
        assert parent not in rw["sharing"]["writers"]
        private = regions[facts["private"]]["sharing"]
        assert private["processes"] == [parent]
        assert private["shared_pages"] == facts["pages"] - facts["rewritten"]


@needs_root
def test_libraries_are_shared_with_unrelated_processes_and_private_memory_is_not():
    with share_sample() as facts, run_sample("pie") as other:
        data = shared_map(facts["parent"])
        libc_text = [
            r for r in data["regions"] if r["kind"] == "text" and "libc.so" in (r["path"] or "")
        ]
        assert libc_text
        for r in libc_text:
            s = r["sharing"]
            assert other.pid in s["processes"] and facts["child"] in s["processes"]
            assert os.getpid() not in s["processes"]  # procmap itself is never a sharer
            assert s["writers"] == []
            (theirs,) = [x for x in s["sharers"] if x["pid"] == other.pid]
            assert theirs["via"] == "object" and theirs["pages"] > 0
        heap = [r for r in data["regions"] if r["kind"] == "heap"]
        for r in heap:
            assert other.pid not in r["sharing"]["processes"]


@needs_root
def test_the_page_split_is_smaps_split():
    """Shared and exclusive pages are smaps' Shared_*/Private_* (the kernel's mapcount):
    exact for a region that is a whole mapping, adding up for a split one."""
    with share_sample() as facts:
        data = shared_map(facts["parent"])
        for r in data["regions"]:
            if r["resident_from"] == "mapping":
                s = r["sharing"]
                assert s["shared_pages"] * PAGE == r["shared_clean"] + r["shared_dirty"], r
                assert s["exclusive_pages"] * PAGE == r["private_clean"] + r["private_dirty"], r
        split = [r for r in data["regions"] if r["resident_from"] != "mapping"]
        assert split  # data | bss share a mapping
        shared = sum(r["sharing"]["shared_pages"] for r in split) * PAGE
        assert shared == sum(r["shared_clean"] + r["shared_dirty"] for r in split)
        own = sum(r["sharing"]["exclusive_pages"] for r in split) * PAGE
        assert own == sum(r["private_clean"] + r["private_dirty"] for r in split)


@needs_root
def test_the_table_names_sharers_and_writers():
    with share_sample() as facts:
        result = run_cli(str(facts["parent"]), "--shared", "--no-diagram", "--no-notes")
        assert result.returncode == 0, result.stderr
        rows = {line.split()[0]: line for line in result.stdout.splitlines() if line[:1] == "0"}
        anon = rows[f"{facts['anon']:016x}"]
        assert f"share {facts['child']} (writes, 16 pages)" in anon
        private = rows[f"{facts['private']:016x}"]
        assert f"share {facts['child']} (copy-on-write, 16 pages)" in private
        assert "shared with" in result.stdout
        assert "page frame numbers compared" in result.stdout


@needs_root
def test_a_watch_tells_pages_copied_on_write_and_a_sharer_gone():
    with share_sample() as facts:
        watch = subprocess.Popen(
            [sys.executable, "-m", "procmap", str(facts["parent"]), "--watch", "--shared",
             "--json", "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=procmap_env(),
        )  # fmt: skip
        try:
            out = Lines(watch.stdout, "procmap --watch --shared")
            records = [json.loads(out.next(30)) for _ in range(2)]
            assert [r["type"] for r in records] == ["snapshot", "sharing"]
            first = {int(r["start"], 16): r for r in records[1]["regions"]}
            assert first[facts["private"]]["shared_pages"] == 16

            def next_change(start: int) -> dict:
                while True:
                    record = json.loads(out.next(30))
                    if record["type"] == "sharing":
                        for c in record["changes"]:
                            if int(c["start"], 16) == start:
                                return c

            facts.command("rewrite 4")
            c = next_change(facts["private"])
            assert c["shared_pages"] == [16, 12] and c["exclusive_pages"] == [16, 20]
            assert c["joined"] == [] and c["left"] == []
            facts.command("end-child")
            c = next_change(facts["anon"])
            assert [x["pid"] for x in c["left"]] == [facts["child"]]
            assert c["shared_pages"] == [16, 0] and c["exclusive_pages"] == [0, 16]
        finally:
            watch.terminate()
            _, err = watch.communicate(timeout=30)
        assert watch.returncode == 0, err


@needs_root
def test_a_target_in_its_own_pid_namespace_is_told_so():
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    directory = tempfile.mkdtemp(prefix="procmap-share-")
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", str(SAMPLE_BIN / "share"),
         os.path.join(directory, "file")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        ready = Lines(process.stdout, "share in a namespace").next()
        assert "parent=1 " in ready  # as the namespace numbers it
        (pid,) = [
            int(p) for p in os.listdir("/proc") if p.isdigit() and _nspid(int(p)) == [None, 1]
            and _parent(int(p)) == process.pid
        ]  # fmt: skip
        data = shared_map(pid)
        assert data["sharing"]["target_pids"] == [pid, 1]
        assert any("PID 1 inside its own PID namespace" in w for w in data["warnings"])
        anon = [r for r in data["regions"] if r["detail"] == "shared-anonymous"]
        # Its child is seen, by this /proc's PID.
        assert anon and anon[0]["sharing"]["processes"] and anon[0]["sharing"]["processes"] != [2]
    finally:
        stop(process)


def _nspid(pid: int) -> list[int | None]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    pids = [int(p) for p in line.split()[1:]]
                    return [None, *pids[1:]] if len(pids) == 2 else pids
    except OSError:
        pass
    return []


def _owner(pid: int) -> int | None:
    """The UID owning a process, None once it is gone."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@needs_root
def test_procmap_in_a_pid_namespace_of_its_own_says_its_answer_is_partial():
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "procmap", "self",
         "--shared", "--json"],
        capture_output=True, env=procmap_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sharing"]["own_namespace"] is True and data["sharing"]["partial"] is True
    assert any("PID namespace of its own" in w for w in data["warnings"])


def test_no_such_process_is_one_line():
    result = run_cli("999999999", "--shared")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "999999999" in result.stderr


@needs_root
def test_a_snapshot_keeps_the_sharing_as_it_was(tmp_path):
    saved = tmp_path / "share.json"
    with share_sample() as facts:
        live = shared_map(facts["parent"])
        result = run_cli(str(facts["parent"]), "--shared", "--save", str(saved), "--json")
        assert result.returncode == 0, result.stderr
        at_save = procmap_json(result.stdout)
    # The processes are gone: the saved sharers are still there.
    again = run_cli("--from", str(saved), "--shared", "--json")
    assert again.returncode == 0, again.stderr
    replayed = procmap_json(again.stdout)
    assert [r["sharing"] for r in replayed["regions"]] == [r["sharing"] for r in at_save["regions"]]
    assert replayed["sharing"] == at_save["sharing"]
    private = regions_at(replayed)[facts["private"]]["sharing"]
    assert private == regions_at(live)[facts["private"]]["sharing"]
    text = run_cli("--from", str(saved), "--shared", "--no-diagram", "--no-notes")
    assert f"share {facts['child']} (copy-on-write, 16 pages)" in text.stdout


def test_a_snapshot_saved_without_shared_says_so(tmp_path):
    saved = tmp_path / "self.json"
    assert run_cli("self", "--save", str(saved)).returncode == 0
    result = run_cli("--from", str(saved), "--shared")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    # After the line saying where the map came from, one line saying why not.
    assert "saved without --shared" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("regions", 0, 4), "guessed", "expected one of frames"),
        (("regions", 0, 5, 0, 2), "telepathy", "expected one of object"),
        (("regions", 0, 5, 0, 3), "yes", "expected true or false"),
        (("regions", 0, 2), -1, "sharing.regions[0][2]"),
        (("scope", "own_namespace"), None, "expected true or false"),
        (("regions", 0), [1, 2], "expected [start, end"),
    ],
)
def test_a_damaged_saved_sharing_is_one_line(tmp_path, path, value, words):
    saved = tmp_path / "self.json"
    assert run_cli("self", "--shared", "--save", str(saved), "--json").returncode == 0
    data = json.loads(saved.read_text())
    target = data["sharing"]
    regions = target["regions"]
    regions.insert(0, [*regions[0][:5], [[1, "init", "object", False, None]]])
    regions[0][0] = "0x1000"  # a region of its own, first
    regions[0][1] = "0x2000"
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    saved.write_text(json.dumps(data))
    result = run_cli("--from", str(saved), "--shared")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
