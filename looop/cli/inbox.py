"""`looop inbox [--json] [--watch]`: everything that needs someone, with the
command that answers it (the shape is looop.inbox's)."""
from __future__ import annotations

from typing import Any

from looop.cli.args import duration, parser
from looop.cli.ls import redraw
from looop.store import paths


def _age(s: int) -> str:
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h" if s < 172800 \
        else f"{s // 86400}d"


def table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "inbox empty — nothing needs you"
    head = ["KIND", "ID", "AGE", "TEXT"]
    body = [[it["kind"], it["id"], _age(it["age_s"]), it["text"]] for it in items]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head[:3], widths)) + "  " + head[3]]
    for row, it in zip(body, items):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
        lines.append(" " * (sum(widths) + 6) + "→ " + it["command"])
    return "\n".join(lines)


def cmd_inbox(argv: list[str]) -> int:
    p = parser("inbox", "Every item that needs someone: pending asks (stranded when the asker "
                        "is gone), flags, asking/limited/stuck workers, failed workers, a reached "
                        "budget — each with its age and the command that answers it.")
    p.add_argument("--json", action="store_true",
                   help='a JSON array of {"kind","id","session","age_s","text","command"}')
    p.add_argument("-w", "--watch", action="store_true", help="redraw in place until Ctrl-C")
    p.add_argument("--interval", default="2s", help="redraw interval for --watch (default 2s)")
    a = p.parse_args(argv)
    every = duration(a.interval)
    from looop.inbox import collect
    d = paths.data_dir()

    def render() -> str:
        items = collect(d)
        if a.json:
            from looop.store import jsonio
            return jsonio.dumps(items)
        return table(items)

    return redraw(render, a.watch, every)
