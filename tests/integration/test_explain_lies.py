"""`procmap explain` on program headers that lie, held against what the loaders really do.

Each input is a file gcc builds here (a -nostdlib static program that exits 0 at
once, and a -nostdlib shared library), with one or two PT_LOAD fields changed.
explain must name the problem by a stable key, say whether the loader refuses the
file, plan nothing past the top of the address space, and keep the section table
with the mapping that really holds each section.  And every claim is checked on
this machine: the program is exec'd under ptrace (a refusal after the point of no
return is a SIGSEGV before the exec's SIGTRAP stop; a load is the SIGTRAP stop,
with /proc/PID/maps showing what the kernel mapped), and the library is dlopen()ed
in a child Python (a refusal is dlerror()'s text).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from procmap.elf.checks import user_top
from procmap.views.explain import Explanation, explain_elf
from tests.conftest import MODES, SAMPLE_BIN, sample_path
from tests.helpers import procmap_json, run_cli

PAGE = os.sysconf("SC_PAGE_SIZE")

PROGRAM_C = """\
volatile int value = 3;
int zero[1024];
void _start(void) { __asm__ volatile("mov $60, %eax\\n xor %edi, %edi\\n syscall"); }
"""
LIBRARY_C = """\
int data_var = 5;
int bss_var[1024];
int get(void) { return data_var + bss_var[0]; }
"""

# ELF64 program header fields: (offset in the entry, struct format).
FIELDS = {"offset": (8, "Q"), "vaddr": (16, "Q"), "filesz": (32, "Q"), "memsz": (40, "Q")}
PHDR = 56


def phdr_at(blob: bytes, i: int) -> int:
    return struct.unpack_from("<Q", blob, 0x20)[0] + i * PHDR


def get(blob: bytes, i: int, field: str) -> int:
    at, fmt = FIELDS[field]
    return struct.unpack_from("<" + fmt, blob, phdr_at(blob, i) + at)[0]


def put(blob: bytearray, i: int, **values: int) -> bytearray:
    for field, value in values.items():
        at, fmt = FIELDS[field]
        struct.pack_into("<" + fmt, blob, phdr_at(blob, i) + at, value)
        if field == "vaddr":  # p_paddr too, as the linker writes it
            struct.pack_into("<Q", blob, phdr_at(blob, i) + 24, value)
    return blob


def swap(blob: bytearray, i: int, j: int) -> bytearray:
    a, b = phdr_at(blob, i), phdr_at(blob, j)
    blob[a : a + PHDR], blob[b : b + PHDR] = blob[b : b + PHDR], blob[a : a + PHDR]
    return blob


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, bytes]:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None or os.uname().machine != "x86_64" or PAGE != 4096:
        pytest.skip("the inputs are x86-64 programs for 4 KiB pages, built with gcc")
    d = tmp_path_factory.mktemp("liars")
    (d / "program.c").write_text(PROGRAM_C)
    (d / "library.c").write_text(LIBRARY_C)
    for args in (
        ["-O1", "-nostdlib", "-static", "-o", "program", "program.c"],
        ["-O1", "-shared", "-fPIC", "-nostdlib", "-o", "library.so", "library.c"],
    ):
        subprocess.run([gcc, *args], cwd=d, check=True, capture_output=True, timeout=60)
    files = {name: (d / name).read_bytes() for name in ("program", "library.so")}
    # The edits below assume the layout ld gives these: four PT_LOADs first (r, rx, r, rw).
    for blob in files.values():
        assert [struct.unpack_from("<I", blob, phdr_at(blob, i))[0] for i in range(4)] == [1] * 4
    return files


@pytest.fixture
def craft(built, tmp_path):
    def make(which: str, *edits) -> Path:
        blob = bytearray(built[which])
        for edit in edits:
            edit(blob)
        path = tmp_path / ("liar.so" if which == "library.so" else "liar")
        path.write_bytes(bytes(blob))
        path.chmod(0o755)
        return path

    return make


# --- what the kernel and ld.so do -------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_TRACEME, PTRACE_CONT = 0, 7


def exec_outcome(path: Path) -> tuple[str, str, str]:
    """(what, detail, maps): ("execve-failed", errno name, ""), ("killed-in-exec", signal,
    "") or ("ran", "exit N" or the signal, /proc/PID/maps at the exec stop)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _libc.ptrace(PTRACE_TRACEME, 0, None, None)
            os.execv(str(path), [str(path)])
        except OSError as err:
            os.write(w, b"%d" % (err.errno or 0))
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    if report:
        return "execve-failed", errno.errorcode[int(report)], ""
    assert os.WIFSTOPPED(status), status
    if os.WSTOPSIG(status) != signal.SIGTRAP:
        # Killed after the point of no return: the fatal signal comes before the exec stop.
        sig = os.WSTOPSIG(status)
        _libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(sig))
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig, status
        return "killed-in-exec", signal.Signals(sig).name, ""
    maps = Path(f"/proc/{pid}/maps").read_text()
    sig = 0
    while True:
        _libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(sig))
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            break
        sig = os.WSTOPSIG(status)
    if os.WIFEXITED(status):
        return "ran", f"exit {os.WEXITSTATUS(status)}", maps
    return "ran", signal.Signals(os.WTERMSIG(status)).name, maps


