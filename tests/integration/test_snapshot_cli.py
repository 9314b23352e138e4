"""--save and --from through the real CLI: a sample's map, saved, replays after it exits."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import MODES, lines_until_ready, run_sample, sample_path
from tests.helpers import procmap_json, run_cli

WIDE = {"COLUMNS": "250"}


def save_and_replay(tmp_path, mode: str, *view: str) -> tuple[str, str]:
    """(live output of `PID --save FILE VIEW`, output of `--from FILE VIEW` after exit)."""
    path = tmp_path / f"{mode}.json"
    with run_sample(mode) as s:
        live = run_cli(str(s.pid), "--save", str(path), *view, env=WIDE)
        pid = s.pid
    assert live.returncode == 0, live.stderr
    assert live.stderr.strip() == f"procmap: saved to {path}"
    assert not os.path.exists(f"/proc/{pid}"), "the sample has exited and been reaped"
    replayed = run_cli("--from", str(path), *view, env=WIDE)
    assert replayed.returncode == 0, replayed.stderr
    [provenance] = replayed.stderr.splitlines()
    name = f"lesson-{mode}"[:15]  # the kernel's comm: 15 bytes at most
    assert provenance.startswith(f"procmap: map of PID {pid} ({name}) saved ")
    return live.stdout, replayed.stdout


@pytest.mark.parametrize("mode", MODES)
def test_a_saved_sample_replays_to_the_same_output(tmp_path, mode):
    live, replayed = save_and_replay(tmp_path, mode)
    assert replayed == live
    assert "What each kind is" in live and "by object" in live


@pytest.mark.parametrize(
    "view", [("--rss", "--sort", "rss"), ("--json", "--rss"), ("--kind", "bss,data", "--no-notes")]
)
def test_every_view_replays_the_same(tmp_path, view):
    live, replayed = save_and_replay(tmp_path, "pie", *view)
    assert replayed == live
    if "--json" in view:
        regions = procmap_json(replayed)["regions"]
        assert all("rss" in r for r in regions)


def test_where_in_a_snapshot_names_what_live_where_names(tmp_path):
    path = tmp_path / "pie.json"
    with run_sample("pie") as s:
        names = sorted(s.variables)
        addresses = [hex(s.variables[n][0]) for n in names]
        saved = run_cli(str(s.pid), "--save", str(path), "--json")
        live = run_cli("where", str(s.pid), *addresses, "--json")
    assert saved.returncode == 0 and live.returncode == 0, saved.stderr + live.stderr
    replayed = run_cli("where", "--from", str(path), *addresses, "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert procmap_json(replayed.stdout) == procmap_json(live.stdout)
    found = {n: loc for n, loc in zip(names, procmap_json(replayed.stdout))}
    assert found["main"]["symbol"] == "main" and found["main"]["section"] == ".text"
    assert found["global_uninit"]["kind"] == "bss"


def test_a_snapshot_is_self_contained(tmp_path):
    # Saved from a copy of the sample that is then deleted: the ELF headers and
    # symbols come from the snapshot, not from the file system.
    binary = tmp_path / "lesson-copy"
    shutil.copy(sample_path("pie"), binary)
    path = tmp_path / "copy.json"
    process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        variables = {}
        for line in lines_until_ready(process, "a copy of lesson-pie"):
            words = line.split()
            variables[words[0]] = words[1]
        live = run_cli(str(process.pid), "--save", str(path), "--no-notes", env=WIDE)
    finally:
        process.stdin.close()
        process.wait()
    binary.unlink()
    replayed = run_cli("--from", str(path), "--no-notes", env=WIDE)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == live.stdout
    assert " bss " in replayed.stdout and "lesson-copy" in replayed.stdout
    where = run_cli("where", "--from", str(path), variables["main"])
    assert "main" in where.stdout and ".text" in where.stdout


def test_a_plain_maps_text_is_classified_by_names_and_permissions(tmp_path):
    with run_sample("pie") as s:
        text = (tmp_path / "maps.txt").write_bytes(open(f"/proc/{s.pid}/maps", "rb").read())
        assert text
        smaps = tmp_path / "smaps.txt"
        smaps.write_bytes(open(f"/proc/{s.pid}/smaps", "rb").read())
    out = run_cli("--from", str(tmp_path / "maps.txt"), "--json")
    assert out.returncode == 0, out.stderr
    data = procmap_json(out.stdout)
    assert any("classified by names and permissions alone" in w for w in data["warnings"])
    kinds = {r["kind"] for r in data["regions"]}
    assert {"heap", "stack", "mmap"} <= kinds
    # Without the headers nothing is placed by ELF facts: no image was found.
    assert data["images"] == []
    figures = run_cli("--from", str(smaps), "--rss", "--json")
    assert figures.returncode == 0, figures.stderr
    assert sum(r["rss"] for r in procmap_json(figures.stdout)["regions"]) > 0
    no_figures = run_cli("--from", str(tmp_path / "maps.txt"), "--rss")
    assert no_figures.returncode == 16
    assert "no memory figures" in no_figures.stderr


def test_damaged_and_newer_snapshots_are_refused_with_one_line(tmp_path):
    with run_sample("pie") as s:
        saved = run_cli(str(s.pid), "--save", str(tmp_path / "good.json"), "--json")
    assert saved.returncode == 0
    data = json.loads((tmp_path / "good.json").read_text())
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**data, "version": data["version"] + 1}))
    cut = tmp_path / "cut.json"
    cut.write_bytes((tmp_path / "good.json").read_bytes()[:5000])
    for path, words in ((newer, "newer than this procmap reads"), (cut, "damaged snapshot")):
        out = run_cli("--from", str(path))
        assert out.returncode == 16, out.stderr
        assert out.stdout == "" and len(out.stderr.splitlines()) == 1
        assert words in out.stderr
    for bad, code in ((tmp_path, 10), (tmp_path / "missing.json", 10)):
        out = run_cli("--from", str(bad))
        assert out.returncode == code and len(out.stderr.splitlines()) == 1, out.stderr


def test_target_and_from_are_one_or_the_other():
    both = run_cli("self", "--from", "x.json")
    neither = run_cli("--rss")
    assert both.returncode == neither.returncode == 2
    assert "give a TARGET" in both.stderr and "give a TARGET" in neither.stderr
    watch = run_cli("--from", "x.json", "--watch")
    assert watch.returncode == 2 and "do not go with --watch" in watch.stderr


# --- saved texts that lie: lines out of order, lines that overlap (issue 17, 4) -------


def _shuffled(lines: list[bytes]) -> list[bytes]:
    """The lines in an order that is not the address order: each pair swapped."""
    out = list(lines)
    for i in range(0, len(out) - 1, 2):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


@pytest.mark.parametrize("kind", ["maps", "smaps"])
def test_a_saved_text_out_of_order_is_read_whole_and_sorted(tmp_path, kind):
    with run_sample("pie") as sample:
        text = Path(f"/proc/{sample.pid}/{kind}").read_bytes()
    if kind == "maps":
        units = text.splitlines(keepends=True)
    else:  # one block per mapping: its header and the "Name: value" lines after it
        units = re.findall(rb"^[0-9a-f]+-[^\n]*\n(?:[A-Z][^\n]*\n)*", text, re.M)
        assert b"".join(units) == text
    in_order, shuffled = tmp_path / f"in-order.{kind}", tmp_path / f"shuffled.{kind}"
    in_order.write_bytes(text)
    shuffled.write_bytes(b"".join(_shuffled(units)))
    args = ["--json", "--rss"] if kind == "smaps" else ["--json"]
    expected = procmap_json(run_cli("--from", str(in_order), *args).stdout)
    result = run_cli("--from", str(shuffled), *args)
    assert result.returncode == 0, result.stderr
    got = procmap_json(result.stdout)
    assert got["regions"] == expected["regions"]
    warning = [w for w in got["warnings"] if "not in address order" in w]
    assert warning == [
        f"shuffled.{kind}: its lines are not in address order (the first out of place is "
        f"line 1): all {len(units)} were read, and sorted"
    ]


def test_a_saved_text_whose_lines_overlap_is_refused_naming_them(tmp_path):
    with run_sample("pie") as sample:
        lines = Path(f"/proc/{sample.pid}/maps").read_bytes().splitlines(keepends=True)
    start = int(lines[3].split(b"-")[0], 16)
    overlapping = f"{start:x}-{start + 0x1000:x} rw-p 00000000 00:00 0 \n".encode()
    path = tmp_path / "overlap.maps"
    path.write_bytes(b"".join([*lines[:7], overlapping, *lines[7:]]))
    result = run_cli("--from", str(path))
    assert result.returncode == 16
    first_end = int(lines[3].split(b" ")[0].split(b"-")[1], 16)
    assert result.stderr == (
        f"procmap: {path}: neither a procmap snapshot nor a maps text: lines 4 and 8 overlap "
        f"({start:x}-{first_end:x} and {start:x}-{start + 0x1000:x}): "
        "no kernel maps one address twice\n"
    )
