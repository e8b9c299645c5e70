"""Fuzz of the screen interface, both engines: any mix of CSI/OSC/DCS/APC/ESC
sequences, controls, UTF-8 (wide, combining, ZWJ, variation selectors),
truncated UTF-8 and raw bytes, cut anywhere and resized midway, never raises
out of the screen and never stops later text from rendering."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from looop.screen import ghostty
from looop.screen.pyteng import PyteScreen

ENGINES = ["pyte", pytest.param("ghostty", marks=pytest.mark.skipif(
    not ghostty.available(), reason="libghostty-vt (pyghostty) not installed here"))]
EXAMPLES = 400

TEXT = st.text(alphabet=st.sampled_from(
    list("ab Z09~") + ["中", "文", "😀", "\u2764", "\ufe0f", "\ufe0e", "\u200d", "\u0301", "\u0308",
                       "\u200b", "\U0001f468", "\U0001f469", "é", "\u00a0", "\ufffd", "\u3000"]),
    min_size=1, max_size=12).map(str.encode)
PARAM = st.one_of(st.integers(0, 70000).map(str), st.just(""), st.sampled_from(["1:2", "2::1:2:3", "5:3"]))
PARAMS = st.lists(PARAM, max_size=6).map(";".join)
CSI = st.builds(lambda m, p, i, f: b"\x1b[" + m + p.encode() + i + bytes([f]),
                st.sampled_from([b"", b"?", b">", b"<", b"=", b"?>"]), PARAMS,
                st.sampled_from([b"", b" ", b"$", b"!", b'"', b"'", b"*"]), st.integers(0x40, 0x7E))
STRING_END = st.sampled_from([b"\x07", b"\x1b\\", b"\x18", b"", b"\x1b"])
STRING = st.builds(lambda k, body, end: b"\x1b" + k + body + end,
                   st.sampled_from([b"]", b"P", b"_", b"^", b"X"]),
                   st.binary(max_size=40).filter(lambda b: b"\x1b" not in b), STRING_END)
OSC = st.builds(lambda n, body, end: b"\x1b]" + str(n).encode() + b";" + body + end,
                st.sampled_from([0, 2, 4, 7, 8, 10, 11, 52, 133, 777, 1337]), TEXT, STRING_END)
ESC = st.builds(lambda i, f: b"\x1b" + i + bytes([f]), st.sampled_from([b"", b"(", b")", b"#", b"%", b" "]),
                st.integers(0x30, 0x7E))
CTL = st.integers(0, 0x1F).map(lambda c: bytes([c]))
RAW = st.binary(min_size=1, max_size=8)  # truncated UTF-8, C1 bytes, anything
PIECE = st.one_of(CSI, CSI, STRING, OSC, ESC, CTL, TEXT, TEXT, RAW)
STREAM = st.lists(PIECE, min_size=1, max_size=40).map(b"".join)
SIZE = st.tuples(st.integers(2, 200), st.integers(2, 60))


def make(engine: str, cols: int, rows: int):
    return PyteScreen(cols, rows) if engine == "pyte" else ghostty.GhosttyScreen(cols, rows)


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=STREAM, cuts=st.lists(st.integers(0, 400), max_size=5), size=SIZE, resize=SIZE)
def test_nothing_raises_and_later_text_renders(engine, data, cuts, size, resize):
    s = make(engine, *size)
    pieces, last = [], 0
    for c in sorted(set(cuts)):
        if last < c < len(data):
            pieces.append(data[last:c])
            last = c
    pieces.append(data[last:])
    for i, p in enumerate(pieces):
        s.feed(p)
        if i == 1:
            s.resize(*resize)
    snap = s.snapshot()  # every part of the interface answers
    assert len(snap["lines"]) == snap["rows"] and len(snap["cells"]) == snap["rows"]
    assert s.text() == snap["lines"]  # the tracker's cheap read is the same text
    x, y = s.cursor()
    assert 0 <= x < snap["cols"] and 0 <= y < snap["rows"]
    s.modes()
    s.replies()
    # CAN ends any sequence in progress, RIS resets the terminal: then text shows
    s.resize(40, 5)
    s.feed(b"\x18\x1b\\\x1bcAFTER \xe4\xb8\xad")
    lines = s.snapshot()["lines"]
    assert lines[0].startswith("AFTER 中"), lines
