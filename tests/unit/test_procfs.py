"""kernel/procfs.py on /proc shapes this machine cannot produce, through its procfs root.

The root is a parameter (as psutil's PROCFS_PATH): a directory laid out as
/proc/PID is read the same way.
"""

from __future__ import annotations

import os

import pytest

from procmap.errors import ProcessExited
from procmap.kernel.procfs import ProcFS

STAT = b"4242 (old kernel) S 1 4242 4242 0 -1 4194560 " + b"0 " * 44 + b"0\n"


def fake_process(root, files: dict[str, bytes]) -> ProcFS:
    directory = root / "4242"
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return ProcFS(str(root))


def test_smaps_rollup_is_none_on_a_kernel_without_it(tmp_path):
    """Linux before 4.14 has no smaps_rollup: the process is alive, the file missing."""
    procfs = fake_process(tmp_path, {"stat": STAT})
    with procfs.open(4242) as pd:
        assert pd.smaps_rollup() is None


def test_smaps_rollup_of_a_process_that_is_gone_is_process_exited(tmp_path):
    procfs = fake_process(tmp_path, {"stat": STAT})
    with procfs.open(4242) as pd:
        os.unlink(tmp_path / "4242" / "stat")  # what a read through a dead /proc/PID gets
        with pytest.raises(ProcessExited):
            pd.smaps_rollup()


def test_smaps_rollup_is_read_where_the_kernel_has_it(tmp_path):
    rollup = b"00400000-7fff00000000 ---p 00000000 00:00 0  [rollup]\nRss:   8 kB\n"
    procfs = fake_process(tmp_path, {"stat": STAT, "smaps_rollup": rollup})
    with procfs.open(4242) as pd:
        assert pd.smaps_rollup() == rollup
