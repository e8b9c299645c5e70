"""The typed moves of SPEC §5: parse strictly, validate field by field, then
execute exactly one — as a table, so the catalogue the decider reads (the
prompt) and the checks looop applies come from the same rows.

Parsing is deliberately unforgiving (SPEC §12): at most 1 MiB, no NaN or
Infinity, duplicate keys rejected, nesting bounded, and a markdown-fenced
object accepted only when the fence is the whole content. Anything wrong →
DecisionError naming the problem, and nothing is executed.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from looop import settings
from looop.errors import BadInput, LooopError, NotRunning
from looop.store import paths
from looop.store.atomic import write_atomic

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
PLAYBOOK_KEEP = 20
INTERVAL_MIN, INTERVAL_MAX = 5, 3600


class DecisionError(BadInput):
    """The decision is malformed or its action failed; the beat fails."""


@dataclass(frozen=True)
class Decision:
    action: str
    args: dict[str, Any]
    journal: str | None = None
    next_interval_s: int | None = None


@dataclass
class Ctx:
    """What an action may touch: the data dir, the link to the root (None
    under `looop tick`), the environment for shells, and the printer."""
    d: str
    link: Any
    env: Mapping[str, str]
    out: Any
    run_dir: str
    shell_timeout: float = 300.0
    shell_code: int | None = None   # set by run_shell: its exit (124 = timed out)


# -- parsing ------------------------------------------------------------------

_FENCE = re.compile(r"\A```[A-Za-z]*[ \t]*\n(.*)\n```\Z", re.S)


def _no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DecisionError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise DecisionError(f"{name} is not allowed in a decision")


def _depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    stack = [(obj, 1)]
    while stack:
        o, n = stack.pop()
        if n > limit:
            raise DecisionError(f"nested deeper than {limit} levels")
        if isinstance(o, dict):
            stack.extend((v, n + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, n + 1) for v in o)


def parse(raw: bytes) -> dict[str, Any]:
    """Bytes of `.decision.json` → one JSON object. Raises DecisionError."""
    if len(raw) > MAX_BYTES:
        raise DecisionError(f"decision is {len(raw)} bytes (cap {MAX_BYTES})")
    try:
        text = raw.decode("utf-8").lstrip("\ufeff").strip()
    except UnicodeDecodeError:
        raise DecisionError("decision is not UTF-8") from None
    if not text:
        raise DecisionError("decision file is empty")
    m = _FENCE.match(text)
    if m and "```" not in m.group(1):
        text = m.group(1).strip()
    try:
        obj = json.loads(text, object_pairs_hook=_no_dups, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise DecisionError(f"decision is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise DecisionError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(obj, dict):
        raise DecisionError(f"decision must be one JSON object, got {type(obj).__name__}")
    _depth(obj)
    return obj


# -- validation -----------------------------------------------------------------

def _text(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise DecisionError(f"'{name}' must be a string, got {type(v).__name__}")
    return v


def _nonempty(v: Any, name: str) -> str:
    if not _text(v, name).strip():
        raise DecisionError(f"'{name}' must not be empty")
    return v


def _checked_id(what: str, allow_pulse: bool) -> Callable[[Any, str], str]:
    def check(v: Any, name: str) -> str:
        try:
            return paths.check_id(_text(v, name), what, allow_pulse=allow_pulse)
        except LooopError as e:
            raise DecisionError(f"'{name}': {e}") from None
    return check


def _keys(v: Any, name: str) -> list[str]:
    if not isinstance(v, list) or not v or not all(isinstance(k, str) for k in v):
        raise DecisionError(f"'{name}' must be a non-empty list of key names")
    from looop.screen.keys import key_bytes
    for k in v:
        try:
            key_bytes(k)
        except LooopError as e:
            raise DecisionError(f"'{name}': {e}") from None
    return v


def _command(v: Any, name: str) -> str:
    if "{{prompt_file}}" not in _nonempty(v, name):
        raise DecisionError(f"'{name}' must contain {{{{prompt_file}}}}")
    return v


def _ask_id(v: Any, name: str) -> str:
    from looop.store import asks
    try:
        return asks.check_ask_id(_text(v, name))
    except LooopError as e:
        raise DecisionError(f"'{name}': {e}") from None


KINDS: dict[str, Callable[[Any, str], Any]] = {
    "ask": _ask_id,
    "str": _text, "text": _nonempty, "keys": _keys, "command": _command,
    "goal": _checked_id("goal id", True), "sensor": _checked_id("sensor name", True),
    "schedule": _checked_id("schedule name", True),
    "session": _checked_id("session", False),
}


@dataclass(frozen=True)
class Action:
    fields: tuple[tuple[str, str], ...]        # (name, kind), all required
    run: Callable[[Ctx, dict[str, Any]], str]  # executes; returns a summary
    when: str                                  # for the decider's catalogue
    optional: tuple[tuple[str, str], ...] = ()
    acts: bool = True                          # False: a beat with it was idle
    keeps_summary: bool = False                # its summary is the point: journaled even with a `journal`


def validate(obj: dict[str, Any]) -> Decision:
    """A parsed object → a Decision, or DecisionError naming the problem."""
    name = obj.get("action")
    if not isinstance(name, str):
        raise DecisionError("missing 'action' (one of: " + ", ".join(ACTIONS) + ")")
    spec = ACTIONS.get(name)
    if spec is None:
        raise DecisionError(f"unknown action {name!r} (one of: {', '.join(ACTIONS)})")
    args: dict[str, Any] = {}
    for fname, kind in spec.fields:
        if fname not in obj:
            raise DecisionError(f"{name}: missing field '{fname}'")
        args[fname] = _field(name, fname, kind, obj[fname])
    for fname, kind in spec.optional:
        if obj.get(fname) is not None:
            args[fname] = _field(name, fname, kind, obj[fname])
    journal = obj.get("journal")
    if journal is not None and not isinstance(journal, str):
        raise DecisionError("'journal' must be a string")
    nxt = obj.get("next_interval_s")
    if nxt is not None and (isinstance(nxt, bool) or not isinstance(nxt, int)):
        raise DecisionError("'next_interval_s' must be an integer")
    return Decision(name, args, journal or None, nxt)


def _field(action: str, fname: str, kind: str, value: Any) -> Any:
    try:
        return KINDS[kind](value, fname)
    except DecisionError as e:
        msg = str(e)
        raise DecisionError(msg if msg.startswith(action) else f"{action}: {msg}") from None


def clamp_interval(n: int | None) -> int | None:
    return None if n is None else max(INTERVAL_MIN, min(INTERVAL_MAX, n))


def journal_text(dec: Decision, summary: str) -> str:
    """What the journal (and events.jsonl) record for an executed move: the
    decider's `journal`, else the summary; both when the summary carries the
    point of the move (a notification's message)."""
    if not dec.journal:
        return summary
    if ACTIONS[dec.action].keeps_summary and summary not in dec.journal:
        return f"{summary} · {dec.journal}"
    return dec.journal


def execute(ctx: Ctx, dec: Decision) -> str:
    """Perform the one move; returns its summary. Raises LooopError on failure."""
    return ACTIONS[dec.action].run(ctx, dec.args)


# -- the moves --------------------------------------------------------------------

def _noop(ctx: Ctx, a: dict[str, Any]) -> str:
    return f"noop: {a['reason']}".rstrip(": ")


def _run_shell(ctx: Ctx, a: dict[str, Any]) -> str:
    import subprocess

    from looop.pulse import runner, tripwire
    if settings.get("LOOOP_SHELL_ALLOW_DANGEROUS", env=ctx.env) != "1":
        hit = tripwire.screen(a["cmd"])
        if hit:
            raise DecisionError(f"run_shell refused by the deny-list tripwire ({hit}); "
                                f"LOOOP_SHELL_ALLOW_DANGEROUS=1 disables it")
    os.makedirs(ctx.run_dir, exist_ok=True)
    with open(os.path.join(ctx.run_dir, "shell.log"), "ab") as log:
        r = runner.run_logged(["bash", "-lc", a["cmd"]], cwd=ctx.d, env=ctx.env,
                              stdin=subprocess.DEVNULL, log=log, timeout=ctx.shell_timeout)
    ctx.shell_code = 124 if r.timed_out else r.code
    if r.timed_out:
        raise DecisionError(f"run_shell timed out after {ctx.shell_timeout:g}s")
    if r.code != 0:
        raise DecisionError(f"run_shell exited {r.code}: {a['cmd'][:80]}")
    return f"ran: {a['cmd']}"


def _goal_path(d: str, gid: str, archived: bool = False) -> str:
    return os.path.join(d, "goals", *(("archive",) if archived else ()), gid + ".md")


def _write_goal(ctx: Ctx, a: dict[str, Any]) -> str:
    body = a["body"] if a["body"].endswith("\n") else a["body"] + "\n"
    os.makedirs(os.path.join(ctx.d, "goals"), exist_ok=True)
    write_atomic(_goal_path(ctx.d, a["id"]), body)
    return f"wrote goal {a['id']}"


def _archive_goal(ctx: Ctx, a: dict[str, Any]) -> str:
    src = _goal_path(ctx.d, a["id"])
    if not os.path.isfile(src):
        raise DecisionError(f"archive_goal: no goal {a['id']!r}")
    os.makedirs(os.path.dirname(_goal_path(ctx.d, a["id"], True)), exist_ok=True)
    os.replace(src, _goal_path(ctx.d, a["id"], True))
    return f"archived goal {a['id']}"


def _write_sensor(ctx: Ctx, a: dict[str, Any]) -> str:
    script = a["script"] if a["script"].endswith("\n") else a["script"] + "\n"
    os.makedirs(os.path.join(ctx.d, "sensors"), exist_ok=True)
    write_atomic(os.path.join(ctx.d, "sensors", a["name"] + ".sh"), script, mode=0o700)
    return f"wrote sensor {a['name']}"


def _write_playbook(ctx: Ctx, a: dict[str, Any]) -> str:
    path = os.path.join(ctx.d, "PLAYBOOK.md")
    hist = os.path.join(ctx.d, "playbook.d")
    os.makedirs(hist, exist_ok=True)
    if os.path.exists(path):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest, n = os.path.join(hist, stamp + ".md"), 1
        while os.path.exists(dest):
            n += 1
            dest = os.path.join(hist, f"{stamp}-{n}.md")
        with open(path, "rb") as f:
            write_atomic(dest, f.read())
        for old in sorted(x for x in os.listdir(hist) if x.endswith(".md"))[:-PLAYBOOK_KEEP]:
            os.unlink(os.path.join(hist, old))
    body = a["body"] if a["body"].endswith("\n") else a["body"] + "\n"
    write_atomic(path, body)
    return "rewrote the PLAYBOOK"


def _need_link(ctx: Ctx, action: str) -> Any:
    if ctx.link is None:
        raise NotRunning("needs a running looop — start it with `looop` "
                         "(`looop tick` cannot reach workers)")
    return ctx.link


def _start_worker(ctx: Ctx, a: dict[str, Any]) -> str:
    req = {"id": a["id"], "prompt": a["prompt"]}
    for key in ("command", "restart", "max_restarts"):
        if key in a:
            req[key] = a[key]
    r = _need_link(ctx, "start_worker").call("start", timeout=60, **req)
    return f"started worker {a['id']} (pid {r.get('pid')})"


def _steer(ctx: Ctx, a: dict[str, Any]) -> str:
    """The verified path (looop.steering): paste, Enter once it shows, then
    check the screen or activity moved; not accepted → LooopError (journaled)."""
    from looop import registry, steering
    from looop.store import sessions
    sid = a["id"]
    r = steering.deliver(_need_link(ctx, "steer_session").call, sid, a["input"], verify=True,
                         activity=lambda: registry.activity_of(ctx.d, sid),
                         sent=lambda text, row: sessions.write_sent(ctx.d, sid, text, row))
    how = "echoed" if r["echoed"] else "not echoed"
    return f"steered {sid}: {a['input']} (accepted, {how}, now {r['activity_after'] or 'unknown'})"


def _send_key(ctx: Ctx, a: dict[str, Any]) -> str:
    from looop.screen.keys import key_bytes
    data = "".join(key_bytes(k) for k in a["keys"])
    _need_link(ctx, "send_key").call("input", id=a["id"], data=data)
    return f"sent {' '.join(a['keys'])} to {a['id']}"


def _restart(ctx: Ctx, a: dict[str, Any]) -> str:
    r = _need_link(ctx, "restart_session").call("restart", timeout=60, id=a["id"])
    return f"restarted {a['id']} (pid {r.get('pid')})"


def _write_schedule(ctx: Ctx, a: dict[str, Any]) -> str:
    from looop.pulse.goals import duration
    from looop.store import schedules
    when = {k: duration(a[k]) for k in ("in", "every") if k in a}
    if len(when) != 1 or None in when.values():
        raise DecisionError("write_schedule: give exactly one of 'in' or 'every' as a duration "
                            "(e.g. \"30m\", \"1d\")")
    now = time.time()
    try:
        s = schedules.write(ctx.d, a["name"], note=a.get("note", ""), now=now,
                            at=now + when["in"] if "in" in when else None, every_s=when.get("every"))
    except ValueError as e:
        raise DecisionError(f"write_schedule: {str(e).replace('--', '')}") from None
    return f"wrote schedule {s.name}"


def _drop_schedule(ctx: Ctx, a: dict[str, Any]) -> str:
    from looop.store import schedules
    if not schedules.remove(ctx.d, a["name"]):
        raise DecisionError(f"drop_schedule: no schedule {a['name']!r}")
    return f"dropped schedule {a['name']}"


# The PLAYBOOK opts in, in its own words: a line `answer_ask: allowed`
# (optionally as a list item). Without it asks are for the human only.
ANSWER_ASK_RULE = re.compile(r"^[ \t]*(?:[-*][ \t]*)?answer_ask:[ \t]*allowed[ \t]*$", re.I | re.M)


def answer_ask_allowed(playbook: str) -> bool:
    return bool(ANSWER_ASK_RULE.search(playbook))


def _answer_ask(ctx: Ctx, a: dict[str, Any]) -> str:
    from looop.store import asks
    try:
        with open(os.path.join(ctx.d, "PLAYBOOK.md"), encoding="utf-8", errors="replace") as f:
            playbook = f.read()
    except FileNotFoundError:
        playbook = ""
    if not answer_ask_allowed(playbook):
        raise DecisionError("answer_ask: not allowed by the PLAYBOOK (a human allows it with a "
                            "line `answer_ask: allowed` in PLAYBOOK.md)")
    try:
        rec = asks.answer(ctx.d, a["id"], a["answer"], by="decider")
    except LooopError as e:
        raise DecisionError(f"answer_ask: {e}") from None
    if ctx.link is not None and isinstance(rec.get("worker"), str):
        try:  # best effort: the worker leaves `asking` now, even if it prints nothing
            ctx.link.call("look", id=rec["worker"])
        except LooopError:
            pass  # the asker's worker is gone (a stranded ask): nothing to move
    return f"answered {a['id']}: {a['answer']}"


def _notify(ctx: Ctx, a: dict[str, Any]) -> str:
    ctx.out.line("warn", "notification", f"NOTE: {a['message']}", bold=True, message=a["message"])
    return f"notification: {a['message']}"


ACTIONS: dict[str, Action] = {
    "noop": Action((("reason", "str"),), _noop, "nothing needs doing now", acts=False),
    "run_shell": Action((("cmd", "text"), ("reason", "str")), _run_shell,
                        "a quick, safe, read-mostly command; non-zero exit fails the beat"),
    "write_goal": Action((("id", "goal"), ("body", "text")), _write_goal,
                         "create or rewrite goals/<id>.md (desired state)"),
    "archive_goal": Action((("id", "goal"),), _archive_goal,
                           "a goal is done: move it to goals/archive/"),
    "write_sensor": Action((("name", "sensor"), ("script", "text")), _write_sensor,
                           "add an observer sensors/<name>.sh that prints ONE JSON object"),
    "write_playbook": Action((("body", "text"),), _write_playbook,
                             "replace PLAYBOOK.md (the previous one is kept)"),
    "start_worker": Action((("id", "session"), ("prompt", "text")), _start_worker,
                           "hands-on multi-step work: start an agent worker with a self-contained brief "
                           "(`command` overrides the runner and must contain {{prompt_file}}; "
                           "`restart`: temporary (default) | transient | permanent, "
                           "`max_restarts`: e.g. \"3/10m\")",
                           # the root checks `restart`/`max_restarts` before anything starts
                           optional=(("command", "command"), ("restart", "str"),
                                     ("max_restarts", "str"))),
    "steer_session": Action((("id", "session"), ("input", "str")), _steer,
                            "type a line (+ Enter) into a live worker; checked that it landed",
                            keeps_summary=True),
    "send_key": Action((("id", "session"), ("keys", "keys")), _send_key,
                       "named keys (Enter, Esc, C-c, Up…) to a live worker"),
    "restart_session": Action((("id", "session"),), _restart,
                              "rerun a worker's command in its session"),
    "write_schedule": Action((("name", "schedule"),), _write_schedule,
                             "wake the loop later: `in` (one-shot, stays due until dropped) or "
                             "`every` (≥ 60s) as a duration like \"2h\", optional `note`",
                             optional=(("in", "str"), ("every", "str"), ("note", "str"))),
    "drop_schedule": Action((("name", "schedule"),), _drop_schedule,
                            "a schedule is dealt with (a due one-shot stays due until dropped)"),
    "answer_ask": Action((("id", "ask"), ("answer", "text")), _answer_ask,
                         "answer a worker's pending ask (see PENDING ASKS) — only if the PLAYBOOK "
                         "has the line `answer_ask: allowed`"),
    "send_notification": Action((("message", "text"),), _notify,
                                "tell the human something (journaled and shown)", keeps_summary=True),
}
