"""procmap against the tools engineers already trust: pmap, and its own API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import procmap
from tests.conftest import MODES, run_sample


def pmap_x(pid: int) -> tuple[list[tuple[int, int, str]], int]:
    """(address, size in bytes, rwx) per mapping, and the total, from `pmap -x PID`."""
    out = subprocess.run(
        ["pmap", "-x", str(pid)], capture_output=True, text=True, check=True
    ).stdout
    rows, total = [], None
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and len(f[0]) == 16 and all(c in "0123456789abcdef" for c in f[0]):
            rows.append((int(f[0], 16), int(f[1]) * 1024, f[4][:3]))
        elif line.startswith("total kB"):
            total = int(f[2]) * 1024
    return rows, total


@pytest.mark.parametrize("mode", MODES)
def test_mappings_and_total_agree_with_pmap(mode):
    with run_sample(mode) as s:
        pmap = procmap.read_map(s.pid)
        rows, total = pmap_x(s.pid)
    ours = [(m.start, m.size, m.perms[:3]) for m in pmap.mappings]
    assert ours == rows
    assert pmap.total_size == total == sum(r.size for r in pmap.regions)


def test_python_api_reads_self():
    import os

    pmap = procmap.read_map("self")
    assert pmap.pid == os.getpid()
    (python,) = [im for im in pmap.images if im.role == "program"]
    assert os.path.samefile(python.path, sys.executable)
    here = procmap.where("self", [python.start, 0x10])
    assert here[0].kind == "rodata" and here[0].image.path == python.path
    assert here[1].kind is None and "NULL" in here[1].description
    layout = procmap.read_elf(python.path)
    assert layout == python.layout
