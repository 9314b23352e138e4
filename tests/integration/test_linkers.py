"""Executable segments that also hold read-only data, on real binaries of three linkers.

With -z noseparate-code (GNU ld), with gold's default layout and with lld's
--no-rosegment, the ELF headers, the dynamic linker's tables, .rodata and
.eh_frame share one r-x PT_LOAD with .text.  procmap calls each byte what it
is: sections with SHF_EXECINSTR are text, the others rodata, cut at the
section boundaries (byte-exact, as the data/bss split is), while the
permissions stay r-x.  pyelftools is the oracle for the sections; the live
process is the oracle for the addresses.  lld's default layout (separate
segments, its own RELRO padding) is checked the same way.
"""

from __future__ import annotations

import shutil

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

import procmap
from procmap.classify.locate import locate
from procmap.model import Detail
from procmap.views.explain import explain_elf
from procmap.views.run import run_and_stop
from tests.conftest import run_sample, sample_path

LINKERS = {"nosep": None, "gold": "ld.gold", "lld": "ld.lld", "lld-norosegment": "ld.lld"}


def _mode(mode: str):
    linker = LINKERS[mode]
    missing = linker is not None and shutil.which(linker) is None
    # The linker is a system package: .ci/run installs it, so CI runs these.
    return pytest.param(
        mode,
        marks=pytest.mark.skipif(missing, reason=f"{linker} is not installed (apt install lld)"),
    )


MODES = [_mode(m) for m in LINKERS]


def oracle_sections(path) -> list[tuple[str, int, int, bool]]:
    """(name, start, end, executable) of each allocated section with bytes in memory."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        out = []
        for s in elf.iter_sections():
            flags = s["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or not s["sh_size"]:
                continue
            if flags & SH_FLAGS.SHF_TLS and s["sh_type"] == "SHT_NOBITS":
                continue  # .tbss: a template, no bytes of its own in the image
            start = s["sh_addr"]
            out.append((s.name, start, start + s["sh_size"], bool(flags & SH_FLAGS.SHF_EXECINSTR)))
        loads = [
            (p["p_vaddr"], p["p_vaddr"] + p["p_memsz"], p["p_flags"])
            for p in elf.iter_segments()
            if p["p_type"] == "PT_LOAD"
        ]
    return [
        (n, a, b, x) for n, a, b, x in out if any(lo <= a < hi and f & 1 for lo, hi, f in loads)
    ]


@pytest.mark.parametrize("mode", MODES)
def test_every_byte_of_an_executable_segment_is_what_its_section_is(mode):
    sections = oracle_sections(sample_path(mode))
    assert any(x for *_, x in sections), "no code?"
    with run_sample(mode) as s:
        pmap = procmap.read_map(s.pid)
    (image,) = [im for im in pmap.images if im.role == "program"]
    for name, start, end, executable in sections:
        for address in (image.bias + start, image.bias + end - 1):
            r = pmap.region_at(address)
            assert r is not None and r.object == str(sample_path(mode)), name
            assert r.perms.startswith("r-x"), (name, r)  # the mapping is what it is
            if executable:
                assert (r.kind, r.detail) == ("text", Detail.CODE), (name, r)
            else:
                assert r.kind == "rodata", (name, r)
                assert r.detail in (Detail.EXEC_ELF_HEADERS, Detail.EXEC_READ_ONLY_DATA), name
            assert name in r.sections, (name, r)


@pytest.mark.parametrize("mode", MODES)
def test_the_cuts_are_at_the_section_boundaries(mode):
    """Where code starts after read-only data (or the reverse), a region starts there."""
    sections = sorted(oracle_sections(sample_path(mode)), key=lambda s: s[1])
    changes = [b[1] for a, b in zip(sections, sections[1:]) if a[3] != b[3]]
    with run_sample(mode) as s:
        pmap = procmap.read_map(s.pid)
    (image,) = [im for im in pmap.images if im.role == "program"]
    starts = {r.start for r in pmap.regions}
    assert changes or mode == "lld"  # lld's default keeps .rodata in a segment of its own
    assert all(image.bias + at in starts for at in changes)
    # The ELF header itself, at the image's first byte, is rodata too.
    first = pmap.region_at(image.start)
    assert first.kind == "rodata"


@pytest.mark.parametrize("mode", MODES)
def test_the_lessons_variables_land_where_it_says(mode):
    with run_sample(mode) as s:
        pmap = procmap.read_map(s.pid)
        found = {n: locate(pmap, a).kind for n, (a, _) in s.variables.items()}
        wanted = {n: kind for n, (_, kind) in s.variables.items()}
    assert found == wanted


@pytest.mark.parametrize("mode", MODES)
def test_the_plan_and_the_live_map_agree(mode):
    exp = explain_elf(str(sample_path(mode)))
    result = run_and_stop(str(sample_path(mode)), [], exp, stop_at="exit")
    assert result.bias is not None
    assert result.differences == []
    kinds = [x.kinds for x in result.landings]
    if mode != "lld":
        assert ("rodata", "text", "rodata") in kinds or ("rodata", "text") in kinds


def test_without_section_headers_an_executable_segment_stays_text(tmp_path):
    """Sections are the only word on what the bytes are: without them, code it is."""
    data = bytearray(sample_path("nosep").read_bytes())
    is64 = data[4] == 2
    # e_shoff = 0, e_shnum = 0, e_shstrndx = 0: no section headers at all.
    if is64:
        data[0x28:0x30] = bytes(8)
        data[0x3C:0x40] = bytes(4)
    else:
        data[0x20:0x24] = bytes(4)
        data[0x30:0x34] = bytes(4)
    stripped = tmp_path / "no-sections"
    stripped.write_bytes(bytes(data))
    exp = explain_elf(str(stripped))
    executable = [r for r in exp.regions if r.perms.startswith("r-x")]
    assert [(r.kind, r.detail) for r in executable] == [("text", Detail.CODE_WITH_DATA)]
