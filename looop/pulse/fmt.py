"""`looop _fmt`: pi's `--mode json` event stream → friendly lines + cost rows.

Only `message_end` events of assistant messages matter: their text, their
tool calls, and `usage.cost.total`, recorded to the ledger as one row per
message (a killed run still leaves what it spent). Lines that are not JSON
pass through unchanged; unknown events are ignored, so newer pi versions
degrade softly.
"""
from __future__ import annotations

from typing import IO, Any, Mapping

from looop.errors import BadInput
from looop.store import cost, jsonio
from looop.store.readfile import describe


def _blocks(msg: dict[str, Any]) -> list[str]:
    out = []
    content = msg.get("content")
    for b in content if isinstance(content, list) else []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text" and str(b.get("text", "")).strip():
            out.append(str(b["text"]).strip())
        elif b.get("type") == "toolCall":
            out.append(f"→ {b.get('name', 'tool')}")
    return out


def _cost_of(msg: dict[str, Any]) -> float:
    usage = msg.get("usage") if isinstance(msg.get("usage"), dict) else {}
    c = usage.get("cost")
    total = c.get("total") if isinstance(c, dict) else c
    try:
        return cost.parse_usd(total) if total is not None else 0.0
    except BadInput:
        return 0.0


def format_stream(inp: IO[bytes], out: IO[str], d: str, env: Mapping[str, str]) -> float:
    """Blocks until EOF on `inp`; returns the total recorded."""
    kind, sid, runner = (env.get("LOOOP_COST_KIND") or "tick", env.get("LOOOP_COST_ID") or "unknown",
                         env.get("LOOOP_COST_RUNNER") or "pi")
    spent, unrecorded = 0.0, 0.0
    for raw in inp:
        try:
            ev = jsonio.loads(raw)
        except ValueError:
            out.write(raw.decode("utf-8", "replace"))
            continue
        if not isinstance(ev, dict) or ev.get("type") != "message_end":
            continue
        msg = ev.get("message")
        if not isinstance(msg, dict) or msg.get("role") != "assistant":
            continue
        for line in _blocks(msg):
            out.write(line + "\n")
        usd = _cost_of(msg)
        if usd > 0:
            try:
                cost.record(d, kind, sid, runner, usd)
            except OSError as e:  # metering must not break the beat, nor go unsaid
                if not unrecorded:
                    out.write(f"looop _fmt: cost not recorded: {describe(e)} in {d} "
                              "— this run's spend is not in `looop cost`\n")
                unrecorded += usd
            spent += usd
        out.flush()
    if spent:
        gap = f" ({cost.fmt_usd(unrecorded)} of it unmetered)" if unrecorded else ""
        out.write(f"cost {cost.fmt_usd(spent)}{gap}\n")
    return spent
