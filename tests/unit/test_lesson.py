"""procmap.lesson: the explanations, as data.

Checks that every kind and every detail procmap.classify produces has text,
that the text is plain and short, that it is written in procmap's own words
(no 8-word run copied from the lesson), and that the module stays free of the
UI libraries.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from procmap.classify import KINDS
from procmap.lesson import DETAILS, NOTES, KindNote, describe_detail, describe_kind

LESSON = Path(__file__).resolve().parents[3] / "shared" / "lesson"

# The exact detail strings procmap.classify gives its regions.
CLASSIFIER_DETAILS = (
    "code",
    "code, with ELF headers and read-only data",
    "ELF headers",
    "read-only data",
    "relro",
    "initialised data",
    "initialised data, made read-only",
    "bss",
    "bss, in the last file page",
    "gap between segments",
    "brk heap",
    "malloc arena",
    "malloc arena reserve",
    "main thread stack",
    "guard page",
    "thread stack",
    "vsyscall page",
    "vdso",
    "vvar",
    "vvar_vclock",
    "uprobes",
    "anonymous",
    "shared anonymous",
    "reserved, no access",
    "memfd",
    "SysV shared memory",
    "POSIX shared memory",
    "anonymous, huge pages",
    "shared anonymous, huge pages",
    "hugetlbfs file",
    "device mapping",
    "ELF file mapped as data",
    "file mapping",
    "shared file mapping",
    "anonymous, thread-stack shape, no thread in it",
)

PREFIXED = {
    "thread stack (TID 812)": "thread stack",
    "thread stack (TID 1)": "thread stack",
    "guard page (TID 812)": "guard page",
    "guard page (thread stack)": "guard page",
}

FIELDS = [f.name for f in dataclasses.fields(KindNote) if f.name != "kind"]

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
    texts += [(f"DETAILS[{k!r}]", v) for k, v in DETAILS.items()]
    examples = [
        *PREFIXED,
        "thread stack, found by shape",
        "anonymous, named libfoo pool",
        "shared anonymous, named ring",
    ]
    texts += [(f"describe_detail({d!r})", describe_detail(d)) for d in examples]
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
    with pytest.raises(dataclasses.FrozenInstanceError):
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


@pytest.mark.parametrize("detail", CLASSIFIER_DETAILS)
def test_every_classifier_detail_is_explained(detail):
    assert detail in DETAILS
    assert describe_detail(detail) == DETAILS[detail]


@pytest.mark.parametrize(("detail", "base"), PREFIXED.items())
def test_prefix_rules(detail, base):
    assert describe_detail(detail) == DETAILS[base]


def test_thread_stack_found_by_shape_says_so():
    text = describe_detail("thread stack, found by shape")
    assert text is not None
    assert text.startswith(DETAILS["thread stack"])
    assert "shape" in text[len(DETAILS["thread stack"]) :]
    assert "guard" in text[len(DETAILS["thread stack"]) :]


def test_named_anonymous_memory():
    private = describe_detail("anonymous, named libfoo pool")
    shared = describe_detail("shared anonymous, named ring")
    assert private is not None and "PR_SET_VMA_ANON_NAME" in private
    assert shared is not None and "PR_SET_VMA_ANON_NAME" in shared
    assert "Shared" in shared and private != shared
    # The exact key that merely starts like a prefix rule keeps its own text.
    assert describe_detail("anonymous, thread-stack shape, no thread in it") != private


@pytest.mark.parametrize(
    "detail", ["", "nonsense", "Code", "thread stacks", "guard", "named anonymous", "[heap]"]
)
def test_unknown_detail_is_none(detail):
    assert describe_detail(detail) is None


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


@pytest.mark.parametrize("detail", sorted(DETAILS))
def test_detail_is_one_sentence(detail):
    text = DETAILS[detail]
    assert text.endswith(".")
    assert len(SENTENCE_END.findall(text)) == 1, text


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
    if not LESSON.is_dir():
        pytest.skip(f"the lesson material is not at {LESSON}")
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
