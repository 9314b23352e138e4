"""kernel/procfs.py on /proc shapes this machine cannot produce, through its procfs root.

The root is a parameter (as psutil's PROCFS_PATH): a directory laid out as
/proc/PID is read the same way.
"""

from __future__ import annotations

import ctypes
import os

import pytest

from procmap.errors import ProcessExited
from procmap.kernel.procfs import ProcFS, parse_auxv

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


def test_auxv_is_what_getauxval_gives():
    """/proc/self/auxv, parsed, against the C library's own reading of the vector."""
    getauxval = ctypes.CDLL(None).getauxval
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    with ProcFS().open(os.getpid()) as pd:
        raw = pd.auxv()
    assert raw is not None
    auxv = parse_auxv(raw, ctypes.sizeof(ctypes.c_void_p))
    # AT_PAGESZ, AT_BASE, AT_ENTRY, AT_UID, AT_RANDOM, AT_EXECFN
    for a_type in (6, 7, 9, 11, 25, 31):
        assert auxv[a_type] == getauxval(a_type), a_type
    assert auxv[6] == os.sysconf("SC_PAGE_SIZE")
    # Junk after AT_NULL is not read; a vector cut short gives what it holds.
    assert parse_auxv(raw + b"\x07" * 16, 8) == auxv
    assert parse_auxv(raw[:20], 8) == dict([next(iter(auxv.items()))])


def test_memory_reads_bytes_and_is_none_where_nothing_is_mapped():
    text = b"procmap reads this"
    buffer = ctypes.create_string_buffer(text)
    with ProcFS().open(os.getpid()) as pd:
        assert pd.memory(ctypes.addressof(buffer), len(text)) == text
        assert pd.memory(0, 8) is None  # the NULL page is never mapped
        assert pd.memory(1 << 63, 8) is None  # past the largest file offset
