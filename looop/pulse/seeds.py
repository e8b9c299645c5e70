"""Seeding a fresh data dir, once (SPEC §2): a starter PLAYBOOK whose top
priority is setup, the `setup` goal, the recurring `playbook-daily` goal and
the `today` sensor. Texts ship in `looop/seeds/`.

`.seeded` marks the dir as done: a user who deletes a starter file does not
get it back on the next start. Existing files are never overwritten.
"""
from __future__ import annotations

import os
from importlib import resources

from looop.store.atomic import write_atomic

MARKER = ".seeded"
# package file → (path in the data dir, mode)
SEEDS: dict[str, tuple[str, int]] = {
    "PLAYBOOK.md": ("PLAYBOOK.md", 0o600),   # owner-only, like all of the data dir
    "setup.md": ("goals/setup.md", 0o600),
    "playbook-daily.md": ("goals/playbook-daily.md", 0o600),
    "today.sh": ("sensors/today.sh", 0o700),
}


def seed(d: str) -> list[str]:
    """Write the starter files a fresh data dir lacks; returns the created paths."""
    marker = os.path.join(d, MARKER)
    if os.path.exists(marker):
        return []
    created = []
    pkg = resources.files("looop.seeds")
    for src, (rel, mode) in SEEDS.items():
        dest = os.path.join(d, rel)
        if os.path.exists(dest):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        write_atomic(dest, pkg.joinpath(src).read_bytes(), mode=mode)
        created.append(dest)
    write_atomic(marker, "seeded by looop; delete to seed again\n", fsync=False)
    return created
