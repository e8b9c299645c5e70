"""Backends: where a worker's command runs (SPEC §14, §17).

`base` holds the seam (the `Backend` protocol, `Placement`, the identity
hash); one module per engine implements it. This module is the table that
ties them together — a new engine is a row in `KINDS`:

    place(cfg, on, sid, d, load)   where a new worker runs (the root, at start)
    prepare(where, sid, cmd, ...)  its argv, built once by the root
    open_backend(spec, previous)   the child's backend object for one spawn
    leftovers(d, wheres)           the next root's sweep of what a dead root left
    release(d, {sid: where})       `prune --remote`: end what sessions left on their engines
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, NamedTuple

from looop.errors import BadInput
from looop.tree.backends import slurm, ssh
from looop.tree.backends.base import LOCAL, Backend, Placement, Stop, data_dir_hash, engine_name
from looop.tree.backends.local import LocalPty

__all__ = ["Backend", "Placement", "Stop", "LOCAL", "data_dir_hash", "engine_name", "KINDS",
           "place", "prepare", "open_backend", "placements_left", "leftovers", "survey",
           "placements", "placed", "release"]


class Kind(NamedTuple):
    cls: Callable[..., Backend]
    # (where, sid, cmd, prompt_file, h) → argv; the remote kinds wrap `cmd`
    argv: Callable[[Placement, str, str, str, str], tuple[str, ...]]
    # (placements, h) → what was swept; called by the next root
    leftovers: Callable[[list[Placement], str], list[str]] | None
    # (placements, h) → ({sid: identity} of what lives on the engine, the
    # engines (Placement.engine) that did not answer) — for ls/prune --remote
    survey: Callable[[list[Placement], str], tuple[dict[str, dict[str, Any]], set[str]]] | None
    # ([(placement, sid)], h) → {sid: what was removed} for each sid the engine answered for
    release: Callable[[list[tuple[Placement, str]], str], dict[str, list[str]]] | None


def _local_argv(where: Placement, sid: str, cmd: str, prompt_file: str, h: str) -> tuple[str, ...]:
    return ("bash", "-lc", cmd)  # the user's login environment (SPEC §6)


KINDS: dict[str, Kind] = {
    "local": Kind(LocalPty, _local_argv, None, None, None),
    "ssh": Kind(ssh.SshPty, ssh.argv, ssh.leftovers, ssh.survey, ssh.release),
    "slurm": Kind(slurm.SrunPty, slurm.argv, slurm.leftovers, slurm.survey, slurm.release),
}


def place(cfg: Any, on: str | None, sid: str, d: str, load: Counter) -> Placement:
    """Where a new worker runs: `on` ("local", "ssh:HOST", "slurm") over the
    runner's "backend" object. ssh hosts are taken round-robin by load (the
    root's live workers per host, `load`), capped by "max_workers_per_host".
    Raises BadInput with a one-line reason."""
    cfg = dict(cfg or {})
    if not isinstance(cfg, dict):
        raise BadInput("a runner's 'backend' must be an object")
    kind = str(cfg.get("kind") or "local")
    hosts = cfg.get("hosts") or []
    if on:
        kind, _, host = on.partition(":")
        if kind == "ssh":
            if not host:
                raise BadInput("--on ssh:HOST needs a host")
            hosts = [host]
        elif host:
            raise BadInput(f"--on {on}: only ssh takes a host")
    if kind not in KINDS:
        raise BadInput(f"unknown backend {kind!r} (known: {', '.join(KINDS)})")
    h = data_dir_hash(d)
    name = engine_name(sid, h)
    if kind == "local":
        return LOCAL
    if kind == "ssh":
        if not isinstance(hosts, list) or not hosts or not all(isinstance(x, str) and x for x in hosts):
            raise BadInput("an ssh backend needs \"hosts\": a non-empty list of host names")
        cap = int(cfg.get("max_workers_per_host") or 0)
        free = [x for x in hosts if not cap or load[x] < cap]
        if not free:
            raise BadInput(f"every ssh host runs {cap} workers (max_workers_per_host)")
        host = min(free, key=lambda x: (load[x], hosts.index(x)))  # round-robin by load
        return Placement(kind="ssh", host=host, name=name, opts=_strs(cfg.get("options"), "options"),
                         pidns=bool(cfg.get("pidns", True)),
                         max_per_host=max(1, int(cfg.get("max_per_host") or 8)))
    return Placement(kind=kind, name=name, opts=slurm.srun_args(cfg))


def _strs(v: Any, what: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadInput(f"backend {what!r} must be a list of strings")
    return tuple(v)


def prepare(where: Placement, sid: str, cmd: str, prompt_file: str, d: str) -> tuple[str, ...]:
    """The worker command's argv for `where`, prepared once (in the root,
    before the fork): the child only runs it."""
    return KINDS[where.kind].argv(where, sid, cmd, prompt_file, data_dir_hash(d))


def open_backend(spec: Any, previous: Backend | None = None) -> Backend:
    """A fresh backend for one spawn of `spec` (a ChildSpec) in the child;
    `previous` is the one that just ended, when it asked to be retried."""
    where = getattr(spec, "where", LOCAL)
    again = previous.again() if previous is not None and previous.retry() else {}  # type: ignore[attr-defined]
    return KINDS[where.kind].cls(spec.argv, spec.cwd, dict(spec.env), spec.cols, spec.rows,
                                 spec.onlcr, spec.pass_fds, where=where, **again)


def survey(d: str, wheres: list[Placement]) -> tuple[dict[tuple[str, str], dict[str, Any]], set[str]]:
    """Ask every engine in `wheres` what of data dir `d` lives there:
    ((engine, sid) → {"engine", "host", "id"}, the engines that did not
    answer — ssh:HOST, slurm — of whose sessions nothing is known). Bounded
    per engine."""
    h = data_dir_hash(d)
    by_kind: dict[str, list[Placement]] = {}
    for w in wheres:
        by_kind.setdefault(w.kind, []).append(w)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    silent: set[str] = set()
    for kind, ws in sorted(by_kind.items()):
        k = KINDS.get(kind)
        if k is not None and k.survey is not None:
            got, mute = k.survey(ws, h)
            found.update({(kind, sid): ident for sid, ident in got.items()})
            silent |= mute
    return found, silent


# Session states after which an engine side may still run: a dead root left
# it starting/running, or its child vanished (`dead`: nobody saw the engine
# side end; `exited`/`killed` are the child's own word that it did).
UNSETTLED = ("starting", "running", "dead")


def placements_left(d: str) -> list[Placement]:
    """Where the sessions whose engine side may outlive them ran, if not
    here: the engines the next root must sweep (none: no round trip)."""
    from looop.store import sessions
    return placements(d, [sid for sid in sessions.list_ids(d)
                          if sessions.read_status(d, sid).get("state") in UNSETTLED])


def placements(d: str, sids: list[str]) -> list[Placement]:
    """The remote placements of sessions `sids` (from meta.json)."""
    return list(placed(d, sids).values())


def placed(d: str, sids: list[str]) -> dict[str, Placement]:
    """sid → remote placement (from meta.json) of those of `sids` that ran on an engine."""
    from looop.store import sessions
    out = {}
    for sid in sids:
        w = Placement.from_meta(sessions.read_meta(d, sid).get("where"))
        if w.kind != "local":
            out[sid] = w
    return out


def release(d: str, where: dict[str, Placement]) -> dict[str, list[str]]:
    """End whatever sessions `where` (sid → placement) of data dir `d` left
    on their engines, found by the data dir's hash and each session's name
    (`prune --remote`). Bounded per engine. sid → what was removed (maybe
    nothing) for every sid its engine answered for; a sid absent from the
    result is unknown (its engine did not answer)."""
    h = data_dir_hash(d)
    by_kind: dict[str, list[tuple[Placement, str]]] = {}
    for sid, w in sorted(where.items()):
        by_kind.setdefault(w.kind, []).append((w, sid))
    out: dict[str, list[str]] = {}
    for kind, items in sorted(by_kind.items()):
        k = KINDS.get(kind)
        if k is not None and k.release is not None:
            out.update(k.release(items, h))
    return out


def leftovers(d: str, wheres: list[Placement]) -> list[str]:
    """Sweep every engine in `wheres` of what a previous root of data dir `d`
    left there (found by the data-dir hash). Bounded per engine; returns
    what was removed, as `kind:host:id` strings."""
    h = data_dir_hash(d)
    by_kind: dict[str, list[Placement]] = {}
    for w in wheres:
        by_kind.setdefault(w.kind, []).append(w)
    gone: list[str] = []
    for kind, ws in sorted(by_kind.items()):
        k = KINDS.get(kind)
        if k is not None and k.leftovers is not None:
            gone += k.leftovers(ws, h)
    return gone
