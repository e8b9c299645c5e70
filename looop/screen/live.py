"""A live worker's screen, kept current from its output without slowing capture.

Why eager at all: a program that asks the terminal something (CPR, DA) waits
for the answer, and the answer must come from the screen as it is now. Why
not always: an emulator in Python (pyte) parses ~0.5 MB/s and even
libghostty-vt costs something per byte, while capture to the log must keep
its speed (SPEC §13). So:

- a wake whose unfed bytes the engine can parse within EAGER_S (by the
  rate measured so far) is fed at once: interactive output, echo, redraws;
- a bigger wake (a flood) is only queued; once output has been quiet for
  QUIET_S the queue is fed in slices of at most SLICE_S, so capture never
  waits more than one slice for the screen;
- the queue keeps only the newest `tail` bytes (about TAIL_S of parsing);
  older flood bytes are dropped from the screen, never from the log;
- `current()` (for shot, key, send) feeds whatever is queued first.

Every byte is fed at most once: it leaves the queue before the engine sees it.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from looop.screen import Screen, new_screen

EAGER_S = 0.002           # feed at once if the engine parses the backlog within this
SLICE_S = 0.005           # one catch-up slice of parsing, at most
QUIET_S = 0.05            # catch up after this much silence
TAIL_S = 0.25             # the queue keeps about this much parsing work
MIN_TAIL, MAX_TAIL = 64 << 10, 1 << 20  # the queue holds at most 2 × MAX_TAIL
GUESS = {"ghostty": 50e6, "pyte": 0.4e6}  # bytes/s before anything is measured


class LiveScreen:
    """The screen of one live PTY; see the module docstring. Not thread-safe.
    `clock` is a seam for tests."""

    def __init__(self, cols: int, rows: int, lnm: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.screen: Screen = new_screen(cols, rows, lnm)
        self.clock = clock
        self.rate = GUESS.get(self.screen.engine, 1e6)
        self.queue = bytearray()
        self.due: float | None = None      # when the next catch-up slice runs
        self.dropped = 0                   # bytes the screen never saw (floods)
        self._replies: list[bytes] = []

    @property
    def tail(self) -> int:
        return int(min(max(self.rate * TAIL_S, MIN_TAIL), MAX_TAIL))

    def output(self, data: bytes) -> None:
        """New output from the PTY (after it reached the log)."""
        self.queue += data
        if len(self.queue) <= self.rate * EAGER_S:
            self._feed(len(self.queue))
            return
        if len(self.queue) > 2 * self.tail:  # trim in big steps: no memmove per chunk
            cut = len(self.queue) - self.tail
            del self.queue[:cut]
            self.dropped += cut
        self.due = self.clock() + QUIET_S

    def tick(self) -> None:
        """Run a catch-up slice if one is due (the child's timer)."""
        if self.due is None or self.clock() < self.due:
            return
        self._feed(max(4096, int(self.rate * SLICE_S)))
        self.due = self.clock() if self.queue else None

    def current(self) -> Screen:
        """The screen with everything queued fed (at most `tail` bytes)."""
        if len(self.queue) > self.tail:
            cut = len(self.queue) - self.tail
            del self.queue[:cut]
            self.dropped += cut
        self._feed(len(self.queue))
        self.due = None
        return self.screen

    def resize(self, cols: int, rows: int) -> None:
        """After the PTY was resized: bytes queued so far were written for
        the old size, so they go in first."""
        self.current().resize(cols, rows)

    def replies(self) -> bytes:
        out, self._replies = b"".join(self._replies), []
        return out

    def snapshot(self) -> dict[str, Any]:
        return self.current().snapshot()

    def text(self) -> tuple[list[str], tuple[int, int]]:
        """(rows' text, cursor) of the current screen: the tracker's look."""
        s = self.current()
        return s.text(), s.cursor()

    def _feed(self, n: int) -> None:
        if not self.queue:
            return
        chunk = bytes(self.queue[:n])
        del self.queue[:n]  # consumed before parsing: never fed twice
        t0 = time.perf_counter()
        try:
            self.screen.feed(chunk)
        except Exception:  # the engines contain their own failures; this is the last wall
            self.screen.errors += 1
        spent = time.perf_counter() - t0
        if len(chunk) >= 4096 and spent > 0:  # small feeds measure overhead, not rate
            self.rate = 0.7 * self.rate + 0.3 * (len(chunk) / spent)
        r = self.screen.replies()
        if r:
            self._replies.append(r)
