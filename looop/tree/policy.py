"""Restart intensity: a pure function of history and time (OTP semantics).

At most `max_restarts` restarts within `period` seconds; one more means the
supervisor gives up and shuts the tree down with a non-zero exit.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Intensity:
    max_restarts: int = 5
    period: float = 60.0
    history: list[float] = field(default_factory=list)

    def allow(self, now: float) -> bool:
        """Record a restart at monotonic `now`; False when the budget is spent."""
        self.history = [t for t in self.history if now - t < self.period]
        if len(self.history) >= self.max_restarts:
            return False
        self.history.append(now)
        return True
