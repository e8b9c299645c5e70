"""The hardened pyte engine, for where libghostty-vt does not load.

pyte's own parser hands every CSI to a handler with whatever parameters
arrived, and the handlers raise on forms real programs send (vim's
`ESC[?4m`, `ESC[1;5A`, `ESC[?1049r`…); it also prints DCS/APC bodies as
text and knows no alternate screen. So we keep pyte's Screen (the grid,
wrapping, margins, SGR) and put our own tokenizer in front of it: sequences
are split per ECMA-48 (CSI = params, intermediates, final; OSC/DCS/APC/PM/SOS
strings swallowed up to ST, BEL, CAN/SUB or the next ESC, like a VT parser),
each one dispatched through a table to a handler that takes only the
parameters it understands. A handler that still raises costs that one
sequence (counted in `errors`), never the feed.
"""
from __future__ import annotations

import codecs
import re
import unicodedata
from typing import Any, Callable

import pyte
from pyte import modes as mo
from wcwidth import wcwidth

from looop.screen import cells

_TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|\x1b\[(?P<cp>[\x30-\x3f]*)(?P<ci>[\x20-\x2f]*)(?P<cf>[\x40-\x7e])"
    r"|(?P<str>\x1b[\]P_^X][^\x07\x18\x1a\x1b]*(?:\x07|\x1b\\)?)"
    r"|\x1b(?P<ei>[\x20-\x2f]*)(?P<ef>[\x30-\x7e])"
    r"|(?P<ctl>[\x00-\x1a\x1c-\x1f\x7f-\x9f])")
# what may still complete in the next chunk: hold it back
_PARTIAL = re.compile(r"\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*|[\x20-\x2f]*|[\]P_^X][^\x07\x18\x1a\x1b]*\x1b?)?\Z")
HOLD_MAX = 1 << 16  # an unterminated string longer than this is dropped, not held
_NAMES = {"brown": "brown", "bfightmagenta": "brightmagenta"}  # pyte's BG_AIXTERM typo


class _Grid(pyte.Screen):
    """pyte's Screen with the drawing fixes: zero-width characters join the
    previous cell instead of ending the run, a wide character wraps before
    the last column, the last graphic character is kept for REP."""

    last_char = ""

    def write_process_input(self, data: str) -> None:
        self.replies.append(data.encode())

    def draw(self, data: str) -> None:
        data = data.translate(self.g1_charset if self.charset else self.g0_charset)
        for ch in data:
            w = wcwidth(ch)
            if w <= 0:
                if w == 0 or unicodedata.combining(ch) or ch in "\u200d\ufe0f\ufe0e":
                    self._join(ch)
                continue
            if self.cursor.x + w > self.columns:
                if mo.DECAWM in self.mode:
                    self.carriage_return()
                    self.linefeed()
                else:
                    self.cursor.x = self.columns - w
            if mo.IRM in self.mode:
                self.insert_characters(w)
            line = self.buffer[self.cursor.y]
            line[self.cursor.x] = self.cursor.attrs._replace(data=ch)
            if w == 2 and self.cursor.x + 1 < self.columns:
                line[self.cursor.x + 1] = self.cursor.attrs._replace(data="")
            self.cursor.x = min(self.cursor.x + w, self.columns)
            self.last_char = ch
        self.dirty.add(self.cursor.y)

    def _join(self, ch: str) -> None:
        """A zero-width character belongs to the cell before the cursor."""
        y, x = self.cursor.y, self.cursor.x - 1
        if x < 0:
            if not y:
                return
            y, x = y - 1, self.columns - 1
        line = self.buffer[y]
        if x > 0 and line[x].data == "" and line[x - 1].data:  # the stub of a wide char
            x -= 1
        last = line[x]
        line[x] = last._replace(data=unicodedata.normalize("NFC", last.data + ch))


