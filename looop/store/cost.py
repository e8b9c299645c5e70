"""Owner of `cost.jsonl`: the spend ledger, `{"ts","kind","id","runner","cost_usd"}`.

One row per metered call, appended with a single write. Only positive, finite
amounts are recorded (a runner reporting 0 or garbage costs nothing). Days
are local days: "today" is what the user's clock says.
"""
from __future__ import annotations

import math
import os
import time
from datetime import datetime
from typing import Any, Iterator

from looop.errors import BadInput
from looop.store import jsonio
from looop.store.atomic import append_line
from looop.store.sessions import rfc3339

NAME = "cost.jsonl"


def path(d: str) -> str:
    return os.path.join(d, NAME)


def parse_usd(raw: Any) -> float:
    """A cost amount; BadInput unless it is a finite number."""
    try:
        usd = float(raw)
    except (TypeError, ValueError):
        raise BadInput(f"cost {raw!r} is not a number") from None
    if not math.isfinite(usd):
        raise BadInput(f"cost {raw!r} is not a finite number")
    return usd


def record(d: str, kind: str, sid: str, runner: str, usd: float) -> bool:
    """Append one row if `usd` > 0; returns whether a row was written."""
    usd = parse_usd(usd)
    if usd <= 0:
        return False
    row = {"ts": rfc3339(), "kind": kind, "id": sid, "runner": runner, "cost_usd": usd}
    append_line(path(d), jsonio.dumpb(row))
    return True


def rows(d: str) -> Iterator[dict[str, Any]]:
    """Every well-formed row; a torn or foreign line is skipped, never fatal."""
    from looop.store.readfile import NotRegular, open_regular
    try:
        f = os.fdopen(open_regular(path(d), follow=True), "rb")
    except (FileNotFoundError, NotRegular):
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                continue  # torn: a row is only whole with its newline
            try:
                row = jsonio.loads(line)
                if isinstance(row, dict):
                    row["cost_usd"] = parse_usd(row.get("cost_usd"))
                    yield row
            except (ValueError, BadInput):
                continue


def local_day(ts: str) -> str:
    """RFC 3339 UTC stamp → local YYYY-MM-DD."""
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return ""
    return dt.astimezone().strftime("%Y-%m-%d")


def today() -> str:
    return time.strftime("%Y-%m-%d")


def total(d: str, day: str | None = None, sid: str | None = None) -> float:
    """Sum of the ledger, optionally for one local day and/or one id."""
    return sum(r["cost_usd"] for r in rows(d)
               if (day is None or local_day(r.get("ts", "")) == day)
               and (sid is None or r.get("id") == sid))


def summary(d: str, day: str | None = None) -> dict[str, Any]:
    """{"total_usd", "rows", "by_kind": {k: usd}, "by_runner": {r: usd},
    "by_session": {id: usd}} — every worker session by its id, the pulse's
    own decide calls (kind `tick`, one id per run) together as `(ticks)`."""
    out: dict[str, Any] = {"total_usd": 0.0, "rows": 0, "by_kind": {}, "by_runner": {}, "by_session": {}}
    for r in rows(d):
        if day is not None and local_day(r.get("ts", "")) != day:
            continue
        usd = r["cost_usd"]
        out["total_usd"] += usd
        out["rows"] += 1
        for key, field in (("by_kind", "kind"), ("by_runner", "runner")):
            name = str(r.get(field) or "?")
            out[key][name] = out[key].get(name, 0.0) + usd
        sid = "(ticks)" if r.get("kind") == "tick" else str(r.get("id") or "?")
        out["by_session"][sid] = out["by_session"].get(sid, 0.0) + usd
    return out


def fmt_usd(usd: float) -> str:
    """`$` rounded to 4 places, trailing zeros trimmed: $0.0123, $2, $0."""
    s = f"{round(usd, 4):.4f}".rstrip("0").rstrip(".")
    return "$" + ("0" if s in ("-0", "") else s)
