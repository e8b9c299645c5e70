"""`looop prune [--remote] [--dry-run]`: remove finished session dirs, and
with --remote first release orphaned remote sessions (SPEC §17).

A session dir is the only record of where a remote session ran, so a dir
whose engine side may still live is never removed blind: without a root, a
remote session whose child never said it ended (dead, or still
starting/running on disk: the child or the root vanished) is kept — for
`--remote`, which ends it on its engine (identity: the data dir's hash and
the session's name) and then removes it, or for the next root's sweep.
"""
from __future__ import annotations

import sys
from typing import Any

from looop.cli.args import parser
from looop.store import paths


def plan(rs: list[dict[str, Any]], stale: set[str], remote: set[str], orphans: set[str],
         answered: set[str], root: bool, ask: bool) -> tuple[list[str], list[str], list[str]]:
    """Pure: (release, prune, keep) from the worker rows `rs`, the sids
    whose child never said it ended (`stale`), those placed on an engine
    (`remote`), those the engines list though their child is gone
    (`orphans`), those whose engine answered a release (`answered`) and
    whether the engines are asked (`ask`: --remote). A running root already
    swept its stale sessions when it started."""
    finished = [r["id"] for r in rs if r["role"] == "worker" and not r["alive"]]
    release = sorted(s for s in finished if ask and (s in orphans or (s in stale and s in remote and not root)))
    keep = [s for s in finished if s in remote and ((s in orphans and s not in answered)
                                                    or (s in stale and not root and s not in answered))]
    return release, [s for s in finished if s not in keep], keep


def cmd_prune(argv: list[str]) -> int:
    from looop.errors import NotRunning
    from looop.registry import rows
    from looop.store import sessions
    from looop.tree import backends, control
    p = parser("prune", "Remove every finished session dir now.")
    p.add_argument("--remote", action="store_true",
                   help="first ask the engines and release orphaned remote sessions (their engine "
                        "side outlived the local child): ssh sweeps their marked processes, Slurm "
                        "cancels their jobs")
    p.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    a = p.parse_args(argv)
    d = paths.data_dir()
    rs = [r for r in rows(d) if r["role"] == "worker"]
    root = _root_alive(d)
    where = backends.placed(d, [r["id"] for r in rs if not r["alive"]])
    # no final word from its child (it vanished, or its root did): its engine side may live
    stale = {s for s in where if sessions.read_status(d, s).get("state") in backends.UNSETTLED}
    orphans: set[str] = set()
    if a.remote and where:
        found, silent = backends.survey(d, list(where.values()))
        # an engine that did not answer may still run what never said it
        # ended: as orphans, released if it answers now, else kept (not pruned blind)
        orphans = {s for s, w in where.items() if (w.kind, s) in found or (w.engine in silent and s in stale)}
        if silent:
            from looop.cli.ls import silent_line
            print(f"looop prune: {silent_line(silent)}", file=sys.stderr)
    todo, gone, keep = plan(rs, stale, set(where), orphans, set(), root, a.remote)
    if a.dry_run:  # as if every engine answered
        todo, gone, keep = plan(rs, stale, set(where), orphans, set(todo), root, a.remote)
    released: dict[str, list[str]] = {}
    if not a.dry_run:
        if a.remote and todo:
            released = backends.release(d, {s: where[s] for s in todo})
        todo, gone, keep = plan(rs, stale, set(where), orphans, set(released), root, a.remote)
        try:
            if not root:
                raise NotRunning(d)
            # the root knows what is alive, including sessions still starting
            gone = control.call(d, "prune", keep=keep)["pruned"]
        except NotRunning:
            for sid in gone:
                sessions.remove(d, sid)
    print(summary(a.dry_run, sorted(orphans) if a.remote else None, released, gone, keep))
    return 0


def _root_alive(d: str) -> bool:
    from looop.errors import NotRunning
    from looop.tree import control
    try:
        control.call(d, "ping")
    except NotRunning:
        return False
    return True


def summary(dry: bool, orphans: list[str] | None, released: dict[str, list[str]], gone: list[str],
            keep: list[str]) -> str:
    """The one line prune prints (`orphans` is None without --remote)."""
    def ids(xs: list[str]) -> str:
        return f" ({', '.join(xs)})" if xs else ""
    parts = []
    if orphans is not None:
        done = orphans if dry else [s for s in orphans if s in released]
        parts.append(f"{'would release' if dry else 'released'} {len(done)} orphaned remote sessions{ids(done)}")
    parts.append(f"{'would prune' if dry else 'pruned'} {len(gone)} sessions{ids(gone)}")
    if keep:
        parts.append(f"{'would keep' if dry else 'kept'} {len(keep)} remote sessions whose engine may "
                     f"still run them{ids(keep)}: `looop prune --remote` or the next `looop` releases them")
    return "; ".join(parts)
