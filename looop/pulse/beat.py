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

from looop import settings
from looop.errors import LooopError
from looop.pulse import (actions, goals as goals_mod, guards, prompt, recover, runner, sense, surface, why,
                         worldhash)
from looop.pulse.housekeeping import housekeep
from looop.store import (claims, config, cost, events, guardstate, journal, paths, rulestate, schedules,
                         space, whyrec)
from looop.store.readfile import NotRegular, describe, read_bounded

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
    read_only: bool = False   # a dry run beside a live pulse: its snapshots, no writes
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
    action: str | None = None  # the validated move, executed or not
    shell: tuple[str, int | None] | None = None  # run_shell: (cmd, exit code)
    decision: Any = None          # the validated actions.Decision (`looop why`)
    summary: str | None = None    # what executing it did
    rejected: str | None = None   # why the decision did not validate

    @property
    def failed(self) -> bool:
        return self.kind in ("failed", "no_decision")


def child_env(b: Beat, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in b.env.items() if k != "LOOOP_PULSE_FD"}
    env.update(LOOOP_BIN=paths.looop_bin(), LOOOP_DATA_DIR=b.d, LOOOP_CONFIG=paths.config_path(b.d))
    env.update(extra)
    return env


def read_text(path: str, limit: int = 4 << 20) -> str:
    """A data-dir text file, bounded; "" if missing or not a regular file
    (a FIFO must never block the beat)."""
    try:
        return read_bounded(path, limit, follow=True).decode("utf-8", "replace")
    except (FileNotFoundError, NotRegular):
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
    guards: dict[str, Any] = field(default_factory=dict)  # .guards.json (store/guardstate.py)
    guards_bad: bool = False
    schedules: list[schedules.Schedule] = field(default_factory=list)
    flapping: list[str] = field(default_factory=list)
    new_flapping: list[str] = field(default_factory=list)
    now: float = field(default_factory=time.time)
    buckets: list[list[Any]] = field(default_factory=list)
    asks: list[tuple[dict[str, Any], bool]] = field(default_factory=list)  # (pending ask, stranded)
    changes: list[dict[str, Any]] = field(default_factory=list)  # since the last decided beat

    @property
    def workers(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("role") == "worker"]

    def prompt(self, d: str, max_bytes: int = 0) -> str:
        return prompt.build(self.playbook, [(f"{g.id}.md", g.text) for g in self.goals],
                            self.readings, self.workers, _claim_lines(d), journal.tail(d, 20),
                            extra=self.sections(), max_bytes=max_bytes)

    def hash_with(self, shell_run: str | None) -> str:
        """The world hash; a run_shell output not yet shown to a decider is
        part of the world (the next beat decides, with it in the prompt)."""
        return worldhash.world_hash(
            self.playbook.encode(), [(g.id, g.text.encode()) for g in self.goals], self.readings,
            self.workers, self.buckets,
            extra=[("schedules", [s.signal(self.now) for s in self.schedules]), ("shell", shell_run)]
            # pending ask ids: a new ask wakes the decider (absent when none: hashes as before)
            + ([("asks", sorted(rec["id"] for rec, _ in self.asks))] if self.asks else []))

    def snapshot(self) -> dict[str, str]:
        return why.snapshot(self.playbook, [(g.id, g.text) for g in self.goals],
                            [(n, worldhash.canonical(data)) for n, data in self.readings], self.workers,
                            [(s.name, "unreadable" if s.error else "due" if s.due(self.now) else "not due")
                             for s in self.schedules])

    def sections(self) -> list[tuple[str, str]]:
        """The guard sections after RECENT JOURNAL, in SPEC §16 order."""
        sh = self.guards.get("shell") or {}
        shell = (f"$ {sh.get('cmd', '')}  (exit {sh.get('code')}, run {sh.get('run')})\n{sh.get('tail', '')}"
                 if sh else "")
        flap = "".join(f"- {n}: its signal changed on each of the last {guards.FLAP_BEATS}+ beats\n"
                       for n in self.flapping)
        changed = "".join(why.change_line(c) + "\n" for c in self.changes)
        return [("PENDING ASKS", prompt.ask_lines(self.asks, self.now) if self.asks else ""),
                ("WHAT CHANGED", changed), ("LAST SHELL OUTPUT", shell), ("FLAPPING SENSORS", flap),
                ("SCHEDULES", "".join(schedule_line(s, self.now) + "\n" for s in self.schedules))]


