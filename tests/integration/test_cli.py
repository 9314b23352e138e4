"""The command line on real processes: output, and every error as one line and its own exit code."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from procmap.errors import (
    AccessDenied,
    AmbiguousProcess,
    BadAddress,
    KernelThread,
    NoSuchProcess,
    ProcessExited,
    ZombieProcess,
)
from procmap.names import unescape
from procmap.render.text import printable
from tests.conftest import procmap_process, run_sample, sample_path
from tests.helpers import procmap_json, run_cli
from tests.users import NOBODY, become, needs_root, run_cli_as, world_readable_sample


def one_error_line(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("procmap: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


# --- the map ------------------------------------------------------------------------


def test_self_shows_header_table_summary_and_notes():
    result = run_cli("self")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("PID ")
    assert "mapped in" in out and "regions" in out
    for word in ("text", "rodata", "data", "bss", "heap", "stack", "mmap", "kernel"):
        assert word in out
    assert "by kind" in out and "by object" in out
    assert "What each kind is" in out
    assert "\x1b" not in out  # not a terminal: no colour, no escapes


def test_no_notes_and_sections():
    with run_sample("pie") as s:
        plain = run_cli(str(s.pid), "--no-notes")
        sections = run_cli(str(s.pid), "--no-notes", "--sections")
    assert "What each kind is" not in plain.stdout
    assert ".data" not in plain.stdout.replace(".data.rel.ro", "")
    for name in (".text", ".rodata", ".data.rel.ro", ".got", ".data", ".bss"):
        assert name in sections.stdout


def test_python_dash_m_is_the_same_cli():
    # Processes: `python -m procmap` and the installed script themselves are the point.
    via_module = procmap_process("--help")
    via_script = subprocess.run(
        [str(Path(sys.executable).with_name("procmap")), "--help"], capture_output=True, text=True
    )
    assert via_module.returncode == via_script.returncode == 0
    assert via_module.stdout == via_script.stdout
    assert run_cli("--help").stdout == via_module.stdout  # and the tests' in-process run


def colours(out: str) -> set[int]:
    """The foreground colour codes (SGR 30-39, 90-97) in terminal output."""
    found = set()
    for params in re.findall(r"\x1b\[([0-9;]*)m", out):
        for p in params.split(";"):
            if p and (30 <= int(p) <= 39 or 90 <= int(p) <= 97):
                found.add(int(p))
    return found


def test_colour_only_on_a_terminal_and_never_with_no_color():
    coloured = run_cli("self", "--no-notes", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert len(colours(coloured.stdout)) >= 5  # one colour per kind
    plain = run_cli("self", "--no-notes", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == 0 and not colours(plain.stdout)


def test_by_name_unique_and_ambiguous(tmp_path):
    # A name no other test's process has, even when tests run side by side.
    name = f"lsn-{os.getpid()}"
    copy = tmp_path / name
    shutil.copy(sample_path("static-pie"), copy)
    with run_sample("static-pie", path=copy) as s:
        result = run_cli(name, "--json")
        assert result.returncode == 0, result.stderr
        assert procmap_json(result.stdout)["pid"] == s.pid
    with run_sample("static-pie", path=copy) as a, run_sample("static-pie", path=copy) as b:
        result = run_cli(name)
    line = one_error_line(result, AmbiguousProcess.exit_code)
    assert "2 processes" in line
    assert str(a.pid) in result.stderr and str(b.pid) in result.stderr


def test_broken_pipe_is_quiet():
    python = sys.executable
    # A process: a real pipe, closed by head, is the point.
    result = subprocess.run(
        f"'{python}' -m procmap self | head -n 1", shell=True, capture_output=True, text=True
    )
    assert result.stdout.startswith("PID ")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


# --- hostile file names -------------------------------------------------------------

HOSTILE = "evil \x1b[31mred\x1b[0m [bold red]markup[not bold] \u202e\nline"


def test_hostile_path_is_printed_as_literal_text():
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, HOSTILE)
    with open(path, "wb") as f:
        f.write(b"\0" * 4096)
    code = (
        "import mmap, sys; f = open(sys.argv[1], 'rb'); "
        "m = mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ); print('ok', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "ok\n"
        table = run_cli(str(holder.pid), "--no-notes", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
        as_json = run_cli(str(holder.pid), "--json")
    finally:
        holder.stdin.close()
        holder.wait()
        shutil.rmtree(directory)
    assert table.returncode == 0, table.stderr
    # The only escapes in the coloured output are rich's own styles, never the path's.
    assert "\x1b[31mred" not in table.stdout
    assert "\\x1b[31mred\\x1b[0m [bold red]markup[not bold] \\u202e\\012line" in table.stdout
    regions = procmap_json(as_json.stdout)["regions"]
    # proc(5): the kernel shows the newline as \012; JSON escapes the rest as the
    # text view does (printable, valid UTF-8), and unescape gives it back exactly.
    kernel = path.replace("\n", "\\012")
    assert any(unescape(r["path"] or "") == kernel for r in regions)
    assert any(r["path"] == printable(kernel) for r in regions)


# --- errors -------------------------------------------------------------------------


def test_no_such_process():
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    line = one_error_line(run_cli(str(pid_max + 1)), NoSuchProcess.exit_code)
    assert f"no process with PID {pid_max + 1}" in line
    line = one_error_line(run_cli("no-such-program-name"), NoSuchProcess.exit_code)
    assert "no process named" in line


def test_kernel_thread():
    kthread = next(
        (
            pid
            for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            if int(Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[6])
            & 0x00200000
        ),
        None,
    )
    if kthread is None:
        pytest.skip("no kernel thread is visible here (a PID namespace hides them)")
    line = one_error_line(run_cli(str(kthread)), KernelThread.exit_code)
    assert "kernel thread" in line and "no user address space" in line
    one_error_line(run_cli("where", str(kthread), "0x1000"), KernelThread.exit_code)


def test_zombie():
    child = subprocess.Popen(["true"])
    try:
        for _ in range(500):
            if b") Z " in Path(f"/proc/{child.pid}/stat").read_bytes():
                break
            time.sleep(0.01)
        line = one_error_line(run_cli(str(child.pid)), ZombieProcess.exit_code)
        assert "zombie" in line and f"PID {os.getpid()}" in line
    finally:
        child.wait()


def test_process_that_exits_while_being_read(monkeypatch):
    """Kill the target between procmap's first read of it and its read of the maps."""
    from procmap.kernel import procfs

    real_maps = procfs.ProcessDir.maps

    def maps_after_exit(self):
        os.kill(self.pid, signal.SIGKILL)
        holder.wait()  # reaped: the PID is gone, and its /proc directory with it
        return real_maps(self)

    holder = subprocess.Popen(["sleep", "60"])
    monkeypatch.setattr(procfs.ProcessDir, "maps", maps_after_exit)
    line = one_error_line(run_cli(str(holder.pid)), ProcessExited.exit_code)
    assert "exited while procmap was reading it" in line


