"""procmap.classify.notes: the explanations, as data; and details as data.

Checks that every kind and every Detail the classifier gives has text, that
the text is plain and short, that it is written in procmap's own words (no
8-word run copied from the lesson, whose texts the tests carry under
tests/data/lesson), that detail keys are stable identifiers, and that no code
outside the classifier decides on a detail's words.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from procmap.classify.notes import (
    ALLOCATOR_NOTES,
    DETAILS,
    NOTES,
    KindNote,
    describe_detail,
    describe_kind,
)
from procmap.model import ALLOCATORS, KINDS, Detail, detail_words

LESSON = Path(__file__).resolve().parents[1] / "data" / "lesson"
PACKAGE = Path(__file__).resolve().parents[2] / "procmap"

# Details of no region: explain's placement of a symbol or a section.
PLACEMENTS = {Detail.COMMON, Detail.THREAD_LOCAL}

FIELDS = [name for name in KindNote._fields if name != "kind"]

# Square brackets are allowed only as the kernel's own names for mappings.
KERNEL_NAME = re.compile(
    r"\[(heap|stack|vdso|vvar|vvar_vclock|vsyscall|uprobes|sigpage|vectors"
    r"|anon:NAME|anon_shmem:NAME)\]"
)
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def all_notes() -> list[KindNote]:
    return [*NOTES.values(), describe_kind("nonsense")]


def all_texts() -> list[tuple[str, str]]:
    """(where, text) for every text the module can hand out."""
    texts = [(f"{n.kind}.{name}", getattr(n, name)) for n in all_notes() for name in FIELDS]
    texts += [(f"DETAILS[{k.value}]", v) for k, v in DETAILS.items()]
    texts += [(f"{d.value}.text", d.text) for d in Detail]
    texts += [(f"ALLOCATOR_NOTES[{k}]", v) for k, v in ALLOCATOR_NOTES.items()]
    return texts


# --- kinds ---------------------------------------------------------------------------


def test_one_note_per_kind_in_kinds_order():
    assert tuple(NOTES) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_note_is_complete(kind):
    note = describe_kind(kind)
    assert note is NOTES[kind]
    assert note.kind == kind
    assert note.title.startswith(f"{kind}: ")
    for name in FIELDS:
        value = getattr(note, name)
        assert isinstance(value, str) and value.strip(), f"{kind}.{name} is empty"


def test_notes_are_frozen():
    with pytest.raises(AttributeError):
        NOTES["text"].title = "changed"  # type: ignore[misc]


def test_unknown_kind_gets_a_usable_note():
    note = describe_kind("nonsense")
    assert isinstance(note, KindNote)
    assert note.kind == "nonsense"
    assert "nonsense" in note.title
    for name in FIELDS:
        assert getattr(note, name).strip()
    assert "nonsense" not in NOTES  # the fallback is not cached into the table


# --- details -------------------------------------------------------------------------


@pytest.mark.parametrize("detail", [d for d in Detail if d not in PLACEMENTS])
def test_every_region_detail_is_explained(detail):
    assert describe_detail(detail) == DETAILS[detail]


def test_placements_are_no_region():
    assert all(describe_detail(d) is None for d in PLACEMENTS)


@pytest.mark.parametrize("detail", list(Detail))
def test_detail_keys_are_stable_identifiers(detail):
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", detail.value), detail.value
    assert detail.text and detail.text == detail.text.strip()
    assert Detail(detail.value) is detail


def test_detail_keys_and_texts_are_unique():
    assert len({d.value for d in Detail}) == len(Detail)
    assert len({d.text for d in Detail}) == len(Detail)


def test_the_words_carry_the_facts_the_fields_hold():
    assert detail_words(Detail.THREAD_STACK, 812) == "thread stack (TID 812)"
    assert detail_words(Detail.GUARD_PAGE, 812) == "guard page (TID 812)"
    assert detail_words(Detail.GUARD_PAGE) == "guard page"
    assert detail_words(Detail.NAMED_ANONYMOUS, None, "[anon:libfoo pool]") == (
        "anonymous, named libfoo pool"
    )
    assert detail_words(Detail.NAMED_SHARED_ANONYMOUS, None, "[anon_shmem:ring]") == (
        "shared anonymous, named ring"
    )
    assert detail_words(Detail.KERNEL_NAMED, None, "[frobnicator]") == "[frobnicator]"


def test_thread_stack_found_by_shape_says_so():
    text = describe_detail(Detail.THREAD_STACK_BY_SHAPE)
    assert text is not None and text != DETAILS[Detail.THREAD_STACK]
    assert "pthread_create()" in text and "shape" in text and "guard" in text


def test_named_anonymous_memory():
    private = describe_detail(Detail.NAMED_ANONYMOUS)
    shared = describe_detail(Detail.NAMED_SHARED_ANONYMOUS)
    assert private is not None and "PR_SET_VMA_ANON_NAME" in private
    assert shared is not None and "PR_SET_VMA_ANON_NAME" in shared
    assert "Shared" in shared and private != shared


def _decides_on_words(path: Path) -> list[str]:
    """Comparisons of a detail (or its words) with a detail's text, in one module."""
    texts = {d.text for d in Detail}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        operands: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith", "partition")
        ):
            operands = [node.func.value, *node.args]
        names = {
            n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "")
            for o in operands
            for n in ast.walk(o)
        }
        constants = [
            c.value
            for o in operands
            for c in ast.walk(o)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        ]
        wordy = {"detail", "description", "details"} & {n.lower() for n in names if n}
        if wordy and any(c in texts or any(t.startswith(c) for t in texts) for c in constants if c):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_no_code_outside_the_classifier_decides_on_detail_words():
    offenders = [
        where
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in ("classify", "model.py")
        for where in _decides_on_words(path)
    ]
    assert not offenders, offenders