DLOPEN = """\
import ctypes, sys
try:
    ctypes.CDLL(sys.argv[1])
except OSError as err:
    print("refused", str(err).rsplit(": ", 1)[-1])
else:
    print("loaded")
"""


def dlopen_outcome(path: Path) -> tuple[str, str]:
    """("refused", dlerror's text), ("loaded", "") or ("killed", the signal)."""
    done = subprocess.run(
        [sys.executable, "-c", DLOPEN, str(path)], capture_output=True, text=True, timeout=60
    )
    if done.returncode < 0:
        return "killed", signal.Signals(-done.returncode).name
    what, _, detail = done.stdout.strip().partition(" ")
    return what, detail


def keys(exp: Explanation) -> set[str]:
    return {f.key for f in exp.findings}


# --- the programs: the kernel ---------------------------------------------------------------


def memsz_to(end: int, i: int = 3):
    return lambda b: put(b, i, memsz=end - get(b, i, "vaddr"))


# (id, edits, the finding's key, refused, what exec does here)
PROGRAMS = [
    ("memsz-past-the-address-space", [memsz_to(0x4000000000004000)], "segment-beyond-address-space", True, "killed-in-exec"),
    ("memsz-past-task-size", [memsz_to(0x800000000000)], "segment-beyond-address-space", True, "killed-in-exec"),
    ("memsz-wraps-past-2^64", [memsz_to((1 << 64) + 0x1000)], "segment-beyond-address-space", True, "killed-in-exec"),
    ("vaddr-at-task-size", [lambda b: put(b, 2, vaddr=0x7FFFFFFFF000, offset=0x2000)], "segment-beyond-address-space", True, "killed-in-exec"),
    ("filesz-exceeds-memsz", [lambda b: put(b, 2, memsz=0x10)], "filesz-exceeds-memsz", True, "killed-in-exec"),
    ("offset-not-congruent", [lambda b: put(b, 1, offset=get(b, 1, "offset") + 0x10)], "vaddr-offset-misaligned", True, "killed-in-exec"),
    ("bss-page-past-end-of-file", [lambda b: put(b, 3, offset=0x100000)], "segment-past-end-of-file", True, "killed-in-exec"),
    ("rodata-past-end-of-file", [lambda b: put(b, 2, offset=0x100000)], "segment-past-end-of-file", False, "ran"),
    ("overlapping", [lambda b: put(b, 2, vaddr=0x400000, offset=get(b, 2, "offset"))], "overlapping-segments", False, "ran"),
    ("out-of-order", [lambda b: swap(b, 0, 3)], "segments-out-of-order", False, "ran"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edits", "key", "refused", "outcome"), [p[1:] for p in PROGRAMS], ids=[p[0] for p in PROGRAMS]
)
def test_program_finding_matches_what_the_kernel_does(craft, edits, key, refused, outcome):
    path = craft("program", *edits)
    exp = explain_elf(str(path))
    assert exp.loader == "kernel"
    assert key in keys(exp), exp.findings
    assert exp.refused == refused, exp.findings
    what, detail, _ = exec_outcome(path)
    assert what == outcome, (what, detail)
    if what == "killed-in-exec":
        assert detail == "SIGSEGV"


def test_too_many_program_headers_fail_execve_itself(craft):
    """Before the point of no return: execve() returns ENOEXEC, the caller lives on.
    (1200 headers are 67,200 bytes, past the kernel's 64 KiB; more than a page is fine.)"""

    def many(blob: bytearray) -> None:
        struct.pack_into("<H", blob, 0x38, 1200)
        blob.extend(bytes(max(0, phdr_at(blob, 1200) - len(blob))))  # PT_NULL padding

    path = craft("program", many)
    exp = explain_elf(str(path))
    assert "program-headers-too-large" in keys(exp) and exp.refused
    assert exec_outcome(path)[:2] == ("execve-failed", "ENOEXEC")


def test_a_plan_never_reaches_past_the_top_of_the_address_space(craft):
    path = craft("program", memsz_to(0x4000000000004000))
    exp = explain_elf(str(path))
    top, _ = user_top(exp.layout)
    assert top == 0x7FFFFFFFF000
    assert max(m.end for m in exp.mappings) == top
    assert max(r.end for r in exp.regions) == top
    (finding,) = [f for f in exp.findings if f.key == "segment-beyond-address-space"]
    assert finding.segments == (3,) and finding.loader == "kernel"
    assert "0x4000000000004000" in finding.text and "stops at 0x7ffffffff000" in finding.text
    # The picture and the JSON are drawn from the same clamped plan.
    d = exp.to_dict()
    assert d["refused"] is True
    assert [f["key"] for f in d["findings"]] == ["segment-beyond-address-space"]
    assert max(int(m["end"], 16) for m in d["mappings"]) == top


def test_overlap_plans_what_the_kernel_really_maps(craft):
    """Segment 2 (r--, .eh_frame) over segment 0's page: the kernel maps it with MAP_FIXED
    over segment 0, and /proc/PID/maps at the exec stop is the plan, page for page."""
    path = craft("program", lambda b: put(b, 2, vaddr=0x400000, offset=get(b, 2, "offset")))
    exp = explain_elf(str(path))
    what, _, maps = exec_outcome(path)
    assert what == "ran"
    real = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] == str(path):
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            real.append((lo, hi, fields[1], int(fields[2], 16)))
    planned = [(m.start, m.end, m.perms, m.offset) for m in exp.mappings if m.inode]
    assert planned == real
    assert exp.owner_at(0x400000) == 2
    # The headers' section (.note.gnu.build-id) lived in segment 0's page: gone.
    note = next(s for s in exp.sections if s.section.name == ".note.gnu.build-id")
    assert (note.missing, note.replaced_by, note.kind) == ("replaced", 2, None)
    assert not any(".note.gnu.build-id" in r.sections for r in exp.regions)
    assert exp.to_dict()["mappings"][0]["segment"] == 2


