"""`looop why [<run-id>|last] [--json]`: why the loop made a move — what
changed since the decided beat before it, the move as parsed, the gate it
went through, what ran and how it ended (runs/<run-id>/why.json)."""
from __future__ import annotations

import os

from looop.cli.args import parser
from looop.errors import UsageError
from looop.store import paths


def cmd_why(argv: list[str]) -> int:
    p = parser("why", "Explain a decided beat: the inputs that changed since the last decided "
                      "beat, the decision as parsed, the gate (caps, tripwire), what ran, the outcome.")
    p.add_argument("run", nargs="?", default="last", help="a run id (journal lines end with it), or last")
    p.add_argument("--json", action="store_true", help="the record as one JSON object")
    a = p.parse_args(argv)
    from looop.pulse.why import change_line
    from looop.store import jsonio, whyrec
    d = paths.data_dir()
    rid = whyrec.latest(d) if a.run == "last" else paths.check_id(a.run, "run id")
    rec = whyrec.read(d, rid) if rid else None
    if rec is None and rid and os.path.exists(whyrec.path(d, rid)):  # written atomically: edited or damaged
        raise UsageError(f"the record of run {rid} does not parse: {whyrec.path(d, rid)}")
    if rec is None:
        raise UsageError("no decided beat recorded yet" if rid is None or a.run == "last"
                         else f"no record for run {rid!r} (kept: the newest LOOOP_RUNS_KEEP runs)")
    if a.json:
        print(jsonio.dumps(rec))
        return 0
    print(f"run {rec['run']} · {rec.get('at')}")
    changes = rec.get("changes") or []
    print("changed since the last decided beat:" + ("" if changes else " nothing (a retry or a timer)"))
    for c in changes:
        print("  " + change_line(c))
    dec = rec.get("decision")
    if dec:
        fields = {k: v for k, v in dec.items() if k not in ("action", "journal", "next_interval_s")}
        print(f"decision: {dec['action']} {jsonio.dumps(fields)}"
              + (f" · journal: {dec['journal']}" if dec.get("journal") else ""))
    else:
        print("decision: none")
    g = rec.get("gate") or {}
    print(f"gate: {g.get('decide_budget')} · spend {g.get('spend')} · tripwire {g.get('tripwire')}"
          f" · validation {g.get('validation')}")
    ex = rec.get("executed")
    if ex:
        print(f"executed: {ex.get('summary') or ex.get('action') + ' (failed)'}")
    o = rec.get("outcome") or {}
    print(f"outcome: {o.get('kind')} · {o.get('msg')}")
    return 0
