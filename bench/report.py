"""results.json → a markdown table: one row per figure, one column per tool,
the §13 target and whether looop met it (judged on figures of the same run)."""
from __future__ import annotations

from typing import Any, Callable, Optional

from stats import fmt

START_LIMITS = {50: 0.2, 200: 0.9}   # SPEC §13 / issue 15: request → N running
STOP_LIMITS = {50: 0.3, 200: 0.5}    # Ctrl-C → tree empty, cooperative programs
SEND_CLI = "the tool's CLI sends `x` → first byte read by the program on the PTY"
COLS = ("looop", "supervisord", "circus", "pm2", "tmux", "script", "floor")
MiB = 1 << 20


def key(r: dict[str, Any]) -> tuple[str, Any, str]:
    """Rows of different tools that answer the same question share a key."""
    f, w = r["figure"], r["what"]
    if f == "list":
        return (f, r["n"], "ls --json" if w.endswith("--json") else "list/status")
    if f == "memory" and w in ("daemon USS", "root USS"):
        return (f, r["n"], "manager process USS (root / daemon)")
    if f == "start" and r["peer"] == "floor" and "real HOME" not in w:
        return (f, r["n"], "request → N running")
    if f == "restart":
        return (f, None, "SIGKILL → running again")
    if f == "capture" and r["peer"] == "floor":
        return (f, r["n"], w.split(" → ")[0])
    return (f, r["n"], w)


def _med(rows: list[dict[str, Any]], peer: str, f: str, n: Any, pred: Callable[[str], bool]) -> Optional[float]:
    for r in rows:
        if r["peer"] == peer and r["figure"] == f and r["n"] == n and pred(r["what"]) and r["stats"]:
            return r["stats"]["median"]
    return None


def targets(res: dict[str, Any]) -> dict[tuple[str, Any, str], tuple[str, str]]:
    """key → (target text, verdict) for the §13 targets, from this run's rows."""
    rows, out = res["rows"], {}
    nmax, grace = max(res["ns"]), res["grace_s"]

    def verdict(v: Optional[float], limit: Optional[float], show: str) -> str:
        if v is None or limit is None:
            return "n/a (not measured)"
        return f"{'met' if v <= limit else 'MISSED'} ({show})"

    big = sorted({n for n in (50, nmax) if n <= nmax})
    for n in big:
        ls = _med(rows, "looop", "list", n, lambda w: w == "looop ls")
        ps = _med(rows, "floor", "list", n, lambda w: "psutil" in w)
        out[("list", n, "list/status")] = (
            "`looop ls` ≤ 1.3× `python -c 'import psutil'`",
            verdict(ls, ps and 1.3 * ps, f"{ls / ps:.2f}×" if ls and ps else ""))
        st = _med(rows, "looop", "start", n, lambda w: True)
        limit = START_LIMITS.get(n)
        if limit is not None:
            out[("start", n, "request → N running")] = (
                f"≤ {limit * 1000:.0f} ms at N={n}", verdict(st, limit, f"{(st or 0) * 1000:.0f} ms"))
        wu = _med(rows, "looop", "memory", n, lambda w: w == "worker child USS")
        out[("memory", n, "worker child USS")] = ("≤ 2.7 MiB USS per worker child", verdict(
            wu, 2.7 * MiB, f"{(wu or 0) / MiB:.2f} MiB"))
    for n in res.get("stop_ns") or [max([r["n"] for r in rows if r["figure"] == "stop"] or [nmax])]:
        so = _med(rows, "looop", "stop", n, lambda w: w == "cooperative")
        limit = STOP_LIMITS.get(n, 0.3)
        out[("stop", n, "cooperative")] = (f"Ctrl-C → empty ≤ {limit * 1000:.0f} ms",
                                           verdict(so, limit, f"{(so or 0) * 1000:.0f} ms"))
        si = _med(rows, "looop", "stop", n, lambda w: w.startswith("ignore"))
        out[("stop", n, f"ignore SIGTERM (grace {grace:g} s)")] = (
            f"≤ grace + 2 s = {grace + 2:g} s (§12)", verdict(si, grace + 2, f"{si or 0:.2f} s"))
    for r in rows:
        if r["figure"] == "idle" and r["what"].startswith("root + ") and r["stats"] and r["n"] == nmax:
            out[key(r)] = ("≤ 0.1 % of one core at N=200 (no polling)",
                           verdict(r["stats"]["median"], 0.1, f"{r['stats']['median']:.3f} %"))
    sl = _med(rows, "looop", "send", 1, lambda w: w.startswith("the tool's CLI"))
    sm = _med(rows, "tmux", "send", 1, lambda w: w.startswith("the tool's CLI"))
    if sl is not None or sm is not None:
        out[("send", 1, SEND_CLI)] = ("≤ 2× `tmux send-keys`", verdict(
            sl, sm and 2 * sm, f"{sl / sm:.1f}× tmux" if sl and sm else ""))
    for what in ("yes (2-byte lines)", "no newlines"):
        n = res["stream_bytes"]
        lc = _med(rows, "looop", "capture", n, lambda w, what=what: w == what)
        sc = _med(rows, "script", "capture", n, lambda w, what=what: w == what)
        out[("capture", n, what)] = ("≤ `script`, byte-exact", verdict(
            lc, sc, f"{lc / sc:.2f}× script" if lc and sc else ""))
    rs = _med(rows, "looop", "restart", None, lambda w: True)
    out[("restart", None, "SIGKILL → running again")] = ("pulse running again ≤ 50 ms", verdict(
        rs, 0.05, f"{(rs or 0) * 1000:.0f} ms"))
    nc = [r for r in rows if r["figure"] == "pulse" and r["what"].startswith("no-change") and r["stats"]
          and r["peer"] == "looop" and "in-process" in r["what"]]
    if nc:
        calls = nc[0]["extra"].get("runner_calls")
        v = nc[0]["stats"]["median"]
        ok = v <= 0.3 and calls == 0
        out[("pulse", 20, nc[0]["what"])] = ("≤ 0.3 s wall, 0 runner calls (the pulse beats in-process)",
                                              f"{'met' if ok else 'MISSED'} ({v * 1000:.0f} ms, {calls} calls)")
    else:
        out[("pulse", 20, "no-change beat, 20 sensors × 0.2 s (in-process one_beat)")] = ("≤ 0.3 s wall, 0 runner calls",
                                                                    "n/a (not measured)")
    return out


