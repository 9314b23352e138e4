"""The core reader on real cores cut, rewritten or replaced: every bad input is one line,
exit code 18, no traceback."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from procmap.arch import AARCH64, X86_64, host_arch
from procmap.elf import read_elf
from procmap.elf.core import build_id_in_page, is_core, read_core
from procmap.errors import BadCore, BadFile
from procmap.kernel.maps import parse_maps
from procmap.views import snapshot as snapshots
from procmap.views.core import core_fault_input, core_snapshot
from tests.cores import CRASH, copy_without_note, cut, dump_core, notes_end
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Path:
    path, _, _ = dump_core(tmp_path_factory.mktemp("core"), "null-read")
    return path


def _one_line_18(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 18, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_is_core(core):
    assert is_core(core.read_bytes()[:64])
    assert not is_core(CRASH.read_bytes()[:64])
    assert not is_core(b"7f00-8000 r--p 00000000 00:00 0\n")
    assert not is_core(b"")


def test_the_prstatus_layout_matches_pyelftools(core):
    dump = read_core(str(core))
    with open(core, "rb") as f:
        notes = [
            n
            for seg in ELFFile(f).iter_segments()
            if seg.header.p_type == "PT_NOTE"
            for n in seg.iter_notes()
        ]
    info = next(n["n_desc"] for n in notes if n["n_type"] == "NT_PRPSINFO")
    assert dump.process is not None
    assert (dump.process.pid, dump.process.uid) == (info.pr_pid, info.pr_uid)
    assert dump.process.comm.encode() == info.pr_fname.rstrip(b"\0")
    raw = next(n["n_desc"] for n in notes if n["n_type"] == "NT_PRSTATUS")
    # Registers from pr_reg at offset 112: the stack pointer lies in the [stack] mapping.
    assert dump.threads[0].raw == raw[112 : len(raw) - 8]
    assert len(dump.threads[0].raw) == X86_64.regs_size
    assert dump.threads[0].cursig == signal.SIGSEGV
    with open(core, "rb") as f:
        loads = [s.header for s in ELFFile(f).iter_segments() if s.header.p_type == "PT_LOAD"]
    assert [ld.vaddr for ld in dump.loads] == sorted(h.p_vaddr for h in loads)


def test_build_id_from_a_first_page():
    for path in (CRASH, Path("/bin/true")):
        page = path.read_bytes()[:4096]
        assert build_id_in_page(page) == read_elf(str(path)).build_id is not None
    assert build_id_in_page(b"not ELF" * 100) is None


def test_the_maps_text_parses(core):
    snapshot = core_snapshot(read_core(str(core)), str(core))
    mappings = parse_maps(snapshot.maps)
    assert len(mappings) == len(read_core(str(core)).loads)
    named = {m.path for m in mappings if m.path and m.path.startswith("[")}
    assert {"[stack]", "[heap]", "[vdso]", "[vvar]"} <= named
    assert all(m.perms.endswith("p") for m in mappings)
    program = [m for m in mappings if m.path == str(CRASH)]
    assert program and all(m.inode == CRASH.stat().st_ino for m in program)


def test_a_truncated_core_with_whole_notes_still_reads(core, tmp_path):
    size = core.stat().st_size
    short = cut(core, tmp_path / "short", size // 2)
    dump = read_core(str(short))
    [warning] = dump.warnings
    assert warning.startswith(f"{short}: truncated core: the file ends at {size // 2} bytes")
    assert dump.read(dump.loads[-2].vaddr, 8) is None  # the stack, dumped near the end: cut
    snapshot = snapshots.read(short)
    assert warning in snapshot.warnings
    fault = core_fault_input(dump, snapshot)
    assert fault.siginfo.addr == 0


def test_a_core_cut_inside_its_notes(core, tmp_path):
    short = cut(core, tmp_path / "short", notes_end(core) - 100)
    with pytest.raises(BadCore, match="truncated: the file ends at .* inside its notes"):
        read_core(str(short))
    line = _one_line_18("--from", str(short))
    assert line.startswith(f"procmap: {short}: truncated")


def test_not_a_core(tmp_path):
    with pytest.raises(BadCore, match=r"an ELF file a shared object or PIE, not a core file"):
        read_core(str(CRASH))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(BadCore, match="not a core file: not even an ELF file"):
        read_core(str(text))
    with pytest.raises(BadFile):
        read_core(str(tmp_path / "missing"))


def test_a_core_without_nt_file(core, tmp_path):
    rewritten = copy_without_note(core, tmp_path / "old-core", "NT_FILE")
    with pytest.raises(BadCore, match="without an NT_FILE note"):
        read_core(str(rewritten))
    line = _one_line_18("--from", str(rewritten))
    assert "its memory cannot be tied to files" in line


def test_a_core_without_nt_prstatus(core, tmp_path):
    rewritten = copy_without_note(core, tmp_path / "no-threads", "NT_PRSTATUS")
    line = _one_line_18("--from", str(rewritten))
    assert "without NT_PRSTATUS notes" in line


def test_a_core_of_another_machine(core, tmp_path):
    other = tmp_path / "arm-core"
    data = bytearray(core.read_bytes())
    data[18:20] = AARCH64.machine.to_bytes(2, "little")
    other.write_bytes(bytes(data))
    here = host_arch()
    assert here is not None
    if here is X86_64:
        line = _one_line_18("--from", str(other))
        assert "a core of an AArch64 process; this machine is x86-64" in line
    with pytest.raises(BadCore, match="a core of an x86-64 process; this machine is AArch64"):
        read_core(str(core), expect=AARCH64)
    assert read_core(str(other), expect=None).machine == AARCH64.machine


def test_a_core_without_siginfo_keeps_the_signal(core, tmp_path):
    rewritten = copy_without_note(core, tmp_path / "no-siginfo", "NT_SIGINFO")
    dump = read_core(str(rewritten))
    assert dump.siginfo is None
    fault = core_fault_input(dump, core_snapshot(dump, str(rewritten)))
    assert fault.siginfo.signo == signal.SIGSEGV and fault.siginfo.addr is None
    assert not fault.siginfo.sent
