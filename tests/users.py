"""Running procmap as another user: the tests run as root (CI does) and drop privileges."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
import traceback

import pytest

from tests.conftest import sample_path
from tests.helpers import CliResult, run_cli

NOBODY = 65534
CAP_SYS_PTRACE = 19  # linux/capability.h

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def become(uid: int, keep_caps: tuple[int, ...] = ()):
    """A function that turns the calling process into user `uid` (with only `keep_caps`)."""

    def drop():
        libc = ctypes.CDLL(None, use_errno=True)
        if keep_caps:
            libc.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS: keep the permitted set across setuid
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if keep_caps:
            _capset(libc, keep_caps)

    return drop


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _capset(libc, caps: tuple[int, ...]) -> None:
    """Make `caps` the whole effective and permitted sets (capset(2), version 3)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    for cap in caps:
        word, bit = divmod(cap, 32)
        data[word].effective |= 1 << bit
        data[word].permitted |= 1 << bit
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def call_as(uid: int, function, *args, keep_caps: tuple[int, ...] = ()):
    """function(*args) run in a forked child that has become `uid`; its JSON-able result."""
    import psutil  # noqa: F401
    from rich.cells import get_character_cell_size

    import procmap.live.capture  # noqa: F401  (imported before dropping privileges)
    import procmap.render.table  # noqa: F401

    # rich loads its character-width table on the first wide character (the
    # picture's box drawing): from a checkout nobody can read (mktemp -d is
    # 0700), so load it here, as root.
    get_character_cell_size("↑")

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid, run, report, never return to pytest
        try:
            os.close(read)
            try:
                become(uid, keep_caps)()
                reply = {"result": function(*args)}
            except BaseException:
                reply = {"error": traceback.format_exc()}
            with os.fdopen(write, "w") as out:
                json.dump(reply, out)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    reply = json.loads(data)
    if "error" in reply:
        raise AssertionError(f"as user {uid}:\n{reply['error']}")
    return reply["result"]


def run_cli_as(uid: int, args: list[str], keep_caps: tuple[int, ...] = ()) -> CliResult:
    """tests.helpers.run_cli(*args) in a forked child that has become `uid` (a process of
    its own: privileges cannot be dropped for a while and taken back)."""
    returncode, stdout, stderr = call_as(uid, _run_cli, args, keep_caps=keep_caps)
    return CliResult(tuple(args), returncode, stdout, stderr)


def _run_cli(args: list[str]) -> list:
    result = run_cli(*args)
    return [result.returncode, result.stdout, result.stderr]


def world_readable_copy(path: str | os.PathLike, name: str | None = None) -> str:
    """A copy of `path` that `nobody` can read and run (the checkout may be private)."""
    directory = tempfile.mkdtemp(prefix="procmap-test-")
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, name or os.path.basename(path))
    shutil.copy(path, copy)
    os.chmod(copy, 0o755)
    return copy


def world_readable_sample(mode: str = "pie") -> str:
    """A copy of a lesson sample that `nobody` can run."""
    return world_readable_copy(sample_path(mode))
