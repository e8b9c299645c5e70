"""The tree's fast tier: pure functions, no processes started (issue 14;
STYLE 14: two tiers, both always run). The restart decision has its own
table in tests/test_restart_policy.py; here: the stop ladder, the process
title (format, parse, scan) and the op list the manual prints.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import given, strategies as st

from looop.store.title import FLAG, Title, format_title, live_titles, parse_title, title_of
from looop.tree import stopping
from looop.tree.child import fd_gaps
from looop.tree.stopping import ASKED, FINAL, KILLED, Rung

# -- the stop ladder ---------------------------------------------------------------


def walk(grace: float, now: float = 100.0) -> list[tuple[float, str]]:
    """Follow the ladder from one request, deadline after deadline, to its end:
    [(when, what happened)]."""
    rung, log = stopping.ask(None, now, grace), [(now, "graceful")]
    while rung is not None:
        now = rung.deadline
        rung, send = stopping.escalate(rung, now)
        log.append((now, send or "give up"))
    return log


@pytest.mark.parametrize("grace", [0.0, 1.0, 5.0, 30.0])
def test_the_ladder_asks_then_kills_after_the_grace_then_gives_up_after_final(grace):
    assert walk(grace) == [(100.0, "graceful"), (100.0 + grace, "kill"), (100.0 + grace + FINAL, "give up")]
    assert walk(grace)[-1][0] - 100.0 == stopping.bound(grace)


@pytest.mark.parametrize("rung, now, grace, want", [
    (None, 10.0, 5.0, Rung(ASKED, 15.0)),                 # the first request
    (Rung(ASKED, 15.0), 12.0, 5.0, Rung(ASKED, 15.0)),    # asked again later: the deadline holds
    (Rung(ASKED, 15.0), 12.0, 1.0, Rung(ASKED, 13.0)),    # the root died: only sooner (ORPHAN_GRACE)
    (Rung(KILLED, 17.0), 16.0, 5.0, Rung(KILLED, 17.0)),  # past SIGKILL: never back to asking
])
def test_another_request_never_backs_down_or_waits_longer(rung, now, grace, want):
    assert stopping.ask(rung, now, grace) == want


def test_escalate_from_each_rung():
    assert stopping.escalate(Rung(ASKED, 15.0), 15.2) == (Rung(KILLED, 15.2 + FINAL), "kill")
    assert stopping.escalate(Rung(KILLED, 17.0), 17.0) == (None, None)


def test_an_orphan_is_gone_within_the_specs_two_seconds_whatever_the_grace():
    rung = stopping.ask(None, 0.0, min(30.0, stopping.ORPHAN_GRACE))
    killed, send = stopping.escalate(rung, rung.deadline)
    assert send == "kill" and rung.deadline <= 1.0 and killed is not None and killed.deadline <= 1.0 + FINAL


def test_the_systemd_unit_outwaits_the_ladder():
    from looop.cli import service
    assert service.shutdown_bound() == stopping.bound(float(os.environ.get("LOOOP_SHUTDOWN_GRACE") or 5.0))
    assert service.STOP_MARGIN_S > 0


# -- the process title -------------------------------------------------------------

@pytest.mark.parametrize("args, text", [
    (("root", "root", "running", False, "/d"), "looop: root [running] /d"),
    (("pulse", "pulse", "running", False, "/d"), "looop: pulse [running] /d"),
    (("worker", "w1", "running", False, "/my data"), "looop: worker w1 [running] /my data"),
    (("worker", "w1", "running", True, "/d"), f"looop: worker w1 [running {FLAG}] /d"),
    (("worker", "w1", "running", True, "/d", "asking", 1700000000.7),
     f"looop: worker w1 [running {FLAG} asking 1700000000] /d"),
    (("worker", "w-2", "backoff", False, "/d", "stuck", 5), "looop: worker w-2 [backoff stuck 5] /d"),
])
def test_title_format_and_parse(args, text):
    assert format_title(*args) == text
    t = parse_title(text)
    assert t is not None
    role, sid, state, flagged, d = args[:5]
    assert (t.role, t.sid, t.state, t.flagged, t.data_dir) == (role, sid, state, flagged, d)
    assert t.activity == (args[5] if len(args) > 5 else None)
    assert t.since == (int(args[6]) if len(args) > 6 else None)


@pytest.mark.parametrize("text", [
    "", "looop", "looop:", "python -m looop", "looop: root /d", "looop: worker [running] /d",
    "looop: king [running] /d", "looop: worker w1 [running]", "xlooop: root [running] /d",
    "looop: root x [running] /d",  # (root and pulse carry no id)
])
def test_what_is_not_a_title(text):
    assert parse_title(text) is None


@given(sid=st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,30}\Z"), state=st.sampled_from(
    ["starting", "running", "exited", "killed", "backoff", "failed"]), flagged=st.booleans(),
    act=st.one_of(st.none(), st.sampled_from(["starting", "working", "ready", "asking", "limited", "stuck"])),
    since=st.integers(0, 2 ** 40), d=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                                             max_size=60).map(lambda s: "/" + s))
def test_any_title_round_trips(sid, state, flagged, act, since, d):
    t = parse_title(format_title("worker", sid, state, flagged, d, act, since))
    assert t == Title("worker", sid, state, flagged, d, act, since if act else None)


def test_the_scanner_finds_no_title_on_a_plain_process():
    """This test process carries no looop title: neither the one-pid read nor
    the scan may make one up (what they do find is well formed)."""
    assert title_of(os.getpid()) is None
    assert title_of(2 ** 22 + 12345) is None  # no such pid
    for pid, t in live_titles():
        assert pid != os.getpid() and isinstance(t, Title)


@pytest.mark.parametrize("size", [100, 4095, 4096, 4097, 9000])
def test_the_scanner_reads_a_title_longer_than_one_page(size, tmp_path):
    """A long data dir makes a title span /proc pages: the scanner reads it
    whole, whatever its length against the 4096-byte page."""
    import subprocess
    import time
    head = "looop: worker lw [running] "
    d = str(tmp_path) + "/" + "d" * (size - len(head) - len(str(tmp_path)) - 1)
    assert len(head + d) == size
    p = subprocess.Popen(["bash", "-c", 'exec -a "$0" cat', head + d], stdin=subprocess.PIPE)
    try:
        want = Title("worker", "lw", "running", False, d, None, None)
        deadline = time.monotonic() + 10
        while title_of(p.pid) != want and time.monotonic() < deadline:
            time.sleep(0.01)
        assert title_of(p.pid) == want
        assert (p.pid, want) in list(live_titles())
    finally:
        p.kill()
        p.wait(10)


# -- the ops the manual lists --------------------------------------------------------

def test_the_manuals_op_list_is_the_roots_dispatch_table():
    from looop.tree.control import OP_NAMES
    from looop.tree.ops import OPS
    assert sorted(OP_NAMES) == sorted(OPS)


# -- the fds a child closes --------------------------------------------------------


@pytest.mark.parametrize("keep, lo, hi, gaps", [
    ((), 3, 10, [(3, 10)]),
    ((5,), 3, 10, [(3, 5), (6, 10)]),
    ((3, 4, 9), 3, 10, [(5, 9)]),
    ((9, 7, 7, 1), 3, 10, [(3, 7), (8, 9)]),   # unsorted, repeated, below lo
    ((3, 12), 3, 10, [(4, 10)]),               # above hi: nothing past hi is closed
])
def test_fd_gaps_spare_exactly_the_kept_fds(keep, lo, hi, gaps):
    assert fd_gaps(keep, lo, hi) == gaps


@given(st.sets(st.integers(0, 40)), st.integers(0, 20), st.integers(0, 45))
def test_fd_gaps_cover_every_other_fd_once(keep, lo, hi):
    covered = [fd for a, b in fd_gaps(keep, lo, hi) for fd in range(a, b)]
    assert covered == [fd for fd in range(lo, hi) if fd not in keep]


@pytest.mark.parametrize("limit", [None, 1 << 20])
def test_close_all_but_leaves_exactly_stdio_and_the_kept_fds(limit):
    """In a forked process (as a worker child is): some fds open, a few kept.
    With a container's fd limit (1048576) the child lists its own fds
    rather than closing every number up to the limit (closerange's per-fd
    fallback where close_range(2) is missing: seconds per start)."""
    from looop.tree.child import close_all_but
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through `w` only, then _exit
        code = 1
        try:
            os.close(r)
            fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(6)]
            keep = (fds[1], fds[4], w)
            close_all_but(keep, limit)
            left = sorted(int(n) for n in os.listdir("/proc/self/fd") if _is_open(int(n)))
            os.write(w, repr((left, sorted({0, 1, 2, *keep}))).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, got
    left, want = eval(got)  # noqa: S307 - our own child's repr of two int lists
    assert left == want


def _is_open(fd: int) -> bool:
    """(not the listing's own directory fd, closed once listdir returns)"""
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