def cell(r: dict[str, Any]) -> str:
    if r["failed"]:
        return "failed¹"
    s = fmt(r["stats"], r["unit"])
    if r["figure"] == "list" and r["peer"] != "looop":
        s += f" `{r['what']}`"
    if r["figure"] == "send" and r["extra"].get("cmd"):
        s += f" `{r['extra']['cmd']}`"
    if r["figure"] == "idle" and r["extra"].get("wakes_per_s") is not None:
        s += f", {r['extra']['wakes_per_s']:g} wakes/s"
    if r["peer"] == "floor" and r["figure"] in ("start", "send"):
        s += f" {r['what']}"
    return s


def render(res: dict[str, Any]) -> str:
    rows = res["rows"]
    tg = targets(res)
    table: dict[tuple[str, Any, str], dict[str, str]] = {}
    order: list[tuple[str, Any, str]] = []
    for r in rows:
        k = key(r)
        if k not in table:
            table[k] = {}
            order.append(k)
        c = cell(r)
        table[k][r["peer"]] = c if r["peer"] not in table[k] else table[k][r["peer"]] + "<br>" + c
    for k in tg:
        if k not in table:
            table[k] = {}
            order.append(k)
    cols = [c for c in COLS if any(c in v for v in table.values())] or ["looop"]
    m = res["machine"]
    lines = [
        "# looop benchmark results",
        "",
        f"Run {res['started_at']} · `{res['command']}` · {res['wall_s']} s wall"
        + (" · **interrupted: partial results**" if res["interrupted"] else ""),
        "",
        f"Machine: {m.get('cores')} cores ({m.get('cpu', '?')}), kernel {m.get('kernel')}, "
        f"Python {m.get('python')}, load average at start {tuple(round(x, 2) for x in m.get('loadavg_start', ()))}"
        f" / end {tuple(round(x, 2) for x in m.get('loadavg_end', ()))}. Shared box: other work ran concurrently. "
        f"looop at commit {m.get('git_head', '?')} ({m.get('looop_files_modified', '?')} files under looop/ "
        "modified in the work tree at start).",
        "",
        "Tools: " + ", ".join(f"{k} {v['version'].removeprefix(k + ' ')}" if "version" in v else f"{k} skipped ({v['skipped']})"
                              for k, v in res["peers"].items()),
        "",
        f"Cells: median [min–max] of {res['reps']} reps ({res['stream_reps']} for the streams); memory: "
        "one sample per process (worker child USS: median [min–max] over the children). "
        "Managed program `sleep` unless stated.",
        "",
        "Every tool runs with an empty HOME, so `bash -l` sources no dotfiles (bench/FINDINGS.md §0); "
        "start = request → all N programs running (/proc); stop = the tool's shutdown → every pid gone; "
        "looop is driven through its control socket (start) and SIGINT to its process group (stop). "
        "See bench/README.md for what each figure times.",
        "",
        "| figure | N | what | " + " | ".join(cols) + " | §13 target | looop |",
        "| --- | --- | --- | " + " | ".join("---" for _ in cols) + " | --- | --- |",
    ]
    for k in order:
        t, v = tg.get(k, ("", ""))
        n = "" if k[1] is None else (f"{k[1] / 1e6:g} MB" if k[0] == "capture" else str(k[1]))
        lines.append(f"| {k[0]} | {n} | {k[2]} | " + " | ".join(table[k].get(c, "") for c in cols)
                     + f" | {t} | {v} |")
    failed = [r for r in rows if r["failed"]]
    if failed:
        lines += ["", "¹ Failed figures:", ""]
        lines += [f"- {r['figure']} N={r['n']} {r['peer']} ({r['what']}): {r['failed']}" for r in failed]
    extra = [r for r in rows if r["extra"].get("runner_calls") is not None]
    if extra:
        lines += ["", "Runner calls: " + "; ".join(f"{r['what']}: {r['extra']['runner_calls']}" for r in extra)]
    if res["leftovers"] or res["teardown_notes"]:
        notes = res["teardown_notes"] + res["leftovers"]
        lines += ["", f"Teardown: the bench's own sweep had to kill {len(notes)} processes "
                  "(e.g. programs that survived a peer's stop); first: " + "; ".join(notes[:3])]
    return "\n".join(lines) + "\n"
