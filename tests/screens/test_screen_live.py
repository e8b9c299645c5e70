"""LiveScreen's feeding policy (looop.screen.live), on a fake clock: eager
while output is interactive, queued and bounded during a flood, caught up in
slices when quiet, every byte fed at most once."""
from __future__ import annotations

from looop.screen import live as L
from looop.screen.live import LiveScreen


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A Screen that records what it was fed (and can fail on demand)."""
    engine, errors, cols, rows = "fake", 0, 80, 24

    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.fail = False

    def feed(self, data: bytes) -> None:
        self.fed.append(data)
        if self.fail:
            raise RuntimeError("engine bug")

    def replies(self) -> bytes:
        return b"\x1b[1;1R" if any(b"\x1b[6n" in f for f in self.fed[-1:]) else b""

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows


def make(rate: float = 1e6) -> tuple[LiveScreen, Recorder, Clock]:
    clock = Clock()
    ls = LiveScreen(80, 24, clock=clock)
    rec = Recorder()
    ls.screen, ls.rate = rec, rate
    return ls, rec, clock


def test_interactive_output_is_fed_at_once_and_queries_answered():
    ls, rec, _ = make()
    ls.output(b"$ ")
    ls.output(b"\x1b[6n")
    assert rec.fed == [b"$ ", b"\x1b[6n"] and ls.due is None
    assert ls.replies() == b"\x1b[1;1R" and ls.replies() == b""


def test_a_flood_is_queued_then_fed_in_slices_once_quiet():
    ls, rec, clock = make(rate=1e6)  # 2 ms of parsing = 2000 bytes eager at most
    flood = bytes(range(256)) * 400  # 100 KiB
    ls.output(flood)
    assert rec.fed == [] and ls.due == clock.t + L.QUIET_S
    ls.tick()
    assert rec.fed == []  # not quiet yet
    clock.t += L.QUIET_S
    ls.tick()
    assert len(rec.fed) == 1 and len(rec.fed[0]) == max(4096, int(1e6 * L.SLICE_S))
    while ls.due is not None:
        ls.tick()
    assert b"".join(rec.fed) == flood  # all of it, in order, once


def test_more_output_during_a_flood_pushes_the_catch_up_back():
    ls, rec, clock = make()
    ls.output(b"x" * 50000)
    clock.t += L.QUIET_S / 2
    ls.output(b"y" * 50000)
    clock.t += L.QUIET_S / 2
    ls.tick()
    assert rec.fed == []


def test_the_queue_keeps_only_the_tail():
    ls, rec, _ = make(rate=1e6)
    tail = ls.tail
    assert L.MIN_TAIL <= tail <= L.MAX_TAIL
    data = b"a" * (3 * tail) + b"END"
    for i in range(0, len(data), 65536):
        ls.output(data[i:i + 65536])
    assert len(ls.queue) <= 2 * tail and ls.dropped > 0
    ls.current()
    fed = b"".join(rec.fed)
    assert fed.endswith(b"END") and len(fed) == tail and ls.dropped + len(fed) == len(data)


def test_current_feeds_everything_queued_once():
    ls, rec, _ = make()
    ls.output(b"q" * 10000)
    assert ls.current() is rec and b"".join(rec.fed) == b"q" * 10000
    ls.current()
    assert b"".join(rec.fed) == b"q" * 10000 and ls.due is None


def test_resize_feeds_the_old_bytes_first():
    ls, rec, _ = make()
    ls.output(b"z" * 10000)
    ls.resize(100, 30)
    assert b"".join(rec.fed) == b"z" * 10000 and (rec.cols, rec.rows) == (100, 30)


def test_an_engine_that_raises_costs_one_chunk_never_the_caller():
    ls, rec, _ = make()
    rec.fail = True
    ls.output(b"boom")
    ls.output(b"x" * 10000)
    ls.current()
    assert rec.errors == 2 and b"".join(rec.fed) == b"boom" + b"x" * 10000


def test_rate_is_learned_from_real_feeds():
    ls = LiveScreen(80, 24, clock=Clock())
    before = ls.rate
    ls.output(b"hello world\r\n" * 20000)
    ls.current()
    assert ls.rate != before and ls.rate > 0


def test_input_bytes_follow_the_modes():
    from looop.screen.keys import input_bytes
    keys = b"\x1b[A\x1b[Bi\x1b[H\x1b[5~"
    assert input_bytes(keys, "keys", {"decckm": False}) == keys
    assert input_bytes(keys, "keys", {"decckm": True}) == b"\x1bOA\x1bOBi\x1bOH\x1b[5~"
    assert input_bytes(b"a\nb", "paste", {"bracketed_paste": True}) == b"\x1b[200~a\nb\x1b[201~"
    assert input_bytes(b"a\x1b[201~\nb", "paste", {"bracketed_paste": True}) == b"\x1b[200~a\nb\x1b[201~"
    assert input_bytes(b"one line", "paste", {"bracketed_paste": True}) == b"one line"
    assert input_bytes(b"a\nb", "paste", {"bracketed_paste": False}) == b"a\nb"
