"""Backends: where a worker's command runs (SPEC §14, §17).

`base` holds the seam (the `Backend` protocol, `Placement`, the identity
hash); one module per engine implements it. This module is the table that
ties them together — a new engine is a row in `KINDS`:

    prepare(where, cmd, ...)  the worker's argv, built once by the root
    open(spec)                the child's backend object for one spawn
    leftovers(d, wheres)      the next root's sweep of what a dead root left
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from looop.tree.backends.base import LOCAL, Backend, Placement, Stop, data_dir_hash, engine_name
from looop.tree.backends.local import LocalPty

__all__ = ["Backend", "Placement", "Stop", "LOCAL", "data_dir_hash", "engine_name", "KINDS",
           "prepare", "open_backend", "leftovers"]


class Kind(NamedTuple):
    cls: Callable[..., Backend]
    # (where, sid, cmd, prompt_file, h) → argv; the remote kinds wrap `cmd`
    argv: Callable[[Placement, str, str, str, str], tuple[str, ...]]
    # (hosts or [""], h) → what was swept (ids); called by the next root
    leftovers: Callable[[list[str], str], list[str]] | None


def _local_argv(where: Placement, sid: str, cmd: str, prompt_file: str, h: str) -> tuple[str, ...]:
    return ("bash", "-lc", cmd)  # the user's login environment (SPEC §6)


KINDS: dict[str, Kind] = {
    "local": Kind(LocalPty, _local_argv, None),
}


def prepare(where: Placement, sid: str, cmd: str, prompt_file: str, d: str) -> tuple[str, ...]:
    """The worker command's argv for `where`, prepared once (in the root,
    before the fork): the child only runs it."""
    return KINDS[where.kind].argv(where, sid, cmd, prompt_file, data_dir_hash(d))


def open_backend(spec: Any) -> Backend:
    """A fresh backend for one spawn of `spec` (a ChildSpec) in the child."""
    where = getattr(spec, "where", LOCAL)
    return KINDS[where.kind].cls(spec.argv, spec.cwd, dict(spec.env), spec.cols, spec.rows,
                                 spec.onlcr, spec.pass_fds, where=where)


def leftovers(d: str, wheres: list[Placement]) -> list[str]:
    """Sweep every engine in `wheres` of what a previous root of data dir `d`
    left there (found by the data-dir hash). Bounded per engine; returns
    what was removed, as `kind:host:id` strings."""
    h = data_dir_hash(d)
    by_kind: dict[str, set[str]] = {}
    for w in wheres:
        by_kind.setdefault(w.kind, set()).add(w.host)
    gone: list[str] = []
    for kind, hosts in sorted(by_kind.items()):
        k = KINDS.get(kind)
        if k is not None and k.leftovers is not None:
            gone += k.leftovers(sorted(hosts), h)
    return gone
