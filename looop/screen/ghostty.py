"""The libghostty-vt engine: Ghostty's terminal core, as the `pyghostty`
wheel ships it (Linux x86_64).

Why ctypes and not pyghostty's own cffi layer: importing that layer parses
its whole C header (~250 ms and ~7 MB per process), which every `looop shot`
and every worker child would pay. We load the same library and declare only
the dozen calls we use; their ABI is libghostty-vt's public C API.

libghostty-vt never raises on input; it answers the terminal queries itself
(CPR, DSR, DA1/DA2, XTVERSION, DECRQM) through the write_pty callback, which
we collect for `replies()`.
"""
from __future__ import annotations

import ctypes as C
import os
from typing import Any, Iterator

from looop.screen import cells

# GhosttyTerminalOption / GhosttyTerminalData / render-state keys (C enums)
OPT_WRITE_PTY, OPT_SCROLLBACK_LINES = 1, 28
DATA_COLS, DATA_ROWS, DATA_CX, DATA_CY, DATA_ACTIVE, DATA_MOUSE = 1, 2, 3, 4, 6, 11
RS_ROW_ITERATOR = 4
ROW_CELLS, ROW_CELLS_RAW = 3, 5     # GhosttyRenderStateRowData
CELL_RAW, CELL_STYLE, CELL_GLEN, CELL_GBUF = 1, 2, 3, 4
CELL_RGB = 11                       # GhosttyCellData
SPACER_TAIL = 2                     # GhosttyCellWide
COLOR_PALETTE, COLOR_RGB = 1, 2     # GhosttyStyleColorTag
SCROLLBACK = 1000                   # lines kept above the screen (reflow on resize)


class _Rgb(C.Structure):
    _fields_ = [("r", C.c_uint8), ("g", C.c_uint8), ("b", C.c_uint8)]


class _ColorValue(C.Union):
    _fields_ = [("palette", C.c_uint8), ("rgb", _Rgb), ("_pad", C.c_uint64)]


class _Color(C.Structure):
    _fields_ = [("tag", C.c_int), ("value", _ColorValue)]


class _Style(C.Structure):
    _fields_ = [("size", C.c_size_t), ("fg", _Color), ("bg", _Color), ("ul", _Color),
                ("bold", C.c_bool), ("italic", C.c_bool), ("faint", C.c_bool),
                ("blink", C.c_bool), ("inverse", C.c_bool), ("invisible", C.c_bool),
                ("strikethrough", C.c_bool), ("overline", C.c_bool), ("underline", C.c_int)]


class _Mode(C.Structure):
    _fields_ = [("mode", C.c_uint16), ("value", C.c_bool)]


_WRITE_PTY = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.POINTER(C.c_uint8), C.c_size_t)
_lib: Any = None
_tried = False


def _libpath() -> str | None:
    import importlib.util
    try:
        spec = importlib.util.find_spec("pyghostty")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        p = os.path.join(base, "_lib", "libghostty-vt.so")
        if os.path.exists(p):
            return p
    return None


def _load() -> Any:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    path = _libpath()
    if path is None:
        return None
    try:
        lib = C.CDLL(path)
    except OSError:
        return None
    vp, i, u16, sz = C.c_void_p, C.c_int, C.c_uint16, C.c_size_t
    for name, res, args in (
            ("ghostty_terminal_new", i, [vp, C.POINTER(vp), u16, u16]),
            ("ghostty_terminal_free", None, [vp]),
            ("ghostty_terminal_resize", i, [vp, u16, u16, C.c_uint32, C.c_uint32]),
            ("ghostty_terminal_set", i, [vp, i, vp]),
            ("ghostty_terminal_vt_write", None, [vp, C.c_char_p, sz]),
            ("ghostty_terminal_get", i, [vp, i, vp]),
            ("ghostty_render_state_new", i, [vp, C.POINTER(vp)]),
            ("ghostty_render_state_free", None, [vp]),
            ("ghostty_render_state_update", i, [vp, vp]),
            ("ghostty_render_state_get", i, [vp, i, vp]),
            ("ghostty_render_state_row_iterator_new", i, [vp, C.POINTER(vp)]),
            ("ghostty_render_state_row_iterator_free", None, [vp]),
            ("ghostty_render_state_row_iterator_next", C.c_bool, [vp]),
            ("ghostty_render_state_row_get", i, [vp, i, vp]),
            ("ghostty_render_state_row_cells_new", i, [vp, C.POINTER(vp)]),
            ("ghostty_render_state_row_cells_free", None, [vp]),
            ("ghostty_render_state_row_cells_next", C.c_bool, [vp]),
            ("ghostty_render_state_row_cells_get", i, [vp, i, vp]),
            ("ghostty_render_state_row_cells_select", i, [vp, u16]),
            ("ghostty_cell_get", i, [C.c_uint64, i, vp])):
        try:
            f = getattr(lib, name)
        except AttributeError:
            return None  # another libghostty-vt ABI: not ours to guess at
        f.restype, f.argtypes = res, args
    _lib = lib
    if not _selfcheck():
        _lib = None
    return _lib


