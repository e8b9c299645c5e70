"""Medians with min–max, and how they are printed."""
from __future__ import annotations

import statistics
from typing import Any, Sequence


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """{median, min, max, n, samples} of a list of numbers (seconds or bytes)."""
    xs = [float(x) for x in samples]
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs),
            "samples": xs}


def fmt_time(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def fmt_pct(p: float) -> str:
    return f"{p:.3f} %"


def fmt_bytes(b: float) -> str:
    if abs(b) >= 1 << 20:
        return f"{b / (1 << 20):.2f} MiB"
    return f"{b / 1024:.0f} KiB"


def fmt(summ: dict[str, Any] | None, unit: str = "s") -> str:
    """`median [min–max]` in ms/s or KiB/MiB."""
    if not summ:
        return "—"
    f = fmt_time if unit == "s" else fmt_pct if unit == "%" else fmt_bytes
    if summ["n"] == 1 or summ["min"] == summ["max"]:
        return f(summ["median"])
    lo, hi = f(summ["min"]), f(summ["max"])
    return f"{f(summ['median'])} [{lo.split()[0]}–{hi}]" if lo.split()[1] == hi.split()[1] \
        else f"{f(summ['median'])} [{lo}–{hi}]"


def rep_table(rows: Sequence[dict[str, float]]) -> str:
    """`key median [min–max]; …` over reps that each measured the same keys
    (the per-source / per-engine summary line of the A/B scripts)."""
    cells = []
    for k in rows[0]:
        v = [r[k] for r in rows]
        cells.append(f"{k} {statistics.median(v):.2f} [{min(v):.2f}–{max(v):.2f}]")
    return "; ".join(cells)


def interleaved(keys: Sequence[str], reps: int, one: Any) -> dict[str, list[dict[str, float]]]:
    """`one(key)` for every key, rep by rep (interleaved: a load spike hits
    every key alike); each rep's figures printed as they come."""
    res: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
    for rep in range(reps):
        for k in keys:
            r = one(k)
            res[k].append(r)
            print(f"rep {rep} {k}: " + " ".join(f"{n}={v:.2f}" for n, v in r.items()), flush=True)
    return res
