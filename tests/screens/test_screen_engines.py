"""The screen interface (looop.screen), the same tests for both engines:
the crash sequences of issue 10, alternate screens, zero-width characters,
bright colours, modes, replies, resize, bad input."""
from __future__ import annotations

import pytest

from looop import screen as screens
from looop.screen import ghostty
from looop.screen.pyteng import PyteScreen
from looop.ui.screen import render

ENGINES = ["pyte", pytest.param("ghostty", marks=pytest.mark.skipif(
    not ghostty.available(), reason="libghostty-vt (pyghostty) not installed here"))]


def make(engine: str, cols: int = 40, rows: int = 8):
    return PyteScreen(cols, rows) if engine == "pyte" else ghostty.GhosttyScreen(cols, rows)


def text(s) -> list[str]:
    return [ln.rstrip(" ") for ln in s.snapshot()["lines"]]


# every one of these raised out of pyte 0.8.2 (issue 10's fuzz of CSI forms)
CRASHERS = [b"\x1b[?4m", b"\x1b[1;5A", b"\x1b[?6n", b"\x1b[?1049r", b"\x1b[2;3;4H",
            b"\x1b[?1;2K", b"\x1b[1;2c", b"\x1b[?1;2r", b"\x1b[>4;2m", b"\x1b[=5u", b"\x1b[<1;2;3M",
            b"\x1b[!p", b"\x1b[2 q", b"\x1b[?2004$p", b"\x1b[>0q", b"\x1b[38;5m", b"\x1b[38;2;1m",
            b"\x1b[4:3m", b"\x1b[38:2::1:2:3m", b"\x1b[99999999999999999999A", b"\x1b[;;;;H",
            b"\x1bP1$r0m\x1b\\", b"\x1b_Gf=100;AAAA\x1b\\", b"\x1b^pm\x1b\\", b"\x1bXsos\x1b\\",
            b"\x1b]52;c;Zm9v\x07", b"\x1b]8;;http://x\x1b\\", b"\x1b#8", b"\x1b%G", b"\x1b(0", b"\x1b)B"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seq", CRASHERS, ids=repr)
def test_crash_sequences_never_raise_and_later_text_renders(engine, seq):
    s = make(engine)
    s.feed(b"before " + seq + b"\x1b(B\x1b[0m\r\nafter")
    assert any("after" in ln for ln in text(s)), text(s)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bad_sequence_is_consumed_once(engine):
    """After vim's ESC[?4m the screen keeps working: nothing re-raises or re-parses."""
    s = make(engine)
    s.feed(b"\x1b[?4mone\r\n")
    s.feed(b"two")
    assert text(s)[:2] == ["one", "two"]
    s.feed(b"\r\nthree")
    assert text(s)[:3] == ["one", "two", "three"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", [47, 1047, 1049])
def test_alternate_screen_in_and_out(engine, mode):
    s = make(engine)
    s.feed(b"$ less file\r\n")
    s.feed(b"\x1b[?%dh\x1b[H\x1b[2Jpage one" % mode)
    assert text(s)[0] == "page one" and s.modes()["alt_screen"]
    s.feed(b"\x1b[?%dl" % mode)
    assert text(s)[0] == "$ less file" and not s.modes()["alt_screen"]
    assert not any("page one" in ln for ln in text(s))


@pytest.mark.parametrize("engine", ENGINES)
def test_1049_restores_the_cursor(engine):
    s = make(engine)
    s.feed(b"abc")
    s.feed(b"\x1b[?1049h\x1b[5;5Hx\x1b[?1049l")
    assert s.cursor() == (3, 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_width_characters_do_not_cut_the_run(engine):
    s = make(engine)
    s.feed("I \u2764\ufe0f NY; e\u0301t\u00e9; \U0001f468\u200d\U0001f469 ok".encode())
    line = text(s)[0]
    assert line.startswith("I \u2764\ufe0f NY") and line.endswith(" ok"), line
    assert "e\u0301t\u00e9" in line or "\u00e9t\u00e9" in line


@pytest.mark.parametrize("engine", ENGINES)
def test_wide_characters_take_two_cells(engine):
    s = make(engine)
    s.feed("中文x".encode())
    snap = s.snapshot()
    assert snap["lines"][0].startswith("中文x") and snap["cursor"]["x"] == 5


@pytest.mark.parametrize("engine", ENGINES)
def test_bright_colours_survive_ansi(engine):
    s = make(engine)
    s.feed(b"\x1b[91mhot\x1b[0m \x1b[104mcool\x1b[0m")
    snap = s.snapshot()
    runs = snap["cells"][0]
    assert runs[0]["fg"] == "brightred" and runs[2]["bg"] == "brightblue"
    ansi = render(snap, ansi=True, trim=True)
    assert "\x1b[91mhot\x1b[0m" in ansi and "\x1b[104mcool\x1b[0m" in ansi


@pytest.mark.parametrize("engine", ENGINES)
def test_scroll_up_down_repeat_and_scosc(engine):
    s = make(engine, 20, 4)
    s.feed(b"1\r\n2\r\n3\r\n4\x1b[1S")
    assert text(s) == ["2", "3", "4", ""]
    s.feed(b"\x1b[2T")
    assert text(s) == ["", "", "2", "3"]
    s.feed(b"\x1b[Hx\x1b[3b\x1b[s\x1b[4;10Hz\x1b[uy")
    assert text(s)[0] == "xxxxy"


@pytest.mark.parametrize("engine", ENGINES)
def test_modes_and_replies(engine):
    s = make(engine)
    assert s.modes() == {"alt_screen": False, "decckm": False, "bracketed_paste": False, "mouse": False}
    s.feed(b"\x1b[?1h\x1b[?2004h\x1b[?1000h\x1b[?1006h")
    assert s.modes() == {"alt_screen": False, "decckm": True, "bracketed_paste": True, "mouse": True}
    s.feed(b"\x1b[?1l\x1b[?2004l\x1b[?1000l")
    assert not any(s.modes().values())
    s.feed(b"ab\x1b[3;5H\x1b[6n")
    assert s.replies() == b"\x1b[3;5R"
    assert s.replies() == b""  # taken once
    s.feed(b"\x1b[5n\x1b[c\x1b[>c")
    r = s.replies()
    assert r.startswith(b"\x1b[0n\x1b[?") and b"\x1b[>" in r


@pytest.mark.parametrize("engine", ENGINES)
def test_snapshot_carries_engine_and_errors(engine):
    s = make(engine)
    snap = s.snapshot()
    assert snap["engine"] == engine and snap["errors"] == 0
    assert set(snap) >= {"cols", "rows", "cursor", "lines", "cells", "engine", "errors", "modes"}
    assert (snap["cols"], snap["rows"]) == (40, 8) and len(snap["lines"]) == 8


@pytest.mark.parametrize("engine", ENGINES)
def test_cut_sequences_and_utf8_across_feeds(engine):
    s = make(engine)
    data = "\x1b[31mred\x1b[0m é中 \x1b]0;t\x07\x1bP+q\x1b\\done".encode()
    for b in data:
        s.feed(bytes([b]))
    assert text(s)[0] == "red é中 done"
    assert s.snapshot()["cells"][0][0]["fg"] == "red"


@pytest.mark.parametrize("engine", ENGINES)
def test_garbage_truncated_utf8_and_a_huge_line(engine):
    s = make(engine, 80, 24)
    s.feed(bytes(range(256)) * 4 + b"\xe4\xb8" + b"\xff\xfe\xc3")
    s.feed(b"\x18\x1bc" + b"x" * (1 << 20))
    s.feed(b"\x1bcend")
    assert text(s)[0] == "end"


@pytest.mark.parametrize("engine", ENGINES)
def test_resize_keeps_the_text(engine):
    s = make(engine, 40, 8)
    s.feed(b"hello")
    s.resize(120, 40)
    snap = s.snapshot()
    assert (snap["cols"], snap["rows"]) == (120, 40) and snap["lines"][0].startswith("hello")
    s.resize(2, 2)
    assert s.snapshot()["cols"] == 2


def test_size_limits_are_one_pure_check():
    assert screens.size_error(80, 24) is None and screens.size_error(1000, 1000) is None
    for bad in ((1, 1), (10000, 10000), (0, 24), (80, 0), (1001, 10)):
        assert "out of range" in screens.size_error(*bad)


def test_new_screen_follows_the_forced_engine(monkeypatch):
    monkeypatch.setattr(screens, "_chosen", None)
    monkeypatch.setenv("LOOOP_SCREEN_ENGINE", "pyte")
    assert screens.new_screen(80, 24).engine == "pyte"
    monkeypatch.setattr(screens, "_chosen", None)
    monkeypatch.setenv("LOOOP_SCREEN_ENGINE", "ghostty")
    assert screens.new_screen(80, 24).engine == ("ghostty" if ghostty.available() else "pyte")
    monkeypatch.setattr(screens, "_chosen", None)


@pytest.mark.parametrize("engine", ENGINES)
def test_shrinking_keeps_the_cursor_on_the_screen(engine):
    """Found by the fuzz: pyte put the cursor back below the last row."""
    s = make(engine, 10, 3)
    s.feed(b"a\r\nb\r\nc")
    s.resize(10, 2)
    x, y = s.cursor()
    assert 0 <= y < 2 and 0 <= x < 10
    assert text(s)[y].startswith("c")


@pytest.mark.parametrize("engine", ENGINES)
def test_text_is_the_snapshots_lines(engine):
    """`text()` (the activity tracker's read: no styles) is exactly the
    snapshot's lines: wide characters, graphemes, colours, blank rows with
    and without a background, the alternate screen."""
    s = make(engine, 20, 6)
    assert s.text() == s.snapshot()["lines"]
    s.feed("中文 e\u0301 \x1b[31mred\x1b[0m \x1b[44m   \x1b[0m\r\n".encode())
    s.feed(b"\x1b[42m\x1b[2K\x1b[0m\r\n\x1b[7mrev\x1b[0m")
    assert s.text() == s.snapshot()["lines"]
    s.feed(b"\x1b[?1049h\x1b[H> box")
    assert s.text() == s.snapshot()["lines"] and s.text()[0].startswith("> box")
