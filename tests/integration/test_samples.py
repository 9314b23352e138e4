"""The lesson's samples as ground truth: every variable they print, classified right,
in every link mode; checked against readelf and nm where they can tell."""

from __future__ import annotations

import re
import subprocess

import pytest

import procmap
from procmap.model import KINDS, Detail
from tests.conftest import run_sample, sample_path
from tests.helpers import procmap_json, run_cli


def readelf_loads(path) -> list[dict]:
    """PT_LOAD and GNU_RELRO program headers as GNU readelf prints them."""
    out = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] in ("LOAD", "GNU_RELRO"):
            rows.append(
                {
                    "type": f[0],
                    "offset": int(f[1], 16),
                    "vaddr": int(f[2], 16),
                    "filesz": int(f[4], 16),
                    "memsz": int(f[5], 16),
                    "flags": " ".join(f[6:-1]),
                }
            )
    return rows


def nm_value(path, symbol: str) -> int:
    out = subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) == 3 and f[2] == symbol:
            return int(f[0], 16)
    raise LookupError(symbol)


def test_every_variable_has_the_kind_the_lesson_gives(sample):
    pmap = procmap.read_map(sample.pid)
    wrong = {
        name: (kind, pmap.region_at(address) and pmap.region_at(address).kind)
        for name, (address, kind) in sample.variables.items()
        if pmap.region_at(address) is None or pmap.region_at(address).kind != kind
    }
    assert not wrong, f"lesson-{sample.mode}: expected vs found {wrong}"
    assert len(sample.variables) >= 16


def test_where_command_agrees(sample):
    names = list(sample.variables)
    addresses = [hex(sample.variables[n][0]) for n in names]
    result = run_cli("where", str(sample.pid), *addresses, "--json")
    assert result.returncode == 0, result.stderr
    found = procmap_json(result.stdout)
    assert [f["address"] for f in found] == [sample.variables[n][0] for n in names]
    for name, f in zip(names, found):
        assert f["kind"] == sample.variables[name][1], (name, f)
    by_name = dict(zip(names, found))
    # Globals are named by their symbol, at offset 0, in their section.
    for name, section in (
        ("global_init", ".data"),
        ("global_uninit", ".bss"),
        ("file_scoped", ".data"),
    ):
        assert by_name[name]["section"] == section
        assert by_name[name]["symbol"] == name
        assert by_name[name]["symbol_offset"] == 0
        assert by_name[name]["object"] == str(sample.path)
    assert by_name["big_zeroes_end"]["symbol"] == "big_zeroes"
    assert by_name["big_zeroes_end"]["symbol_offset"] == (1 << 20) - 1
    assert by_name["main"]["symbol"] == "main" and by_name["main"]["section"] == ".text"
    assert by_name["const_table"]["section"] == ".rodata"
    assert by_name["thread_local"]["detail"] == "thread-stack"
    assert by_name["thread_local"]["tid"] == sample.thread_tid
    assert by_name["thread_local"]["description"] == f"thread stack (TID {sample.thread_tid})"
    assert by_name["local"]["detail"] == "main-stack"
    assert by_name["elf_as_data"]["detail"] == "elf-as-data"
    assert by_name["elf_as_data"]["object"] is None
    assert by_name["malloc"]["region"]["path"] == "[heap]"
    assert by_name["thread_malloc"]["detail"] == "malloc-arena"


def test_regions_tile_the_mappings_exactly(sample):
    pmap = procmap.read_map(sample.pid)
    regions = iter(pmap.regions)
    for m in pmap.mappings:
        pos = m.start
        while pos < m.end:
            r = next(regions)
            assert r.start == pos and r.end > r.start, (m, r)
            assert (r.perms, r.dev, r.inode, r.path) == (m.perms, m.dev, m.inode, m.path)
            assert r.kind in KINDS and r.detail
            if m.is_file:
                assert r.offset == m.offset + (r.start - m.start)
            pos = r.end
        assert pos == m.end
    assert next(regions, None) is None


def test_data_and_bss_split_at_the_byte_readelf_gives(sample):
    """The program's writable PT_LOAD: data up to p_filesz, bss from there, same page."""
    pmap = procmap.read_map(sample.pid)
    (image,) = [im for im in pmap.images if im.role == "program"]
    (rw,) = [s for s in readelf_loads(sample.path) if s["type"] == "LOAD" and "W" in s["flags"]]
    boundary = image.bias + rw["vaddr"] + rw["filesz"]
    assert boundary % pmap.page_size, "the sample's data must end inside a page"
    below, above = pmap.region_at(boundary - 1), pmap.region_at(boundary)
    assert below.kind == "data" and below.end == boundary
    assert above.kind == "bss" and above.start == boundary
    assert below.path == above.path == str(sample.path)  # one file-backed page holds both
    # ...and bss runs to the end of p_memsz, page-rounded, in the anonymous mapping after it.
    last = image.bias + rw["vaddr"] + rw["memsz"] - 1
    assert pmap.region_at(last).kind == "bss" and pmap.region_at(last).object == str(sample.path)
    assert pmap.region_at(last).path is None


def test_load_bias_matches_nm(sample):
    pmap = procmap.read_map(sample.pid)
    (image,) = [im for im in pmap.images if im.role == "program"]
    main_address = sample.variables["main"][0]
    assert image.bias == main_address - nm_value(sample.path, "main")
    if sample.mode in ("nopie", "static"):
        assert image.bias == 0


