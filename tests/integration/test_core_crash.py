"""`procmap core`: the verdict from a core the kernel wrote is the one `procmap run` gives live."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, procmap_env
from tests.cores import dump_core
from tests.helpers import procmap_json
from tests.integration.test_run_crash import VERDICTS, check_verdict

TIMEOUT = 60


def core_report(core, *extra: str) -> tuple[dict, subprocess.CompletedProcess]:
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "core", "--json", str(core), *extra],
        capture_output=True,
        text=True,
        env=procmap_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return procmap_json(result.stdout), result


@pytest.mark.parametrize("mode", sorted(VERDICTS))
def test_core_verdicts_match_the_live_ones(tmp_path, mode):
    core, lines, pid = dump_core(tmp_path / mode, mode)
    report, _ = core_report(core)
    fault = report["fault"]
    check_verdict(fault, mode, lines)
    assert fault["source"] == "core" and report["pid"] == pid
    # The instruction comes from the program's file: the core leaves text out.
    assert (
        fault["pc"]["address"] == 0
        or fault["pc"]["instruction"] is not None
        or (fault["access"] == "execute")
    )


def test_core_of_an_abort_keeps_the_message(tmp_path):
    core, _, _ = dump_core(tmp_path, "double-free")
    fault = core_report(core)[0]["fault"]
    assert fault["cause"] == "abort" and fault["abort"]["by"] == "malloc"
    assert "double free" in fault["abort"]["message"]


def test_core_of_a_thread_overflow(tmp_path):
    core, _, pid = dump_core(tmp_path, "thread-stack-overflow")
    fault = core_report(core)[0]["fault"]
    assert fault["cause"] == "stack-overflow"
    assert fault["thread"]["tid"] != pid
    assert fault["sp"]["stack"]["tid"] == fault["thread"]["tid"]


def test_core_text_report(tmp_path):
    core, _, _ = dump_core(tmp_path, "write-rodata")
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "core", str(core)],
        capture_output=True,
        text=True,
        env=procmap_env(COLUMNS="120"),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert "write to read-only memory" in result.stdout and "greeting" in result.stdout
    assert "◀ fault 0x" in result.stdout


def test_core_bad_input_is_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a core\n")
    result = subprocess.run(
        [sys.executable, "-m", "procmap", "core", str(text)],
        capture_output=True,
        text=True,
        env=procmap_env(),
        timeout=TIMEOUT,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 18 and len(lines) == 1 and lines[0].startswith("procmap: ")


def test_a_core_on_standard_input_is_refused_in_one_line(tmp_path):
    core, _, _ = dump_core(tmp_path, "null-read")
    with open(core, "rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "procmap", "--from", "-"],
            stdin=stdin,
            capture_output=True,
            text=True,
            env=procmap_env(),
            timeout=TIMEOUT,
        )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 16 and len(lines) == 1 and "give its path" in lines[0]
