"""`procmap run`: each way samples/crash.c dies, explained, checked against what it did.

Every test runs the real command on the real sample, which prints the address
it is about to touch before it faults; procmap's verdict, address and access
are checked against that, and a few against gdb's view of the same crash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import cores
from tests.conftest import ROOT, SAMPLE_BIN, procmap_env
from tests.helpers import procmap_json

CRASH = SAMPLE_BIN / "crash"
TIMEOUT = 60


def run(tmp_path: Path, *args: str, extra: tuple[str, ...] = ()) -> tuple[dict, str, int]:
    """`procmap run --json -o FILE [extra] crash ARGS`: the report, the program's stdout, status."""
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "run", "--json", "-o", str(out), *extra, str(CRASH)]
        + list(args),
        capture_output=True,
        text=True,
        env=procmap_env(),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return procmap_json(out.read_text()), result.stdout, result.returncode


def printed_address(stdout: str) -> int:
    return cores.printed_address(stdout.splitlines())


# mode: (signal, code, cause, access)
VERDICTS = {
    "null-read": ("SIGSEGV", "SEGV_MAPERR", "null-pointer", "read"),
    "null-write": ("SIGSEGV", "SEGV_MAPERR", "null-pointer", "write"),
    "null-offset": ("SIGSEGV", "SEGV_MAPERR", "null-pointer", "read"),
    "null-call": ("SIGSEGV", "SEGV_MAPERR", "null-pointer", "execute"),
    "stack-overflow": ("SIGSEGV", "SEGV_MAPERR", "stack-overflow", "write"),
    "thread-stack-overflow": ("SIGSEGV", "SEGV_ACCERR", "stack-overflow", "write"),
    "thread-null": ("SIGSEGV", "SEGV_MAPERR", "null-pointer", "read"),
    "write-text": ("SIGSEGV", "SEGV_ACCERR", "write-to-read-only", "write"),
    "write-rodata": ("SIGSEGV", "SEGV_ACCERR", "write-to-read-only", "write"),
    "write-relro": ("SIGSEGV", "SEGV_ACCERR", "write-to-read-only", "write"),
    "exec-heap": ("SIGSEGV", "SEGV_ACCERR", "execute-non-executable", "execute"),
    "exec-stack": ("SIGSEGV", "SEGV_ACCERR", "execute-non-executable", "execute"),
    "exec-data": ("SIGSEGV", "SEGV_ACCERR", "execute-non-executable", "execute"),
    "kernel-address": ("SIGSEGV", "SEGV_MAPERR", "kernel-address", "read"),
    "non-canonical": ("SIGSEGV", "SI_KERNEL", "non-canonical-address", "read"),
    "unmapped": ("SIGSEGV", "SEGV_MAPERR", "unmapped", "read"),
    "no-access": ("SIGSEGV", "SEGV_ACCERR", "no-access", "read"),
    "beyond-eof": ("SIGBUS", "BUS_ADRERR", "beyond-end-of-file", "read"),
}


def check_verdict(fault: dict, mode: str, lines: list[str]) -> None:
    """The signal, code, cause and access of VERDICTS[mode], at the address the program
    printed (an overflow's is wherever the stack ran out)."""
    assert (fault["signal"], fault["code"], fault["cause"], fault["access"]) == VERDICTS[mode], (
        fault["explanation"]
    )
    if mode != "stack-overflow" and "thread" not in mode:
        # The address the program said it would touch is the one procmap names.
        assert fault["address"] == cores.printed_address(lines)


@pytest.mark.parametrize("mode", sorted(VERDICTS))
def test_each_fault_gets_its_verdict(tmp_path, mode):
    report, stdout, status = run(tmp_path, mode)
    fault = report["fault"]
    check_verdict(fault, mode, stdout.splitlines())
    assert status == 128 + signal.Signals[VERDICTS[mode][0]].value == report["exit_status"]
    assert fault["explanation"]
    # The map is there, next to the fault, and it is the crashing process's.
    assert report["map"]["pid"] == report["pid"]
    assert fault["pc"]["address"] == fault["pc"]["address"]  # a hex string, checked above


def test_where_the_address_is(tmp_path):
    """The fault's region: kind, object, section and symbol, as the program's own layout has them."""
    expected = {
        "write-text": ("text", ".text", "main"),
        "write-rodata": ("rodata", ".rodata", "greeting"),
        "write-relro": ("rodata", ".data.rel.ro", "table"),
        "exec-data": ("data", ".data", "code_in_data"),
    }
    for mode, (kind, section, symbol) in expected.items():
        fault = run(tmp_path, mode)[0]["fault"]
        region = fault["region"]
        assert (region["kind"], region["section"], region["symbol"]) == (kind, section, symbol)
        assert region["object"] == str(CRASH)
    relro = run(tmp_path, "write-relro")[0]["fault"]["region"]
    assert relro["detail"] == "relro"
    heap = run(tmp_path, "exec-heap")[0]["fault"]
    assert heap["region"]["kind"] == "heap"
    assert heap["called_from"]["symbol"] == "jump_to"
    stack = run(tmp_path, "exec-stack")[0]["fault"]
    assert stack["region"]["kind"] == "stack" and stack["region"]["detail"] == "main-stack"