class PyteScreen:
    """The Screen interface over pyte (see looop.screen)."""

    engine = "pyte"

    def __init__(self, cols: int, rows: int, lnm: bool = False):
        self.g = _Grid(cols, rows)
        self.g.replies = []
        if lnm:
            self.g.set_mode(mo.LNM)
        self.errors = 0
        self.cols, self.rows = cols, rows
        self._dec = codecs.getincrementaldecoder("utf-8")("replace")
        self._hold = ""
        self._swallow = False  # inside a string too long to hold
        self._modes: set[int] = set()
        self._alt: tuple[Any, Any] | None = None  # (saved buffer, saved cursor)

    # -- the interface -------------------------------------------------------

    def feed(self, data: bytes) -> None:
        try:
            text = self._hold + self._dec.decode(bytes(data))
        except Exception:  # the decoder replaces; this is belt and braces
            self.errors += 1
            return
        self._hold = ""
        if self._swallow:
            m = re.search(r"[\x07\x18\x1a\x1b]", text)
            if m is None:
                return
            self._swallow = False
            text = text[m.end():] if m.group() in "\x07\x18\x1a" else text[m.start():]
            if text.startswith("\x1b\\"):
                text = text[2:]
        pos, n = 0, len(text)
        while pos < n:
            if text[pos] == "\x1b" and _PARTIAL.match(text, pos):
                rest = text[pos:]  # a sequence the next chunk may complete
                if len(rest) <= HOLD_MAX:
                    self._hold = rest
                else:
                    self._swallow = True
                return
            m = _TOKEN.match(text, pos)
            if m is None:  # an ESC that starts nothing: dropped
                pos += 1
                continue
            pos = m.end()
            try:
                self._dispatch(m)
            except Exception:
                self.errors += 1

    def resize(self, cols: int, rows: int) -> None:
        try:
            g = self.g
            y, lost = g.cursor.y, max(0, g.lines - rows)
            g.resize(rows, cols)
            # pyte drops rows from the top but puts the cursor back where it was
            g.cursor.y = min(max(0, y - lost), rows - 1)
            g.cursor.x = min(g.cursor.x, cols)
            self.cols, self.rows = cols, rows
        except Exception:
            self.errors += 1

    def cursor(self) -> tuple[int, int]:
        return min(self.g.cursor.x, self.cols - 1), self.g.cursor.y

    def modes(self) -> dict[str, bool]:
        m = self._modes
        return {"alt_screen": self._alt is not None, "decckm": 1 in m, "bracketed_paste": 2004 in m,
                "mouse": bool(m & {9, 1000, 1001, 1002, 1003})}

    def replies(self) -> bytes:
        out = b"".join(self.g.replies)
        self.g.replies.clear()
        return out

    def snapshot(self) -> dict[str, Any]:
        g = self.g
        lines: list[str] = []
        runs: list[list[dict[str, Any]]] = []
        for y in range(g.lines):
            line = g.buffer[y]
            row = []
            for x in range(g.columns):
                c = line[x]
                row.append((c.data, (_name(c.fg), _name(c.bg), c.bold, c.italics, c.underscore,
                                     c.reverse)))
            lines.append("".join(t for t, _ in row))
            runs.append(cells.rows_to_runs(row))
        x, y = self.cursor()
        return {"cols": g.columns, "rows": g.lines, "cursor": {"x": x, "y": y}, "lines": lines,
                "cells": runs, "engine": self.engine, "errors": self.errors, "modes": self.modes()}

    def text(self) -> list[str]:
        """The rows' text, as in `snapshot` (no styles: the tracker's read)."""
        g = self.g
        cols = range(g.columns)
        return ["".join(line[x].data for x in cols) for line in (g.buffer[y] for y in range(g.lines))]

    # -- dispatch --------------------------------------------------------------

    def _dispatch(self, m: re.Match) -> None:
        kind = m.lastgroup
        g = self.g
        if kind == "text":
            g.draw(m.group())
        elif kind == "cf":
            self._csi(m.group("cp"), m.group("ci"), m.group("cf"))
        elif kind == "ef":
            self._esc(m.group("ei"), m.group("ef"))
        elif kind == "ctl":
            fn = _CTL.get(m.group())
            if fn is not None:
                getattr(g, fn)()
        # "str": OSC/DCS/APC/PM/SOS are swallowed whole

    def _esc(self, inter: str, final: str) -> None:
        g = self.g
        if inter in ("(", ")"):
            g.define_charset(final, inter)
        elif inter == "#" and final == "8":
            g.alignment_display()
        elif not inter:
            fn = _ESC.get(final)
            if fn is not None:
                getattr(g, fn)()
            elif final == "c":
                self._reset()

    def _csi(self, params: str, inter: str, final: str) -> None:
        mark = params[:1] if params[:1] in "<=>?" else ""
        body = params[1:] if mark else params
        if any(c in body for c in "<=>?"):
            return  # malformed: markers only lead
        if inter or mark in ("<", "="):
            if (mark, inter, final) == (">", "", "c") or (mark, final) == (">", "q"):
                pass
            elif inter == "!" and final == "p":  # DECSTR soft reset
                self._modes.clear()
                return
            else:
                return
        groups = body.split(";") if body else []
        args = [_num(a) for a in groups]
        if mark == "?":
            handler = _PRIVATE.get(final)
        elif mark == ">":
            handler = _GREATER.get(final)
        else:
            handler = _CSI.get(final)
        if handler is not None:
            handler(self, args, groups)

    # -- handlers (args: numbers, groups: the raw ';' fields) ----------------

    def _reset(self) -> None:
        self.g.reset()
        self.g.replies.clear()
        self._modes.clear()
        self._alt = None

    def _set_private(self, args: list[int], on: bool) -> None:
        g = self.g
        for n in args:
            if n in (47, 1047, 1049):
                self._alt_screen(on, save_cursor=n == 1049)
            elif n == 1048:
                (g.save_cursor if on else g.restore_cursor)()
            elif n in (1, 9, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 2004):
                (self._modes.add if on else self._modes.discard)(n)
            elif n in (5, 6, 7, 25):  # the DEC modes pyte's grid implements (not 3: DECCOLM resizes)
                (g.set_mode if on else g.reset_mode)(n, private=True)

    def _alt_screen(self, on: bool, save_cursor: bool) -> None:
        g = self.g
        if on and self._alt is None:
            if save_cursor:
                g.save_cursor()
            self._alt = (g.buffer, save_cursor)
            g.buffer = type(g.buffer)(lambda: pyte.screens.StaticDefaultDict(g.default_char))
            g.dirty.update(range(g.lines))
        elif not on and self._alt is not None:
            g.buffer, saved = self._alt
            self._alt = None
            for y in [y for y in g.buffer if y >= g.lines]:
                del g.buffer[y]
            for line in g.buffer.values():
                for x in [x for x in line if x >= g.columns]:
                    del line[x]
            if saved:
                g.restore_cursor()
            g.dirty.update(range(g.lines))

    def _sgr(self, args: list[int], groups: list[str]) -> None:
        flat: list[int] = []
        for raw in groups or ["0"]:
            if ":" in raw:  # sub-parameters: 38:2::r:g:b, 38:5:n, 4:3
                sub = [_num(s) for s in raw.split(":")]
                if sub[0] in (38, 48) and len(sub) >= 3 and sub[1] == 5:
                    flat += [sub[0], 5, sub[2]]
                elif sub[0] in (38, 48) and len(sub) >= 5 and sub[1] == 2:
                    flat += [sub[0], 2] + sub[-3:]
                elif sub[0] == 4:
                    flat.append(4 if len(sub) < 2 or sub[1] else 24)
                continue
            flat.append(_num(raw))
        i = 0
        while i < len(flat):  # pyte reads 38/48 forms itself; stop a truncated one here
            n = flat[i]
            if n in (38, 48, 58):
                kind = flat[i + 1] if i + 1 < len(flat) else None
                width = 3 if kind == 5 else 5 if kind == 2 else 2
                part = flat[i:i + width]
                if n != 58 and len(part) == width:
                    self.g.select_graphic_rendition(*part)
                i += width
            else:
                if n in _SGR_OK:
                    self.g.select_graphic_rendition(n)
                i += 1

    def _scroll(self, n: int, up: bool) -> None:
        g = self.g
        top, bottom = (g.margins.top, g.margins.bottom) if g.margins else (0, g.lines - 1)
        x, y = g.cursor.x, g.cursor.y
        for _ in range(min(max(n, 1), g.lines)):
            if up:
                g.cursor.y = bottom
                g.index()
            else:
                g.cursor.y = top
                g.reverse_index()
        g.cursor.x, g.cursor.y = x, y

    def _rep(self, n: int) -> None:
        if self.g.last_char:
            self.g.draw(self.g.last_char * min(max(n, 1), self.cols * self.rows))

    def _dsr(self, args: list[int]) -> None:
        g = self.g
        mode = args[0] if args else 0
        if mode == 5:
            g.replies.append(b"\x1b[0n")
        elif mode == 6:
            x, y = self.cursor()
            if mo.DECOM in g.mode and g.margins:
                y -= g.margins.top
            g.replies.append(b"\x1b[%d;%dR" % (y + 1, x + 1))


