"""Real core files, written by the kernel: a sample run with RLIMIT_CORE unlimited in a
directory of its own, where core_pattern "core" puts the file."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_BIN

CRASH = SAMPLE_BIN / "crash"


def core_name(pid: int) -> str:
    """The file name the kernel gives a core, or skip the test, naming the pattern."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|"):
        pytest.skip(f"core_pattern is a pipe ({pattern!r}): cores go to a program, not a file")
    if "%" in pattern or "/" in pattern or not pattern:
        pytest.skip(f"core_pattern {pattern!r}: these tests expect a plain name, such as 'core'")
    uses_pid = Path("/proc/sys/kernel/core_uses_pid").read_text().strip() != "0"
    return f"{pattern}.{pid}" if uses_pid else pattern


def _unlimited() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def dump_core(directory: Path, *argv: str) -> tuple[Path, list[str], int]:
    """Run `argv` (a crash MODE by default) in `directory` until it dumps core:
    (the core, the lines it printed, its PID)."""
    directory.mkdir(parents=True, exist_ok=True)
    command = list(argv) if argv[0].startswith("/") else [str(CRASH), *argv]
    process = subprocess.Popen(
        command, cwd=directory, stdout=subprocess.PIPE, preexec_fn=_unlimited
    )
    out, _ = process.communicate(timeout=20)
    assert process.returncode < 0, f"{command} did not die of a signal: {process.returncode}"
    core = directory / core_name(process.pid)
    if not core.exists():
        pytest.skip(f"{command} died of signal {-process.returncode} but left no {core}")
    return core, out.decode().splitlines(), process.pid


def printed_address(lines: list[str]) -> int:
    """The "addr 0x..." a crash mode prints before it faults ("(nil)" for NULL)."""
    word = next(line.split()[1] for line in lines if line.startswith("addr "))
    return 0 if word == "(nil)" else int(word, 16)


def copy_without_note(core: Path, target: Path, note_type: str) -> Path:
    """A copy of `core` with one note's type changed to one no reader knows."""
    from elftools.elf.elffile import ELFFile

    data = bytearray(core.read_bytes())
    with open(core, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg.header.p_type == "PT_NOTE":
                for note in seg.iter_notes():
                    if note["n_type"] == note_type:
                        at = note["n_offset"] + 8  # namesz, descsz, type
                        data[at : at + 4] = (0x1234).to_bytes(4, "little")
    target.write_bytes(bytes(data))
    return target


def cut(core: Path, target: Path, size: int) -> Path:
    with open(core, "rb") as f:
        target.write_bytes(f.read(size))
    return target


def notes_end(core: Path) -> int:
    from elftools.elf.elffile import ELFFile

    with open(core, "rb") as f:
        seg = next(s for s in ELFFile(f).iter_segments() if s.header.p_type == "PT_NOTE")
        return int(seg.header.p_offset + seg.header.p_filesz)
