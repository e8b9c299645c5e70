"""Restart policy as data, and the one pure decision over it (OTP semantics).

A child's `Policy` says when it is restarted: `temporary` never, `transient`
when it ended badly (a non-zero exit, or a signal nobody asked for — the
child vanishing counts), `permanent` always — but never a stop that was
asked for (`kill`, shutdown). Restart intensity: at most `max_restarts`
restarts within `window` seconds; one more and the child is given up on
(`failed` for a worker; the pulse's give-up shuts the tree down).

Backoff between tries is `backoff` × 2^k (capped at `backoff_max`), where k
counts the consecutive runs shorter than `min_uptime` before this one: a run
that stayed up that long counts as started and resets the backoff, like
supervisord's `startsecs`. The pulse has backoff 0 (restarted at once).

`decide(policy, ended, history, now)` is the only place these rules live;
the root applies its answer. Times are `time.monotonic()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from looop.store import restartspec


class Restart(str, Enum):
    PERMANENT = "permanent"  # always restarted (the pulse; opt-in for workers)
    TRANSIENT = "transient"  # restarted when it ended badly
    TEMPORARY = "temporary"  # never restarted by the supervisor (workers, by default)


@dataclass(frozen=True)
class Policy:
    kind: Restart = Restart.TEMPORARY
    max_restarts: int = 3
    window: float = 600.0
    backoff: float = 1.0
    backoff_max: float = 300.0
    min_uptime: float = 10.0

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind.value, "max_restarts": self.max_restarts, "window_s": self.window}

    @classmethod
    def from_json(cls, obj: Any) -> "Policy":
        """From meta.json; anything unreadable is the default (temporary)."""
        if not isinstance(obj, dict):
            return cls()
        try:
            return cls(Restart(obj.get("type", "temporary")), int(obj.get("max_restarts", 3)),
                       float(obj.get("window_s", 600)))
        except (TypeError, ValueError):
            return cls()


@dataclass(frozen=True)
class Ended:
    """How a run ended: `state` exited | killed (asked) | dead (vanished)."""
    state: str
    code: int | None
    uptime: float


@dataclass(frozen=True)
class History:
    restarts: tuple[float, ...] = ()  # when each past restart was decided
    short_runs: int = 0               # consecutive runs shorter than min_uptime


@dataclass(frozen=True)
class Decision:
    action: str                       # "stay" (not restarted) | "restart" | "fail"
    delay: float = 0.0                # seconds before the restart
    history: History = field(default_factory=History)
    reason: str = ""


def wants_restart(kind: Restart, ended: Ended) -> bool:
    """Does the restart type ask for a restart of a run that ended like this?"""
    if ended.state == "killed" or kind is Restart.TEMPORARY:
        return False  # a stop that was asked for is never undone
    if kind is Restart.PERMANENT:
        return True
    return ended.state == "dead" or ended.code != 0


def recent(times: tuple[float, ...], now: float, window: float) -> tuple[float, ...]:
    """The restarts still inside the intensity window."""
    return tuple(t for t in times if now - t < window)


def decide(policy: Policy, ended: Ended, history: History, now: float) -> Decision:
    """Pure: what the supervisor does about a run that just ended."""
    if not wants_restart(policy.kind, ended):
        return Decision("stay", history=history, reason=f"{policy.kind.value}: not restarted")
    short = history.short_runs + 1 if ended.uptime < policy.min_uptime else 0
    window = recent(history.restarts, now, policy.window)
    if len(window) >= policy.max_restarts:
        return Decision("fail", history=History(window, short),
                        reason=f"{len(window) + 1} ends in {fmt_secs(policy.window)} "
                               f"(max_restarts {policy.max_restarts})")
    delay = min(policy.backoff * 2 ** max(0, short - 1), policy.backoff_max) if policy.backoff else 0.0
    return Decision("restart", delay, History(window + (now,), short),
                    reason=f"restart {len(window) + 1}/{policy.max_restarts} in {delay:g}s")


HOUR = 3600.0


def hourly_cap(times: tuple[float, ...], now: float, limit: int) -> tuple[tuple[float, ...], bool]:
    """LOOOP_MAX_RESTARTS_PER_HOUR over every automatic restart (policy and
    recovery ladder): (the restarts still inside the hour, may one more go
    now?). `limit` 0 = no cap."""
    kept = recent(times, now, HOUR)
    return kept, limit <= 0 or len(kept) < limit


def cap_reason(kept: tuple[float, ...], limit: int) -> str:
    return (f"restart cap reached: {len(kept)} automatic restarts in the last hour "
            f"(LOOOP_MAX_RESTARTS_PER_HOUR={limit})")


# -- parsing (CLI flags, actions, goal frontmatter) ----------------------------

def fmt_secs(s: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{int(s // n)}{unit}"
    return f"{s:g}s"


def parse_kind(text: Any) -> Restart:
    return Restart(restartspec.parse_kind(text))


parse_max_restarts = restartspec.parse_max_restarts


def policy_from(kind: Any = None, max_restarts: Any = None) -> Policy:
    """A worker's Policy from user text; ValueError names what is wrong."""
    p = Policy()
    if kind is not None:
        p = Policy(parse_kind(kind))
    if max_restarts is not None:
        n, win = parse_max_restarts(max_restarts)
        p = Policy(p.kind, n, win)
    return p