def _num(s: str) -> int:
    """A CSI parameter: digits only (anything else counts as 0), capped."""
    s = s.split(":", 1)[0]
    return min(int(s), 9999) if s.isdigit() else 0


def _n(args: list[int], i: int = 0, default: int = 1) -> int:
    return args[i] if len(args) > i and args[i] else default


def _name(color: str) -> str:
    return _NAMES.get(color, color)


_SGR_OK = frozenset([0, 1, 3, 4, 5, 7, 8, 9, 22, 23, 24, 25, 27, 28, 29, 39, 49]
                    + list(range(30, 38)) + list(range(40, 48))
                    + list(range(90, 98)) + list(range(100, 108)))
_CTL = {"\x07": "bell", "\x08": "backspace", "\t": "tab", "\n": "linefeed", "\x0b": "linefeed",
        "\x0c": "linefeed", "\r": "carriage_return", "\x0e": "shift_out", "\x0f": "shift_in",
        "\x84": "index", "\x85": "linefeed", "\x88": "set_tab_stop", "\x8d": "reverse_index"}
_ESC = {"D": "index", "E": "linefeed", "M": "reverse_index", "H": "set_tab_stop",
        "7": "save_cursor", "8": "restore_cursor"}

H = Callable[[PyteScreen, list, list], None]
_CSI: dict[str, H] = {
    "@": lambda s, a, r: s.g.insert_characters(_n(a)),
    "A": lambda s, a, r: s.g.cursor_up(_n(a)),
    "B": lambda s, a, r: s.g.cursor_down(_n(a)),
    "C": lambda s, a, r: s.g.cursor_forward(_n(a)),
    "D": lambda s, a, r: s.g.cursor_back(_n(a)),
    "E": lambda s, a, r: s.g.cursor_down1(_n(a)),
    "F": lambda s, a, r: s.g.cursor_up1(_n(a)),
    "G": lambda s, a, r: s.g.cursor_to_column(_n(a)),
    "`": lambda s, a, r: s.g.cursor_to_column(_n(a)),
    "a": lambda s, a, r: s.g.cursor_forward(_n(a)),
    "H": lambda s, a, r: s.g.cursor_position(_n(a), _n(a, 1)),
    "f": lambda s, a, r: s.g.cursor_position(_n(a), _n(a, 1)),
    "J": lambda s, a, r: s.g.erase_in_display(a[0] if a and a[0] in (0, 1, 2) else 0)
    if not a or a[0] != 3 else None,  # 3: the scrollback only, which we don't keep
    "K": lambda s, a, r: s.g.erase_in_line(a[0] if a and a[0] in (0, 1, 2) else 0),
    "L": lambda s, a, r: s.g.insert_lines(_n(a)),
    "M": lambda s, a, r: s.g.delete_lines(_n(a)),
    "P": lambda s, a, r: s.g.delete_characters(_n(a)),
    "X": lambda s, a, r: s.g.erase_characters(_n(a)),
    "S": lambda s, a, r: s._scroll(_n(a), up=True),
    "T": lambda s, a, r: s._scroll(_n(a), up=False) if len(a) <= 1 else None,
    "b": lambda s, a, r: s._rep(_n(a)),
    "c": lambda s, a, r: s.g.replies.append(b"\x1b[?62;22c") if not a or a[0] == 0 else None,
    "d": lambda s, a, r: s.g.cursor_to_line(_n(a)),
    "e": lambda s, a, r: s.g.cursor_down(_n(a)),
    "g": lambda s, a, r: s.g.clear_tab_stop(a[0] if a and a[0] in (0, 3) else 0),
    "h": lambda s, a, r: s.g.set_mode(*[n for n in a if n in (4, 20)]),
    "l": lambda s, a, r: s.g.reset_mode(*[n for n in a if n in (4, 20)]),
    "m": lambda s, a, r: s._sgr(a, r),
    "n": lambda s, a, r: s._dsr(a),
    "r": lambda s, a, r: s.g.set_margins(*(a[:2] if len(a) >= 2 else a[:1])),
    "s": lambda s, a, r: s.g.save_cursor() if not a else None,
    "u": lambda s, a, r: s.g.restore_cursor() if not a else None,
}
_PRIVATE: dict[str, H] = {
    "h": lambda s, a, r: s._set_private(a, True),
    "l": lambda s, a, r: s._set_private(a, False),
    "J": _CSI["J"], "K": _CSI["K"],  # selective erase: erase
}
_GREATER: dict[str, H] = {
    "c": lambda s, a, r: s.g.replies.append(b"\x1b[>1;10;0c"),
    "q": lambda s, a, r: s.g.replies.append(b"\x1bP>|looop-pyte\x1b\\"),
}
