"""Hardening: what other processes put in /proc, and files anyone may have written.

Every case runs a real process: hostile names, other users, a private mount
namespace, deleted and replaced files, a process that changes while it is
read, and every process on the machine.  Cases that need root say so and skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import pytest

import procmap
from procmap.elf import read_elf
from procmap.errors import (
    AccessDenied,
    KernelThread,
    NoSuchProcess,
    ProcessExited,
    ZombieProcess,
)
from procmap.model import Detail
from procmap.names import unescape
from procmap.render.text import printable
from tests.conftest import SAMPLE_BIN, Lines, procmap_env, run_sample, sample_path
from tests.helpers import procmap_json, run_cli
from tests.users import (
    CAP_SYS_PTRACE,
    NOBODY,
    become,
    call_as,
    needs_root,
    run_cli_as,
)

# --- hostile names ---------------------------------------------------------------------

# Each is one file name (no "/", no NUL: nothing else is forbidden).
HOSTILE = {
    "ansi": b"esc \x1b[31mred\x1b[0m \x1b]8;;http:x\x1b\\link\x1b]8;;\x1b\\ \x07bell",
    "markup": b"[bold red]markup[not bold] [link=http:x]click",
    "newline": b"new\nline",
    "trailing space": b"trailing ",
    "deleted text": b"not gone (deleted)",
    "not utf-8": b"bad \xff\xfe\xc3( utf8",
    "bidi": b"\xe2\x80\xaeevil.so",
}
# A library whose name holds all of them: the picture and the SVG name libraries.
HOSTILE_LIBRARY = b"lib \x1b[31m[bold]evil\xff\n.so "

HOLDER = r"""
import ctypes, json, mmap, os, sys
libc = ctypes.CDLL(None)
libc.prctl(15, b"\x1b[31m[b]x\n", 0, 0, 0)  # PR_SET_NAME: comm, as ps shows it
directory, library = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
keep = []
def hold(name):
    f = open(os.path.join(directory, name), "rb")
    keep.append((f, mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ)))
for name in sorted(os.listdir(directory)):
    if name != os.path.basename(library) and not name.startswith(b"later"):
        hold(name)
lib = ctypes.CDLL(os.fsdecode(library))
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "later":
        hold(b"later \x1b[2J[red]" + bytes([0xff]))
        print("held", flush=True)
"""


def kernel_text(path: bytes) -> bytes:
    """A path as /proc/PID/maps prints it: the kernel escapes only the newline (proc(5))."""
    return path.replace(b"\n", b"\\012")


def shown(path: bytes) -> str:
    """A path as procmap prints it: the kernel's text, every unprintable character escaped."""
    return printable(os.fsdecode(kernel_text(path)))


def status_name(pid: int) -> str:
    """The process's name as the kernel shows it in /proc/PID/status (newline as \\n)."""
    for line in Path(f"/proc/{pid}/status").read_bytes().splitlines():
        if line.startswith(b"Name:\t"):
            return os.fsdecode(line[6:])
    raise AssertionError("no Name in status")


