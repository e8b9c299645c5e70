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


def test_place_ssh_round_robin_by_load_with_a_cap(tmp_path):
    from collections import Counter

    import pytest

    from looop.errors import BadInput
    d = str(tmp_path)
    cfg = {"kind": "ssh", "hosts": ["h1", "h2"], "max_workers_per_host": 2, "options": ["-F", "c"]}
    load: Counter = Counter()
    got = []
    for i in range(4):
        w = backends.place(cfg, None, f"w{i}", d, load)
        load[w.host] += 1
        got.append(w.host)
    assert got == ["h1", "h2", "h1", "h2"]
    assert w.opts == ("-F", "c") and w.name == f"looop-w3-{data_dir_hash(d)}"
    with pytest.raises(BadInput, match="max_workers_per_host"):
        backends.place(cfg, None, "w5", d, load)
    assert backends.place(cfg, "ssh:h9", "x", d, Counter()).host == "h9"
    assert backends.place(cfg, "local", "x", d, Counter()) == backends.LOCAL
    assert backends.place({"kind": "slurm", "partition": "p"}, None, "x", d, Counter()).opts[-2:] == ("-p", "p")
    for bad, on in (({"kind": "ssh"}, None), ({}, "k8s"), ({}, "ssh:"), ({}, "slurm:x")):
        with pytest.raises(BadInput):
            backends.place(bad, on, "x", d, Counter())


def test_ls_remote_marks_only_rows_whose_local_child_is_gone():
    from looop.cli.ls import mark_orphans
    ident = {"engine": "slurm", "host": "", "id": "9"}
    rs = [{"id": "a", "alive": False, "state": "dead", "remote": {"engine": "slurm", "host": "", "id": "9"}},
          {"id": "b", "alive": True, "state": "running", "remote": {"engine": "slurm", "host": "", "id": "8"}},
          {"id": "c", "alive": False, "state": "exited", "remote": None}]
    found = {("slurm", "a"): ident, ("slurm", "b"): ident}
    assert [r["state"] for r in mark_orphans(rs, found)] == ["orphaned", "running", "exited"]


def test_prune_plan_keeps_what_only_the_engine_knows_about():
    from looop.cli.prune import plan, summary
    rs = [{"id": i, "role": "worker", "alive": i == "live"} for i in ("live", "loc", "orph", "stale", "ended")]
    remote = {"orph", "stale", "ended"}
    # no root, no --remote: the stale remote session's dir is the next root's record
    assert plan(rs, {"stale"}, remote, set(), set(), root=False, ask=False) == ([], ["loc", "orph", "ended"], ["stale"])
    # --remote: release orphans and stale ones; what the engine did not answer for stays
    assert plan(rs, {"stale"}, remote, {"orph"}, set(), root=False, ask=True) == \
        (["orph", "stale"], ["loc", "ended"], ["orph", "stale"])
    assert plan(rs, {"stale"}, remote, {"orph"}, {"orph", "stale"}, root=False, ask=True) == \
        (["orph", "stale"], ["loc", "orph", "stale", "ended"], [])
    # a running root swept its stale sessions when it started
    assert plan(rs, {"stale"}, remote, set(), set(), root=True, ask=True) == ([], ["loc", "orph", "stale", "ended"], [])
    assert summary(False, None, {}, ["a"], []) == "pruned 1 sessions (a)"
    assert summary(True, ["o"], {}, [], []) == "would release 1 orphaned remote sessions (o); would prune 0 sessions"
    assert summary(False, ["o", "p"], {"o": []}, ["o"], ["p"]).startswith(
        "released 1 orphaned remote sessions (o); pruned 1 sessions (o); kept 1 remote sessions")