def _selfcheck() -> bool:
    """The packed-cell layout we decode (tag:2, content:24, style:16, wide:2)
    must agree with the C accessors on a known screen, else we don't use it."""
    try:
        s = GhosttyScreen(8, 2)
        s.feed("A\u4e2d\x1b[31mr\x1b[0me\u0301\x1b[44m\x1b[K\x1b[0m".encode())
        snap = s.snapshot()
    except Exception:
        return False
    return (snap["lines"][0] == "A\u4e2d" + "re\u0301   "
            and snap["cells"][0][1]["fg"] == "red" and snap["cells"][0][-1]["bg"] == "blue")


def available() -> bool:
    return _load() is not None


class GhosttyScreen:
    """One libghostty-vt terminal plus a render state to read it back."""

    engine = "ghostty"

    def __init__(self, cols: int, rows: int, lnm: bool = False):
        lib = _load()
        self._lib = lib
        self.errors = 0
        self._replies: list[bytes] = []
        self._t = C.c_void_p()
        if lib.ghostty_terminal_new(None, C.byref(self._t), cols, rows):
            raise MemoryError("libghostty-vt: terminal_new failed")
        lib.ghostty_terminal_set(self._t, OPT_SCROLLBACK_LINES, C.byref(C.c_size_t(SCROLLBACK)))
        self._cb = _WRITE_PTY(self._on_reply)  # keep a ref: C holds the pointer
        lib.ghostty_terminal_set(self._t, OPT_WRITE_PTY, C.cast(self._cb, C.c_void_p))
        self._rs, self._it, self._cells = C.c_void_p(), C.c_void_p(), C.c_void_p()
        lib.ghostty_render_state_new(None, C.byref(self._rs))
        lib.ghostty_render_state_row_iterator_new(None, C.byref(self._it))
        lib.ghostty_render_state_row_cells_new(None, C.byref(self._cells))
        self.cols, self.rows = cols, rows
        self._lnm = lnm
        if lnm:
            self._write(b"\x1b[20h")

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None or not getattr(self, "_t", None):
            return
        lib.ghostty_render_state_row_cells_free(self._cells)
        lib.ghostty_render_state_row_iterator_free(self._it)
        lib.ghostty_render_state_free(self._rs)
        lib.ghostty_terminal_free(self._t)
        self._t = None

    def _on_reply(self, _t: Any, _u: Any, data: Any, n: int) -> None:
        try:
            self._replies.append(C.string_at(data, n))
        except Exception:  # a callback must never unwind through C
            self.errors += 1

    def _write(self, data: bytes) -> None:
        self._lib.ghostty_terminal_vt_write(self._t, data, len(data))

    # -- the interface -------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if data:
            self._write(bytes(data))

    def resize(self, cols: int, rows: int) -> None:
        if (cols, rows) == (self.cols, self.rows):
            return
        if self._lib.ghostty_terminal_resize(self._t, cols, rows, 8, 16):
            self.errors += 1
            return
        self.cols, self.rows = cols, rows

    def _get(self, key: int, ctype: Any = C.c_uint16) -> int:
        out = ctype()
        self._lib.ghostty_terminal_get(self._t, key, C.byref(out))
        return out.value

    def cursor(self) -> tuple[int, int]:
        return self._get(DATA_CX), self._get(DATA_CY)

    def _mode(self, n: int) -> bool:
        m = _Mode(n & 0x7FFF, False)
        self._lib.ghostty_terminal_get(self._t, 37, C.byref(m))  # GHOSTTY_TERMINAL_DATA_MODE
        return bool(m.value)

    def modes(self) -> dict[str, bool]:
        return {"alt_screen": self._get(DATA_ACTIVE, C.c_int) == 1, "decckm": self._mode(1),
                "bracketed_paste": self._mode(2004), "mouse": bool(self._get(DATA_MOUSE, C.c_bool))}

    def replies(self) -> bytes:
        out, self._replies = b"".join(self._replies), []
        return out

    def _raw_rows(self) -> Iterator[Any]:
        """Each row's packed cells, top to bottom (one view, refilled per row)."""
        lib, it = self._lib, self._it
        lib.ghostty_render_state_update(self._rs, self._t)
        lib.ghostty_render_state_get(self._rs, RS_ROW_ITERATOR, C.byref(it))
        view = _CellsView()
        p_view = C.byref(view)
        while lib.ghostty_render_state_row_iterator_next(it):
            lib.ghostty_render_state_row_get(it, ROW_CELLS_RAW, p_view)
            yield view

    def snapshot(self) -> dict[str, Any]:
        lines: list[str] = []
        runs: list[list[dict[str, Any]]] = []
        for view in self._raw_rows():
            row = self._row(view.ptr[:view.len])
            lines.append("".join(t for t, _ in row))
            runs.append(cells.rows_to_runs(row))
        cx, cy = self.cursor()
        return {"cols": self.cols, "rows": self.rows, "cursor": {"x": cx, "y": cy},
                "lines": lines, "cells": runs, "engine": self.engine,
                "errors": self.errors, "modes": self.modes()}

    def text(self) -> list[str]:
        """The rows' text, as in `snapshot`, without styles or runs (the
        activity tracker reads this at every look): a row of zero cells —
        unwritten, no style — is blanks without decoding a cell."""
        lines: list[str] = []
        for view in self._raw_rows():
            if not C.string_at(view.ptr, view.len * 8).strip(b"\0"):
                lines.append(" " * view.len)
                continue
            lines.append("".join(self._text(x, raw) for x, raw in enumerate(view.ptr[:view.len])))
        return lines

    def _text(self, x: int, raw: int) -> str:
        """One packed cell's text: "" for the tail of a wide character."""
        tag = raw & 3
        if (raw >> 42) & 3 == SPACER_TAIL:
            return ""
        if tag == 0:
            content = (raw >> 2) & 0xFFFFFF
            return chr(content & 0x1FFFFF) if content else " "
        if tag == 1:
            self._select(x)
            return self._graphemes()
        return " "

    def _row(self, raws: list[int]) -> list[tuple[str, tuple]]:
        """One row's (text, style key) per cell, decoded from the packed cells
        (layout checked by _selfcheck at load); the C API only for graphemes,
        styles and true-colour backgrounds."""
        row: list[tuple[str, tuple]] = []
        styles: dict[int, tuple] = {}
        for x, raw in enumerate(raws):
            tag, content, sid = raw & 3, (raw >> 2) & 0xFFFFFF, (raw >> 26) & 0xFFFF
            text = self._text(x, raw)
            if sid:
                key = styles.get(sid)
                if key is None:
                    self._select(x)
                    key = styles[sid] = self._style()
            else:
                key = PLAIN
            if tag >= 2:  # an erased cell that carries only a background colour
                key = (key[0], cells.palette(content & 0xFF) if tag == 2 else self._rgb(raw)) + key[2:]
            row.append((text, key))
        return row

    def _select(self, x: int) -> None:
        lib = self._lib
        lib.ghostty_render_state_row_get(self._it, ROW_CELLS, C.byref(self._cells))
        lib.ghostty_render_state_row_cells_select(self._cells, x)

    def _graphemes(self) -> str:
        lib, n = self._lib, C.c_uint32()
        lib.ghostty_render_state_row_cells_get(self._cells, CELL_GLEN, C.byref(n))
        buf = (C.c_uint32 * max(n.value, 1))()
        lib.ghostty_render_state_row_cells_get(self._cells, CELL_GBUF, C.byref(buf))
        return "".join(chr(c) for c in buf[:n.value]) or " "

    def _style(self) -> tuple:
        st = _Style()
        st.size = C.sizeof(_Style)
        self._lib.ghostty_render_state_row_cells_get(self._cells, CELL_STYLE, C.byref(st))
        return (_color(st.fg), _color(st.bg), st.bold, st.italic, st.underline != 0, st.inverse)

    def _rgb(self, raw: int) -> str:
        v = _Rgb()
        self._lib.ghostty_cell_get(raw, CELL_RGB, C.byref(v))
        return cells.rgb(v.r, v.g, v.b)


PLAIN = ("default", "default", False, False, False, False)


class _CellsView(C.Structure):
    _fields_ = [("ptr", C.POINTER(C.c_uint64)), ("len", C.c_size_t)]


def _color(c: _Color) -> str:
    if c.tag == COLOR_PALETTE:
        return cells.palette(c.value.palette)
    if c.tag == COLOR_RGB:
        v = c.value.rgb
        return cells.rgb(v.r, v.g, v.b)
    return "default"
