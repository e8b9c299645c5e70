"""One beat: housekeeping → sense → diff → decide → act → log → surface.

A pipeline around one bounded side effect (the runner call, under a
deadline) and one typed action. The beat carries nothing in memory: every
input is a file, every outcome is a file (journal, runs/, .last-tick-hash),
so a restarted pulse just beats again. `.last-tick-hash` is written only
after a decision was executed, so a failed beat is retried (with backoff).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from looop.errors import LooopError
from looop.pulse import actions, goals as goals_mod, prompt, runner, sense, surface, worldhash
from looop.pulse.housekeeping import housekeep
from looop.store import claims, config, cost, events, journal, paths, rulestate

HASH_FILE = ".last-tick-hash"
DECISION = ".decision.json"


@dataclass
class Beat:
    """Inputs of a beat. `link` is None under `looop tick`."""
    d: str
    cfg: dict[str, Any]
    out: Any
    link: Any = None
    dry_run: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def knob(self, key: str) -> float:
        """A numeric setting from config.KNOBS (env over looop.json)."""
        v = config.knob(self.cfg, key)
        assert v is not None, key
        return v


@dataclass
class Outcome:
    kind: str              # skip | budget | ok | failed | no_decision | dry_run
    msg: str = ""
    acted: bool = False
    nudge: int | None = None
    workers_alive: bool = False
    run_id: str | None = None
    wake_at: float | None = None   # a due time the next sleep must not overshoot

    @property
    def failed(self) -> bool:
        return self.kind in ("failed", "no_decision")


def child_env(b: Beat, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in b.env.items() if k != "LOOOP_PULSE_FD"}
    env.update(LOOOP_BIN=paths.looop_bin(), LOOOP_DATA_DIR=b.d, LOOOP_CONFIG=paths.config_path(b.d))
    env.update(extra)
    return env


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@dataclass
class World:
    """What this beat saw: the inputs of the hash and of the prompt."""
    rows: list[dict[str, Any]]
    playbook: str
    goals: list[goals_mod.Goal]
    readings: list[tuple[str, bytes]]
    hash: str = ""
    wake_at: float | None = None   # the earliest due time still ahead (epoch)

    @property
    def workers(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("role") == "worker"]

    def prompt(self, d: str) -> str:
        return prompt.build(self.playbook, [(f"{g.id}.md", g.text) for g in self.goals],
                            self.readings, self.workers, _claim_lines(d), journal.tail(d, 20))


def run_beat(b: Beat) -> Outcome:
    """Blocks for the beat (sensors + runner deadlines). Never raises a
    LooopError: failures become an Outcome."""
    events.emit(b.d, "tick_start")
    w = observe(b)
    if b.dry_run:
        return _dry_run(b, w)
    alive = any(r.get("alive") for r in w.workers)
    if read_text(os.path.join(b.d, HASH_FILE)).strip() == w.hash:
        b.out.line("info", "tick.skip", "world unchanged — no AI call", dim=True, hash=w.hash[:12])
        events.emit(b.d, "world_unchanged", hash=w.hash)
        return Outcome("skip", "world unchanged", workers_alive=alive, wake_at=w.wake_at)
    over = _over_budget(b)
    o = Outcome("budget", over) if over else _decide_and_act(b, w.prompt(b.d), w.hash)
    o.workers_alive = alive or o.acted
    o.wake_at = w.wake_at
    # whatever the decider did (or failed to do), a changed world with a
    # flagged worker is shown to the human
    surface.surface(b.d, w.rows, b.out, child_env(b))
    return o


def observe(b: Beat) -> World:
    """Housekeeping, sense, and the world hash (steps 1–3)."""
    from looop import registry
    d, t0 = b.d, time.monotonic()
    rows = registry.rows(d)
    if not b.dry_run:
        rows = housekeep(d, rows, b.knob("session_ttl"), b.out)
    readings = sense.sense(d, child_env(b), b.knob("sensor_timeout"),
                           int(b.knob("sensor_max_bytes")))
    secs = time.monotonic() - t0
    failed = [r.name for r in readings if not r.ok]
    b.out.line("warn" if failed else "info", "sense", sense.summary(readings, secs),
               dim=not failed, sensors=len(readings), failed=failed, secs=round(secs, 3))
    events.emit(d, "sense_done", sensors=len(readings), failed=failed)
    w = World(rows, read_text(os.path.join(d, "PLAYBOOK.md")), goals_mod.read_goals(d),
              [(r.name, r.data) for r in readings])
    marks, w.wake_at = worldhash.dues(w.goals, w.workers, rulestate.retries(d), time.time())
    w.hash = worldhash.world_hash(w.playbook.encode(), [(g.id, g.text.encode()) for g in w.goals],
                                  w.readings, w.workers, marks)
    return w


def _over_budget(b: Beat) -> str | None:
    """The spend breaker: a message once today's ledger reaches max_daily_usd."""
    limit = b.cfg.get("max_daily_usd")
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        return None
    spent = cost.total(b.d, day=cost.today())
    if spent < limit:
        return None
    msg = f"budget reached ({cost.fmt_usd(spent)} of {cost.fmt_usd(limit)} today) — no AI call until tomorrow"
    b.out.line("warn", "budget", msg, spent_usd=spent, limit_usd=limit)
    return msg


def _claim_lines(d: str) -> list[tuple[str, str]]:
    return [(name, raw.decode("utf-8", "replace").strip() if obj is not None else "(unreadable claim file)")
            for name, obj, raw in claims.read_all(d)]


def _dry_run(b: Beat, w: World) -> Outcome:
    text = w.prompt(b.d)
    if b.out.json:
        b.out.line("info", "tick.dry_run", "dry run: prompt built, no runner called", hash=w.hash, prompt=text)
    else:
        b.out.stream.write(text + ("" if text.endswith("\n") else "\n"))
        b.out.line("info", "tick.dry_run", f"world hash {w.hash} — dry run, no runner called", hash=w.hash)
    return Outcome("dry_run", "dry run")


