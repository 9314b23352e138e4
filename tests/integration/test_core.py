"""Core files the kernel wrote: read, shown with --from, classified like the live process,
and fed to the crash analysis."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from procmap.elf.core import read_core
from procmap.errors import BadCore
from procmap.live.capture import read_map
from procmap.model import Detail
from procmap.views import snapshot as snapshots
from procmap.views.core import core_fault_input, core_snapshot
from procmap.views.snapshot import replay
from tests.conftest import lines_until_ready, sample_path, wait_until_blocked
from tests.cores import CRASH, core_name, dump_core, printed_address
from tests.helpers import procmap_json, run_cli

WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def cores(tmp_path_factory):
    """One core per crash mode, dumped on first use."""
    base = tmp_path_factory.mktemp("cores")
    made: dict[str, tuple[Path, list[str], int]] = {}

    def get(mode: str) -> tuple[Path, list[str], int]:
        if mode not in made:
            made[mode] = dump_core(base / mode, mode)
        return made[mode]

    return get


def test_the_dumping_thread_and_its_signal(cores):
    core, lines, pid = cores("null-read")
    dump = read_core(str(core))
    assert [t.tid for t in dump.threads] == [pid]
    assert dump.threads[0].cursig == signal.SIGSEGV
    assert dump.process is not None
    assert (dump.process.pid, dump.process.comm) == (pid, "crash")
    assert dump.process.args == f"{CRASH} null-read"
    assert not dump.warnings
    fault = core_fault_input(dump, core_snapshot(dump, str(core)))
    assert fault.siginfo.signo == signal.SIGSEGV and fault.siginfo.code_name == "SEGV_MAPERR"
    assert fault.siginfo.addr == printed_address(lines) == 0
    assert (fault.tid, fault.thread_name, fault.source) == (pid, "crash", "core")


def test_a_thread_that_faults_is_the_first(cores):
    core, lines, pid = cores("thread-null")
    dump = read_core(str(core))
    tids = [t.tid for t in dump.threads]
    assert len(tids) == 2 and pid in tids and tids[0] != pid  # the worker dumped
    fault = core_fault_input(dump, core_snapshot(dump, str(core)))
    assert fault.tid == tids[0] and fault.thread_name is None
    assert fault.siginfo.addr == printed_address(lines) == 0


def test_nt_file_as_pyelftools_reads_it(cores):
    core, _, _ = cores("write-rodata")
    dump = read_core(str(core))
    with open(core, "rb") as f:
        note = next(
            n
            for seg in ELFFile(f).iter_segments()
            if seg.header.p_type == "PT_NOTE"
            for n in seg.iter_notes()
            if n["n_type"] == "NT_FILE"
        )
    desc = note["n_desc"]
    assert dump.page_size == desc["page_size"] == os.sysconf("SC_PAGE_SIZE")
    expected = [
        (e["vm_start"], e["vm_end"], e["page_offset"] * desc["page_size"], name.decode())
        for e, name in zip(desc["Elf_Nt_File_Entry"], desc["filename"])
    ]
    assert [tuple(f) for f in dump.files] == expected
    assert str(CRASH) in {f.path for f in dump.files}


def test_where_from_a_core_names_the_faulting_address(cores):
    core, lines, _ = cores("write-rodata")
    address = printed_address(lines)
    dump = read_core(str(core))
    fault = core_fault_input(dump, core_snapshot(dump, str(core)))
    assert fault.siginfo.addr == address and fault.siginfo.code_name == "SEGV_ACCERR"
    result = run_cli("where", "--from", str(core), hex(address), "--json")
    assert result.returncode == 0, result.stderr
    [loc] = procmap_json(result.stdout)
    assert (loc["kind"], loc["section"], loc["symbol"]) == ("rodata", ".rodata", "greeting")
    assert loc["object"] == str(CRASH)


def test_show_from_a_core(cores):
    core, _, pid = cores("null-read")
    result = run_cli("--from", str(core), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"procmap: map of PID {pid} (crash) from a core file dumped")
    data = procmap_json(result.stdout)
    kinds = {r["kind"] for r in data["regions"]}
    assert {"text", "rodata", "data", "bss", "heap", "stack", "kernel"} <= kinds
    programs = [im for im in data["images"] if im["role"] == "program"]
    assert [im["path"] for im in programs] == [str(CRASH)]
    assert any(r["path"] == "[vdso]" for r in data["regions"])
    assert any("[heap]" in w and "guess" in w for w in data["warnings"])


def test_instruction_bytes_at_pc_come_from_the_file(cores):
    core, _, _ = cores("null-read")
    dump = read_core(str(core))
    fault = core_fault_input(dump, core_snapshot(dump, str(core)))
    pc = fault.registers[fault.arch.pc]
    assert dump.read(pc, 16) is None  # the kernel leaves text out of the core
    region = fault.pmap.region_at(pc)
    assert region is not None and region.kind == "text" and region.path == str(CRASH)
    with open(CRASH, "rb") as f:
        f.seek(region.offset + pc - region.start)
        expected = f.read(16)
    assert fault.read_memory(pc, 16) == expected
    assert fault.file_size(region) == CRASH.stat().st_size
    # Memory the core does hold: the stack, at the stack pointer.
    sp = fault.registers[fault.arch.sp]
    assert fault.read_memory(sp, 64) == dump.read(sp, 64) is not None
    assert fault.read_memory(0, 8) is None


def test_a_thread_stack_overflow_finds_the_stack(cores):
    core, _, pid = cores("thread-stack-overflow")
    dump = read_core(str(core))
    first = dump.threads[0]
    assert first.tid != pid
    pmap = replay(core_snapshot(dump, str(core)))
    sp = first.registers["rsp"] if "rsp" in first.registers else first.registers["sp"]
    guard = pmap.region_at(sp)
    assert guard is not None and (guard.detail, guard.tid) == (Detail.GUARD_PAGE, first.tid)
    stack = pmap.region_at(guard.end)
    assert stack is not None and (stack.detail, stack.tid) == (Detail.THREAD_STACK, first.tid)
    assert stack.size == 256 * 1024  # the sample's pthread_attr_setstacksize


def test_a_main_stack_overflow(cores):
    core, _, _ = cores("stack-overflow")
    dump = read_core(str(core))
    fault = core_fault_input(dump, core_snapshot(dump, str(core)))
    assert fault.siginfo.signo == signal.SIGSEGV
    stack = next(r for r in fault.pmap.regions if r.path == "[stack]")
    assert stack.kind == "stack" and stack.size >= 7 << 20  # grown to RLIMIT_STACK
    assert fault.siginfo.addr is not None and fault.siginfo.addr < stack.start + 65536


def _unlimited() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def test_a_core_classifies_as_the_live_process(tmp_path):
    """The lesson's program read live, then made to dump core: the same regions, kinds
    and details, address for address."""
    process = subprocess.Popen(
        [str(sample_path("pie"))],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=_unlimited,
    )
    try:
        printed = {}
        for line in lines_until_ready(process, "lesson-pie"):
            name, address, kind = line.split()
            if name != "thread_tid":
                printed[name] = (int(address, 16), kind)
        wait_until_blocked(process.pid)
        live = read_map(process.pid)
        os.kill(process.pid, signal.SIGABRT)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()
        process.stdout.close()
    core = tmp_path / core_name(process.pid)
    if not core.exists():
        pytest.skip(f"no core at {core}")
    pmap = replay(snapshots.read(core))

    def shape(m):
        # A thread stack the live read found at its full RLIMIT_STACK size, the core too.
        return [(r.start, r.end, r.kind, r.detail, r.tid, r.object) for r in m.regions]

    assert shape(pmap) == shape(live)
    for name, (address, kind) in printed.items():
        region = pmap.region_at(address)
        assert region is not None and region.kind == kind, name


def test_a_program_gone_from_disk_and_exe(tmp_path):
    program = tmp_path / "bin" / "crash-copy"
    program.parent.mkdir()
    shutil.copy2(CRASH, program)
    core, _, _ = dump_core(tmp_path / "run", str(program), "null-read")
    program.unlink()
    dump = read_core(str(core))
    gone = core_snapshot(dump, str(core))
    assert any("not found on disk" in w and "--exe" in w for w in gone.warnings)
    assert not any(im.role == "program" for im in replay(gone).images)
    found = core_snapshot(dump, str(core), exe=str(CRASH))  # the same build, elsewhere
    pmap = replay(found)
    assert [im.role for im in pmap.images if im.path == str(program)] == ["program"]
    fault = core_fault_input(dump, found, exe=str(CRASH))
    pc = fault.registers[fault.arch.pc]
    assert fault.read_memory(pc, 4) is not None
    with pytest.raises(BadCore, match=r"--exe /bin/true: not the program of this core"):
        core_snapshot(dump, str(core), exe="/bin/true")
