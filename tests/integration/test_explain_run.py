"""`explain --run` on real processes: the load plan against the live map, and the child always gone.

The plan (explain_elf / plan_mappings, at load bias 0) is held against what the kernel and
ld.so really built, mapping for mapping, at both stop points; the program's arguments,
stdin, stdout and exit status pass through; every way a run can end (a crash, a leak, a
fork, a thread calling exit(), Ctrl-C once or twice) leaves no child behind; and every user
error is one line and its own exit code.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procmap.elf.layout import ET_EXEC
from procmap.errors import BadFile, RunFailed
from procmap.model import Detail
from procmap.views.explain import explain_elf, plan_mappings
from procmap.views.run import run_and_stop
from tests.conftest import MODES, ROOT, procmap_env, procmap_process, sample_path
from tests.helpers import procmap_json, run_cli

PAGE = os.sysconf("SC_PAGE_SIZE")
TIMEOUT = 60

# Small programs for what the samples do not do.  Names stay under 15 characters: they are
# found again by /proc/PID/comm.
PROGRAMS = {
    "pm_echo": r"""
        #include <stdio.h>
        #include <string.h>
        int main(int argc, char **argv)
        {
            char line[256] = "";
            printf("argc=%d\n", argc);
            for (int i = 1; i < argc; i++)
                printf("arg[%d]=<%s>\n", i, argv[i]);
            if (!fgets(line, sizeof line, stdin))
                line[0] = 0;
            line[strcspn(line, "\n")] = 0;
            printf("stdin=<%s>\n", line);
            return 0;
        }""",
    "pm_exit3": "int main(void) { return 3; }",
    "pm_segv": r"""
        #include <stdio.h>
        #include <sys/resource.h>
        int main(void)
        {
            struct rlimit none = {0, 0};
            int *volatile p = 0;   /* volatile: a real store, not a compiler trap (SIGILL) */
            setrlimit(RLIMIT_CORE, &none);   /* no core file left in the test's directory */
            puts("about to crash");
            fflush(stdout);
            *p = 1;
            return 0;
        }""",
    "pm_leak": r"""
        #include <stdio.h>
        #include <sys/mman.h>
        int main(void)
        {
            size_t size = 64UL << 20;
            char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return 1;
            p[0] = p[size - 1] = 1;
            printf("leak %p %zu\n", (void *)p, size);
            return 0;   /* never munmap()ed: only a stop at exit still sees it */
        }""",
    "pm_forker": r"""
        #include <stdio.h>
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void)
        {
            int status;
            pid_t child = fork();
            if (child == 0) {
                execl("/bin/true", "true", (char *)0);
                _exit(127);
            }
            if (child < 0 || waitpid(child, &status, 0) != child)
                return 1;
            printf("child %d exited %d\n", (int)child, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            return 5;
        }""",
    "pm_threads": r"""
        #include <pthread.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        static void *worker_exits(void *arg) { (void)arg; usleep(10000); exit(4); }
        static void *worker_waits(void *arg) { (void)arg; for (;;) pause(); }
        int main(int argc, char **argv)
        {
            pthread_t t;
            if (argc > 1 && strcmp(argv[1], "worker-exits") == 0) {
                pthread_create(&t, NULL, worker_exits, NULL);
                for (;;)
                    pause();
            }
            pthread_create(&t, NULL, worker_waits, NULL);
            usleep(10000);
            return 6;   /* exit_group() with the worker still running */
        }""",
    "pm_stopper": r"""
        #include <signal.h>
        int main(void) { raise(SIGSTOP); return 7; }""",
    "pm_execer": r"""
        #include <unistd.h>
        int main(void) { execl("/bin/true", "true", (char *)0); return 99; }""",
    "pm_sleeper": r"""
        #include <stdio.h>
        #include <unistd.h>
        int main(void) { fprintf(stderr, "ready\n"); sleep(30); return 0; }""",
    "pm_stubborn": r"""
        #include <signal.h>
        #include <string.h>
        #include <time.h>
        #include <unistd.h>
        static void on_int(int sig) { (void)sig; write(2, "SIGINT\n", 7); }
        int main(void)
        {
            struct sigaction sa;
            time_t end = time(NULL) + 30;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_int;   /* handles Ctrl-C and keeps going, like a shell */
            sigaction(SIGINT, &sa, NULL);
            write(2, "ready\n", 6);
            while (time(NULL) < end)
                sleep(1);
            return 0;
        }""",
}


@pytest.fixture(scope="module")
def progs(tmp_path_factory) -> dict[str, Path]:
    """Every program in PROGRAMS, built with gcc in parallel."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("progs")
    builds = {}
    for name, source in PROGRAMS.items():
        (out / f"{name}.c").write_text(source + "\n")
        builds[name] = subprocess.Popen(
            ["gcc", "-O0", "-pthread", "-o", str(out / name), str(out / f"{name}.c")],
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, build in builds.items():
        _, err = build.communicate(timeout=TIMEOUT)
        assert build.returncode == 0, f"{name}: {err}"
    return {name: out / name for name in PROGRAMS}


@pytest.fixture(autouse=True)
def devnull_stdin():
    """run_and_stop's child inherits fd 0: make it /dev/null, so the samples exit at once
    even under `pytest -s` at a terminal."""
    null = os.open(os.devnull, os.O_RDONLY)
    saved = os.dup(0)
    os.dup2(null, 0)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


# --- helpers -----------------------------------------------------------------------------


def down(x: int) -> int:
    return x - x % PAGE


def up(x: int) -> int:
    return -(-x // PAGE) * PAGE


def children(of: int | None = None) -> set[int]:
    """PIDs whose parent is `of` (this process): running, stopped or zombie."""
    of = os.getpid() if of is None else of
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == of:
            found.add(int(entry))
    return found


def by_name(comm: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() == comm:
                found.add(int(entry))
        except OSError:
            continue
    return found


def assert_gone(pid: int) -> None:
    """Not running, not stopped, not a zombie: the PID does not exist at all."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(f"/proc/{pid}")


_BEFORE: dict[int, set[int]] = {}  # run's PID -> this process's children before the run


def run(path, args=(), stop_at="exit"):
    """run_and_stop, remembering this process's children from before it."""
    path = str(path)
    before = children()
    result = run_and_stop(path, list(args), explain_elf(path), stop_at=stop_at)
    _BEFORE[result.pid] = before
    return result


def assert_left_nothing(result) -> None:
    """After run_and_stop returned: the program is gone, and no other child of ours is new."""
    assert_gone(result.pid)
    assert children() <= _BEFORE[result.pid], "run_and_stop left a child behind"


@pytest.fixture(autouse=True)
def reap_leftovers():
    """Cleanup only (the tests assert): a child that a failing run left stopped and traced
    is let finish and reaped, so that it does not outlive its test."""
    before = children()
    yield
    for pid in children() - before:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace(7, pid, None, None)  # PTRACE_CONT: out of a ptrace stop, on to its end
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def program_image(result):
    images = [im for im in result.map.images if im.role == "program"]
    assert len(images) == 1, result.map.images
    return images[0]


def image_mappings(result):
    """The live mappings inside the program's span: its file mappings and its bss."""
    image = program_image(result)
    return [m for m in result.map.mappings if m.start < image.end and m.end > image.start]


def shape(mappings) -> list[tuple]:
    """What the loader decides: addresses, permissions, file offset, which file."""
    return [
        (m.start, m.end, m.perms, m.offset, m.dev, m.inode, m.path)
        if m.inode
        else (m.start, m.end, m.perms, None, None, 0, m.path)
        for m in mappings
    ]


def dev_of(path) -> tuple[str, int]:
    st = os.stat(path)
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino


def planned(exp, path, bias, relro=True):
    dev, inode = dev_of(path)
    return plan_mappings(
        exp.layout,
        exp.page_size,
        exp.loader,
        bias=bias,
        path=os.path.realpath(path),
        dev=dev,
        inode=inode,
        relro=relro,
    )


def covered(mappings, start: int, end: int) -> bool:
    pos = start
    for m in sorted(mappings):
        if m.start <= pos < m.end:
            pos = m.end
    return pos >= end


# --- 1. at exit, every mode: the plan is what was built ------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_at_exit_the_live_image_is_the_plan_mapping_for_mapping(mode):
    path = sample_path(mode)
    exp = explain_elf(str(path))
    result = run(path)

    assert result.exit_status == 0
    assert result.stop_at == "exit" and result.argv == [str(path)]
    assert result.map.pid == result.pid
    image = program_image(result)
    assert image.path == os.path.realpath(path)
    assert image.key == dev_of(path)

    bias = result.bias
    assert bias is not None and bias == image.bias
    assert bias % PAGE == 0
    if exp.layout.type == ET_EXEC:  # nopie, static: at the link address
        assert bias == 0
    else:  # pie, static-pie...: a base chosen at exec, never 0
        assert bias != 0

    assert result.differences == [], result.differences

    live = image_mappings(result)
    assert len(result.landings) == len(exp.loads)
    for landing, plan in zip(result.landings, exp.loads):
        seg = plan.segment
        assert landing.number == plan.number
        assert (landing.plan_start, landing.plan_end) == (
            down(seg.vaddr),
            up(seg.vaddr + seg.memsz),
        )
        assert (landing.start, landing.end) == (landing.plan_start + bias, landing.plan_end + bias)
        assert covered(live, landing.start, landing.end), f"segment {landing.number} not all mapped"
        assert landing.live_kinds == landing.kinds

    # The strongest check: what the loader built is, mapping for mapping, the plan moved by
    # the bias.  With ASLR the brk heap starts at a random distance above the bss, so the
    # span holds only the program's file mappings and its anonymous bss mapping; with ASLR
    # off the heap starts right at the end of the bss (see the next test).
    expected = planned(exp, path, bias)
    assert shape(live) == shape(expected)
    assert shape(expected) == shape(
        m._replace(start=m.start + bias, end=m.end + bias) for m in exp.mappings
    )
    assert live[-1].path is None and live[-1].inode == 0, "the last mapping is the anonymous bss"
    assert_left_nothing(result)


def _personality(persona: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality.argtypes = [ctypes.c_ulong]
    return libc.personality(persona)


@pytest.mark.parametrize("mode", ["static", "pie"])
def test_with_aslr_off_the_heap_abuts_the_bss_without_merging_into_it(mode):
    """ADDR_NO_RANDOMIZE (setarch -R): the brk heap starts exactly where the bss ends.

    Both are anonymous rw-p memory, yet the kernel keeps them separate VMAs ([heap] is its
    own VMA), so the bss mapping is still exactly the plan's and test 1 needs no special
    case for a bss merged into [heap].  A kernel that merged them would fail here, by name.
    """
    addr_no_randomize = 0x0040000
    old = _personality(0xFFFFFFFF)
    if old == -1 or _personality(old | addr_no_randomize) == -1:
        pytest.skip("personality(ADDR_NO_RANDOMIZE) is not permitted here")
    try:
        path = sample_path(mode)
        result = run(path)
    finally:
        _personality(old)
    live = image_mappings(result)
    heap = [m for m in result.map.mappings if m.path == "[heap]"]
    assert heap and heap[0].start == live[-1].end, "with ASLR off the heap starts at the bss end"
    assert result.differences == []
    assert shape(live) == shape(planned(explain_elf(str(path)), path, result.bias))
    assert_left_nothing(result)


# --- 2. at entry: only the kernel's work -----------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_at_entry_only_the_kernel_has_run(mode):
    path = sample_path(mode)
    exp = explain_elf(str(path))
    result = run(path, stop_at="entry")

    assert result.exit_status is None
    paths = {m.path for m in result.map.mappings}
    roles = [im.role for im in result.map.images]
    assert roles.count("program") == 1
    assert "[heap]" not in paths, "nothing has moved the program break yet"
    assert not any(p and os.path.basename(p).startswith("libc.so") for p in paths)
    if exp.facts.static:
        assert roles == ["program"], "a static program has no dynamic linker"
    else:
        assert sorted(roles) == ["dynamic linker", "program"]

    # The kernel maps each PT_LOAD; nothing has made RELRO read-only yet.
    bias = result.bias
    assert bias is not None and bias % PAGE == 0
    assert shape(image_mappings(result)) == shape(planned(exp, path, bias, relro=False))

    # So the differences are exactly the live regions over the plan's RELRO, still rw- data.
    relro = [r for r in exp.regions if r.detail is Detail.RELRO]
    expected = [
        (x.start, x.end)
        for r in relro
        for x in result.map.regions
        if x.start < r.end + bias and x.end > r.start + bias
    ]
    found = []
    for d in result.differences:
        match = re.match(r"0x([0-9a-f]+)-0x([0-9a-f]+): planned r-- rodata \(relro\), live rw- ", d)
        assert match, d
        found.append((int(match[1], 16), int(match[2], 16)))
    assert found == expected
    if mode == "norelro":
        assert relro == [] and result.differences == []
    else:
        assert relro and result.differences
    assert_left_nothing(result)


# --- 3. the child never outlives run_and_stop, even after an error ---------------------


@pytest.mark.parametrize("stop_at", ["exit", "entry"])
def test_the_program_is_gone_when_run_and_stop_returns(stop_at):
    result = run(sample_path("pie"), stop_at=stop_at)
    status = Path(f"/proc/{result.pid}/status")
    left = (
        [x for x in status.read_text().splitlines() if x.startswith(("State", "TracerPid"))]
        if status.exists()
        else []
    )
    assert not left, f"PID {result.pid} is still there after run_and_stop returned: {left}"
    assert_left_nothing(result)


def test_no_child_is_left_after_an_error_before_or_after_fork(tmp_path):
    # Not executable: refused before fork.
    copy = tmp_path / "noexec"
    shutil.copy(sample_path("pie"), copy)
    copy.chmod(0o644)
    before = children()
    with pytest.raises(BadFile, match="not executable"):
        run_and_stop(str(copy), [], explain_elf(str(copy)))
    # An interpreter that does not exist: execve() fails in the forked child.
    bad = tmp_path / "badinterp"
    bad.write_bytes(_with_missing_interpreter(sample_path("pie")))
    bad.chmod(0o755)
    with pytest.raises(RunFailed, match="cannot run .*No such file"):
        run_and_stop(str(bad), [], explain_elf(str(bad)))
    assert children() <= before, "a forked child was left behind (zombie?)"


def _with_missing_interpreter(path) -> bytes:
    data = Path(path).read_bytes()
    interp = explain_elf(str(path)).layout.interpreter.encode() + b"\0"
    missing = interp[:-2] + (b"X" if interp[-2:-1] != b"X" else b"Y") + b"\0"
    assert data.count(interp) >= 1
    return data.replace(interp, missing, 1)


# --- 4. what a program does passes through; every way it ends is stopped ----------------


def test_arguments_stdin_and_stdout_pass_through(progs):
    prog = str(progs["pm_echo"])
    # A process: the program's stdin and stdout are procmap's own, passed through.
    result = procmap_process(
        "explain",
        prog,
        "--run",
        "--",
        "a",
        "b c",
        "--flag",
        "",
        input="hello\n",
        env={"COLUMNS": "400"},  # the "Ran ..." line whole, however long the path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        "argc=5",
        "arg[1]=<a>",
        "arg[2]=<b c>",
        "arg[3]=<--flag>",
        "arg[4]=<>",
        "stdin=<hello>",
    ]
    ran = next(i for i, line in enumerate(lines) if line.startswith("Ran "))
    assert ran > 5, "the program's output comes before procmap's"
    assert "exit status 0" in lines[ran]
    assert "Traceback" not in result.stderr


def test_exit_status_in_json(progs):
    result = run_cli("explain", str(progs["pm_exit3"]), "--run", "--json")
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    assert data["run"]["exit_status"] == 3
    assert data["run"]["differences"] == []


def test_a_crash_is_stopped_at_its_exit_and_its_map_read(progs, capfd):
    result = run(progs["pm_segv"])
    assert "about to crash" in capfd.readouterr().out
    assert result.exit_status == -signal.SIGSEGV
    assert program_image(result).path == str(progs["pm_segv"])
    assert any(r.kind == "stack" for r in result.map.regions)
    assert result.differences == []
    assert_left_nothing(result)


def test_a_leaked_mapping_is_still_there_at_exit(progs, capfd):
    result = run(progs["pm_leak"])
    words = capfd.readouterr().out.split()
    assert words[0] == "leak"
    address, size = int(words[1], 16), int(words[2])
    assert size == 64 << 20
    holding = [m for m in result.map.mappings if m.start <= address and address + size <= m.end]
    assert holding, "the 64 MiB mapping is gone at the exit stop"
    assert holding[0].perms == "rw-p" and holding[0].is_anonymous
    # An anonymous mmap; except that the kernel aligns big anonymous mappings to 2 MiB (THP),
    # so about 1 run in 32 it starts on a 64 MiB boundary, and an rw-p 64 MiB mapping there
    # is exactly what a glibc arena grown to full size looks like: classify.py's arena
    # heuristic then claims it, and says it is a guess.
    region = result.map.region_at(address)
    assert region.kind == "mmap" or (
        address % (64 << 20) == 0 and region.detail is Detail.MALLOC_ARENA and region.heuristic
    ), region
    assert result.exit_status == 0
    assert_left_nothing(result)


def test_a_forked_child_that_execs_does_not_stop_the_program(progs, capfd):
    result = run(progs["pm_forker"])
    out = capfd.readouterr().out
    child = int(re.search(r"child (\d+) exited 0", out)[1])  # /bin/true ran, untraced
    assert_gone(child)
    assert result.exit_status == 5, "stopped at the original program's exit, not the child's"
    assert program_image(result).path == str(progs["pm_forker"])
    assert not any(os.path.basename(im.path) == "true" for im in result.map.images)
    assert result.bias is not None and result.differences == []
    assert_left_nothing(result)


@pytest.mark.parametrize("how, status", [("main-returns", 6), ("worker-exits", 4)])
def test_multithreaded_exit_from_any_thread_is_stopped(progs, how, status):
    # main-returns: exit_group() from the traced thread kills a worker still running.
    # worker-exits: an untraced thread calls exit(); the traced main thread is killed by
    # exit_group() and must still stop at its exit.
    result = run(progs["pm_threads"], [how])
    assert result.exit_status == status
    assert result.differences == []
    assert program_image(result).path == str(progs["pm_threads"])
    assert_left_nothing(result)


def test_a_program_that_stops_itself_is_kept_running(progs):
    result = run(progs["pm_stopper"])  # raise(SIGSTOP): a group stop that must not hang us
    assert result.exit_status == 7
    assert_left_nothing(result)


def test_a_program_that_execs_another_is_stopped_at_the_others_exit(progs):
    result = run(progs["pm_execer"])
    assert result.exit_status == 0
    assert program_image(result).path == os.path.realpath("/bin/true")
    assert result.bias is None and result.landings == []
    assert len(result.differences) == 1 and "not loaded" in result.differences[0]
    assert_left_nothing(result)


# --- 5. the JSON of explain --run ---------------------------------------------------


@pytest.mark.parametrize("stop_at", ["exit", "entry"])
def test_json_has_the_explanation_and_the_run(stop_at):
    path = str(sample_path("pie"))
    # A process: the program's stdout is procmap's own (its lines come before the JSON).
    result = procmap_process(
        "explain", path, "--run", "--stop-at", stop_at, "--json", stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if stop_at == "entry":
        assert len(lines) == 1, "killed at entry: the program printed nothing"
    else:
        assert lines[-2] == "ready", "the sample's own output comes first"
    data = procmap_json(lines[-1])
    assert set(explain_elf(path).to_dict()) <= set(data)
    assert data["path"] == path and data["loader"] == "kernel"
    run_ = data["run"]
    assert set(run_) == {
        "argv",
        "pid",
        "stop_at",
        "exit_status",
        "bias",
        "landings",
        "differences",
        "map",
    }
    assert run_["argv"] == [path] and run_["stop_at"] == stop_at
    assert run_["exit_status"] == (0 if stop_at == "exit" else None)
    assert isinstance(run_["bias"], int) and run_["bias"] % PAGE == 0 and run_["bias"] != 0
    assert run_["map"]["regions"] and run_["map"]["pid"] == run_["pid"]
    assert len(run_["landings"]) == sum(s["type"] == "LOAD" for s in data["segments"])
    for landing in run_["landings"]:
        assert landing["start"] == landing["plan_start"] + run_["bias"]
    assert (run_["differences"] == []) == (stop_at == "exit")
    assert_gone(run_["pid"])


# --- 6. errors: one line, its own exit code ---------------------------------------------


def one_error_line(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("strace: ")]
    assert len(lines) == 1 and lines[0].startswith("procmap: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_ptrace_denied_when_procmap_is_itself_traced():
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    # A process: strace -f attaches to procmap's forked child, so its PTRACE_TRACEME
    # fails (EPERM).
    result = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", sys.executable, "-m", "procmap"]
        + ["explain", str(sample_path("pie")), "--run"],
        capture_output=True,
        text=True,
        env=procmap_env(),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )
    line = one_error_line(result, 14)
    assert "ptrace" in line


def _make(tmp_path: Path, what: str) -> str:
    if what == "noexec":
        target = tmp_path / "lesson-noexec"
        shutil.copy(sample_path("pie"), target)
        target.chmod(0o644)
    elif what == "missing":
        target = tmp_path / "no-such-program"
    elif what == "directory":
        target = tmp_path
    elif what == "script":
        target = tmp_path / "script.sh"
        target.write_text("#!/bin/sh\necho should never run\n")
        target.chmod(0o755)
    elif what == "badinterp":
        target = tmp_path / "badinterp"
        target.write_bytes(_with_missing_interpreter(sample_path("pie")))
        target.chmod(0o755)
    else:
        raise ValueError(what)
    return str(target)


@pytest.mark.parametrize(
    "what, code, words",
    [
        ("noexec", 10, "not executable"),
        ("missing", 10, "no such file"),
        ("directory", 10, "directory"),
        ("script", 11, "not an ELF"),  # refused before anything runs
        ("badinterp", 15, "cannot run"),  # execve() fails: ENOENT for the interpreter
    ],
)
def test_errors_are_one_line_with_their_exit_code(tmp_path, what, code, words):
    path = _make(tmp_path, what)
    result = run_cli("explain", path, "--run")
    assert words in one_error_line(result, code)


def test_arguments_without_run_are_a_usage_error():
    result = run_cli("explain", str(sample_path("pie")), "--", "a")
    assert result.returncode == 2, result.stderr
    assert "Usage:" in result.stderr and "need --run" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# --- 7. Ctrl-C -------------------------------------------------------------------------


def start_procmap(*args: str) -> subprocess.Popen:
    # A process: Ctrl-C (a signal to its process group) is the point.
    return subprocess.Popen(
        [sys.executable, "-m", "procmap", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=procmap_env(),
        cwd=ROOT,
        start_new_session=True,  # its own process group, as a terminal's job is
    )


def wait_for_line(process: subprocess.Popen, text: bytes, seen: bytearray, timeout=20.0) -> None:
    """Read process's stderr (shared with the program) until a line equal to `text`."""
    fd = process.stderr.fileno()
    deadline = time.monotonic() + timeout
    while text not in seen.split(b"\n")[:-1]:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise TimeoutError(f"no {text!r} on stderr: {bytes(seen)!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"stderr closed before {text!r}: {bytes(seen)!r}")
        seen += chunk


def finish(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Wait for procmap; if it hangs, kill its whole group (the program too) and fail."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"procmap still running {timeout} s after Ctrl-C")
    return out.decode(), err.decode()


def test_ctrl_c_ends_the_program_and_shows_its_map(progs):
    process = start_procmap("explain", str(progs["pm_sleeper"]), "--run", "--json")
    try:
        seen = bytearray()
        wait_for_line(process, b"ready", seen)  # the program runs: procmap's handler is set
        (program,) = children(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: to procmap and the program
        out, err = finish(process, timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # What happens: SIGINT kills the program, which stops at its exit as any death does, so
    # procmap reads and prints its map, exit status -2 (signal 2), and exits 0 itself.
    assert process.returncode == 0, err
    assert "Traceback" not in err
    data = procmap_json(out)
    assert data["run"]["exit_status"] == -signal.SIGINT
    assert data["run"]["pid"] == program and data["run"]["map"]["regions"]
    assert_gone(program)
    assert not by_name("pm_sleeper")


def test_a_second_ctrl_c_gives_up_on_a_program_that_survives_the_first(progs):
    """run.py: "a second Ctrl-C: give up on the program".  The program here handles SIGINT
    and keeps running (as a shell or an editor does); after the second Ctrl-C procmap must
    kill it and return, not wait for it to end by itself (30 s here, forever for a server)."""
    process = start_procmap("explain", str(progs["pm_stubborn"]), "--run")
    try:
        seen = bytearray()
        wait_for_line(process, b"ready", seen)
        (program,) = children(process.pid)
        process.send_signal(signal.SIGINT)
        wait_for_line(process, b"SIGINT", seen)  # procmap passed the first one on
        process.send_signal(signal.SIGINT)
        out, err = finish(process, timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in by_name("pm_stubborn"):
            os.kill(pid, signal.SIGKILL)
    assert process.returncode != 0
    assert "Traceback" not in err
    assert_gone(program)
