"""A program started through the dynamic linker, run as a command: `ld.so ./prog`.

The kernel then runs ld.so: /proc/PID/exe is ld.so, and the kernel's saved
auxiliary vector (/proc/PID/auxv) gives ld.so's entry point and AT_BASE 0,
as for any program without an interpreter.  ld.so maps the program itself.
procmap must still show the program as the program and ld.so as the dynamic
linker, in every view, live and from a snapshot.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import subprocess

import pytest

import procmap
from procmap.elf import read_elf
from procmap.live.sampler import Sampler
from tests.conftest import lines_until_ready, run_sample, sample_path, stop, wait_until_blocked
from tests.helpers import procmap_json, run_cli
from tests.users import CAP_SYS_PTRACE, NOBODY, needs_root, run_cli_as, world_readable_sample

AT_BASE, AT_ENTRY = 7, 9
# lesson-nopie is an ET_EXEC at a fixed address, lesson-pie an ET_DYN ld.so places.
LOADER_MODES = ("pie", "nopie")


def loader() -> str:
    """The dynamic linker the samples name (PT_INTERP)."""
    interpreter = read_elf(str(sample_path("pie"))).interpreter
    assert interpreter is not None
    return interpreter


def run_through_loader(mode: str):
    """The sample, started as `ld.so SAMPLE`: the kernel execs ld.so, not the sample."""
    return run_sample(mode, str(sample_path(mode)), path=loader())


def roles_by_path(images) -> dict[str, str]:
    return {os.path.realpath(im["path"]): im["role"] for im in images}


@pytest.mark.parametrize("mode", LOADER_MODES)
def test_the_kernel_records_the_loader_not_the_program(mode):
    """The premise: what /proc/PID/exe and /proc/PID/auxv say (Linux's mm->saved_auxv,
    written at exec; ld.so rewrites only the copy on the program's stack)."""
    with run_through_loader(mode) as s:
        exe = os.path.realpath(f"/proc/{s.pid}/exe")
        with open(f"/proc/{s.pid}/auxv", "rb") as f:
            auxv = dict(struct.iter_unpack("<QQ", f.read()))
        pmap = procmap.read_map(s.pid)
    assert exe == os.path.realpath(loader())
    assert auxv[AT_BASE] == 0
    entry_image = pmap.image_at(auxv[AT_ENTRY])
    assert entry_image is not None and os.path.realpath(entry_image.path) == exe


@pytest.mark.parametrize("mode", LOADER_MODES)
def test_the_program_is_the_program_and_the_loader_the_dynamic_linker(mode):
    with run_through_loader(mode) as s:
        result = run_cli(str(s.pid), "--json")
        variables = s.variables
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    roles = roles_by_path(data["images"])
    program = str(sample_path(mode))
    assert roles[program] == "program"
    assert roles[os.path.realpath(loader())] == "dynamic linker"
    assert list(roles.values()).count("program") == 1
    assert list(roles.values()).count("dynamic linker") == 1
    assert not [w for w in data["warnings"] if "dynamic linker" in w], data["warnings"]
    # The program's own image: its text, rodata, data and bss, each its own.
    by_object = {o["object"]: o for o in data["summary"]["by_object"]}
    assert by_object[program]["role"] == "program"
    assert {"text", "rodata", "data", "bss"} <= set(by_object[program]["kinds"])
    for name, (address, kind) in variables.items():
        (region,) = [r for r in data["regions"] if r["start"] <= address < r["end"]]
        assert region["kind"] == kind, (name, region)
        if name in ("global_init", "global_uninit", "main", "const_table"):
            assert region["object"] == program, (name, region)


@pytest.mark.parametrize("mode", LOADER_MODES)
def test_where_names_the_programs_globals(mode):
    with run_through_loader(mode) as s:
        names = ("global_init", "global_uninit", "main")
        addresses = [hex(s.variables[n][0]) for n in names]
        result = run_cli("where", str(s.pid), *addresses, "--json")
    assert result.returncode == 0, result.stderr
    found = dict(zip(names, procmap_json(result.stdout)))
    for name, section, kind in (
        ("global_init", ".data", "data"),
        ("global_uninit", ".bss", "bss"),
        ("main", ".text", "text"),
    ):
        f = found[name]
        assert (f["kind"], f["section"], f["symbol"]) == (kind, section, name), f
        assert f["object"] == str(sample_path(mode))


def test_the_text_view_and_the_watch_agree():
    with run_through_loader("pie") as s:
        text = run_cli(str(s.pid), "--no-notes", env={"COLUMNS": "250"})
        with Sampler(s.pid) as sampler:
            images = sampler.images
    assert text.returncode == 0, text.stderr
    program = str(sample_path("pie"))
    roles = {os.path.realpath(im.path): im.role for im in images}
    assert roles[program] == "program"
    assert roles[os.path.realpath(loader())] == "dynamic linker"
    (row,) = [line for line in text.stdout.splitlines() if program in line and "program" in line]
    assert "lesson-pie" in row


PTRACE_TRACEME, PTRACE_DETACH = 0, 17


def _trace_me() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace(PTRACE_TRACEME, 0, None, None)


def test_a_watch_that_starts_before_the_loader_maps_the_program_finds_it():
    """A watch from the first instant: the sample, traced, stops right after the
    kernel execs ld.so, before ld.so has mapped the program; the watch starts
    there, and finds the program once ld.so maps it."""
    program = str(sample_path("pie"))
    process = subprocess.Popen(
        [loader(), program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_trace_me
    )
    try:
        _, status = os.waitpid(process.pid, 0)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP
        with Sampler(process.pid) as s:
            assert program not in {im.path for im in s.images}  # not mapped yet
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.ptrace(PTRACE_DETACH, process.pid, None, None) == 0
            for _ in lines_until_ready(process, "lesson-pie via ld.so"):
                pass
            wait_until_blocked(process.pid)
            change = s.sample()
            roles = {os.path.realpath(im.path): im.role for im in s.images}
            events = [e.event for e in change.events]
    finally:
        process.kill()
        stop(process)
    assert roles[program] == "program"
    assert roles[os.path.realpath(loader())] == "dynamic linker"
    assert list(roles.values()).count("program") == 1
    assert events and not change.exec


@pytest.mark.parametrize("mode", LOADER_MODES)
def test_a_snapshot_replays_the_same_roles(tmp_path, mode):
    path = tmp_path / "loader.json"
    with run_through_loader(mode) as s:
        live = run_cli(str(s.pid), "--save", str(path), "--json")
        address = hex(s.variables["global_init"][0])
        live_where = run_cli("where", str(s.pid), address, "--json")
    assert live.returncode == 0, live.stderr
    replayed = run_cli("--from", str(path), "--json")
    replayed_where = run_cli("where", "--from", str(path), address, "--json")
    assert replayed.returncode == 0, replayed.stderr
    live_data, saved_data = procmap_json(live.stdout), procmap_json(replayed.stdout)
    assert roles_by_path(saved_data["images"]) == roles_by_path(live_data["images"])
    assert roles_by_path(saved_data["images"])[str(sample_path(mode))] == "program"
    assert saved_data["regions"] == live_data["regions"]
    assert procmap_json(replayed_where.stdout) == procmap_json(live_where.stdout)
    saved = json.loads(path.read_text())
    assert saved["version"] == 5
    assert saved["facts"]["program_from"] == "link-map"


@needs_root
def test_without_the_loaders_memory_the_program_is_found_by_a_marked_heuristic():
    """nobody with CAP_SYS_PTRACE may read a root process's maps, but not its
    auxv (mode 0400) or its memory (0600): the loader's list of objects is out
    of reach, and the program is the executable that names ld.so as its
    interpreter, said so in a warning.  The sample is a copy nobody can read:
    the checkout may lie in a directory only root can enter (mktemp -d)."""
    copy = world_readable_sample("pie")
    with run_sample("pie", copy, path=loader()) as s:
        result = run_cli_as(NOBODY, [str(s.pid), "--json"], keep_caps=(CAP_SYS_PTRACE,))
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    roles = roles_by_path(data["images"])
    assert roles[os.path.realpath(copy)] == "program"
    assert roles[os.path.realpath(loader())] == "dynamic linker"
    # libc.so.6 names ld.so as its interpreter too, but is a library (DT_SONAME).
    assert [r for r in roles.values() if r == "program"] == ["program"]
    (warning,) = [w for w in data["warnings"] if "heuristic" in w]
    assert "lesson-pie" in warning


@pytest.mark.parametrize("mode", ("pie", "static", "static-pie"))
def test_a_program_started_normally_is_unchanged(mode):
    with run_sample(mode) as s:
        pmap = procmap.read_map(s.pid)
    roles = {im.path: im.role for im in pmap.images}
    assert roles[str(sample_path(mode))] == "program"
    assert list(roles.values()).count("program") == 1
    assert not any("heuristic" in w for w in pmap.warnings)
