"""Activity: what the agent inside a live worker is doing, with the evidence.

Pure: the worker child gathers the facts (its settled screen, output times,
flag, the last agent event) and applies the verdict; nothing here reads a
clock, a file or a process. SPEC §15.

States (next to the lifecycle state, which is unchanged):
    starting  launched: no settled screen yet, or nothing drawn yet — for
              at most `starting` seconds (LOOOP_WORKER_STARTING, 30 s)
    working   producing output, or a working pattern / event
    ready     idle at its prompt, waiting for a brief
    asking    needs a human or the decider (a dialog, a pending ask, a flag)
    limited   a provider usage limit; `until` when the screen names the reset
    stuck     no output and no screen change for `stuck` seconds while it
              would otherwise be working

Evidence, strongest first (the first source that says something wins):
    1. ask     a pending `looop ask` of this worker        → asking
    2. flag    the worker's attention flag                  → asking
    3. event   `looop _event <id> <state> [note]` (an agent hook), valid until
               output resumes more than `settle` after it   → that state
    4. screen  the runner's patterns on the settled screen (quiet for
               `settle`), in the order asking, limited, working, ready; a
               working pattern that stays frozen for `stuck` → stuck
    5. timing  output within `settle` → working (starting before the first
               settle); settled → ready, except that a settled screen whose
               cursor is not after a prompt becomes stuck after `stuck`.
               A worker that has printed nothing at all is starting for
               `starting` seconds (a slow boot is not "ready" at settle),
               then working: with nothing drawn there is no prompt to be
               ready at, and the process runs — until it has been quiet
               since its start for `stuck`, then stuck. (The tracker looks
               at started + `starting` even when no output ever comes.)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from looop.tree.activity_states import (EVENT_STATES, NEEDS_SOMEONE, PATTERN_STATES,  # noqa: F401
                                       SOURCES, STATES)

STARTING_MAX = 30.0   # LOOOP_WORKER_STARTING: never "starting" for longer than this
TEXT_MAX = 200        # evidence text is cut here (it goes into titles' neighbours, prompts)

Patterns = Mapping[str, Sequence["re.Pattern[str]"]]


class PatternError(ValueError):
    """A runner's `states` table does not validate (names runner and index)."""


def compile_patterns(runner: str, states: Any) -> dict[str, tuple["re.Pattern[str]", ...]]:
    """`{"ready": [RE…], …}` from looop.json → compiled, validated.

    Raises PatternError naming the runner, the state and the index."""
    if states is None:
        return {}
    if not isinstance(states, dict):
        raise PatternError(f"runner {runner!r}: 'states' must be an object of state → [regex]")
    out: dict[str, tuple[re.Pattern[str], ...]] = {}
    for name, pats in states.items():
        if name not in PATTERN_STATES:
            raise PatternError(f"runner {runner!r}: unknown state {name!r} in 'states' "
                               f"(known: {', '.join(PATTERN_STATES)})")
        if not isinstance(pats, list) or not all(isinstance(p, str) for p in pats):
            raise PatternError(f"runner {runner!r}: states.{name} must be a list of regex strings")
        compiled = []
        for i, p in enumerate(pats):
            try:
                compiled.append(re.compile(p))
            except re.error as e:
                raise PatternError(f"runner {runner!r}: states.{name}[{i}] {p!r} is not a valid "
                                   f"regex: {e}") from None
        out[name] = tuple(compiled)
    return out


@dataclass(frozen=True)
class Event:
    """The last agent-native event (`looop _event`); `t` on the child's monotonic clock."""
    state: str
    note: str | None
    t: float