def test_relro_is_the_range_readelf_gives(sample):
    pmap = procmap.read_map(sample.pid)
    (image,) = [im for im in pmap.images if im.role == "program"]
    relro = [s for s in readelf_loads(sample.path) if s["type"] == "GNU_RELRO"]
    relro_regions = [
        r for r in pmap.regions if r.object == str(sample.path) and r.detail is Detail.RELRO
    ]
    if sample.mode == "norelro":
        assert not relro and not relro_regions
        assert pmap.region_at(sample.variables["greetings"][0]).kind == "data"
        return
    (relro,) = relro
    page = pmap.page_size
    # The dynamic linker protects whole pages: from the page of the start to the
    # page of the end, rounded down (glibc _dl_protect_relro).
    start = image.bias + relro["vaddr"]
    end = image.bias + relro["vaddr"] + relro["memsz"]
    assert relro_regions[0].start == start - start % page
    assert relro_regions[-1].end == end - end % page
    assert all(r.kind == "rodata" and "w" not in r.perms for r in relro_regions)


def test_segments_become_the_kinds_their_flags_say(sample):
    pmap = procmap.read_map(sample.pid)
    (image,) = [im for im in pmap.images if im.role == "program"]
    for seg in readelf_loads(sample.path):
        if seg["type"] != "LOAD" or not seg["filesz"]:
            continue
        first = pmap.region_at(image.bias + seg["vaddr"])
        if "E" in seg["flags"]:
            # Code; or, where the segment starts with the ELF headers (-z
            # noseparate-code), the headers: read-only data, though mapped r-x.
            assert first.kind == ("rodata" if seg["offset"] == 0 else "text")
        elif "W" not in seg["flags"]:
            assert first.kind == "rodata"
        else:
            assert first.kind in ("data", "rodata")


def test_libraries_and_dynamic_linker(sample):
    pmap = procmap.read_map(sample.pid)
    roles = {im.role for im in pmap.images}
    if sample.mode in ("static", "static-pie"):
        assert roles == {"program"}
        return
    assert roles == {"program", "dynamic linker", "shared library"}
    libc = [im for im in pmap.images if "libc.so" in im.path]
    assert len(libc) == 1
    kinds = [r.kind for r in pmap.regions if r.object == libc[0].path]
    for kind in ("rodata", "text", "data", "bss"):
        assert kind in kinds


def test_show_json_contract():
    from tests.conftest import run_sample

    with run_sample("pie") as s:
        result = run_cli(str(s.pid), "--json")
    assert result.returncode == 0, result.stderr
    data = procmap_json(result.stdout)
    assert data["pid"] == s.pid
    assert set(data["summary"]) >= {"by_kind", "by_object", "total"}
    keys = {
        "start",
        "end",
        "perms",
        "offset",
        "dev",
        "inode",
        "path",
        "kind",
        "detail",
        "object",
        "sections",
    }
    for r in data["regions"]:
        assert keys <= set(r)
        assert isinstance(r["start"], int) and isinstance(r["sections"], list)
        assert re.fullmatch(r"[r-][w-][x-][ps]", r["perms"])
    total = sum(r["end"] - r["start"] for r in data["regions"])
    assert data["summary"]["total"]["size"] == total
    assert sum(v["size"] for v in data["summary"]["by_kind"].values()) == total


@pytest.mark.parametrize("mode", ["pie", "static"])
def test_kind_filter(mode):
    from tests.conftest import run_sample

    with run_sample(mode) as s:
        result = run_cli(str(s.pid), "--json", "--kind", "heap,stack")
    kinds = {r["kind"] for r in procmap_json(result.stdout)["regions"]}
    assert kinds == {"heap", "stack"}


@pytest.mark.parametrize("through", ["map_files", "exe"])
@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_deleted_or_replaced_binary_is_read_from_what_is_mapped(
    tmp_path, monkeypatch, change, through
):
    """The file on disk is gone, or is another program now: the map must not change.

    As root procmap reads /proc/PID/map_files; other users get /proc/PID/exe,
    which the test forces by making procfs believe it is not root.
    """
    import shutil

    from procmap.kernel import procfs
    from tests.conftest import Sample, lines_until_ready, sample_path

    if through == "exe":
        monkeypatch.setattr(procfs.os, "geteuid", lambda: 1000)
    path = tmp_path / "lesson"
    shutil.copy(sample_path("pie"), path)
    process = subprocess.Popen([str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        sample = Sample(process, "pie")
        for line in lines_until_ready(process, "lesson-pie"):
            name, address, kind = line.split()
            if name != "thread_tid":
                sample.variables[name] = (int(address, 16), kind)
        path.unlink()
        if change == "replaced":
            shutil.copy("/bin/cat", path)  # same path, another inode, another layout
        pmap = procmap.read_map(process.pid)
        found = {n: pmap.region_at(a).kind for n, (a, _) in sample.variables.items()}
        located = procmap.where(process.pid, [sample.variables["global_init"][0]])[0]
    finally:
        process.stdin.close()
        process.wait()
    assert found == {n: k for n, (_, k) in sample.variables.items()}
    (image,) = [im for im in pmap.images if im.role == "program"]
    assert image.path == str(path)
    assert pmap.region_at(sample.variables["main"][0]).path == f"{path} (deleted)"
    assert located.symbol == "global_init"


def test_a_stripped_static_program_keeps_its_arenas(tmp_path):
    """No symbol names its allocator: glibc's rules apply as before anything was looked for."""
    stripped = tmp_path / "lesson-static-stripped"
    subprocess.run(["strip", "-o", str(stripped), str(sample_path("static"))], check=True)
    with run_sample("static", path=stripped) as s:
        pmap = procmap.read_map(s.pid)
        assert pmap.runtimes == ()  # nothing found, and nothing claimed
        arena = pmap.region_at(s.variables["thread_malloc"][0])
        assert arena is not None and arena.detail is Detail.MALLOC_ARENA
        assert pmap.region_at(s.variables["malloc"][0]).detail is Detail.BRK_HEAP