def test_an_unmapped_address_names_its_neighbours(tmp_path):
    report, stdout, _ = run(tmp_path, "unmapped")
    region = report["fault"]["region"]
    assert region["kind"] is None and region["unmapped"] == "gap"
    below, above = region["between"]
    address = printed_address(stdout)
    assert below["end"] <= address < above["start"]
    assert "below the start of" in report["fault"]["explanation"]


def test_where_the_program_was(tmp_path):
    """pc in main, the instruction decoded, the thread and its stack."""
    report, _, _ = run(tmp_path, "null-offset")
    fault = report["fault"]
    assert fault["pc"]["symbol"] == "main" and fault["pc"]["kind"] == "text"
    assert (
        "[rax + 0x100]" in fault["pc"]["instruction"]["text"]
        or "0x100]" in (fault["pc"]["instruction"]["text"])
    )
    assert fault["thread"]["tid"] == report["pid"]
    sp = fault["sp"]
    assert sp["stack"]["detail"] == "main-stack"
    assert sp["stack"]["start"] <= sp["address"] < sp["stack"]["end"]
    assert sp["used"] > 0 and sp["left"] > 0
    # The stack scan finds main's caller in libc, and _start.
    assert any(f["symbol"] == "_start" for f in fault["frames"])


def test_a_call_through_null_names_its_caller(tmp_path):
    fault = run(tmp_path, "null-call")[0]["fault"]
    assert fault["address"] == 0 and fault["pc"]["address"] == 0
    assert fault["called_from"]["symbol"] == "main"


def test_stack_overflows_main_and_thread(tmp_path):
    main = run(tmp_path, "stack-overflow")[0]["fault"]
    assert main["sp"]["stack"]["detail"] == "main-stack"
    assert main["pc"]["symbol"] == "recurse"
    report = run(tmp_path, "thread-stack-overflow")[0]
    thread = report["fault"]
    tid = thread["thread"]["tid"]
    assert tid != report["pid"]
    assert thread["sp"]["stack"]["detail"] == "thread-stack"
    assert thread["sp"]["stack"]["tid"] == tid
    assert thread["sp"]["guard"]["tid"] == tid
    assert thread["region"]["detail"] == "guard-page"
    assert thread["sp"]["left"] < 0  # past the bottom, into the guard
    # The map itself ties the stack and its guard to the thread.
    stacks = [r for r in report["map"]["regions"] if r["tid"] == tid]
    assert {r["detail"] for r in stacks} == {"thread-stack", "guard-page"}


def test_a_thread_fault_names_the_thread(tmp_path):
    report = run(tmp_path, "thread-null")[0]
    thread = report["fault"]["thread"]
    assert thread["tid"] != report["pid"]
    assert thread["name"] in ("worker", "crash")  # named just after it starts: a race
    assert report["fault"]["pc"]["symbol"] == "null_thread"


def test_general_protection_address_is_recomputed(tmp_path):
    """x86-64 reports no address for a non-canonical access: the instruction gives it."""
    fault = run(tmp_path, "non-canonical")[0]["fault"]
    assert fault["reported_address"] == 0
    assert fault["address"] == 0x8000000000000000
    assert fault["address_from"] == "instruction"
    assert fault["region"]["unmapped"] == "non-canonical"


@pytest.mark.parametrize(
    "mode, by, words",
    [
        ("abort", None, None),
        ("assert", "assert", "Assertion `zero == 1' failed"),
        ("double-free", "malloc", "double free detected"),
    ],
)
def test_aborts_say_what_aborted(tmp_path, mode, by, words):
    report, _, status = run(tmp_path, mode)
    fault = report["fault"]
    assert status == 134 and fault["signal"] == "SIGABRT" and fault["cause"] == "abort"
    assert fault["abort"]["by"] == by
    if words:
        assert words in fault["abort"]["message"]
    assert fault["sender"] == report["pid"]
    # abort() is on the stack, under the raise that sent the signal.
    assert any(f["symbol"] == "abort" for f in fault["frames"])


@pytest.mark.parametrize(
    "mode, sig, code, insn",
    [
        ("divide-by-zero", "SIGFPE", "FPE_INTDIV", "div"),
        ("illegal", "SIGILL", "ILL_ILLOPN", "ud2"),
        ("breakpoint", "SIGTRAP", "SI_KERNEL", None),
    ],
)
def test_other_crashes(tmp_path, mode, sig, code, insn):
    report, _, status = run(tmp_path, mode)
    fault = report["fault"]
    assert (fault["signal"], fault["code"], fault["cause"]) == (sig, code, "other")
    assert status == 128 + signal.Signals[sig].value
    if insn:
        assert insn in fault["pc"]["instruction"]["text"]
    assert fault["explanation"]