def new_run(d: str) -> tuple[str, str]:
    t = time.time()
    rid = time.strftime("%Y%m%d-%H%M%S", time.localtime(t)) + f"-{int(t * 1000) % 1000:03d}{os.getpid() % 100:02d}"
    rdir = os.path.join(d, "runs", rid)
    os.makedirs(rdir, exist_ok=True)
    return rid, rdir


def prune_runs(d: str, keep: int) -> None:
    if keep <= 0:
        return
    base = os.path.join(d, "runs")
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        return
    for n in names[:-keep]:
        shutil.rmtree(os.path.join(base, n), ignore_errors=True)


def _decide_and_act(b: Beat, text: str, h: str) -> Outcome:
    """Steps 4–6: one runner call under its deadline, then the one action."""
    d = b.d
    name, r = config.runner(b.cfg, None)
    rid, rdir = new_run(d)
    prompt_path = os.path.join(rdir, "prompt.md")
    with open(prompt_path, "w", encoding="utf-8") as f:
        f.write(text)
    prune_runs(d, int(b.knob("runs_keep")))
    _unlink(os.path.join(d, DECISION))  # a stale decision must never be consumed
    b.out.line("step", "tick.start", f"deciding with {name} · run {rid}", runner=name, run=rid)
    events.emit(d, "decide_start", run=rid, runner=name)
    res = _call_runner(b, r.get("tick") or "", name, rid, rdir, prompt_path)
    raw = _take_decision(d)
    if res.timed_out or res.code != 0:
        why = "timed out" if res.timed_out else f"runner exited {res.code}"
        return _fail(b, rid, f"{why} after {res.secs:.1f}s · replay: runs/{rid}")
    if raw is None:
        msg = f"ran {res.secs:.0f}s but emitted no decision · replay: runs/{rid}"
        b.out.line("warn", "tick.no_decision", msg, run=rid, secs=round(res.secs, 3))
        events.emit(d, "tick_failed", run=rid, reason="no decision")
        return Outcome("no_decision", msg, run_id=rid)
    return _act(b, raw, rid, rdir, res.secs, h)


def _act(b: Beat, raw: bytes, rid: str, rdir: str, secs: float, h: str) -> Outcome:
    """Validate and execute the decision; journal it; only then record the hash."""
    d = b.d
    try:
        dec = actions.validate(actions.parse(raw))
    except LooopError as e:
        journal.append(d, f"rejected decision: {e}")
        return _fail(b, rid, f"{e} · replay: runs/{rid}")
    ctx = actions.Ctx(d, b.link, child_env(b), b.out, rdir,
                      b.knob("shell_timeout"))
    try:
        summary = actions.execute(ctx, dec)
    except LooopError as e:
        journal.append(d, f"failed {dec.action}: {e}")
        return _fail(b, rid, f"{dec.action}: {e} · replay: runs/{rid}")
    text = actions.journal_text(dec, summary)
    line = journal.append(d, text)
    _write_hash(d, h)
    spent = cost.total(d, sid=rid)
    tail = f" · {cost.fmt_usd(spent)}" if spent > 0 else ""
    msg = f"{dec.action} · {journal.one_line(text)} · {secs:.1f}s{tail}"
    b.out.line("ok", "tick.decided", msg, bold=True, action=dec.action, run=rid,
               journal=line, secs=round(secs, 3), cost_usd=spent)
    events.emit(d, "decided", run=rid, action=dec.action, journal=text)
    return Outcome("ok", msg, acted=actions.ACTIONS[dec.action].acts,
                   nudge=actions.clamp_interval(dec.next_interval_s), run_id=rid)


def _call_runner(b: Beat, cmd: str, name: str, rid: str, rdir: str, prompt_path: str) -> runner.Result:
    import shlex
    import subprocess
    env = child_env(b, LOOOP_COST_KIND="tick", LOOOP_COST_ID=rid, LOOOP_COST_RUNNER=name)
    on_stdin = "{{prompt_file}}" not in cmd
    cmd = cmd.replace("{{prompt_file}}", shlex.quote(prompt_path))
    timeout = b.knob("tick_timeout")
    stdin = open(prompt_path, "rb") if on_stdin else subprocess.DEVNULL
    try:
        with open(os.path.join(rdir, "output.log"), "wb") as log:
            res = runner.run_logged(["bash", "-lc", cmd], cwd=b.d, env=env, stdin=stdin,
                                    log=log, timeout=timeout)
    finally:
        if on_stdin:
            stdin.close()
    try:
        shutil.copyfile(os.path.join(rdir, "output.log"), os.path.join(b.d, ".tick.log.tmp"))
        os.replace(os.path.join(b.d, ".tick.log.tmp"), os.path.join(b.d, "tick.log"))
    except OSError:
        pass
    return res


def _take_decision(d: str) -> bytes | None:
    """Read and delete `.decision.json` (one-shot, whatever happens next)."""
    path = os.path.join(d, DECISION)
    try:
        with open(path, "rb") as f:
            raw = f.read(actions.MAX_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError):
        return None
    finally:
        _unlink(path)
    return raw


def _fail(b: Beat, rid: str, msg: str) -> Outcome:
    b.out.line("error", "tick.failed", f"decision failed: {msg}", run=rid)
    events.emit(b.d, "tick_failed", run=rid, reason=msg)
    return Outcome("failed", msg, run_id=rid)


def _write_hash(d: str, h: str) -> None:
    from looop.store.atomic import write_atomic
    write_atomic(os.path.join(d, HASH_FILE), h + "\n", fsync=False)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