def test_the_words_check_catches_a_comparison(tmp_path):
    odd = tmp_path / "odd.py"
    odd.write_text(
        'def f(r):\n    return r.detail == "brk heap" or r.description.startswith("guard")\n'
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert len(_decides_on_words(odd)) == 2
    finally:
        PACKAGE = saved


# --- the texts themselves ------------------------------------------------------------


@pytest.mark.parametrize(("where", "text"), all_texts(), ids=[w for w, _ in all_texts()])
def test_text_is_plain(where, text):
    assert isinstance(text, str) and text == text.strip(), where
    assert "\n" not in text, where
    assert "[" not in KERNEL_NAME.sub("", text), f"{where}: brackets outside a kernel name"
    assert "]" not in KERNEL_NAME.sub("", text), f"{where}: brackets outside a kernel name"


@pytest.mark.parametrize("kind", KINDS)
def test_note_fields_are_one_to_three_sentences(kind):
    note = NOTES[kind]
    for name in FIELDS:
        if name == "title":
            continue
        value = getattr(note, name)
        assert value.endswith("."), f"{kind}.{name}"
        assert 1 <= len(SENTENCE_END.findall(value)) <= 3, f"{kind}.{name}: {value}"


@pytest.mark.parametrize("detail", list(DETAILS))
def test_detail_is_one_sentence(detail):
    text = DETAILS[detail]
    assert text.endswith(".")
    assert len(SENTENCE_END.findall(text)) == 1, text


def test_every_allocator_says_how_it_gets_memory_in_one_to_three_sentences():
    assert set(ALLOCATOR_NOTES) == set(ALLOCATORS)
    for name, text in ALLOCATOR_NOTES.items():
        assert text.endswith("."), name
        assert 1 <= len(SENTENCE_END.findall(text)) <= 3, f"{name}: {text}"


# --- own words -----------------------------------------------------------------------

RUN = 8


def _words(text: str, joiner: str) -> list[str]:
    # Both ways of stripping punctuation: "read-only" as one word and as two.
    return re.sub(r"[^\w\s]", joiner, text.lower()).split()


def _runs(text: str) -> set[tuple[str, ...]]:
    runs = set()
    for joiner in ("", " "):
        words = _words(text, joiner)
        runs.update(tuple(words[i : i + RUN]) for i in range(len(words) - RUN + 1))
    return runs


@pytest.fixture(scope="module")
def lesson_runs() -> set[tuple[str, ...]]:
    files = sorted(LESSON.glob("*.txt"))
    assert len(files) == 2, f"expected the lesson's two .txt files in {LESSON}"
    runs: set[tuple[str, ...]] = set()
    for path in files:
        runs |= _runs(path.read_text(encoding="utf-8"))
    assert runs
    return runs


def test_run_check_catches_a_copied_sentence(lesson_runs):
    # The check itself works: a lesson sentence with its punctuation changed is caught.
    copied = "It's loaded from the EXECUTABLE at startup, and is typically read-only..."
    assert _runs(copied) & lesson_runs


def test_no_eight_word_run_of_the_lesson(lesson_runs):
    copied = []
    for where, text in all_texts():
        for run in sorted(_runs(text) & lesson_runs):
            copied.append(f"{where}: {' '.join(run)}")
    assert not copied, "copied from the lesson:\n" + "\n".join(copied)


# --- dependencies --------------------------------------------------------------------