SGR = re.compile(rb"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A process mapping a file of each hostile name, and a library with one."""
    directory = tmp_path_factory.mktemp("hostile")
    paths = []
    for name in HOSTILE.values():
        path = os.path.join(os.fsencode(directory), name)
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
        paths.append(path)
    library = os.path.join(os.fsencode(directory), HOSTILE_LIBRARY)
    with open(SAMPLE_BIN / "libaligned.so", "rb") as src, open(library, "wb") as dst:
        dst.write(src.read())
    later = os.path.join(os.fsencode(directory), b"later \x1b[2J[red]\xff")
    with open(later, "wb") as f:
        f.write(b"\0" * 4096)
    argv = [sys.executable, "-c", HOLDER, str(directory), os.fsdecode(library), "\x1b[31m[b]arg"]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"ready\n"
        process.paths, process.library, process.later = paths, library, later
        yield process
    finally:
        process.kill()
        process.wait()


def _no_control_characters(text: str) -> None:
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\n") or ord(c) == 0x7F]
    assert not bad, f"control characters reached the output: {bad!r}"


def test_hostile_names_in_a_pipe_are_literal_text(hostile):
    result = run_cli(str(hostile.pid), "--no-notes", "--no-diagram")
    assert result.returncode == 0, result.stderr
    _no_control_characters(result.stdout)
    for path in [*hostile.paths, hostile.library]:
        assert shown(path) in result.stdout, shown(path)
    # The trailing space is shown, the " (deleted)" text is the file's own name.
    assert shown(HOSTILE["trailing space"]).endswith("trailing\\x20")
    assert printable(status_name(hostile.pid)) in result.stdout  # in the header
    assert "[bold red]markup[not bold] [link=http:x]click" in result.stdout


def test_hostile_names_in_a_terminal_are_literal_text(hostile):
    from tests.integration.test_watch_cli import _run_in_terminal

    # A process: a real terminal is the point.
    output = _run_in_terminal([str(hostile.pid), "--no-notes"], 320, 200)
    # No escape of the names' own reaches the terminal: what is left once rich's
    # colours (SGR) are taken out holds no escape at all, and the names' text is there.
    assert b"\x1b[31mred" not in output and b"\x1b]8;;" not in output and b"\x07" not in output
    plain = SGR.sub(b"", output)
    assert b"\x1b" not in plain.replace(b"\x1b[?1049h", b"").replace(b"\x1b[?1049l", b"")
    text = plain.decode("utf-8")
    for path in [*hostile.paths, hostile.library]:
        assert shown(path) in text, shown(path)
    assert "[bold red]markup[not bold]" in text  # markup printed, not applied


def test_a_long_path_is_whole_in_a_pipe_and_marked_where_a_terminal_cuts_it():
    from tests.integration.test_watch_cli import _run_in_terminal

    saved = Path(__file__).parents[1] / "data/fuzz/maps/long-path-in-a-pipe.maps"
    path = next(w for w in saved.read_text().split() if len(w) > 120)
    piped = run_cli("--from", str(saved), "--no-diagram")
    assert path in piped.stdout.split()
    # A process: a real terminal is the point.
    terminal = _run_in_terminal(["--from", str(saved), "--no-diagram"], 100, 40)
    plain = SGR.sub(b"", terminal).decode()
    (row,) = [line for line in plain.splitlines() if path[:20] in line]
    assert row.endswith("…") and len(row) == 100


def _strings(data) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [*data.keys(), *(s for v in data.values() for s in _strings(v))]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return []


def test_hostile_names_round_trip_through_json(hostile, tmp_path):
    result = run_cli(str(hostile.pid), "--json")
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    # Valid UTF-8 whatever the names hold: no lone surrogate (\udcff) in any string,
    # no control character, so jq and strict parsers keep every byte.
    for text in _strings(data):
        text.encode("utf-8")
        _no_control_characters(text)
    # Lossless: unescape gives the kernel's bytes back.
    raw = {os.fsencode(unescape(r["path"])) for r in data["regions"] if r["path"]}
    for path in [*hostile.paths, hostile.library]:
        assert kernel_text(path) in raw
    maps = Path(f"/proc/{hostile.pid}/maps").read_bytes()
    for path in raw:
        assert path in maps
    # The same escapes as the text view: a name reads the same in both, but for
    # a backslash before an escape, which only JSON doubles.
    table = run_cli(str(hostile.pid), "--no-notes", "--no-diagram").stdout
    paths = [r["path"] for r in data["regions"] if r["path"] and r["object"] is None]
    for path in paths:
        assert printable(unescape(path)) in table
        assert ("\\\\" in path) or path in table
    assert unescape(data["process"]["name"]) == status_name(hostile.pid)
    assert data["process"]["cmdline"][-1] == "\\x1b[31m[b]arg"
    images = [os.fsencode(unescape(im["path"])) for im in data["images"]]
    assert kernel_text(hostile.library) in images
    # Through a snapshot and back: the same document.
    saved = tmp_path / "hostile.json"
    assert run_cli(str(hostile.pid), "--save", str(saved)).returncode == 0
    again = procmap_json(run_cli("--from", str(saved), "--json").stdout)
    assert [r["path"] for r in again["regions"]] == [r["path"] for r in data["regions"]]
    assert again["process"] == data["process"]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (apt install jq)")
def test_hostile_names_survive_jq(hostile):
    result = subprocess.run(
        f"{sys.executable} -m procmap {hostile.pid} --json | jq -r '.regions[].path // empty'",
        shell=True,
        capture_output=True,
        env=procmap_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")  # strict: jq wrote valid UTF-8
    assert "\ufffd" not in out  # jq replaced nothing
    paths = {os.fsencode(unescape(line)) for line in out.splitlines()}
    for path in hostile.paths:
        assert kernel_text(path) in paths


def test_hostile_names_in_the_picture_and_the_svg(hostile, tmp_path):
    diagram = run_cli(str(hostile.pid), "--diagram")
    assert diagram.returncode == 0, diagram.stderr
    _no_control_characters(diagram.stdout)
    library = shown(os.path.basename(hostile.library))
    assert library[:24] in diagram.stdout  # the band names the library (cut to its box)
    svg = tmp_path / "map.svg"
    result = run_cli(str(hostile.pid), "--svg", str(svg))
    assert result.returncode == 0, result.stderr
    text = svg.read_text("utf-8")
    _no_control_characters(text)
    tree = ET.fromstring(text)  # well-formed: every name was escaped for XML
    words = [e.text for e in tree.iter() if e.text]
    assert any(library in w for w in words)  # whole, in the band's tooltip
    assert "<bold>" not in text and "\x1b" not in text


def test_hostile_names_in_where_and_its_json(hostile):
    maps = Path(f"/proc/{hostile.pid}/maps").read_bytes().splitlines()
    starts = {}
    for line in maps:
        fields = line.split(None, 5)
        if len(fields) == 6:
            starts.setdefault(fields[5], int(fields[0].split(b"-")[0], 16))
    wanted = [kernel_text(p) for p in hostile.paths]
    addresses = [f"{starts[p]:x}" for p in wanted]
    text = run_cli("where", str(hostile.pid), *addresses)
    assert text.returncode == 0, text.stderr
    _no_control_characters(text.stdout)
    for path in hostile.paths:
        assert shown(path) in text.stdout
    as_json = run_cli("where", str(hostile.pid), *addresses, "--json")
    found = [os.fsencode(unescape(loc["region"]["path"])) for loc in procmap_json(as_json.stdout)]
    assert found == wanted


def test_hostile_names_in_the_watch_log(hostile):
    # A process: the watch is read line by line while the watched process changes.
    watcher = subprocess.Popen(
        [sys.executable, "-m", "procmap", str(hostile.pid), "--watch", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=procmap_env(),
    )
    later = printable(os.fsdecode(os.path.basename(hostile.later)))
    try:
        out = Lines(watcher.stdout, "procmap --watch")
        lines = [out.next(20)]
        assert lines[0].startswith("watching PID")
        hostile.stdin.write(b"later\n")
        hostile.stdin.flush()
        assert hostile.stdout.readline() == b"held\n"
        while later not in lines[-1]:  # the event that names it
            lines.append(out.next())
    finally:
        watcher.send_signal(signal.SIGINT)
        rest, err = watcher.communicate(timeout=10)
    text = "\n".join(lines) + "\n" + (out.buffer + rest).decode("utf-8")
    _no_control_characters(text)
    assert "watch of PID" in text  # and the summary, after Ctrl-C
    assert b"Traceback" not in err


def test_a_hostile_file_name_in_explain(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"lesson \x1b[31m[bold]x\xff\n ")
    with open(path, "wb") as f:
        f.write(sample_path("pie").read_bytes())
    name = os.fsdecode(path)
    text = run_cli("explain", name)
    assert text.returncode == 0, text.stderr
    _no_control_characters(text.stdout)
    assert text.stdout.startswith(printable(name) + "\n")
    assert printable(name).endswith("\\x0a\\x20")
    as_json = procmap_json(run_cli("explain", name, "--json").stdout)
    assert os.fsencode(unescape(as_json["path"])) == path  # a file's own name: no kernel escaping
    svg = tmp_path / "plan.svg"
    assert run_cli("explain", name, "--svg", str(svg)).returncode == 0
    text = svg.read_text("utf-8")
    _no_control_characters(text)
    ET.fromstring(text)


def test_hostile_names_in_warnings_and_errors(tmp_path):
    # A saved map whose code file cannot be read here: the warning names it.
    evil = "/tmp/\x1b[31m[bold]x\xff"
    text = (
        f"55d4c0de0000-55d4c0de1000 r-xp 00000000 fe:00 99 {evil}\n"
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n"
    ).encode("utf-8", "surrogateescape")
    saved = tmp_path / "evil.maps"
    saved.write_bytes(text)
    result = run_cli("--from", str(saved), "--no-diagram")
    assert result.returncode == 0, result.stderr
    _no_control_characters(result.stdout + result.stderr)
    assert printable(evil) in result.stdout + result.stderr
    # An error line about a process with a hostile name (a zombie's comm).
    code = "import ctypes; ctypes.CDLL(None).prctl(15, b'\\x1b[31m[b]z\\n', 0, 0, 0)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # a zombie, not reaped
        result = run_cli(str(child.pid))
    finally:
        child.wait()
    assert result.returncode == ZombieProcess.exit_code
    assert result.stderr.count("\n") == 1
    _no_control_characters(result.stderr)
    assert "\\x1b[31m[b]z\\x0a" in result.stderr


# --- other users -----------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize(
    "args", [[], ["--rss"], ["--json"], ["--diagram"], ["--watch", "--count", "1"], ["where"]]
)
def test_another_users_process_is_one_line_and_exit_code_4(args):
    with run_sample("pie") as s:  # root's
        if args == ["where"]:
            args = ["where", str(s.pid), f"{s.variables['main'][0]:x}"]
        else:
            args = [str(s.pid), *args]
        result = run_cli_as(NOBODY, args)
    assert result.returncode == AccessDenied.exit_code, result
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("procmap: permission denied")
    assert "belongs to user root" in result.stderr and "sudo" in result.stderr


@needs_root
def test_thread_stacks_by_shape_when_syscall_is_not_readable():
    """Reading maps needs ptrace *read* access; task/TID/syscall needs more.

    nobody with CAP_SYS_PTRACE (and no other capability) passes the ptrace
    check on a root process, so maps is readable; but syscall files are mode
    0400, root's, and nobody has no CAP_DAC_OVERRIDE: the thread's stack is
    then found by its shape, and the map says so.
    """
    with run_sample("pie") as s:
        thread_stack = s.variables["thread_local"][0]
        tid = s.thread_tid
        as_root = procmap.read_map(s.pid)
        result = run_cli_as(NOBODY, [str(s.pid), "--json"], keep_caps=(CAP_SYS_PTRACE,))
        where = run_cli_as(
            NOBODY, ["where", str(s.pid), f"{thread_stack:x}"], keep_caps=(CAP_SYS_PTRACE,)
        )
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    assert any("thread stacks found by shape" in w and "syscall" in w for w in data["warnings"])
    (region,) = [r for r in data["regions"] if r["start"] <= thread_stack < r["end"]]
    assert (region["kind"], region["detail"]) == ("stack", "thread-stack-by-shape")
    # As root the same stack is known by its thread's stack pointer.
    known = as_root.region_at(thread_stack)
    assert known.kind == "stack" and known.detail is Detail.THREAD_STACK
    assert (known.start, known.end) == (region["start"], region["end"])
    assert known.tid == tid and known.description == f"thread stack (TID {tid})"
    assert where.returncode == 0 and "thread stack, found by shape" in where.stdout


# --- containers and namespaces -----------------------------------------------------------

WATCH = SAMPLE_BIN / "watch"
LIBRARY = SAMPLE_BIN / "libaligned.so"


def identity(layout) -> tuple:
    return (layout.entry, layout.build_id, layout.file_size)


def regions_of(data: dict, path: str) -> list[tuple]:
    return [
        (r["start"], r["end"], r["kind"], r["detail"], r["heuristic"])
        for r in data["regions"]
        if r["path"] == path or r.get("object") == path
    ]


def dlopen(watch: subprocess.Popen, library: str) -> None:
    """Wait for samples/bin/watch to be ready, then make it dlopen `library`."""
    out = Lines(watch.stdout, "samples/bin/watch")
    assert out.next().startswith("ready pid=")
    watch.stdin.write(f"dlopen {library}\n".encode())
    watch.stdin.flush()
    assert out.next().startswith("done dlopen")


@pytest.fixture
def world_readable_dir():
    """A directory nobody can reach (pytest's own are 0700)."""
    directory = tempfile.mkdtemp(prefix="procmap-test-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory)


@contextmanager
def in_private_mount_namespace(directory: str):
    """samples/bin/watch run as nobody from a tmpfs mounted on `directory` in its own
    mount namespace, with libaligned.so from there dlopen'ed: the host sees none of it."""
    script = (
        f"mount -t tmpfs -o mode=755 procmap-test {directory} && "
        f"cp {WATCH} {LIBRARY} {directory}/ && "
        f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {directory}/watch"
    )
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        dlopen(process, f"{directory}/libaligned.so")
        yield process
    finally:
        process.kill()
        process.wait()


@needs_root
def test_a_binary_in_a_private_mount_namespace(world_readable_dir):
    directory = world_readable_dir
    # On the host, at the same paths: other ELF files.  Opened by the path maps
    # shows, procmap would read these instead of what the process mapped.
    decoys = {"watch": sample_path("static"), "libaligned.so": sample_path("pie")}
    for name, decoy in decoys.items():
        Path(directory, name).write_bytes(decoy.read_bytes())
    program, library = f"{directory}/watch", f"{directory}/libaligned.so"

    def in_namespace(pid: int, script: str) -> None:
        subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c", script], check=True)

    with in_private_mount_namespace(directory) as process:
        pid = process.pid
        pmap = procmap.read_map(pid)  # as root: through /proc/PID/map_files
        images = {im.path: im for im in pmap.images}
        assert identity(images[program].layout) == identity(read_elf(str(WATCH)))
        assert identity(images[library].layout) == identity(read_elf(str(LIBRARY)))
        assert not pmap.warnings
        exact = {
            path: [
                (r.start, r.end, r.kind, r.detail.value, False)
                for r in pmap.regions
                if r.path == path or r.object == path
            ]
            for path in (program, library)
        }
        assert all(exact.values())

        # As nobody, the process's own user: map_files is root's, so the program
        # comes through /proc/PID/exe and the library through /proc/PID/root/...
        result = run_cli_as(NOBODY, [str(pid), "--json"])
        assert result.returncode == 0, result.stderr
        seen = procmap_json(result.stdout)
        assert not seen["warnings"]
        assert {path: regions_of(seen, path) for path in exact} == exact

        # The process's view changes: a fresh tmpfs is mounted over its own, with
        # the decoys copied in the same order -- so with the same inode numbers,
        # on another device.  maps still shows the same paths.
        in_namespace(
            pid,
            f"mount -t tmpfs -o mode=755 procmap-decoy {directory} && "
            f"cp {decoys['watch']} {program} && cp {decoys['libaligned.so']} {library}",
        )
        mapped = next(m for m in pmap.mappings if m.path == library)
        there = os.stat(f"/proc/{pid}/root{library}")
        assert (there.st_ino, there.st_dev) == (
            mapped.inode,
            os.stat(f"/proc/{pid}/root/{directory}").st_dev,
        ), "tmpfs gave the decoy another inode number: the device check would go untested"
        result = run_cli_as(NOBODY, [str(pid), "--json"])
        assert result.returncode == 0, result.stderr
        seen = procmap_json(result.stdout)
        # The program still comes through exe; the library is not read from the
        # decoy: it is classified by names and permissions, and one warning says why.
        assert regions_of(seen, program) == exact[program]
        guessed = regions_of(seen, library)
        assert guessed and all(heuristic for *_, heuristic in guessed)
        assert guessed[0][0] == exact[library][0][0]  # (without headers, .bss is cut by pages)
        (warning,) = [w for w in seen["warnings"] if "ELF headers" in w]
        assert f"{library}: another file is at its path now" in warning
        assert "classified by names and permissions" in warning
        again = procmap.read_map(pid)  # root still reads the mapped files themselves
        assert identity({im.path: im for im in again.images}[library].layout) == identity(
            read_elf(str(LIBRARY))
        )

        # Both tmpfs unmounted (lazily: the mapped files live on).  The kernel now
        # names them from the root of their detached mount: "/watch".
        in_namespace(pid, f"umount -l {directory} && umount -l {directory}")
        result = run_cli_as(NOBODY, [str(pid), "--json", "--no-notes"])
        text = run_cli_as(NOBODY, [str(pid), "--no-notes", "--no-diagram"])
    assert result.returncode == 0 and text.returncode == 0, (result.stderr, text.stderr)
    seen = procmap_json(result.stdout)
    assert [im["path"] for im in seen["images"]][0] == "/watch"
    (warning,) = [w for w in seen["warnings"] if "ELF headers" in w]
    assert "/libaligned.so: not found at its path, as the process sees it" in warning
    assert f"note: {warning}" in text.stdout.splitlines()  # one line


# --- deleted and replaced binaries -------------------------------------------------------


@contextmanager
def watch_as_nobody(directory: str):
    """A copy of samples/bin/watch run as nobody from `directory`, with its copy of
    libaligned.so dlopen'ed."""
    program, library = f"{directory}/watch", f"{directory}/libaligned.so"
    for source, copy in ((WATCH, program), (LIBRARY, library)):
        Path(copy).write_bytes(source.read_bytes())
        os.chmod(copy, 0o755)
    process = subprocess.Popen(
        [program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=become(NOBODY)
    )
    try:
        dlopen(process, library)
        yield process, program, library
    finally:
        process.kill()
        process.wait()


@needs_root
@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_deleted_or_replaced_files_are_read_from_what_is_mapped(world_readable_dir, change):
    with watch_as_nobody(world_readable_dir) as (process, program, library):
        before = procmap.read_map(process.pid)
        for path in (program, library):
            os.unlink(path)
            if change == "replaced":  # another program at the same path
                Path(path).write_bytes(sample_path("static").read_bytes())
        as_root = procmap.read_map(process.pid)
        result = run_cli_as(NOBODY, [str(process.pid), "--json"])
    # maps now says "(deleted)" after both: the inodes mapped have no name left.
    gone = {path: f"{path} (deleted)" for path in (program, library)}

    def kinds(regions, path):
        return [
            (r.start, r.end, r.kind, r.detail.value, r.heuristic)
            for r in regions
            if r.object == path
        ]

    # Root reads the mapped files themselves through map_files: the same map.
    for path in (program, library):
        assert kinds(as_root.regions, path) == kinds(before.regions, path)
        assert any(r.path == gone[path] for r in as_root.regions)
    assert not as_root.warnings
    images = {im.path: im for im in as_root.images}
    assert identity(images[library].layout) == identity(read_elf(str(LIBRARY)))
    # nobody: the program through /proc/PID/exe, still exact; the deleted library
    # by names and permissions, and the warning says why.
    assert result.returncode == 0, result.stderr
    seen = procmap_json(result.stdout)
    assert regions_of(seen, program) == [
        (s, e, k, d, False) for s, e, k, d, _ in kinds(before.regions, program)
    ]
    guessed = regions_of(seen, library)
    assert guessed and all(heuristic for *_, heuristic in guessed)
    (warning,) = [w for w in seen["warnings"] if "ELF headers" in w]
    assert f"{library}: deleted; only root can read it, through map_files" in warning


# --- mid-flight changes ------------------------------------------------------------------
# Each test lets procmap read the maps text of a real process, then changes the
# process before procmap reads the rest (its ELF files, threads, status).


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _wait_for(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.005)


def _after_reading(monkeypatch, name: str, change) -> None:
    """Make ProcessDir.<name> (maps or smaps) call change(pid) right after each read."""
    from procmap.kernel import procfs

    real = getattr(procfs.ProcessDir, name)

    def read_then_change(self):
        data = real(self)
        change(self.pid)
        return data

    monkeypatch.setattr(procfs.ProcessDir, name, read_then_change)


@pytest.mark.parametrize("read", ["maps", "smaps"])
def test_an_exec_while_reading_is_read_again(monkeypatch, read):
    process = subprocess.Popen(
        ["/bin/sh", "-c", "read line; exec /bin/sleep 60"], stdin=subprocess.PIPE
    )
    _wait_for(lambda: _exe(process.pid).endswith("sh"), "sh started")
    execed = []

    def exec_sleep(pid):
        if not execed:
            process.stdin.write(b"go\n")
            process.stdin.flush()
            _wait_for(lambda: _exe(pid).endswith("sleep"), "sleep exec'd")
            execed.append(pid)

    _after_reading(monkeypatch, read, exec_sleep)
    try:
        args = [str(process.pid), "--json"] + (["--rss"] if read == "smaps" else [])
        result = run_cli(*args)
    finally:
        process.kill()
        process.wait()
    assert execed and result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    # The maps text read first was sh's: none of it is left, all is sleep's.
    (program,) = [im for im in data["images"] if im["role"] == "program"]
    assert program["path"].endswith("/sleep")
    assert not any(r["path"] and r["path"].endswith("/sh") for r in data["regions"])
    assert data["process"]["name"] == "sleep"
    assert "started a new program (exec) while procmap was reading it" in data["warnings"][0]


def test_a_process_that_keeps_execing_is_one_line(monkeypatch, tmp_path):
    script = tmp_path / "again.sh"
    script.write_text('read line\nexec /bin/sh "$0"\n')  # the same program, run anew
    process = subprocess.Popen(["/bin/sh", str(script)], stdin=subprocess.PIPE)
    _wait_for(lambda: _exe(process.pid).endswith("sh"), "sh started")

    def exec_again(pid):
        with open(f"/proc/{pid}/stat", "rb") as f:
            marks = f.read().rpartition(b")")[2].split()[23:26]
        process.stdin.write(b"go\n")
        process.stdin.flush()

        def execed():
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rpartition(b")")[2].split()[23:26] != marks

        _wait_for(execed, "sh exec'd itself")

    _after_reading(monkeypatch, "maps", exec_again)
    try:
        result = run_cli(str(process.pid))
    finally:
        process.kill()
        process.wait()
    assert result.returncode == ProcessExited.exit_code, result
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "kept starting new programs (exec) while procmap was reading it" in result.stderr


@pytest.mark.parametrize("command", [[], ["--rss"], ["where"]])
def test_a_process_that_exits_while_read_but_is_not_reaped(monkeypatch, command):
    with run_sample("pie") as s:

        def exit_unreaped(pid):
            os.kill(pid, signal.SIGKILL)
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # a zombie now

        _after_reading(monkeypatch, "smaps" if command == ["--rss"] else "maps", exit_unreaped)
        if command == ["where"]:
            args = ["where", str(s.pid), f"{s.variables['main'][0]:x}"]
        else:
            args = [str(s.pid), *command]
        result = run_cli(*args)
    # Its maps text was read whole, but the rest is gone: not a map to show.
    assert result.returncode == ProcessExited.exit_code, result
    assert result.stdout == ""
    assert result.stderr == f"procmap: PID {s.pid} exited while procmap was reading it\n"


@needs_root
def test_a_pid_given_to_another_process_while_reading(monkeypatch):
    """The target exits and its PID goes to a new process between two reads."""
    victim = subprocess.Popen(["sleep", "60"])
    others = []

    def replace(pid):
        victim.kill()
        victim.wait()
        for _ in range(50):  # the next PID is ns_last_pid + 1
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
            other = subprocess.Popen(["/bin/sh", "-c", "sleep 60"])
            others.append(other)
            if other.pid == pid:
                return
        pytest.skip("another process kept taking the PID (a busy machine)")

    _after_reading(monkeypatch, "maps", replace)
    try:
        result = run_cli(str(victim.pid), "--json")
    finally:
        for other in others:
            other.kill()
            other.wait()
    assert others[-1].pid == victim.pid
    # Read through the directory held open for the first process: never the new one's.
    assert result.returncode == ProcessExited.exit_code, result
    assert result.stdout == ""
    assert result.stderr == f"procmap: PID {victim.pid} exited while procmap was reading it\n"


# --- every process on the machine --------------------------------------------------------

# What a walk may meet: the map, or one of these one-line refusals.
REFUSALS = {
    NoSuchProcess.exit_code,  # gone between the listing and the read
    AccessDenied.exit_code,
    KernelThread.exit_code,
    ZombieProcess.exit_code,
    ProcessExited.exit_code,
}


def walk_every_process() -> dict:
    """Run the map, --rss and where on every process psutil lists.

    Returns the exit codes by PID, and every problem: a traceback, a hang, a
    refusal longer than one line, an unexpected exit code.
    """
    import psutil

    problems, codes = [], {}
    for process in psutil.process_iter(["pid"]):
        pid = str(process.info["pid"])
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                address = f.readline().split(b"-")[0].decode() or "1000"
        except OSError:
            address = "1000"
        for args in (
            [pid, "--no-notes", "--no-diagram"],
            [pid, "--rss", "--json"],
            ["where", pid, address, "0"],
        ):
            # A crash, or a hang (TimeoutError), is kept with its traceback, as a problem.
            result = run_cli(*args, crash_ok=True, timeout=30)
            codes.setdefault(pid, []).append(result.returncode)
            output = result.stdout + result.stderr
            refused = (
                result.returncode in REFUSALS
                and result.stdout == ""
                and result.stderr.count("\n") == 1
            )
            if (
                result.exception is not None
                or "Traceback" in output
                or not (result.returncode == 0 or refused)
            ):
                problems.append([args, result.returncode, repr(result.exception), output])
    return {"problems": problems, "codes": codes}


@contextmanager
def a_zombie():
    child = subprocess.Popen(["true"])
    try:
        _wait_for(lambda: b") Z " in Path(f"/proc/{child.pid}/stat").read_bytes(), "a zombie")
        yield str(child.pid)
    finally:
        child.wait()


def test_every_process_on_the_machine():
    with run_sample("pie") as s, a_zombie() as zombie:  # at least these two
        walk = walk_every_process()
    assert walk["problems"] == []
    codes = walk["codes"]
    assert codes[str(s.pid)] == [0, 0, 0]
    assert codes[zombie] == [ZombieProcess.exit_code] * 3
    assert codes[str(os.getpid())] == [0, 0, 0]
    kernel_threads = [p for p, c in codes.items() if c == [KernelThread.exit_code] * 3]
    assert "2" in kernel_threads or not Path("/proc/2/stat").exists()  # kthreadd
    print(
        f"{len(codes)} processes:", {str(c): list(codes.values()).count(c) for c in codes.values()}
    )


@needs_root
def test_every_process_on_the_machine_as_nobody():
    with run_sample("pie") as s, a_zombie() as zombie:
        walk = call_as(NOBODY, walk_every_process)
    assert walk["problems"] == []
    codes = walk["codes"]
    assert codes[str(s.pid)] == [AccessDenied.exit_code] * 3  # root's
    assert codes[zombie] == [ZombieProcess.exit_code] * 3
