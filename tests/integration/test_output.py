"""Output that cannot be written, and files --save must not harm (issue 17, 1-3).

Real processes: `python -m procmap` with its standard output on /dev/full, closed,
or a pipe closed early; --save over real files, links and modes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import procmap_env, run_sample
from tests.helpers import run_cli

FULL_DISK = 17  # errors.OutputFailed.exit_code


def procmap_to(stdout, *args: str, close_stdout: bool = False) -> subprocess.CompletedProcess:
    """Run the real `procmap ARGS` with its standard output on `stdout`, or closed."""
    return subprocess.run(
        [sys.executable, "-m", "procmap", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=procmap_env(),
        timeout=60,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


COMMANDS = (
    ("{pid}",),
    ("{pid}", "--json"),
    ("{pid}", "--rss", "--sort", "rss"),
    ("{pid}", "--diagram"),
    ("where", "{pid}", "{address}"),
    ("explain", "{path}"),
    ("{pid}", "--watch", "--count", "2", "--interval", "0.05"),
    ("{pid}", "--watch", "--count", "2", "--interval", "0.05", "--json"),
)


@pytest.fixture(scope="module")
def target():
    with run_sample("pie") as sample:
        address = sample.variables["global_init"][0]
        yield {"pid": str(sample.pid), "address": hex(address), "path": str(sample.path)}


def _args(command: tuple[str, ...], target: dict) -> list[str]:
    return [word.format(**target) for word in command]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_full_disk_is_one_line_and_an_exit_code(command, target):
    with open("/dev/full", "w") as full:
        result = procmap_to(full, *_args(command, target))
    assert result.returncode == FULL_DISK, result.stderr
    assert one_line(result.stderr) == "procmap: cannot write the output: no space left on device"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_closed_standard_output_is_one_line_and_an_exit_code(command, target):
    result = procmap_to(subprocess.DEVNULL, *_args(command, target), close_stdout=True)
    assert result.returncode == FULL_DISK, result.stderr
    assert one_line(result.stderr) == "procmap: cannot write the output: standard output is closed"


def test_a_closed_standard_output_is_no_error_when_nothing_goes_to_it(target, tmp_path):
    svg = tmp_path / "map.svg"
    result = procmap_to(subprocess.DEVNULL, target["pid"], "--svg", str(svg), close_stdout=True)
    assert result.returncode == 0, result.stderr
    assert "<svg" in svg.read_text()


@pytest.mark.parametrize("command", [("{pid}", "--sections"), ("{pid}", "--json")], ids=" ".join)
def test_a_broken_pipe_is_silent(command, target):
    """Silent, and not a success: the output did not reach its reader."""
    process = subprocess.Popen(
        [sys.executable, "-m", "procmap", *_args(command, target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=procmap_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before procmap writes: as `| true` does
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) != 0
    assert stderr == ""


# --- --save: modes, owners, links ---------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def save(pid: int, path: Path | str, *more: str):
    return run_cli(str(pid), "--save", str(path), *more)


def test_a_new_snapshot_is_readable_by_its_owner_only(tmp_path, umask_022):
    path = tmp_path / "new.json"
    with run_sample("pie") as sample:
        result = save(sample.pid, path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_a_replaced_snapshot_keeps_its_mode(tmp_path, umask_022, mode):
    path = tmp_path / "old.json"
    with run_sample("pie") as sample:
        assert save(sample.pid, path).returncode == 0
        before = path.stat().st_ino
        path.chmod(mode)
        result = save(sample.pid, path)
    assert result.returncode == 0, result.stderr
    assert path.stat().st_ino != before  # replaced, not written in place
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_a_replaced_snapshot_keeps_its_owner(tmp_path):
    path = tmp_path / "theirs.json"
    with run_sample("pie") as sample:
        assert save(sample.pid, path).returncode == 0
        os.chown(path, 65534, 65534)
        result = save(sample.pid, path)
    assert result.returncode == 0, result.stderr
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_an_empty_file_from_mktemp_is_filled_and_stays_private(tmp_path, umask_022):
    path = tmp_path / "tmp.XXXX"
    path.touch(mode=0o600)
    with run_sample("pie") as sample:
        result = save(sample.pid, path)
    assert result.returncode == 0, result.stderr
    assert json.loads(path.read_bytes())["format"] == "procmap-snapshot"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_that_is_not_a_snapshot_is_not_replaced_without_force(tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("not a snapshot\n")
    with run_sample("pie") as sample:
        refused = save(sample.pid, precious)
        assert refused.returncode != 0
        assert precious.read_text() == "not a snapshot\n"
        assert refused.stderr == (
            f"procmap: {precious}: exists and is not a procmap snapshot: not replaced "
            "(--force replaces it)\n"
        )
        forced = save(sample.pid, precious, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(precious.read_bytes())["format"] == "procmap-snapshot"


def test_a_link_to_a_file_that_is_not_a_snapshot_names_what_it_points_to(tmp_path):
    precious = tmp_path / "passwd"
    precious.write_text("root:x:0:0\n")
    link = tmp_path / "map.json"
    link.symlink_to(precious)
    with run_sample("pie") as sample:
        result = save(sample.pid, link)
    assert result.returncode != 0
    assert precious.read_text() == "root:x:0:0\n"
    assert f"a symbolic link to {precious}" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_link_to_a_snapshot_replaces_the_snapshot_and_stays_a_link(tmp_path):
    real = tmp_path / "real.json"
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    with run_sample("pie") as sample:
        assert save(sample.pid, real).returncode == 0
        result = save(sample.pid, link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == real.name
    assert f"saved to {link} (a link to {real})" in result.stderr


@pytest.mark.parametrize("force", [False, True])
def test_a_link_loop_is_refused_and_stays_a_link(tmp_path, force):
    one, two = tmp_path / "one", tmp_path / "two"
    one.symlink_to(two)
    two.symlink_to(one)
    with run_sample("pie") as sample:
        result = save(sample.pid, one, *(["--force"] if force else []))
    assert result.returncode != 0
    assert one.is_symlink() and two.is_symlink()
    assert "a symbolic link to" in result.stderr and "cannot be followed" in result.stderr


def test_a_link_to_nothing_is_written_only_with_force(tmp_path):
    link = tmp_path / "dangling.json"
    link.symlink_to("made.json")
    with run_sample("pie") as sample:
        refused = save(sample.pid, link)
        assert refused.returncode != 0 and not (tmp_path / "made.json").exists()
        assert "does not exist" in refused.stderr
        forced = save(sample.pid, link, "--force")
    assert forced.returncode == 0, forced.stderr
    assert link.is_symlink()
    assert json.loads((tmp_path / "made.json").read_bytes())["format"] == "procmap-snapshot"


def test_save_dash_writes_the_snapshot_to_standard_output_and_from_dash_reads_it(tmp_path):
    with run_sample("pie") as sample:
        to_stdout = run_cli(str(sample.pid), "--save", "-")
        assert to_stdout.returncode == 0, to_stdout.stderr
        saved = json.loads(to_stdout.stdout)
        assert saved["format"] == "procmap-snapshot" and saved["process"]["pid"] == sample.pid
        path = tmp_path / "saved.json"
        path.write_text(to_stdout.stdout)
    from_file = run_cli("--from", str(path), "--json")
    from_stdin = run_cli("--from", "-", "--json", input=to_stdout.stdout)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout


def test_save_dash_does_not_go_with_other_outputs():
    result = run_cli("self", "--save", "-", "--json")
    assert result.returncode == 2
    assert "--save - writes the snapshot to standard output" in result.stderr


def test_force_goes_with_save():
    assert run_cli("self", "--force").returncode == 2


def test_svg_and_html_keep_the_mode_of_the_file_they_replace(tmp_path):
    svg = tmp_path / "map.svg"
    svg.write_text("old")
    svg.chmod(0o600)
    result = run_cli(str(os.getpid()), "--svg", str(svg))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(svg.stat().st_mode) == 0o600
    assert "<svg" in svg.read_text()