def test_overlap_over_the_code_loses_text_and_the_program_faults(craft):
    path = craft("program", lambda b: put(b, 2, vaddr=0x401000, offset=get(b, 2, "offset")))
    exp = explain_elf(str(path))
    text = next(s for s in exp.sections if s.section.name == ".text")
    assert (text.missing, text.replaced_by) == ("replaced", 2)
    assert not any(r.kind == "text" for r in exp.regions)
    (finding,) = [f for f in exp.findings if f.key == "overlapping-segments"]
    assert finding.segments == (1, 2) and not finding.refused
    # The entry point's page is r-- (segment 2's): the first instruction faults.
    what, detail, _ = exec_outcome(path)
    assert (what, detail) == ("ran", "SIGSEGV")


# --- the libraries: ld.so -------------------------------------------------------------------

LIBRARIES = [
    ("memsz-past-task-size", [memsz_to(0x800000000000)], "segment-beyond-address-space", True, ("refused", "failed to map segment from shared object")),
    ("memsz-wraps-past-2^64", [memsz_to((1 << 64) + 0x1000)], "segment-beyond-address-space", False, ("loaded", "")),
    ("offset-not-congruent", [lambda b: put(b, 2, offset=get(b, 2, "offset") + 0x10)], "vaddr-offset-misaligned", True, ("refused", "ELF load command address/offset not page-aligned")),
    ("filesz-exceeds-memsz", [lambda b: put(b, 2, memsz=0x10)], "filesz-exceeds-memsz", False, ("loaded", "")),
    ("last-ends-below-first", [lambda b: swap(b, 0, 3)], "segments-out-of-order", True, ("refused", "failed to map segment from shared object")),
    ("out-of-order", [lambda b: swap(b, 0, 1)], "segments-out-of-order", False, ("loaded", "")),
    ("bss-page-past-end-of-file", [lambda b: put(b, 3, offset=get(b, 3, "offset") + 0x100000)], "segment-past-end-of-file", True, ("killed", "SIGBUS")),
    ("overlapping", [lambda b: put(b, 2, vaddr=0x1000, offset=get(b, 2, "offset"))], "overlapping-segments", False, ("loaded", "")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edits", "key", "refused", "outcome"),
    [p[1:] for p in LIBRARIES],
    ids=[p[0] for p in LIBRARIES],
)
def test_library_finding_matches_what_ld_so_does(craft, edits, key, refused, outcome):
    path = craft("library.so", *edits)
    exp = explain_elf(str(path))
    assert exp.loader == "dynamic linker"
    assert key in keys(exp), exp.findings
    assert exp.refused == refused, exp.findings
    assert dlopen_outcome(path) == outcome
    if outcome[0] == "refused":
        assert any(outcome[1] in f.text for f in exp.findings if f.refused), exp.findings


# --- the command line ---------------------------------------------------------------------------


def test_cli_says_the_refusal_in_one_line_and_carries_it_in_json(craft):
    path = craft("program", memsz_to(0x4000000000004000))
    text = run_cli("explain", "--no-notes", str(path), columns=400)
    assert text.returncode == 0 and text.stderr == "" and "Traceback" not in text.stdout
    refusals = [line for line in text.stdout.splitlines() if line.startswith("refused: ")]
    assert len(refusals) == 1, text.stdout
    assert "kernel would refuse to run this file" in refusals[0]
    assert "4000000000004000" not in text.stdout.split("Load plan", 1)[1].split("\n", 3)[3]
    as_json = run_cli("explain", "--json", str(path))
    d = procmap_json(as_json.stdout)
    assert d["refused"] is True
    assert d["findings"][0]["key"] == "segment-beyond-address-space"
    json.dumps(d)


def test_sound_files_have_no_findings():
    """No false alarm on what the linkers really make: every sample, and the C library."""
    paths = [sample_path(m) for m in MODES] + [SAMPLE_BIN / "libaligned.so"]
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    if libc.exists():
        paths.append(libc)
    for path in paths:
        exp = explain_elf(str(path))
        assert exp.findings == [], (path, exp.findings)
        assert all(s.missing is None for s in exp.sections), path
