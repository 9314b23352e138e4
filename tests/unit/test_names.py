"""names.escape / unescape: printable, valid UTF-8, lossless for any bytes (issue 17, 5)."""

from __future__ import annotations

import json
import os

from hypothesis import given
from hypothesis import strategies as st

from procmap.names import escape, to_json, unescape


@given(st.binary(max_size=64))
def test_any_file_name_round_trips(raw):
    name = os.fsdecode(raw)
    shown = escape(name)
    assert shown.isprintable() and not shown.endswith(" ")
    shown.encode("utf-8")  # strict: no lone surrogate
    assert os.fsencode(unescape(shown)) == raw


@given(st.text(max_size=32))
def test_any_text_round_trips(text):
    assert unescape(escape(text)) == text


def test_the_escapes():
    assert escape(os.fsdecode(b"bad \xff")) == "bad \\xff"
    assert escape("\x1b[31m") == "\\x1b[31m"
    assert escape("\u0085") == "\\u0085"  # a character, not the byte 0x85
    assert escape("\u202eevil") == "\\u202eevil"
    assert escape("\U000e0001") == "\\U000e0001"
    assert escape("a ") == "a\\x20"
    assert escape("new\\012line") == "new\\012line"  # the kernel's own escape, as it wrote it
    assert escape("a\\x41") == "a\\\\x41"  # a backslash that would read as an escape
    assert escape("plain/path.so") == "plain/path.so"


def test_json_is_escaped_only_where_needed():
    assert to_json({"path": "/usr/lib/libc.so.6"}) == '{"path":"/usr/lib/libc.so.6"}'
    document = to_json({"path": os.fsdecode(b"/tmp/\xff "), "n": 1})
    assert json.loads(document) == {"path": "/tmp/\\xff\\x20", "n": 1}
    document.encode("utf-8")


def test_the_text_view_leaves_backslashes_so_escaping_twice_is_escaping_once():
    name = os.fsdecode(b"esc \x1b]8;;\x1b\\ \xff\n ")
    once = escape(name, lossless=False)
    assert escape(once, lossless=False) == once
    assert once == "esc \\x1b]8;;\\x1b\\ \\xff\\x0a\\x20"
