"""The text views of `procmap explain`: what the user reads must say what the plan holds.

Rendered the way rich's own tests render (tests.helpers.render): a Console writing
to StringIO at a fixed width, without colour, so every line can be checked as text.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from procmap.render.explain import OWN_SYMBOLS_SHOWN, render_explanation, render_run
from procmap.render.text import human_size
from procmap.views.explain import explain_elf
from procmap.views.run import run_and_stop
from tests.conftest import MODES, sample_path
from tests.helpers import render, run_cli

LESSON_VARIABLES = ("global_init", "global_uninit", "file_scoped", "big_zeroes", "const_table")


@pytest.mark.parametrize("mode", MODES)
def test_the_static_view_shows_every_plan_region_and_the_bss_beyond_the_file(mode):
    exp = explain_elf(str(sample_path(mode)))
    text = render(render_explanation(exp, notes=False))
    lines = text.splitlines()
    for region in exp.regions:
        row = next((line for line in lines if line.startswith(f"{region.start:08x}  ")), None)
        assert row is not None, f"no row for {region}"
        assert f"{region.end:08x}" in row and region.kind in row and region.description in row
    for plan in exp.loads:
        seg = plan.segment
        header = next(line for line in lines if line.startswith(f"segment {plan.number}  LOAD"))
        assert f"file 0x{seg.offset:x} +{human_size(seg.filesz)}" in header
        assert f"memory 0x{seg.vaddr:x} +{human_size(seg.memsz)}" in header
        if seg.memsz > seg.filesz:
            assert f"{human_size(seg.memsz - seg.filesz)} beyond the file: bss" in header
    assert "hardening: NX stack yes" in text
    relro = "none" if mode == "norelro" else "partial"
    assert f"RELRO {relro}" in text


@pytest.mark.parametrize("mode", MODES)
def test_the_own_variables_are_listed_with_their_kind(mode):
    exp = explain_elf(str(sample_path(mode)))
    lines = render(render_explanation(exp, notes=False)).splitlines()
    kinds = {s.entry.name: s.kind for s in exp.symbols if s.own}
    for name in LESSON_VARIABLES:
        row = next(line for line in lines if line.startswith(name + " "))
        assert f" {kinds[name]} " in row
    assert not any(line.startswith(("completed.0 ", "stdout ")) for line in lines)
    own = sum(s.own for s in exp.symbols)
    assert f"{own} variables of the file's own" in "\n".join(lines)
    assert own <= OWN_SYMBOLS_SHOWN


def test_symbols_lists_every_object_and_function():
    exp = explain_elf(str(sample_path("pie")))
    lines = render(render_explanation(exp, symbols=True, notes=False)).splitlines()
    listed = [line.split()[-1] for line in lines if line[:1] in "0123456789abcdef" and "  " in line]
    for s in exp.symbols:
        assert s.entry.name in listed, s.entry.name


def test_a_stripped_file_says_so(tmp_path):
    copy = tmp_path / "lesson-stripped"
    shutil.copy(sample_path("pie"), copy)
    subprocess.run(["strip", str(copy)], check=True)
    text = render(render_explanation(explain_elf(str(copy)), notes=False))
    assert "stripped: no .symtab" in text
    assert ".dynsym" in text


def test_an_object_file_has_no_load_plan_and_says_why(tmp_path):
    obj = tmp_path / "lesson.o"
    subprocess.run(
        ["gcc", "-c", "-O1", "-o", str(obj), str(sample_path("pie").parents[1] / "lesson.c")],
        check=True,
    )
    text = render(render_explanation(explain_elf(str(obj)), notes=False))
    assert "Load plan" not in text
    assert "note: a relocatable object is not a loadable program" in text
    assert "RELRO" not in text  # an object file has no RELRO state to claim


def test_the_notes_explain_each_kind_in_the_plan():
    exp = explain_elf(str(sample_path("pie")))
    text = render(render_explanation(exp))
    for kind in exp.kinds():
        assert f"\n{kind}: " in text


def test_narrow_terminals_wrap_the_last_column_instead_of_cropping_it():
    exp = explain_elf(str(sample_path("pie")))
    text = render(render_explanation(exp, notes=False), width=90)
    assert all(len(line) <= 90 for line in text.splitlines())
    for s in exp.symbols:
        if s.own:
            for word in s.reason.split():
                assert word in text


@pytest.mark.parametrize("stop_at", ["exit", "entry"])
def test_the_run_view_ties_each_load_back_to_the_plan(stop_at):
    path = str(sample_path("pie"))
    exp = explain_elf(path)
    result = run_and_stop(path, [], exp, stop_at=stop_at)
    text = render(render_run(exp, result, notes=False))
    assert f"PID {result.pid}" in text
    assert f"Loaded at 0x{result.bias:x}: a random base chosen at exec (ASLR)." in text
    for landing in result.landings:
        assert f"{landing.start:x}-{landing.end:x}" in text
    if stop_at == "exit":
        assert "Every region is where the plan put it" in text
        assert "heap      at 0x" in text
    else:
        assert "At entry nothing is relocated yet" in text
        assert "/libc.so.6" not in text  # ("needs libc.so.6" is the header; no path mapped)


def test_the_cli_prints_the_same_view():
    r = run_cli("explain", str(sample_path("static")), "--no-notes")
    assert r.returncode == 0, r.stderr
    assert "static executable" in r.stdout and "PIE no (always at 0x400000)" in r.stdout
    assert "What each kind is" not in r.stdout
