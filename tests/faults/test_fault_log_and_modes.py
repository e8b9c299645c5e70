"""Items 6, 7 and 11 (SIGXFSZ): output.log deleted or moved is replaced at
once and an unwritable one is reported; the data dir is owner-only, also when
it existed with looser modes; commands start with default dispositions."""
from __future__ import annotations

import os
import stat
import time

import pytest

from conftest import Tree, run, wait_until
from faultkit import row

pytestmark = pytest.mark.faults
TICKER = "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.05; done"


def log_text(sid: str) -> str:
    return run("log", sid).stdout


def test_a_deleted_or_moved_log_is_replaced_and_an_unwritable_one_reported(tree, tmp_path):
    tree.start("w", TICKER)
    log = os.path.join(tree.d, "sessions", "w", "output.log")
    wait_until(lambda: "line3" in log_text("w"), 10, "output in the log")
    os.unlink(log)  # what a user does on a full disk
    t0 = time.monotonic()
    wait_until(lambda: os.path.exists(log) and "line" in log_text("w"), 5, "output after rm output.log")
    print(f"output readable with `looop log` {time.monotonic() - t0:.2f}s after rm output.log")
    os.rename(log, str(tmp_path / "moved.log"))
    wait_until(lambda: os.path.exists(log) and "line" in log_text("w"), 5, "output after mv output.log")
    os.unlink(log)
    os.mkdir(log)  # nothing can be written there now
    r = wait_until(lambda: (x := row("w")) and x.get("log_error") and x, 5, "log_error in ls")
    assert "output.log" in r["log_error"] and r["alive"]
    assert "! output.log" in run("status").stdout
    os.rmdir(log)
    wait_until(lambda: os.path.isfile(log) and not row("w").get("log_error"), 5, "the log back")
    run("kill", "w", check=True)


def loose(p: str) -> bool:
    return bool(stat.S_IMODE(os.lstat(p).st_mode) & 0o077)


def test_a_pre_existing_0755_data_dir_is_made_owner_only(data_dir, tmp_path):
    d = data_dir
    os.makedirs(os.path.join(d, "prompts"), mode=0o755)
    os.makedirs(os.path.join(d, "reports"), mode=0o755)
    os.chmod(d, 0o755)
    for rel in ("prompts/old.md", "events.jsonl", "reports/mine.md"):
        with open(os.path.join(d, rel), "w") as f:
            f.write("x\n")
        os.chmod(os.path.join(d, rel), 0o644)
    old = os.umask(0o022)
    try:
        t = Tree(d)
        t.start("w", f"touch {tmp_path}/made-by-worker; exec cat")
        wait_until(lambda: os.path.exists(tmp_path / "made-by-worker"), 10, "the worker's file")
        run("kill", "w", check=True)
        t.stop()
    finally:
        os.umask(old)
    bad = []
    for root, dirs, files in os.walk(d):
        if root == d:
            dirs.remove("reports")  # the user's: never touched
        bad += [os.path.join(root, n) for n in dirs + files if loose(os.path.join(root, n))]
    assert not loose(d) and not bad, bad
    assert stat.S_IMODE(os.stat(os.path.join(d, "reports", "mine.md")).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "made-by-worker").st_mode) == 0o644  # the user's umask
    assert t.output().count("owner-only") == 1, t.output()
    for rel in ("prompts/w.md", "sessions/w/meta.json", "sessions/w/status.json",
                "sessions/w/output.log", "events.jsonl"):
        assert stat.S_IMODE(os.stat(os.path.join(d, rel)).st_mode) == 0o600, rel


def test_the_tightening_line_counts_one_entry_in_the_singular(data_dir):
    """A new user's empty `mkdir` data dir (0755) is the one entry tightened."""
    os.makedirs(data_dir, mode=0o755)
    os.chmod(data_dir, 0o755)
    t = Tree(data_dir)
    t.stop()
    assert f"made {data_dir} owner-only: 1 entry had group/other access (the dir was 0755)" in t.output(), \
        t.output()


def test_worker_commands_start_with_sigxfsz_at_default(tree):
    tree.start("x", "grep SigIgn /proc/self/status; exec cat")
    line = wait_until(lambda: next((ln for ln in log_text("x").splitlines() if "SigIgn" in ln), None),
                      10, "the SigIgn line")
    ignored = int(line.split()[1], 16)
    assert not ignored & (1 << (25 - 1)), f"SIGXFSZ ignored in the worker: {line}"
    run("kill", "x", check=True)
