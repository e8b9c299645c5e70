"""A worker child's activity tracker: when to look at the screen, and what changed.

Owned by the child (looop.tree.child), driven from its selector loop:
`on_output()` is the only call on the output path (two assignments, no
parsing); `due()` is the next deadline for the loop's timeout; `evaluate()`
runs the pure classifier (looop.tree.activity) at most once per burst of
output and once per `settle` while output flows — the screen is read only
when it has settled. Between bursts nothing runs except one deadline: the
end of `starting` (a worker that prints nothing must not stay "starting"),
then `stuck` — so an idle worker costs no CPU.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Sequence

from looop.tree import activity as A

ScreenFn = Callable[[], tuple[Sequence[str], tuple[int, int]]]


class Tracker:
    def __init__(self, patterns: A.Patterns, settle: float, stuck: float, now: float | None = None,
                 starting: float = A.STARTING_MAX):
        self.patterns, self.settle, self.stuck, self.starting = patterns, settle, stuck, starting
        self.started = time.monotonic() if now is None else now
        self.last_output: float | None = None
        self.burst: float | None = None        # first output since the last settled look
        self.last_change: float | None = None
        self.digest: int | None = None
        self.event: A.Event | None = None
        self.ask: str | None = None
        self.verdict = A.Verdict("starting", {"source": "timing", "text": "no settled screen yet"})
        self.since = time.time()               # wall clock: shown to people
        self.last_look: float | None = None

    def on_output(self, now: float) -> None:
        """Output arrived (the output path: keep this trivial)."""
        self.last_output = now
        if self.burst is None:
            self.burst = now

    def restart(self, now: float) -> None:
        """A new command in the same session: start over."""
        self.__init__(self.patterns, self.settle, self.stuck, now, self.starting)  # type: ignore[misc]

    def due(self) -> float | None:
        """The next monotonic time `evaluate` should run, or None."""
        if self.burst is not None:
            # first look one settle into a burst, then every settle while it
            # flows, and once it has been quiet for settle
            if self.last_look is None or self.last_look < self.burst:
                return self.burst + self.settle
            return min(self.last_look, self.last_output or self.burst) + self.settle
        if self.verdict.state in ("starting", "working", "ready"):
            base = max(t for t in (self.last_output, self.last_change, self.started) if t is not None)
            at = base + self.stuck
            if self.verdict.state == "starting":
                at = min(at, self.started + self.starting)
            return at
        return None

    def set_event(self, state: str, note: str | None, now: float) -> None:
        self.event = A.Event(state, note, now)

    def evaluate(self, now: float, screen: ScreenFn, flagged: bool, note: str | None,
                 ask: str | None = None) -> tuple[str, A.Verdict] | None:
        """Classify now; returns (previous state, new verdict) on a change of
        state, else None (the evidence of an unchanged state is refreshed
        quietly). Reads the screen only if output has been quiet for settle."""
        settled = now - (self.last_output if self.last_output is not None else self.started) >= self.settle
        lines: Sequence[str] | None = None
        cursor = None
        if settled:
            lines, cursor = screen()
            digest = hash((tuple(lines), cursor))
            if digest != self.digest:
                self.digest = digest
                # (nothing printed yet: the blank screen is the one it started with)
                self.last_change = self.last_output if self.last_output is not None else self.started
            self.burst = None
        self.last_look = now
        f = A.Facts(now=now, started=self.started, last_output=self.last_output,
                    last_change=self.last_change, settle=self.settle, stuck=self.stuck,
                    lines=lines, cursor=cursor, ask=ask if ask is not None else self.ask,
                    flagged=flagged, note=note, event=self.event, wall=datetime.now().astimezone(),
                    starting=self.starting)
        v = A.classify(f, self.patterns)
        if (not settled and v.state == "working" and v.evidence.get("source") == "timing"
                and self.burst is not None and now - self.burst < 2 * self.settle):
            return None  # a short burst (typing echo, one redraw) is not yet "working"
        if self.event is not None and v.evidence.get("source") != "event" and not A._event_holds(f):
            self.event = None  # lapsed: output resumed after it
        old = self.verdict
        if v.state == old.state and v.until == old.until:
            self.verdict = A.Verdict(v.state, v.evidence, v.until)
            return None
        self.verdict, self.since = v, time.time()
        return old.state, v

    def quiet(self, now: float) -> float:
        base = self.last_output if self.last_output is not None else self.started
        return max(0.0, now - base)

    def status(self, now: float) -> dict[str, Any]:
        """The `activity` object of status.json (SPEC §15)."""
        from looop.store.sessions import rfc3339
        out: dict[str, Any] = {"state": self.verdict.state, "since": rfc3339(self.since),
                               "quiet_s": round(self.quiet(now), 1),
                               "evidence": dict(self.verdict.evidence)}
        if self.verdict.until:
            out["until"] = self.verdict.until
        return out


def knobs(cfg: dict[str, Any], runner: str | None) -> dict[str, Any]:
    """ChildSpec fields for a worker of `runner`: its `states` (validated:
    LooopError naming runner, state and index), `settle`, and the stuck
    and starting thresholds."""
    from looop.errors import BadInput
    from looop.store import config
    name = runner or ""
    states = config.runner_states(cfg, name) if name else {}
    try:
        A.compile_patterns(name, states)
    except A.PatternError as e:
        raise BadInput(str(e)) from None
    return {"states": tuple((k, tuple(v)) for k, v in states.items()),
            "settle": config.runner_settle(cfg, name), "stuck": config.worker_stuck(),
            "starting": config.worker_starting()}


def pending_ask(d: str, sid: str) -> str | None:
    """The prompt of this worker's oldest unanswered ask, or None (the
    records are looop.store.asks's; read at a look, never per chunk)."""
    from looop.store import asks
    try:
        recs = asks.pending(d)
    except OSError:
        return None
    return next((str(r["prompt"]) for r in recs if r.get("worker") == sid), None)