def schedule_line(s: schedules.Schedule, now: float) -> str:
    def at(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
    note = f" — {s.note}" if s.note else ""
    if s.error:
        return f"- {s.name}: unreadable ({s.error}); drop it with drop_schedule"
    if s.at is not None:
        state = "DUE (stays due until you drop it with drop_schedule)" if s.due(now) else "not due yet"
        return f"- {s.name}: at {at(s.at)} · {state}{note}"
    return (f"- {s.name}: every {s.every_s:g}s · " + ("DUE this period · " if s.due(now) else "")
            + f"next {at(s.next_at(now))}{note}")


def run_beat(b: Beat) -> Outcome:
    """Blocks for the beat (sensors + runner deadlines). Never raises a
    LooopError: failures become an Outcome."""
    if not b.read_only:
        events.emit(b.d, "tick_start")
    w = observe(b)
    if b.dry_run:
        return _dry_run(b, w)
    alive = any(r.get("alive") for r in w.workers)
    if b.link is not None and not b.read_only:  # stuck or limited workers: one rung each
        parked = recover.climb(b.d, b.cfg, b.link, b.out, w.rows, w.now)
        w.wake_at = min(t for t in (w.wake_at, parked) if t is not None) if parked else w.wake_at
    _warn_guards(b, w)
    _spend_warning(b, w)
    unchanged = read_text(os.path.join(b.d, HASH_FILE)).strip() == w.hash
    ttl = b.knob("noop_ttl")
    if unchanged and guards.noop_expired(w.guards.get("last"), w.now, ttl):
        unchanged = False
        b.out.line("info", "tick.noop_ttl", f"world unchanged, but the last move was a noop "
                   f"{ttl:g}s ago or more (LOOOP_NOOP_TTL) — deciding again")
    if unchanged:
        b.out.line("info", "tick.skip", "world unchanged — no AI call", dim=True, hash=w.hash[:12])
        events.emit(b.d, "world_unchanged", hash=w.hash)
        _save_guards(b, w)
        return Outcome("skip", "world unchanged", workers_alive=alive, wake_at=w.wake_at)
    full = space.low(b.d)
    if full:  # the decision, its run dir and journal line could not be recorded
        return Outcome("skip", f"data dir full ({full}) — no AI call", workers_alive=alive,
                       wake_at=w.wake_at)
    over = _over_budget(b) or _decide_budget(b, w)
    snap = w.snapshot()
    w.changes = why.diff(w.guards.get("inputs"), snap)
    o = Outcome("budget", over) if over else \
        _decide_and_act(b, w.prompt(b.d, int(b.knob("prompt_max_bytes"))), w.hash)
    if o.run_id:  # the runner was called: this beat is the new baseline
        w.guards["inputs"] = snap
        _write_why(b, w, o)
    _after_move(b, w, o)
    o.workers_alive = alive or o.acted
    o.wake_at = w.wake_at
    # whatever the decider did (or failed to do), a changed world with a
    # flagged worker is shown to the human
    surface.surface(b.d, w.rows, b.out, child_env(b), asks=w.asks)
    return o


def observe(b: Beat) -> World:
    """Housekeeping, sense, and the world hash (steps 1–3)."""
    from looop import registry
    d, t0 = b.d, time.monotonic()
    rows = registry.rows(d)
    if not b.dry_run:
        rows = housekeep(d, rows, b.knob("session_ttl"), b.out)
    if b.read_only:  # the live pulse owns snapshots/: read its last readings
        readings = sense.last_readings(d)
    else:
        readings = sense.sense(d, child_env(b), b.knob("sensor_timeout"),
                               int(b.knob("sensor_max_bytes")))
    secs = time.monotonic() - t0
    for r in readings:
        if r.warning:
            b.out.line("warn", "sensor.warning", r.warning, sensor=r.name)
    failed = [r.name for r in readings if not r.ok]
    b.out.line("warn" if failed else "info", "sense", sense.summary(readings, secs),
               dim=not failed, sensors=len(readings), failed=failed, secs=round(secs, 3))
    if not b.read_only:
        events.emit(d, "sense_done", sensors=len(readings), failed=failed)
    from looop.inbox import pending_asks
    w = World(rows, read_text(os.path.join(d, "PLAYBOOK.md")), goals_mod.read_goals(d),
              [(r.name, r.data) for r in readings], asks=pending_asks(d, rows))
    w.guards, w.guards_bad = guardstate.load(d, w.now, int(b.knob("max_decides_per_hour")))
    w.guards["sensors"], w.flapping, w.new_flapping = guards.flapping(
        w.guards.get("sensors") or {}, [(n, worldhash.canonical(data)) for n, data in w.readings])
    w.schedules = schedules.read_all(d)
    w.buckets, w.wake_at = worldhash.dues(w.goals, w.workers, rulestate.retries(d), w.now)
    ahead = [t for s in w.schedules if (t := s.next_at(w.now)) is not None]
    if ahead:  # a schedule coming due wakes the pulse then
        w.wake_at = min(ahead + ([w.wake_at] if w.wake_at is not None else []))
    w.hash = w.hash_with((w.guards.get("shell") or {}).get("run"))
    return w


def _over_budget(b: Beat) -> str | None:
    """The spend breaker: a message once today's ledger reaches max_daily_usd."""
    limit = config.usd_limit(b.cfg, "max_daily_usd")
    if limit is None:
        return None
    spent = cost.total(b.d, day=cost.today())
    if spent < limit:
        return None
    msg = f"budget reached ({cost.fmt_usd(spent)} of {cost.fmt_usd(limit)} today) — no AI call until tomorrow"
    b.out.line("warn", "budget", msg, spent_usd=spent, limit_usd=limit)
    return msg


def _save_guards(b: Beat, w: World) -> None:
    try:
        guardstate.save(b.d, w.guards)
    except OSError as e:  # a full disk: the guards forget, the beat goes on
        b.out.line("warn", "guards.unsaved", f"cannot save {guardstate.FILE}: {e.strerror or e}")


def _warn_guards(b: Beat, w: World) -> None:
    """Once-only warnings: a corrupt state file, a sensor that started flapping."""
    if w.guards_bad:
        b.out.line("warn", "guards.corrupt", f"{guardstate.FILE} was unreadable: read as the most "
                   f"conservative values (decide budget spent) and rewritten")
        events.emit(b.d, "guards_corrupt")
    for name in w.new_flapping:
        b.out.line("warn", "sensor.flapping", f"sensor {name} is flapping: its signal changed on "
                   f"{guards.FLAP_BEATS} beats in a row (each change wakes the decider)", sensor=name)
        events.emit(b.d, "sensor_flapping", sensor=name)


def _decide_budget(b: Beat, w: World) -> str | None:
    """The hourly cap on runner calls; an allowed call is counted before it runs."""
    limit = int(b.knob("max_decides_per_hour"))
    kept, next_ok = guards.decide_budget(w.guards.get("decides") or [], w.now, limit)
    w.guards["decides"] = kept
    if next_ok is not None:
        msg = (f"decide budget spent ({len(kept)} runner calls in the last hour, "
               f"LOOOP_MAX_DECIDES_PER_HOUR={limit}) — no AI call before "
               f"{time.strftime('%H:%M:%S', time.localtime(next_ok))}")
        b.out.line("warn", "budget", msg, calls=len(kept), limit=limit)
        _save_guards(b, w)
        return msg
    kept.append(w.now)
    _save_guards(b, w)
    return None


def _spend_warning(b: Beat, w: World) -> None:
    """warn_daily_usd: a soft threshold, warned (and recorded for the inbox)
    once a day. Never stops the beat: returns None."""
    limit = config.usd_limit(b.cfg, "warn_daily_usd")
    if limit is None:
        return None
    day = cost.today()
    bud = w.guards.get("budget")
    if bud and bud.get("day") != day:
        w.guards["budget"] = None
    spent = cost.total(b.d, day=day)
    if spent < limit or w.guards.get("spend_warned") == day:
        return None
    w.guards["spend_warned"] = day
    w.guards["budget"] = {"day": day, "spent": spent, "limit": float(limit),
                          "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(w.now))}
    msg = f"spend warning: {cost.fmt_usd(spent)} of warn_daily_usd {cost.fmt_usd(limit)} today"
    b.out.line("warn", "spend.warning", msg, spent_usd=spent, limit_usd=limit)
    events.emit(b.d, "spend_warning", spent_usd=spent, limit_usd=limit)
    return None


def _gate(b: Beat, w: World, o: Outcome) -> dict[str, Any]:
    """What the move went through on its way: caps, validation, tripwire."""
    from looop.pulse import tripwire
    limit = int(b.knob("max_decides_per_hour"))
    dec = o.decision
    trip = "n/a"
    if dec is not None and dec.action == "run_shell":
        if settings.get("LOOOP_SHELL_ALLOW_DANGEROUS", env=b.env) == "1":
            trip = "disabled (LOOOP_SHELL_ALLOW_DANGEROUS=1)"
        else:
            hit = tripwire.screen(dec.args.get("cmd", ""))
            trip = f"refused ({hit})" if hit else "passed"
    spent = w.guards.get("budget")
    return {"decide_budget": f"{len(w.guards.get('decides') or [])}/{limit or '∞'} runner calls this hour",
            "spend": f"warned today ({cost.fmt_usd(spent['spent'])})" if spent else "ok",
            "tripwire": trip,
            "validation": "ok" if dec is not None else (o.rejected or "no decision to validate")}


def _write_why(b: Beat, w: World, o: Outcome) -> None:
    dec = o.decision
    rec = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(w.now)), "changes": w.changes,
           "decision": None if dec is None else {"action": dec.action, **dec.args, "journal": dec.journal,
                                                  "next_interval_s": dec.next_interval_s},
           "gate": _gate(b, w, o),
           "executed": None if dec is None else {"action": dec.action, "summary": o.summary},
           "outcome": {"kind": o.kind, "msg": o.msg}}
    try:
        whyrec.write(b.d, o.run_id or "", rec)
    except OSError:
        pass  # an explanation lost to a full disk must not fail the beat