@dataclass(frozen=True)
class Facts:
    """Everything a verdict depends on. Times are monotonic seconds."""
    now: float
    started: float
    last_output: float | None            # None: no output yet
    last_change: float | None            # last time the settled screen differed
    settle: float
    stuck: float
    lines: Sequence[str] | None = None   # the settled screen; None if not settled / not read
    cursor: tuple[int, int] | None = None  # (x, y)
    ask: str | None = None               # a pending ask's text
    flagged: bool = False
    note: str | None = None
    event: Event | None = None
    wall: datetime | None = None         # aware local wall clock, for `until`
    starting: float = STARTING_MAX       # the longest a worker stays "starting"

    @property
    def quiet(self) -> float:
        """Seconds without output and without a screen change."""
        last = max(t for t in (self.last_output, self.last_change, self.started) if t is not None)
        return max(0.0, self.now - last)

    @property
    def settled(self) -> bool:
        since = self.last_output if self.last_output is not None else self.started
        return self.now - since >= self.settle


@dataclass(frozen=True)
class Verdict:
    state: str
    evidence: dict[str, Any] = field(default_factory=dict)
    until: str | None = None             # RFC 3339 UTC, for `limited`


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX - 1] + "…"


def _ev(source: str, text: str | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source}
    out.update({k: v for k, v in kw.items() if v is not None})
    if text is not None:
        out["text"] = _cut(text)
    return out


def classify(f: Facts, patterns: Patterns) -> Verdict:
    """The activity of one worker now. See the module docstring for the order."""
    if f.ask is not None:
        return Verdict("asking", _ev("ask", f.ask))
    if f.flagged:
        return Verdict("asking", _ev("flag", f.note or "flagged"))
    if f.event is not None and _event_holds(f):
        ev = f.event
        if ev.state == "working" and f.quiet >= f.stuck:
            return Verdict("stuck", _ev("event", f"working event, then quiet {f.quiet:.0f}s"))
        return Verdict(ev.state, _ev("event", ev.note or f"agent event {ev.state}"))
    if f.settled and f.lines is not None and f.last_output is not None:
        hit = match_screen(f.lines, patterns)
        if hit is not None:
            state, idx, row, text = hit
            ev = _ev("screen", text, pattern=f"{state}[{idx}]", line=row)
            if state == "working" and f.quiet >= f.stuck:
                return Verdict("stuck", dict(ev, text=_cut(f"{text} (frozen {f.quiet:.0f}s)")))
            until = parse_until(text_around(f.lines, row), f.wall) if state == "limited" and f.wall else None
            return Verdict(state, ev, until=until.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                           if until else None)
    return _timing(f)


def _event_holds(f: Facts) -> bool:
    """An event stands until output resumes more than `settle` after it (the
    agent redrawing right after its hook fired is part of the same moment)."""
    assert f.event is not None
    return f.last_output is None or f.last_output <= f.event.t + f.settle


def _timing(f: Facts) -> Verdict:
    if f.last_output is None:  # silent since its start: nothing drawn, no prompt
        if f.quiet >= f.stuck:  # (a `stuck` shorter than `starting` wins)
            return Verdict("stuck", _ev("timing", f"no output since its start {f.quiet:.0f}s ago"))
        if f.now - f.started < f.starting:
            return Verdict("starting", _ev("timing", "no output yet"))
        return Verdict("working", _ev("timing", f"no output since its start {f.quiet:.0f}s ago"))
    if not f.settled:
        if f.last_change is None and f.now - f.started < f.starting:
            return Verdict("starting", _ev("timing", "no settled screen yet"))
        ago = f.now - (f.last_output or f.started)
        return Verdict("working", _ev("timing", f"output {ago:.1f}s ago"))
    if _at_prompt(f.lines, f.cursor):
        return Verdict("ready", _ev("timing", f"quiet {f.quiet:.0f}s at a prompt"))
    if f.quiet >= f.stuck:
        return Verdict("stuck", _ev("timing", f"no output for {f.quiet:.0f}s"))
    return Verdict("ready", _ev("timing", f"quiet {f.quiet:.0f}s"))


def _at_prompt(lines: Sequence[str] | None, cursor: tuple[int, int] | None) -> bool:
    """Is the cursor right after text on its row (`$ `, `> `, `name: `)?"""
    if not lines or cursor is None:
        return False
    x, y = cursor
    return 0 <= y < len(lines) and x > 0 and bool(lines[y][:x].strip())


