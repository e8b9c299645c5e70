"""The decider's prompt (SPEC §4): its contract first, then the world, in a
fixed order of `=== SECTION ===` blocks.

Bodies come from files anyone (or any worker) may have written, so a line
starting with `===` inside them is indented by one space: an interpolated
body can never forge a section header. Pure: the caller gathers the inputs.
"""
from __future__ import annotations

import re
import time
from typing import Any, Iterable

from looop.pulse.actions import ACTIONS, INTERVAL_MAX, INTERVAL_MIN

_HEADER = re.compile(r"^===", re.M)

CONTRACT = """\
You are the decider of looop, one disposable beat of a control loop for a
person's work. Read everything below: the PLAYBOOK (priorities, guardrails),
the goals (desired state), the sensor readings (the world now), the worker
sessions, the claims, the recent journal and the workers' pending asks. Then
choose the SINGLE most important move toward the goals.

Do NOT perform the move yourself. EMIT it: write exactly one JSON object to
the file `.decision.json` in the current directory, and nothing else there.
Do not edit PLAYBOOK.md, goals/ or sensors/ yourself and do not run commands
with side effects: looop executes your move. Hands-on, multi-step work belongs
to a worker (start_worker). Prefer steering an existing worker over starting a
second one for the same goal. If nothing needs doing, choose noop.

The object has an "action" tag and that action's fields:
{catalogue}
Alongside, optionally: "journal": one line saying what you did and why (it is
appended to journal.md), and "next_interval_s": an integer, seconds until the
next beat ({lo}..{hi}).

Example: {{"action": "noop", "reason": "all goals on track", "journal": "nothing to do"}}

Ids and names: letters, digits, '.', '_', '-', at most 64, not starting with
'.'. A session id is usually the goal's name; `pulse` is the loop itself and
never a worker.

The current local time is {now}.
"""


def catalogue() -> str:
    lines = []
    for name, spec in ACTIONS.items():
        fields = [f'"{f}"' for f, _ in spec.fields] + [f'"{f}" (optional)' for f, _ in spec.optional]
        lines.append(f"- {name}: {', '.join(fields)} — {spec.when}")
    return "\n".join(lines)


def neutralise(text: str) -> str:
    return _HEADER.sub(" ===", text)


def _body(text: str) -> str:
    text = neutralise(text)
    return text if text.endswith("\n") or not text else text + "\n"


def worker_line(row: dict[str, Any]) -> str:
    """`- id [state · activity, quiet Ns]  ⚑ note`, then for a live worker
    the evidence behind its activity on an indented line (SPEC §15)."""
    state = str(row.get("state"))
    if row.get("exit_code") is not None and not row.get("alive"):
        state += f" exit {row['exit_code']}"
    act = row.get("activity") if row.get("alive") else None
    if act:
        quiet = act.get("quiet_s")
        state += f" · {act.get('state')}" + (f", quiet {quiet:.0f}s" if isinstance(quiet, (int, float)) else "")
        if act.get("until"):
            state += f", until {act['until']}"
    flag = f"  ⚑ {row.get('note') or ''}".rstrip() if row.get("alive") and row.get("flagged") else ""
    line = f"- {row.get('id')} [{state}]{flag}"
    ev = (act or {}).get("evidence") or {}
    if ev.get("source"):
        where = f" {ev['pattern']}" if ev.get("pattern") else ""
        line += f"\n    evidence: {ev['source']}{where}" + (f": {ev['text']}" if ev.get("text") else "")
    return neutralise(line)


