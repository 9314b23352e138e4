"""Shared fixtures: the lesson's samples, built once and run as real processes."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE_BIN = SAMPLES / "bin"
MODES = ("pie", "nopie", "static", "static-pie", "nosep", "norelro")


def sample_path(mode: str) -> Path:
    return SAMPLE_BIN / f"lesson-{mode}"


@pytest.fixture(scope="session", autouse=True)
def built_samples():
    """`make test` builds the samples first; a bare `pytest` builds them here."""
    if not all(sample_path(m).exists() for m in MODES):
        subprocess.run(["make", "-s", "-C", str(SAMPLES)], check=True)


@dataclass
class Sample:
    process: subprocess.Popen
    mode: str
    variables: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (address, kind)
    thread_tid: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def path(self) -> Path:
        return sample_path(self.mode)


@contextmanager
def run_sample(mode: str = "pie", *args: str, preexec_fn=None, timeout: float = 10, path=None):
    """Start a sample (or `path`, a copy of it), read what it prints up to "ready",
    and always reap it."""
    process = subprocess.Popen(
        [str(path or sample_path(mode)), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    try:
        sample = Sample(process, mode)
        for line in lines_until_ready(process, f"lesson-{mode}", timeout):
            words = line.split()
            if words[0] == "thread_tid":
                sample.thread_tid = int(words[1])
            else:
                sample.variables[words[0]] = (int(words[1], 16), words[2])
        wait_until_blocked(process.pid)
        yield sample
    finally:
        stop(process)


def wait_until_blocked(pid: int, timeout: float = 10) -> None:
    """Wait until every thread of `pid` is blocked, with a deadline.

    A sample prints "ready" a moment before its threads block: one still
    runnable has no stack pointer in /proc/PID/task/TID/syscall ("running", even
    off a CPU), and procmap then finds its stack by shape, as it should.  Tests
    that want a known stack pointer wait for the sample to settle; on a loaded
    machine (tests side by side) that can take a few milliseconds.
    """
    task = f"/proc/{pid}/task"
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for tid in os.listdir(task):
            try:
                with open(f"{task}/{tid}/syscall", "rb") as f:
                    if f.read().startswith(b"running"):
                        running.append(tid)
            except (FileNotFoundError, ProcessLookupError):
                pass  # gone meanwhile
        if not running:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"PID {pid}: threads {running} still running after {timeout} s")
        time.sleep(0.002)


def stop(process: subprocess.Popen) -> None:
    """End a sample that waits on stdin: close it, and kill the sample if it lingers."""
    if process.stdin:
        process.stdin.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Lines:
    """Lines from a pipe, read unbuffered with a timeout, so a test never hangs."""

    def __init__(self, stream, what: str):
        self.fd = stream.fileno()
        self.what = what
        self.buffer = b""

    def next(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"{self.what} printed no line for {timeout} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise EOFError(f"{self.what} ended")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def lines_until_ready(process: subprocess.Popen, what: str, timeout: float = 10):
    """A sample's lines before "ready"."""
    out = Lines(process.stdout, what)
    while (line := out.next(timeout)) != "ready":
        yield line


@pytest.fixture(params=MODES)
def sample(request):
    with run_sample(request.param) as s:
        yield s


def procmap_env(**overrides: str) -> dict[str, str]:
    """The environment a real `procmap` process runs in here: this one, with NO_COLOR=1,
    without PROCMAP_DEBUG (as tests.helpers.run_cli has it in-process), and `overrides`."""
    env = dict(os.environ, NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PROCMAP_DEBUG", None)
    env.update(overrides)
    return env


def procmap_process(*args: str, env=None, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `procmap` command (python -m procmap) and capture its output.

    Only where a process is the point (`python -m procmap` itself, a child program's
    stdin and stdout passed through); everything else runs in-process: run_cli.
    """
    return subprocess.run(
        [sys.executable, "-m", "procmap", *args],
        capture_output=True,
        text=True,
        env=procmap_env(**(env or {})),
        timeout=60,
        **kwargs,
    )