def match_screen(lines: Sequence[str], patterns: Patterns) -> tuple[str, int, int, str] | None:
    """(state, pattern index, row, row text) of the first match, states in
    PATTERN_STATES order, each pattern tried against every row."""
    for state in PATTERN_STATES:
        for idx, rx in enumerate(patterns.get(state, ())):
            for row, text in enumerate(lines):
                if rx.search(text):
                    return state, idx, row, text.strip()
    return None


def text_around(lines: Sequence[str], row: int) -> str:
    """The matched row and the two below it: a reset time is often wrapped."""
    return " ".join(ln.strip() for ln in lines[row:row + 3])


# -- `until`: when does a usage limit reset? -------------------------------------

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_UNITS = {"d": 86400, "day": 86400, "days": 86400, "h": 3600, "hr": 3600, "hrs": 3600,
          "hour": 3600, "hours": 3600, "m": 60, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1}
_REL = re.compile(r"\bin\s+((?:\d+\s*(?:days?|d|hours?|hrs?|hr|h|minutes?|mins?|min|m|seconds?|"
                  r"secs?|sec|s)\b[\s,]*(?:and\s+)?)+)", re.I)
_REL_PART = re.compile(r"(\d+)\s*([a-z]+)", re.I)
_ABS = re.compile(
    r"\b(?:resets?(?:\s+at)?|reset\s+at|try\s+again\s+(?:at|after)|available\s+(?:again\s+)?at|until)"
    r"\s+(?:(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+"
    r"(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s*(?P<year>\d{4})?,?\s*(?:at\s+)?)?"
    r"(?P<h>\d{1,2})(?::(?P<mi>\d{2}))?\s*(?P<ap>[ap]\.?\s?m\b\.?)?"
    r"(?:\s*\((?P<tz>[A-Za-z_]+(?:/[A-Za-z_+-]+)*)\))?", re.I)


def parse_until(text: str, now: datetime | None) -> datetime | None:
    """The reset time a usage-limit message names, as an aware datetime, or
    None. `now` is the aware local wall clock. Forms: `resets 3pm`,
    `resets 12:50am (America/Los_Angeles)`, `resets May 5 at 9pm`,
    `try again at 14:05`, `try again at Jul 5th, 2026 8:19 PM`,
    `try again in 5 days 22 hours 11 minutes`, `in 2h`, `in 4hr 29min`."""
    if now is None:
        return None
    m = _REL.search(text)
    if m:
        secs = sum(int(n) * _UNITS.get(u.lower(), 0) for n, u in _REL_PART.findall(m.group(1)))
        if secs > 0:
            return now + timedelta(seconds=secs)
    for m in _ABS.finditer(text):
        got = _absolute(m, now)
        if got is not None:
            return got
    return None


def _absolute(m: "re.Match[str]", now: datetime) -> datetime | None:
    h, mi, ap = int(m.group("h")), int(m.group("mi") or 0), m.group("ap")
    if ap is None and m.group("mi") is None:
        return None  # a bare number ("resets 3") is not a time
    if ap:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if ap.lower().startswith("p") else 0)
    if h > 23 or mi > 59:
        return None
    tz = now.tzinfo
    if m.group("tz"):
        try:
            from zoneinfo import ZoneInfo
            tz = ZoneInfo(m.group("tz"))
        except (ImportError, ValueError, KeyError, OSError):
            tz = now.tzinfo
    base = now.astimezone(tz)
    try:
        if m.group("mon"):
            year = int(m.group("year") or base.year)
            at = base.replace(year=year, month=_MONTHS[m.group("mon").lower()[:3]],
                              day=int(m.group("day")), hour=h, minute=mi, second=0, microsecond=0)
            if at < base and not m.group("year"):
                at = at.replace(year=year + 1)
            return at
        at = base.replace(hour=h, minute=mi, second=0, microsecond=0)
    except ValueError:
        return None
    return at if at > base else at + timedelta(days=1)
