"""The root's half of restart policy: apply `restart.decide` to a child that
ended, and run the backoff as a timer of the root's own selector loop
(never a sleep: the root does not block).

A mixin of Root (looop.tree.supervisor). Per session it keeps the restart
history in memory (a new root starts every history afresh: it starts no
worker of the old one) and the restarts that are due. While a worker waits
out its backoff its status.json says `backoff` (with `restart_at`); past the
intensity it says `failed`, a terminal state that nothing restarts.

A restart of a worker forks a new child over the same session (its log is
appended to), running the command recorded at start — or the runner's
`resume` template, when it had one, so an agent picks up its conversation.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from looop.store import events, sessions
from looop.store.sessions import State
from looop.tree import restart
from looop.tree.restart import Ended, History, Policy

if TYPE_CHECKING:
    from looop.tree.supervisor import Kid


class Respawns:
    """Restart policy, applied; see the module docstring."""

    d: str
    stopping: bool
    kids: dict[str, "Kid"]
    out: Any

    def _init_respawns(self) -> None:
        self.histories: dict[str, History] = {}
        self.due: dict[str, float] = {}  # session → monotonic time of its restart
        self.auto_restarts: tuple[float, ...] = ()  # every automatic restart (the hourly cap)

    def take_restart_slot(self, sid: str) -> str | None:
        """Count one automatic restart of `sid` against LOOOP_MAX_RESTARTS_PER_HOUR:
        None if it may go, else the refusal (said, evented and journaled here:
        never silent)."""
        from looop import settings
        from looop.store import config, journal
        limit = int(settings.get("LOOOP_MAX_RESTARTS_PER_HOUR", config.load_cached(self.d)))
        now = time.monotonic()
        kept, ok = restart.hourly_cap(self.auto_restarts, now, limit)
        if ok:
            self.auto_restarts = kept + (now,)
            return None
        self.auto_restarts = kept
        why = restart.cap_reason(kept, limit)
        self.out.line("error", "supervisor.restart_refused", f"restart of {sid} refused: {why}", id=sid)
        events.emit(self.d, "restart_refused", id=sid, reason=why)
        try:
            journal.append(self.d, f"restart of {sid} refused: {why}")
        except OSError:
            pass  # a full disk: the line above and the event said it
        return why

    def _ended(self, kid: "Kid", state: str | None, code: int | None) -> None:
        """A child ended while the tree is up: decide, then apply."""
        sid, now = kid.spec.sid, time.monotonic()
        how = state or State.DEAD.value
        if how == State.KILLED.value and not kid.stop_asked:
            how = State.DEAD.value  # a signal nobody here asked for
        ended = Ended(how, kid.status.get("exit_code"), now - kid.born)
        if kid.fail_reason:  # the recovery ladder gave up on it: never restarted
            dec = restart.Decision("fail", reason=kid.fail_reason)
        else:
            dec = restart.decide(kid.spec.restart, ended, self.histories.get(sid, History()), now)
        self.histories[sid] = dec.history
        if kid.spec.role == "pulse":
            self._pulse_decision(dec, code)
        else:
            self._worker_decision(sid, dec, state, kid.status.get("exit_code"))

    def _pulse_decision(self, dec: restart.Decision, code: int | None) -> None:
        if dec.action == "fail":
            p = self.pulse_policy
            why = f"pulse crashed {p.max_restarts + 1} times in {p.window:g}s — giving up"
            self.out.line("error", "supervisor.give_up", why)
            events.emit(self.d, "supervisor_give_up", reason=why)
            self.shutdown(why, code=1)  # type: ignore[attr-defined]
            return
        self.out.line("warn", "supervisor.restart", f"pulse exited (code {code}) — restarting")
        events.emit(self.d, "supervisor_restart", id="pulse", exit_code=code)
        self._start_pulse()  # type: ignore[attr-defined]

    def _worker_decision(self, sid: str, dec: restart.Decision, state: str | None,
                         code: int | None) -> None:
        ended = f"worker {sid} {state or 'dead'} (exit {code})"
        if dec.action == "stay":
            # the pulse prints it (so `watch pulse` and `log pulse` see it)
            # and may beat at once; without a pulse, the root says it
            if not self._tell_pulse("worker_exited", id=sid, state=state or "dead",  # type: ignore[attr-defined]
                                    exit_code=code):
                self.out.line("info", "worker.exited", ended, id=sid, exit_code=code, dim=True)
            return
        st = sessions.read_status(self.d, sid)
        if dec.action == "restart":
            refused = self.take_restart_slot(sid)
            if refused:  # RESTART -> FAILED: the hourly cap says no
                dec = restart.Decision("fail", history=dec.history, reason=refused)
        if dec.action == "fail":
            self._set_state(sid, st, State.FAILED, failed_reason=dec.reason, restart_at=None)
            self.out.line("error", "worker.failed", f"{ended} — failed: {dec.reason}; not restarted",
                          id=sid, exit_code=code)
            events.emit(self.d, "worker_failed", id=sid, exit_code=code, reason=dec.reason)
            return
        self.due[sid] = time.monotonic() + dec.delay
        self._set_state(sid, st, State.BACKOFF,
                        restart_at=sessions.rfc3339(time.time() + dec.delay),
                        restarts=len(dec.history.restarts))
        self.out.line("warn", "supervisor.restart", f"{ended} — {dec.reason}", id=sid,
                      exit_code=code, delay_s=dec.delay)
        events.emit(self.d, "supervisor_restart", id=sid, exit_code=code, delay_s=dec.delay)

    def _set_state(self, sid: str, st: dict[str, Any], state: State, **extra: Any) -> None:
        try:
            sessions.write_status(self.d, sid, dict(st, id=sid, state=state.value, **extra))
        except OSError:
            pass  # a full disk: the restart (or give-up) still happens

    # -- timers ---------------------------------------------------------------

    def _next_due(self) -> float | None:
        return min(self.due.values()) if self.due else None

    def _fire_due(self, now: float) -> None:
        for sid in [s for s, t in self.due.items() if t <= now]:
            del self.due[sid]
            if sid in self.kids or self.stopping:
                continue  # started again meanwhile, or going down
            try:
                self._respawn(sid)
            except (OSError, ValueError) as e:
                st = sessions.read_status(self.d, sid)
                self._set_state(sid, st, State.FAILED, failed_reason=f"cannot restart: {e}")
                self.out.line("error", "worker.failed", f"worker {sid} cannot restart: {e}", id=sid)

    def _respawn(self, sid: str) -> None:
        """Fork the session again: the `resume` command if it has one."""
        meta = sessions.read_meta(self.d, sid)
        cmd = meta.get("resume") or meta.get("command")
        if not cmd:
            raise ValueError("no command recorded in meta.json")
        sessions.write_meta(self.d, sid, sessions.restarted(meta))
        policy = Policy.from_json(meta.get("restart"))
        self._fork(self.worker_spec(sid, cmd, meta.get("cwd") or self.d,  # type: ignore[attr-defined]
                                    policy=policy))

    def _forget(self, sid: str, history: bool = True) -> None:
        """An explicit start or restart supersedes a pending supervised one."""
        self.due.pop(sid, None)
        if history:
            self.histories.pop(sid, None)

    def cancel_restart(self, sid: str) -> bool:
        """`kill` of a worker waiting out its backoff: no restart, state killed."""
        if sid not in self.due:
            return False
        self._forget(sid, history=False)
        self._set_state(sid, sessions.read_status(self.d, sid), State.KILLED, restart_at=None)
        return True
