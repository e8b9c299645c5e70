"""The backend seam as data: identity hash, placements, the kinds table."""
from __future__ import annotations

import os

from looop.tree import backends
from looop.tree.backends import Placement, data_dir_hash, engine_name


def test_hash_is_stable_per_real_data_dir_and_differs_between_dirs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    os.symlink(a, tmp_path / "link")
    h = data_dir_hash(str(a))
    assert len(h) == 10 and all(c in "0123456789abcdef" for c in h)
    assert data_dir_hash(str(tmp_path / "link")) == h  # realpath
    assert data_dir_hash(str(b)) != h
    assert engine_name("w1", h) == f"looop-w1-{h}"


def test_placement_round_trips_through_meta():
    p = Placement(kind="slurm", name="looop-w-0123456789", opts=("-p", "debug"))
    assert Placement.from_meta(p.as_meta()) == p
    assert Placement.from_meta(None) == backends.LOCAL
    assert Placement.from_meta({}) == backends.LOCAL


def test_local_argv_is_a_login_shell():
    assert backends.prepare(backends.LOCAL, "w", "echo hi", "/p", "/tmp/x") == ("bash", "-lc", "echo hi")


def test_every_kind_implements_the_protocol():
    for name in ("spawn", "read", "write", "resize", "signal", "wait", "sweep", "identity",
                 "retry", "close"):
        for kind in backends.KINDS.values():
            assert callable(getattr(kind.cls, name)), (kind, name)