def _after_move(b: Beat, w: World, o: Outcome) -> None:
    """Remember the move for the guards: the noop TTL, the shell output."""
    if o.action == "run_shell" and o.run_id:
        data = b""
        try:
            with open(os.path.join(b.d, "runs", o.run_id, "shell.log"), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4 * guards.SHELL_TAIL))
                data = f.read()
        except OSError:
            pass
        cmd, code = o.shell or ("", None)
        w.guards["shell"] = {"run": o.run_id, "cmd": cmd, "code": code, "tail": guards.shell_tail(data)}
    elif o.kind == "ok" and w.guards.get("shell"):
        w.guards["shell"] = None  # shown once: the decider has seen it, and the
        _write_hash(b.d, w.hash_with(None))  # world it decided on is now the one without
    if o.kind == "ok":
        w.guards["last"] = {"action": o.action, "at": w.now, "run": o.run_id}
    _save_guards(b, w)


def _claim_lines(d: str) -> list[tuple[str, str]]:
    return [(name, raw.decode("utf-8", "replace").strip() if obj is not None else "(unreadable claim file)")
            for name, obj, raw in claims.read_all(d)]


def _dry_run(b: Beat, w: World) -> Outcome:
    text = w.prompt(b.d, int(b.knob("prompt_max_bytes")))
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
    try:
        raw = _take_decision(d)
    except LooopError as e:  # e.g. a FIFO where the decision should be
        _journal(b, f"rejected decision: {e}", run=rid)
        return _fail(b, rid, f"{e} · replay: runs/{rid}")
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
        _journal(b, f"rejected decision: {e}", run=rid)
        o = _fail(b, rid, f"{e} · replay: runs/{rid}")
        o.rejected = str(e)
        return o
    ctx = actions.Ctx(d, b.link, child_env(b), b.out, rdir,
                      b.knob("shell_timeout"))
    shell = (dec.args.get("cmd", ""), None) if dec.action == "run_shell" else None
    try:
        summary = actions.execute(ctx, dec)
    except LooopError as e:
        _journal(b, f"failed {dec.action}: {e}", run=rid)
        o = _fail(b, rid, f"{dec.action}: {e} · replay: runs/{rid}")
        o.action, o.shell, o.decision = dec.action, shell and (shell[0], ctx.shell_code), dec
        return o
    text = actions.journal_text(dec, summary)
    line = _journal(b, text, run=rid)
    _write_hash(d, h)
    spent = cost.total(d, sid=rid)
    tail = f" · {cost.fmt_usd(spent)}" if spent > 0 else ""
    msg = f"{dec.action} · {journal.one_line(text)} · {secs:.1f}s{tail}"
    b.out.line("ok", "tick.decided", msg, bold=True, action=dec.action, run=rid,
               journal=line, secs=round(secs, 3), cost_usd=spent)
    events.emit(d, "decided", run=rid, action=dec.action, journal=text)
    return Outcome("ok", msg, acted=actions.ACTIONS[dec.action].acts,
                   nudge=actions.clamp_interval(dec.next_interval_s), run_id=rid, action=dec.action,
                   shell=shell and (shell[0], ctx.shell_code), decision=dec, summary=summary)


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
        return read_bounded(path, actions.MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except NotRegular as e:
        raise LooopError(describe(e)) from None
    finally:
        _unlink(path)


def _journal(b: Beat, text: str, **kw: Any) -> str:
    """Journal a move; a journal we cannot append to (full disk, a FIFO) is
    said, never a crash — the move itself already happened."""
    try:
        return journal.append(b.d, text, **kw)
    except OSError as e:
        if space.is_full(e):
            space.note(e)
        b.out.line("error", "journal.failed", f"could not journal the move: {describe(e)}")
        return ""


def _fail(b: Beat, rid: str, msg: str) -> Outcome:
    b.out.line("error", "tick.failed", f"decision failed: {msg}", run=rid)
    events.emit(b.d, "tick_failed", run=rid, reason=msg)
    return Outcome("failed", msg, run_id=rid)


def _write_hash(d: str, h: str) -> None:
    from looop.store.atomic import write_atomic
    space.tolerate(write_atomic, os.path.join(d, HASH_FILE), h + "\n", fsync=False)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
