"""Reading goals: `goals/*.md`, each optionally opening with frontmatter.

    ---
    run: ./sync.sh
    every: 10m
    done_when: test -f reports/sync-done
    ---
    Free text for humans and LLM deciders.

Frontmatter is `key: value` lines between two `---` lines; unknown keys are
kept. Only the rules decider and the world hash read it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from looop.store.readfile import read_bounded

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Goal:
    id: str
    text: str
    meta: dict[str, str] = field(default_factory=dict)

    def seconds(self, key: str) -> float | None:
        """A duration key (`every`), None if absent or unparsable."""
        return duration(self.meta.get(key, ""))


def duration(text: str) -> float | None:
    m = _DUR.match(text or "")
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def frontmatter(text: str) -> dict[str, str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    meta: dict[str, str] = {}
    for ln in lines[1:]:
        if ln.strip() == "---":
            return meta
        key, sep, value = ln.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t", "#")):
            meta[key.strip().lower()] = value.strip()
    return {}  # no closing fence: not frontmatter


def goal_files(d: str) -> list[str]:
    try:
        names = os.listdir(os.path.join(d, "goals"))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(".md") and not n.startswith(".")
                  and os.path.isfile(os.path.join(d, "goals", n)))


def read_goals(d: str) -> list[Goal]:
    out = []
    for n in goal_files(d):
        try:
            text = read_bounded(os.path.join(d, "goals", n), 1 << 20, follow=True).decode("utf-8", "replace")
        except OSError:
            continue  # gone, or swapped for a FIFO since the listing
        out.append(Goal(n[:-3], text, frontmatter(text)))
    return out