@pytest.mark.parametrize(
    "args, status, signal_name",
    [
        (("ok",), 0, None),
        (("exit", "5"), 5, None),
        (("use-after-free",), 0, None),  # wrong, but nothing traps: not a crash
        (("handled",), 3, None),  # its own SIGSEGV handler: the program's business
        (("terminate",), 143, "SIGTERM"),  # killed, not crashed: no fault
    ],
)
def test_no_fault_without_a_crash(tmp_path, args, status, signal_name):
    report, _, code = run(tmp_path, *args)
    assert report["fault"] is None and report["map"] is None
    assert code == status == report["exit_status"]
    assert report["signal"] == signal_name


def test_the_text_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "run", str(CRASH), "write-rodata"],
        capture_output=True,
        text=True,
        env=procmap_env(COLUMNS="120"),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert result.returncode == 139
    out = result.stdout
    assert out.startswith("addr 0x")  # the program's own output comes first, untouched
    assert "write to read-only memory" in out and "greeting" in out and "Why:" in out
    assert "◀ fault 0x" in out and "◀ pc 0x" in out  # the picture, with the fault marked
    without = subprocess.run(
        [sys.executable, "-m", "procmap", "run", "--no-picture", str(CRASH), "write-rodata"],
        capture_output=True,
        text=True,
        env=procmap_env(COLUMNS="120"),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert "◀" not in without.stdout and "Why:" in without.stdout


def test_streams_pass_through(tmp_path):
    """stdin, stdout and stderr are the program's: cat copies its input to its output."""
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "run", "-o", str(tmp_path / "r.txt"), "cat"],
        input="through\n",
        capture_output=True,
        text=True,
        env=procmap_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "through\n", "")
    assert "exited with status 0" in (tmp_path / "r.txt").read_text()


def test_against_gdb(tmp_path):
    """gdb, stopped at the same fault, agrees on the address and on the function at pc."""
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed")
    for mode, symbol in (("write-rodata", "greeting"), ("null-offset", None)):
        gdb = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", "set startup-with-shell off", "-ex", "run"]
            + ["-ex", "p/x $_siginfo._sifields._sigfault.si_addr", "-ex", "info symbol $pc"]
            + ["--args", str(CRASH), mode],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        si_addr = int(re.search(r"^\$1 = (0x[0-9a-f]+)", gdb.stdout, re.M).group(1), 16)
        pc_symbol = re.search(r"^(\w+) \+ \d+ in section", gdb.stdout, re.M).group(1)
        fault = run(tmp_path, mode)[0]["fault"]
        assert fault["pc"]["symbol"] == pc_symbol == "main"
        if symbol is None:
            assert fault["address"] == si_addr  # no ASLR there: 0x100 either way
        else:
            # gdb runs it without ASLR: compare the offset into the program's image.
            assert si_addr & 0xFFF == fault["address"] & 0xFFF
            assert fault["region"]["symbol"] == symbol


# --- bad input -------------------------------------------------------------------------------


def one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("strace: ")]
    assert len(lines) == 1 and lines[0].startswith("procmap: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "prog, words",
    [
        ("no-such-program-anywhere", "no such program"),
        ("./no/such/file", "no such file"),
        ("/tmp", "a directory"),
        (str(ROOT / "README.md"), "not executable"),
    ],
)
def test_bad_programs(prog, words):
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "run", prog],
        capture_output=True,
        text=True,
        env=procmap_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert words in one_error_line(result, 10)


def test_not_an_executable_format(tmp_path):
    script = tmp_path / "data.bin"
    script.write_bytes(b"\x00\x01 not a program")
    script.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "run", str(script)],
        capture_output=True,
        text=True,
        env=procmap_env(),
        timeout=TIMEOUT,
    )
    assert "Exec format error" in one_error_line(result, 15)


def test_ptrace_denied(tmp_path):
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    result = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", sys.executable, "-m", "procmap", "run", str(CRASH)],
        capture_output=True,
        text=True,
        env=procmap_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert "ptrace" in one_error_line(result, 14)


def test_a_killed_procmap_leaves_nothing_stopped(tmp_path):
    """SIGKILL procmap while the program runs: the kernel kills the program too (EXITKILL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "procmap", "run", str(CRASH), "spin", "30"],
        stdout=subprocess.PIPE,
        env=procmap_env(),
        cwd=ROOT,
    )
    try:
        child = None
        deadline = time.monotonic() + 20
        while child is None and time.monotonic() < deadline:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            child = int(children[0]) if children else None
            time.sleep(0.05)
        assert child is not None
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            if state == "Z":
                break  # dead, waiting for its new parent to reap it
            time.sleep(0.05)
        if os.path.exists(f"/proc/{child}"):
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            assert state == "Z", f"the program is left in state {state}"
    finally:
        proc.kill()
        proc.wait()


def test_ctrl_c_goes_to_the_program(tmp_path):
    """SIGINT to procmap is passed on: the program dies of it, procmap says so and exits 130."""
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "procmap", "run", "--json", "-o", str(out), str(CRASH)]
        + ["spin", "30"],
        env=procmap_env(),
        cwd=ROOT,
    )
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=TIMEOUT) == 130
    report = json.loads(out.read_text())
    assert report["signal"] == "SIGINT" and report["fault"] is None