def test_bad_address():
    for bad in ("zz", "0x", "12345678901234567", "0x1g", "1 2"):
        line = one_error_line(run_cli("where", "self", bad), BadAddress.exit_code)
        assert "is not an address" in line


def test_unknown_kind_is_a_usage_error():
    result = run_cli("self", "--kind", "heap,nonsense")
    assert result.returncode == 2
    assert "unknown kind nonsense" in result.stderr


def test_debug_shows_the_traceback():
    # The error is not turned into a line and an exit code: it goes on, to Python's traceback.
    with pytest.raises(BadAddress, match="is not an address"):
        run_cli("where", "self", "zz", "--debug")


# --- permissions: procmap run as an unprivileged user ---------------------------------


@needs_root
def test_another_users_process_is_denied_with_the_reason():
    with run_sample("pie") as s:  # runs as root
        result = run_cli_as(NOBODY, [str(s.pid)])
    line = one_error_line(result, AccessDenied.exit_code)
    assert "belongs to user root" in line and "sudo" in line


@needs_root
def test_own_process_works_and_non_dumpable_is_explained():
    path = world_readable_sample()
    try:
        for args, expected in (([], 0), (["--nondumpable"], AccessDenied.exit_code)):
            process = subprocess.Popen(
                [path, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                preexec_fn=become(NOBODY),
            )
            try:
                assert process.stdout.readline()  # running, and past prctl()
                result = run_cli_as(NOBODY, [str(process.pid), "--no-notes"])
            finally:
                process.stdin.close()
                process.wait()
            if expected:
                assert "not dumpable" in one_error_line(result, expected)
            else:
                assert result.returncode == 0, result.stderr
                output = result.stdout + result.stderr
                # Its own user may read task/*/syscall too, unless Yama allows
                # ptrace only of descendants (the sample is procmap's sibling).
                yama = Path("/proc/sys/kernel/yama/ptrace_scope")
                scope = int(yama.read_text()) if yama.exists() else 0
                assert ("thread stacks found by shape" in output) == (scope >= 1), output
    finally:
        shutil.rmtree(os.path.dirname(path))


# --- where in impossible places (issue 17, 8) -------------------------------------------


def _where(*args: str) -> dict:
    result = run_cli("where", *args, "--json")
    assert result.returncode == 0, result.stderr
    (location,) = procmap_json(result.stdout)
    return location


def test_where_in_the_hole_says_non_canonical_not_between_the_stack_and_vsyscall():
    with run_sample("pie") as sample:
        hole = _where(str(sample.pid), hex(0x0000_9000_0000_0000))
        kernel = _where(str(sample.pid), "0xffff800000001000")
        above_stack = _where(str(sample.pid), hex((1 << 47) - 1))
    assert hole["unmapped"] == "non-canonical"
    assert hole["unmapped_range"] == {"start": 1 << 47, "end": 0xFFFF_8000_0000_0000}
    assert "ffffffffff600000" not in hole["description"]
    assert "non-canonical" in hole["description"]
    assert kernel["unmapped"] == "kernel"
    assert kernel["unmapped_range"] == {"start": 0xFFFF_8000_0000_0000, "end": 1 << 64}
    assert above_stack["unmapped"] == "gap"
    assert above_stack["unmapped_range"]["end"] == 1 << 47  # the top of user space, not vsyscall
    assert "the top of user space at 800000000000" in above_stack["description"]


# A 32-bit process on a 64-bit kernel: all 4 GiB are the process's (no such
# process can be started here without a 32-bit libc, so its maps text is written out).
MAPS_32 = b"""\
08048000-08049000 r-xp 00000000 08:01 12 /bin/a
0804a000-0804b000 rw-p 00001000 08:01 12 /bin/a
f7d00000-f7ed0000 r-xp 00000000 08:01 13 /lib/libc.so.6
ffd00000-ffd21000 rw-p 00000000 00:00 0 [stack]
"""


def test_where_beyond_4_gib_in_a_32_bit_process(tmp_path):
    path = tmp_path / "maps32"
    path.write_bytes(MAPS_32)
    beyond = _where("--from", str(path), "0x123456789")
    inside = _where("--from", str(path), "0x10000000")
    assert beyond["unmapped"] == "beyond-32-bit"
    assert beyond["unmapped_range"] == {"start": 1 << 32, "end": 1 << 64}
    assert "no 32-bit address can be there" in beyond["description"]
    assert inside["unmapped"] == "gap"
    assert inside["unmapped_range"] == {"start": 0x0804B000, "end": 0xF7D00000}


# --- a deleted binary keeps the kernel's "(deleted)" (issue 17, 9) ------------------------


def test_a_deleted_program_is_marked_deleted_in_every_view(tmp_path):
    copy = tmp_path / "doomed"
    shutil.copy(sample_path("pie"), copy)
    with run_sample("pie", path=copy) as sample:
        copy.unlink()
        table = run_cli(str(sample.pid), "--no-notes", "--no-diagram")
        rss = run_cli(str(sample.pid), "--rss", "--no-notes", "--no-diagram")
        data = procmap_json(run_cli(str(sample.pid), "--json").stdout)
        where = run_cli("where", str(sample.pid), hex(sample.variables["global_uninit"][0]))
    rows = [line for line in table.stdout.splitlines() if line.endswith("doomed (deleted)")]
    kinds = {line.split()[5] for line in rows}  # start end size unit perms kind
    assert {"text", "data", "bss"} <= kinds  # the bss, anonymous, too
    assert not [line for line in table.stdout.splitlines() if line.endswith(" doomed")]
    assert f"{copy} (deleted)" in table.stdout  # the summary by object
    assert f"{copy} (deleted)" in rss.stdout and " doomed (deleted)" in rss.stdout
    (program,) = [im for im in data["images"] if im["role"] == "program"]
    assert program["path"] == str(copy) and program["deleted"] is True
    assert f"{copy} (deleted)" in where.stdout
