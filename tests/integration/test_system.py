"""`procmap system` on real processes: the samples and whatever else runs.

Its figures are checked against the kernel's own sums (smaps_rollup, read
before and after), against `procmap PID --rss`, and against smem where it is
installed; the shared objects against the processes that really map them;
the processes it may not read by running it as nobody; the metrics by parsing
them with prometheus_client's OpenMetrics parser, from the text and from a
live `--serve`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from procmap.kernel.procfs import ProcessDir, ProcFS
from procmap.views.system import Filters, read_system, system_json
from tests.conftest import procmap_env, run_sample, sample_path
from tests.helpers import procmap_json, run_cli
from tests.users import NOBODY, become, needs_root, run_cli_as, world_readable_copy

KIB = 1024


def rollup_pss(pid: int) -> int | None:
    """The kernel's PSS of a process (smaps_rollup), in bytes; None if not readable now."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_bytes()
    except OSError:
        return None
    m = re.search(rb"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * KIB if m else None


def near(ours: int, theirs: int, share: float = 0.02, slack: int = 0) -> bool:
    return abs(ours - theirs) <= share * max(theirs, 1) + slack


@contextmanager
def named_samples(n: int, mode: str = "pie", preexec_fn=None):
    """n lesson samples run from a copy with a name of their own (so that no other
    test's samples are theirs): (name, [Sample...])."""
    name = f"pmsys-{secrets.token_hex(3)}"  # 12 characters: comm keeps them whole
    copy = world_readable_copy(sample_path(mode), name)
    try:
        with ExitStack() as stack:
            samples = [
                stack.enter_context(run_sample(mode, path=copy, preexec_fn=preexec_fn))
                for _ in range(n)
            ]
            yield name, samples
    finally:
        shutil.rmtree(os.path.dirname(copy), ignore_errors=True)


def smaps_of_file(pids, name: str) -> tuple[int, int]:
    """RSS and PSS of the mappings of a file whose path ends in `name`, summed over
    the processes `pids`, from their smaps."""
    rss = pss = 0
    for pid in pids:
        inside = False
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                inside = line.endswith("/" + name)
            elif inside and line.startswith("Rss:"):
                rss += int(line.split()[1]) * KIB
            elif inside and line.startswith("Pss:"):
                pss += int(line.split()[1]) * KIB
    return rss, pss


def system(*args: str) -> dict:
    result = run_cli("system", "--json", *args)
    assert result.returncode == 0, result.stderr
    return procmap_json(result.stdout)


# --- the figures -------------------------------------------------------------------------


def test_each_process_pss_agrees_with_smaps_rollup():
    """Every process read, within 2% of the kernel's PSS read before and after it.

    A process's PSS moves whenever another process mapping the same pages starts
    or exits (libc's, on a busy machine; the tests beside this one start samples
    all the time).  The samples here have PSS of their own (a heap) and are
    always checked; another process is checked when its PSS moved by less than
    0.5% between the two reads of the kernel's, and is wrong only if it is wrong
    in each of three reads: a process that started or ended in the middle of one
    moves it for that read alone."""
    with heavy_samples(3) as (name, procs):
        ours = {p.pid for p in procs}
        wrong: dict[int, list] | None = None
        for _ in range(3):
            misses, checked = _compare_with_rollups(ours, name)
            assert checked >= len(ours)
            wrong = (
                misses
                if wrong is None
                else {p: wrong[p] + v for p, v in misses.items() if p in wrong}
            )
            assert not set(wrong) & ours, wrong
            if not wrong:
                break
    assert not wrong, wrong


def _compare_with_rollups(ours: set[int], name: str) -> tuple[dict[int, list], int]:
    """One read: {pid: [what procmap and the kernel said]} for those that disagree."""
    before = {int(p): rollup_pss(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    data = system()
    after = {pid: rollup_pss(pid) for pid in before}
    assert ours <= {p["pid"] for p in data["processes"]}
    assert data["figures_from"] == "smaps_rollup"
    misses, checked = {}, 0
    for p in data["processes"]:
        a, b = before.get(p["pid"]), after.get(p["pid"])
        if a is None or b is None:
            continue  # started or ended meanwhile
        if p["pid"] not in ours and not near(a, b, 0.005):
            continue  # busy, or sharing with processes that came and went
        checked += 1
        if not min(a, b) * 0.98 - 4 * KIB <= p["pss"] <= max(a, b) * 1.02 + 4 * KIB:
            misses[p["pid"]] = [(p["name"], p["pss"], a, b)]
        if p["pid"] in ours:
            assert p["name"] == name and p["figures_from"] == "smaps_rollup"
            assert p["rss"] >= p["pss"] >= p["uss"] > 8 << 20
            assert p["user"] == "root" and p["uid"] == 0
    return misses, checked


def test_kinds_are_those_of_procmap_pid_rss():
    """A sample's figures by kind are those `procmap PID --rss` gives its kinds (the
    same classifier, the same sharing of split mappings): the sample is idle.  The
    PSS of shared pages moves as other processes mapping libc come and go: only
    that of memory of its own is compared."""
    with named_samples(1) as (name, (sample,)):
        data = system("--name", name)
        show = run_cli(str(sample.pid), "--rss", "--json")
        mappings = len(Path(f"/proc/{sample.pid}/maps").read_bytes().splitlines())
    (p,) = data["processes"]
    by_kind = procmap_json(show.stdout)["summary"]["by_kind"]
    assert set(p["kinds"]) == set(by_kind)
    for kind, figures in p["kinds"].items():
        theirs = by_kind[kind]
        uss = theirs["private_clean"] + theirs["private_dirty"]
        assert (figures["rss"], figures["swap"]) == (theirs["rss"], theirs["swap"]), kind
        # What is private and what shared moves with the others (a page of libc
        # only this process has touched is private until another touches it);
        # memory of its own in both reads is the same.
        assert figures["uss"] <= figures["pss"] <= figures["rss"], kind
        if figures["uss"] == figures["rss"] and uss == theirs["rss"]:
            assert (figures["uss"], figures["pss"]) == (uss, theirs["pss"]), kind
    # The lesson's kinds are all there, and those it has touched are in RAM.
    assert {"text", "rodata", "data", "bss", "heap", "stack", "mmap"} <= set(p["kinds"])
    for kind in ("text", "data", "heap", "stack"):
        assert p["kinds"][kind]["rss"] > 0, kind
    # By kind, smaps' figures (each mapping's PSS rounded down to a kB) add up to
    # the kernel's own total within a kB a mapping; RSS exactly.
    assert near(sum(f["pss"] for f in p["kinds"].values()), p["pss"], 0, mappings * KIB)
    assert sum(f["rss"] for f in p["kinds"].values()) == p["rss"]


def test_a_threaded_process_has_its_thread_stacks_as_stack():
    """Thread stacks, found by their shape (system reads no stack pointer), are stack."""
    proc = subprocess.Popen(
        [str(sample_path("pie").parent / "watch")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("ready")
        for _ in range(2):
            proc.stdin.write("thread-start\n")
            proc.stdin.flush()
            assert proc.stdout.readline().startswith("done thread-start")
        view = read_system(filters=Filters(name="watch"))
        (p,) = [p for p in view.processes if p.pid == proc.pid]
        assert p.threads == 3
        show = procmap_json(run_cli(str(proc.pid), "--rss", "--json").stdout)
        theirs = show["summary"]["by_kind"]["stack"]
        # The stacks' pages in RAM are the same; only their sharing by size may differ
        # (a guard is stack both ways).
        assert p.kinds["stack"].rss == theirs["rss"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@contextmanager
def heavy_samples(n: int, heap: int = 8 << 20):
    """n `watch` samples, each with `heap` bytes of heap of its own: a PSS mostly
    private, which the processes that come and go (smem itself, one more process
    mapping libc while it reads) move by far less than 2%."""
    name = f"pmsys-{secrets.token_hex(3)}"
    copy = world_readable_copy(sample_path("pie").parent / "watch", name)
    procs = []
    try:
        for _ in range(n):
            proc = subprocess.Popen(
                [copy], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            procs.append(proc)
            assert proc.stdout.readline().startswith("ready")
            proc.stdin.write(f"heap-grow {heap}\n")
            proc.stdin.flush()
            assert proc.stdout.readline().startswith("done heap-grow")
        yield name, procs
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=10)
        shutil.rmtree(os.path.dirname(copy), ignore_errors=True)


@pytest.mark.skipif(
    shutil.which("smem") is None, reason="smem is not installed (apt-get install smem)"
)
def test_pss_and_uss_agree_with_smem():
    with heavy_samples(3) as (name, procs):
        data = system("--name", name)
        run = subprocess.run(
            ["smem", "-c", "pid uss pss", "-H"], capture_output=True, text=True, check=True
        )
    smem = {}
    for line in run.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].isdigit():
            smem[int(fields[0])] = (int(fields[1]) * KIB, int(fields[2]) * KIB)
    assert sorted(p["pid"] for p in data["processes"]) == sorted(p.pid for p in procs)
    for p in data["processes"]:
        uss, pss = smem[p["pid"]]
        assert near(p["pss"], pss, slack=4 * KIB), (p, pss)
        assert near(p["uss"], uss, slack=4 * KIB), (p, uss)
        assert p["kinds"]["heap"]["uss"] >= 8 << 20


# --- shared objects ---------------------------------------------------------------------


def test_shared_objects_count_the_processes_that_map_them():
    with named_samples(3) as (name, samples):
        data = system("--name", name)
        pids = {s.pid for s in samples}
        assert (  # read again: idle samples of a file of their own do not change
            next(o for o in system("--name", name)["objects"] if o["object"].endswith(name))
            == next(o for o in data["objects"] if o["object"].endswith(name))
        )
        mapped: dict[tuple[str, int], set[int]] = {}
        for pid in pids:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                fields = line.split(None, 5)
                if fields[4] != "0":
                    mapped.setdefault((fields[3], int(fields[4])), set()).add(pid)
        expected = smaps_of_file(pids, name)
    shared = {(o["dev"], o["inode"]): o for o in data["objects"]}
    assert set(shared) == {key for key, who in mapped.items() if len(who) >= 2}
    program = next(o for o in data["objects"] if o["object"].endswith("/" + name))
    assert program["processes"] == 3
    libc = next(o for o in data["objects"] if "libc.so" in o["object"])
    assert libc["processes"] == 3
    for o in data["objects"]:
        assert o["saved"] == o["rss"] - o["pss"] >= 0
        assert o["processes"] == len(mapped[(o["dev"], o["inode"])])
    # The program's file is mapped by these three alone (a copy of the sample's): its
    # figures are their smaps' for its mappings, summed (the samples are idle).
    assert (program["rss"], program["pss"]) == expected
    assert program["saved"] > 0  # its text is shared
    # The objects come most saved first.
    assert [o["saved"] for o in data["objects"]] == sorted(
        (o["saved"] for o in data["objects"]), reverse=True
    )


# --- choosing, sorting, showing --------------------------------------------------------


def test_filters_sort_and_limit():
    with named_samples(3) as (name, samples):
        everyone = system("--sort", "pid")
        pids = [p["pid"] for p in everyone["processes"]]
        assert pids == sorted(pids)
        assert os.getpid() not in pids  # procmap's own process is not read
        ours = system("--name", name.upper(), "--sort", "pid")
        assert [p["pid"] for p in ours["processes"]] == sorted(s.pid for s in samples)
        first = system("--name", name, "--limit", "2")
        assert len(first["processes"]) == 2
        assert first["totals"]["processes"] == 3  # the totals count every process read
        pss = [p["pss"] for p in first["processes"]]
        assert pss == sorted(pss, reverse=True)
        root = system("--user", "root", "--name", name)
        assert len(root["processes"]) == 3
        assert system("--user", str(NOBODY), "--name", name)["processes"] == []


def test_the_table():
    with named_samples(2) as (name, samples):
        result = run_cli("system", "--name", name, "--objects", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"PID\s+user\s+name\s+RSS\s+PSS\s+USS\s+swap\s+text\s+rodata", out)
    for s in samples:
        assert re.search(rf"^\s*{s.pid}\s+root\s+{name}\s+\d", out, re.M), out
    assert re.search(r"\d+ shared objects? \(mapped by several processes\): sharing saves", out)
    assert re.search(r"object\s+processes\s+RSS\s+PSS\s+saved", out)
    assert "\x1b" not in out  # NO_COLOR, not a terminal
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


# --- what cannot be read ----------------------------------------------------------------


@needs_root
def test_as_nobody_other_users_processes_are_one_line_and_the_result_is_partial():
    with named_samples(1, preexec_fn=become(NOBODY)) as (name, (mine,)):
        result = run_cli_as(NOBODY, ["system", "--json"])
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    assert data["partial"] is True
    assert "permission denied" in data["partial_reason"]
    unreadable = {u["pid"]: u for u in data["unreadable"]}
    assert os.getpid() in unreadable  # this test's own process is root's
    assert unreadable[os.getpid()]["reason"] == "permission-denied"
    assert unreadable[os.getpid()]["name"]  # named, from /proc/PID/stat
    assert data["totals"]["unreadable"] == len(unreadable)
    # nobody's own sample is read.
    assert [p["pid"] for p in data["processes"] if p["name"] == name] == [mine.pid]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(r"procmap: \d+ process(es)? not readable \(permission denied", lines[0])
    assert f"({os.getpid()})" in lines[0] or "more (--json lists them all)" in lines[0]
    assert "Traceback" not in result.stderr


@needs_root
def test_as_nobody_the_table_and_the_metrics_say_the_same():
    result = run_cli_as(NOBODY, ["system", "--limit", "3"])
    assert result.returncode == 0
    assert result.stderr.startswith("procmap: ") and result.stderr.count("\n") == 1
    assert "not readable" in result.stderr


@needs_root
def test_as_nobody_the_filters_choose_which_unreadable_processes_are_named():
    """Processes left out by --name or --user are not named as not readable."""
    with named_samples(1, preexec_fn=become(NOBODY)) as (name, (mine,)):
        by_name = run_cli_as(NOBODY, ["system", "--json", "--name", name])
        by_user = run_cli_as(NOBODY, ["system", "--json", "--user", "nobody"])
        of_root = run_cli_as(NOBODY, ["system", "--json", "--user", "root"])
    for result in (by_name, by_user):
        assert result.returncode == 0 and result.stderr == ""
        data = procmap_json(result.stdout)
        assert data["unreadable"] == [] and data["partial"] is False
        assert mine.pid in {p["pid"] for p in data["processes"]}
    data = procmap_json(of_root.stdout)
    assert data["processes"] == [] and data["partial"] is True
    assert os.getpid() in {u["pid"] for u in data["unreadable"]}


class _Vanishing(ProcessDir):
    """A process that is killed, and reaped, just after procmap has read its status:
    what a process that exits between two reads does, made certain."""

    victims: dict[int, subprocess.Popen] = {}

    def status(self):
        status = super().status()
        victim = self.victims.get(self.pid)
        if victim is not None:
            victim.kill()
            victim.wait()
        return status


class _VanishingProcFS(ProcFS):
    def open(self, pid):
        pd = super().open(pid)
        fd, pd.fd = pd.fd, -1  # handed to the subclass, which closes it
        return _Vanishing(self, pid, fd)


def test_a_process_that_exits_mid_read_is_named_not_an_error():
    with named_samples(3) as (name, samples):
        doomed = samples[1]
        _Vanishing.victims = {doomed.pid: doomed.process}
        try:
            view = read_system(_VanishingProcFS(), Filters(name=name))
        finally:
            _Vanishing.victims = {}
    assert sorted(p.pid for p in view.processes) == sorted(
        s.pid for s in samples if s is not doomed
    )
    assert [(u.pid, u.name, u.reason) for u in view.unreadable] == [(doomed.pid, name, "exited")]
    assert not view.partial  # its memory is gone: nothing is missing from the sums
    data = system_json(view)
    assert data["partial"] is False and data["unreadable"][0]["reason"] == "exited"


def test_processes_coming_and_going_never_break_a_read():
    """Short-lived processes started and ended all the while: never a traceback."""
    stop = time.monotonic() + 3
    churn = subprocess.Popen(
        ["sh", "-c", f"while [ $(date +%s) -lt {int(time.time()) + 3} ]; do /bin/true; done"]
    )
    try:
        while time.monotonic() < stop:
            result = run_cli("system", "--json")
            assert result.returncode == 0, result.stderr
            data = procmap_json(result.stdout)
            assert all(u["reason"] in ("exited", "permission-denied") for u in data["unreadable"])
    finally:
        churn.wait(timeout=10)


def test_without_smaps_rollup_the_figures_are_smaps_summed(tmp_path):
    """A kernel before 4.14 has no smaps_rollup: a procfs made of a real sample's
    files but that one (a kernel will not leave it out on demand)."""
    with named_samples(1) as (name, (sample,)):
        proc = tmp_path / str(sample.pid)
        proc.mkdir()
        for f in ("stat", "status", "smaps", "maps", "limits"):
            (proc / f).write_bytes(Path(f"/proc/{sample.pid}/{f}").read_bytes())
        for tid in os.listdir(f"/proc/{sample.pid}/task"):  # the sample has two threads
            (proc / "task" / tid).mkdir(parents=True)
        (proc / "exe").symlink_to(os.readlink(f"/proc/{sample.pid}/exe"))
        (proc / "root").symlink_to("/")
        rollup = rollup_pss(sample.pid)
        view = read_system(ProcFS(str(tmp_path)))
    (p,) = view.processes
    assert p.figures_from == "smaps" and view.figures_from == "smaps"
    assert near(p.total.pss, rollup, 0, 64 * KIB)  # each mapping's PSS rounded down
    assert p.kinds["text"].rss > 0 and p.kinds["heap"].rss > 0
    assert system_json(view)["figures_from"] == "smaps"


# --- metrics ----------------------------------------------------------------------------


def families(text: str) -> dict:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def samples_of(family, **labels) -> list:
    return [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def test_openmetrics_text_parses_and_agrees_with_smaps_rollup():
    with heavy_samples(3) as (name, samples):
        result = run_cli("system", "--openmetrics", "--per-pid")
        rollups = [rollup_pss(s.pid) for s in samples]
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("# EOF\n")
    found = families(result.stdout)
    (count,) = samples_of(found["procmap_processes"], name=name)
    assert count.value == 3
    (pss,) = samples_of(found["procmap_pss_bytes"], name=name)
    assert near(pss.value, sum(rollups), slack=12 * KIB)
    assert found["procmap_pss_bytes"].unit == "bytes"
    kinds = {
        s.labels["kind"]: s.value for s in samples_of(found["procmap_kind_pss_bytes"], name=name)
    }
    assert {"text", "data", "heap", "stack"} <= set(kinds)
    assert near(sum(kinds.values()), pss.value, 0, 3 * 64 * KIB)
    for s, rollup in zip(samples, rollups):
        (mine,) = samples_of(found["procmap_process_pss_bytes"], pid=str(s.pid))
        assert mine.labels["name"] == name
        assert near(mine.value, rollup, slack=4 * KIB)
    assert samples_of(found["procmap_process_kind_pss_bytes"], pid=str(samples[0].pid))
    saved = found["procmap_shared_object_saved_bytes"].samples
    assert 0 < len(saved) <= 10
    assert found["procmap_shared_saved_bytes"].samples[0].value >= sum(s.value for s in saved)
    assert {s.labels["reason"] for s in found["procmap_unreadable_processes"].samples} == {
        "permission-denied",
        "exited",
    }


def test_openmetrics_labels_stay_bounded_without_per_pid():
    result = run_cli("system", "--openmetrics", "--objects", "3")
    found = families(result.stdout)
    assert not any(name.startswith("procmap_process_") for name in found)
    for family in found.values():
        for s in family.samples:
            assert set(s.labels) <= {"name", "kind", "object", "reason"}
    assert len(found["procmap_shared_object_saved_bytes"].samples) <= 3


def test_without_prometheus_client_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    for args in (["--openmetrics"], ["--serve", "0"]):
        result = run_cli("system", *args)
        assert result.returncode == 19
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert "pip install 'procmap[metrics]'" in result.stderr


def test_the_json_and_the_table_never_import_prometheus_client():
    code = (
        "import sys\n"
        "from procmap.cli import main\n"
        "sys.argv = ['procmap', 'system', '--json', '--limit', '1']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=procmap_env()
    )
    assert run.returncode == 0, run.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> str:
    request = urllib.request.Request(
        url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        return response.read().decode()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_answers_scrapes_and_stops_cleanly(stop):
    with heavy_samples(2) as (name, samples):
        server = subprocess.Popen(
            [sys.executable, "-m", "procmap", "system", "--serve", "0", "--name", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=procmap_env(),
        )
        try:
            line = server.stderr.readline()
            match = re.match(
                r"procmap: serving metrics on (http://127\.0\.0\.1:(\d+)/metrics)", line
            )
            assert match, line
            url, port = match.group(1), int(match.group(2))
            first = families(scrape(url))
            (count,) = samples_of(first["procmap_processes"], name=name)
            assert count.value == 2
            (pss,) = samples_of(first["procmap_pss_bytes"], name=name)
            assert near(pss.value, sum(rollup_pss(s.pid) for s in samples), slack=8 * KIB)
            # Each scrape reads the machine again.
            samples[0].stdin.close()
            samples[0].wait(timeout=10)
            second = families(scrape(url))
            (count,) = samples_of(second["procmap_processes"], name=name)
            assert count.value == 1
        finally:
            server.send_signal(stop)
            try:
                server.wait(timeout=10)
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()
        assert server.returncode == 0, server.stderr.read()
        assert "Traceback" not in server.stderr.read()
    # Nothing is left listening, and no child of it runs.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(server.pid)], capture_output=True, text=True
    )
    assert children.stdout.strip() == ""


def test_serve_on_a_port_in_use_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("system", "--serve", str(port))
    assert result.returncode == 20
    assert result.stderr == (
        f"procmap: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--serve", "70000"], 2, "--serve"),
        (["--serve", "http"], 2, "--serve"),
        (["--serve", str(0), "--bind", "no-such-host.invalid"], 20, "cannot listen on"),
        (["--serve", "0", "--bind", "192.0.2.1"], 20, "cannot listen on 192.0.2.1:0"),
        (["--bind", "127.0.0.1"], 2, "--bind goes with --serve"),
        (["--per-pid"], 2, "--per-pid goes with"),
        (["--json", "--openmetrics"], 2, "one at a time"),
        (["--openmetrics", "--sort", "rss"], 2, "not with --openmetrics"),
        (["--user", "no-such-user-here"], 2, "no user named"),
        (["--limit", "0"], 2, "--limit"),
        (["--sort", "size"], 2, "--sort"),
    ],
)
def test_bad_input_is_a_clear_error(args, code, words):
    result = run_cli("system", *args)
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    if code != 2:
        assert result.stderr.count("\n") == 1


def test_zombies_and_kernel_threads_are_counted_not_read():
    zombie = subprocess.Popen(["true"])  # not reaped until the end: a zombie meanwhile
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        data = system()
    finally:
        zombie.wait()
    assert data["totals"]["zombies"] >= 1
    assert zombie.pid not in {p["pid"] for p in data["processes"]}
    assert zombie.pid not in {u["pid"] for u in data["unreadable"]}
    kthreads = kernel_thread_pids()
    if kthreads:  # none are seen inside a container's PID namespace
        assert data["totals"]["kernel_threads"] >= 1
        assert not kthreads & {p["pid"] for p in data["processes"]}


def kernel_thread_pids() -> set[int]:
    """The kernel threads this PID namespace shows (PF_KTHREAD in /proc/PID/stat's flags)."""
    found = set()
    for pid in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or gone
        if int(fields[6]) & 0x00200000:
            found.add(int(pid))
    return found


def test_a_scrape_that_fails_is_one_line_and_the_server_goes_on(capsys):
    import threading
    import urllib.error

    from procmap.errors import MapsFormatError
    from procmap.views.metrics import SystemCollector, make_server

    reads = []

    def read():
        reads.append(1)
        if len(reads) == 1:
            raise MapsFormatError("not a figure in kB, as smaps gives them: 'Rss: x'")
        return read_system(filters=Filters(name="no-such-process-name"))

    server = make_server(SystemCollector(read), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            scrape(url)
        found = families(scrape(url))  # the next scrape reads again, and works
        assert found["procmap_processes"].samples == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    err = capsys.readouterr().err
    assert err == "procmap: a scrape failed: not a figure in kB, as smaps gives them: 'Rss: x'\n"