def ask_lines(asks: Iterable[tuple[dict[str, Any], bool]], now: float) -> str:
    """The PENDING ASKS body: one `- <id> from <worker>, <age> ago …` line,
    then the question indented (so no line of it can forge a header)."""
    from looop.inbox import stamp
    out = []
    for rec, stranded in asks:
        t = stamp(rec.get("ts"))
        age = f"{max(0, int(now - t))}s ago" if t is not None else "age unknown"
        head = f"- {rec.get('id')} from {rec.get('worker')}, {age}"
        if rec.get("options"):
            head += " · options: " + ", ".join(map(str, rec["options"]))
        if rec.get("ref"):
            head += f" · ref: {rec['ref']}"
        if stranded:
            head += " · stranded (its asker is gone; an answer waits for it to ask again)"
        body = "".join(f"  {ln}\n" for ln in str(rec.get("prompt", "")).splitlines() or [""])
        out.append(neutralise(head) + "\n" + neutralise(body))
    if not out:
        return ""
    return "".join(out) + ("(answer one with answer_ask only if the PLAYBOOK has the line "
                           "`answer_ask: allowed`; otherwise they wait for the human)\n")


def build(playbook: str, goals: Iterable[tuple[str, str]], readings: Iterable[tuple[str, bytes]],
          workers: Iterable[dict[str, Any]], claims: Iterable[tuple[str, str]],
          journal: Iterable[str], now: float | None = None,
          extra: Iterable[tuple[str, str]] = (), max_bytes: int = 0) -> str:
    """The prompt. `extra`: (TITLE, body) sections after RECENT JOURNAL, in
    order, each shown only when its body is non-empty; `max_bytes` > 0 is the
    budget the largest sections are cut to (see `fit`)."""
    now_s = time.strftime("%Y-%m-%d %H:%M:%S %Z (%A)", time.localtime(now))
    parts = [CONTRACT.format(catalogue=catalogue(), lo=INTERVAL_MIN, hi=INTERVAL_MAX, now=now_s)]
    parts.append("=== PLAYBOOK ===\n" + (_body(playbook) or "(no PLAYBOOK.md)\n"))
    gl = [f"--- {name}\n{_body(body)}" for name, body in goals]
    parts.append("=== GOALS ===\n" + ("".join(gl) or "(no goals yet)\n"))
    rl = [f"--- sensor-{name}.json\n{_body(data.decode('utf-8', 'replace'))}" for name, data in readings]
    parts.append("=== SENSOR READINGS ===\n" + ("".join(rl) or "(no sensors)\n"))
    wl = [worker_line(r) + "\n" for r in workers if r.get("role") != "pulse"]
    parts.append("=== WORKER SESSIONS ===\n" + ("".join(wl) or "(no workers)\n"))
    cl = [neutralise(f"- {name}: {body}") + "\n" for name, body in claims]
    parts.append("=== WORKER CLAIMS ===\n" + ("".join(cl) or "(no claims)\n"))
    jl = [neutralise(ln) + "\n" for ln in journal]
    parts.append("=== RECENT JOURNAL ===\n" + ("".join(jl) or "(empty)\n"))
    parts += [f"=== {title} ===\n" + _body(body) for title, body in extra if body.strip()]
    return "\n".join(fit(parts, max_bytes) if max_bytes > 0 else parts)


CUT = "\n[… {n} bytes cut by looop: the prompt is over LOOOP_PROMPT_MAX_BYTES ({cap}) …]\n"


def fit(parts: list[str], cap: int) -> list[str]:
    """Cut the largest sections (never the contract, parts[0]) until the
    prompt fits `cap` bytes; each cut section ends with a visible marker."""
    parts = list(parts)
    size = lambda: sum(len(p.encode()) for p in parts) + len(parts) - 1  # noqa: E731
    for _ in range(len(parts)):
        over = size() - cap
        if over <= 0:
            break
        i = max(range(1, len(parts)), key=lambda k: len(parts[k].encode()))
        raw = parts[i].encode()
        head = raw.index(b"\n") + 1  # the section header stays
        marker = CUT.format(n="{n}", cap=cap)
        keep = max(head, len(raw) - over - len(marker.encode()) - 16)
        body = raw[:keep].decode("utf-8", "ignore")
        parts[i] = body + marker.format(n=len(raw) - len(body.encode()))
    return parts
