"""Every knob looop reads, in one table: environment variable, looop.json key,
type, default and meaning. The code reads knobs only through `get`/`knob`, and
`looop help` prints this table, so the manual cannot drift from the program.

A leaf module (imports only the standard library): the tree, the store, the
pulse and the CLI all read it. To add a knob, add a row here; nothing else.

Precedence: environment over looop.json over the default. A value that does
not parse as its type is ignored (the next source wins), never a crash.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple


class Setting(NamedTuple):  # (no dataclasses: `ls` must not import inspect)
    env: str | None        # environment variable (None: config key only)
    key: str | None        # looop.json key (None: environment only)
    type: type             # float, int, str or bool
    default: Any           # None: see `doc` (e.g. "falls back to interval")
    doc: str
    shown: str = ""        # the default as the manual prints it, if not str(default)

    @property
    def name(self) -> str:
        return self.env or str(self.key)


SETTINGS: tuple[Setting, ...] = (
    Setting("LOOOP_DATA_DIR", None, str, None, "the data dir = the profile",
            "${XDG_STATE_HOME:-~/.local/state}/looop"),
    Setting("LOOOP_CONFIG", None, str, None, "the config file", "<data>/looop.json"),
    Setting("LOOOP_INTERVAL", "interval", float, 60.0, "seconds between beats when idle"),
    Setting("LOOOP_BUSY_INTERVAL", "busy_interval", float, None,
            "seconds after a beat that acted", "= interval"),
    Setting("LOOOP_ACTIVE_INTERVAL", "active_interval", float, None,
            "seconds while any worker is alive", "= interval"),
    Setting("LOOOP_SESSION_TTL", "session_ttl", float, 3 * 86400.0,
            "seconds a finished session dir is kept"),
    Setting("LOOOP_SENSOR_TIMEOUT", "sensor_timeout", float, 60.0,
            "seconds a sensor may run (then exit 124)"),
    Setting("LOOOP_SENSOR_MAX_BYTES", "sensor_max_bytes", float, 8192.0,
            "largest sensor reading kept (bigger: a stable placeholder)"),
    Setting("LOOOP_TICK_TIMEOUT", "tick_timeout", float, 900.0,
            "seconds the decider may run; then its group is killed"),
    Setting("LOOOP_SHELL_TIMEOUT", "shell_timeout", float, 300.0, "seconds a run_shell move may run"),
    Setting("LOOOP_RUNS_KEEP", "runs_keep", float, 50.0, "newest runs/<id>/ archives kept (0 = all)"),
    Setting(None, "max_daily_usd", float, None,
            "spend breaker: no decide step once today's ledger reaches it", "unset"),
    Setting(None, "warn_daily_usd", float, None,
            "soft spend threshold: a warning (and an inbox item) once a day when reached", "unset"),
    Setting("LOOOP_MAX_DECIDES_PER_HOUR", "max_decides_per_hour", float, 120.0,
            "runner calls allowed in any hour, failed ones included (0 = no cap)"),
    Setting("LOOOP_MAX_RESTARTS_PER_HOUR", "max_restarts_per_hour", float, 20.0,
            "automatic worker restarts (restart policy and recovery ladder) allowed in any hour; "
            "past it a restart is refused, said and shown in the inbox (0 = no cap)"),
    Setting("LOOOP_LIMIT_MARGIN", "limit_margin", float, 120.0,
            "seconds after a usage limit's named reset time before the ladder resumes a parked worker"),
    Setting("LOOOP_MAX_WORKERS", "max_workers", float, 8.0,
            "live workers allowed at once; a start past it is refused (0 = no cap)"),
    Setting("LOOOP_NOOP_TTL", "noop_ttl", float, 21600.0,
            "seconds after which an unchanged world is decided again if the last move was a noop"),
    Setting("LOOOP_PROMPT_MAX_BYTES", "prompt_max_bytes", float, 262144.0,
            "prompt budget: the largest sections are cut (visibly) to fit"),
    Setting(None, "notify_command", str, None,
            "run once per new inbox item: item JSON on stdin, one-line $LOOOP_NOTIFY_TEXT", "unset"),
    Setting("LOOOP_NOTIFY_TIMEOUT", "notify_timeout", float, 10.0,
            "seconds a notify_command may run; then its process group is killed"),
    Setting("LOOOP_INBOX_POLL", "inbox_poll", float, 2.0,
            "seconds between the pulse's inbox checks for notify_command (a new ask: at once)"),
    Setting("LOOOP_SHUTDOWN_GRACE", None, float, 5.0, "seconds a stopping process gets before SIGKILL"),
    Setting("LOOOP_LOG_MAX_BYTES", None, float, float(64 << 20),
            "output.log rotates at this size (one .1 kept; 0 = never)", "67108864"),
    Setting("LOOOP_EVENTS_MAX_BYTES", None, float, float(8 << 20),
            "events.jsonl rotates past this size (0 = never)", "8388608"),
    Setting("LOOOP_PULSE_GRACE", None, float, 60.0,
            "seconds past its announced next beat (or its longest possible beat) before a pulse "
            "that makes no progress is restarted"),
    Setting("LOOOP_RESTART_MAX", None, float, 5.0, "pulse restarts allowed per period before looop gives up"),
    Setting("LOOOP_RESTART_PERIOD", None, float, 60.0, "seconds of that restart window"),
    Setting("LOOOP_LOG_FORMAT", None, str, "human", "`json` = NDJSON output, like --json"),
    Setting("LOOOP_COLOR", None, str, "auto", "1 forces colors on, 0 off"),
    Setting("NO_COLOR", None, str, None, "any value turns colors off (unless LOOOP_COLOR=1)", "unset"),
    Setting("LOOOP_SCREEN_ENGINE", None, str, None, "force the screen engine: pyte or ghostty",
            "ghostty if it loads, else pyte"),
    Setting("LOOOP_TMUX_SURFACE", None, str, "1", "0 = never open tmux windows for flagged workers"),
    Setting("LOOOP_WORKER_STUCK", None, float, 900.0,
            "seconds without output or screen change before a working worker is `stuck`"),
    Setting("LOOOP_WORKER_STARTING", None, float, 30.0,
            "seconds a worker that has printed nothing stays `starting` (then `working`)"),
    Setting("LOOOP_SHELL_ALLOW_DANGEROUS", None, str, "0", "1 disables the run_shell deny-list tripwire"),
)
BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS if s.env}
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS if s.key}

# Set by looop for the commands it starts (runners, workers); read them there.
EXPORTED = ("LOOOP_BIN", "LOOOP_DATA_DIR", "LOOOP_CONFIG", "LOOOP_SESSION_ID",
            "LOOOP_COST_KIND", "LOOOP_COST_ID", "LOOOP_COST_RUNNER")


def _parse(s: Setting, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    if s.type is str:
        return str(raw)
    if s.type is bool:
        return str(raw).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(raw, bool):
        return None
    try:
        v = s.type(raw)
    except (TypeError, ValueError):
        return None
    return None if v != v else v  # NaN: not a value


def get(name: str, cfg: Mapping[str, Any] | None = None, default: Any = None,
        env: Mapping[str, str] | None = None) -> Any:
    """The value of the setting named by its env var or config key: env over
    `cfg` over the table's default (or `default` when the table has none)."""
    s = BY_ENV.get(name) or BY_KEY[name]
    environ = os.environ if env is None else env
    sources = (environ.get(s.env) if s.env else None, cfg.get(s.key) if cfg and s.key else None)
    for raw in sources:
        v = _parse(s, raw)
        if v is not None:
            return v
    return default if s.default is None else s.default


def ignored(cfg: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """Each value `get` skips because it does not parse as its setting's
    type (a number, mostly), named by where it is: `looop doctor` says what
    `get` keeps quiet about (a typo'd max_daily_usd is a breaker that is off)."""
    environ = os.environ if env is None else env
    out = []
    for s in SETTINGS:
        if s.type in (str, bool):
            continue
        for where, raw in ((s.env, environ.get(s.env) if s.env else None),
                           (f"looop.json {s.key}", cfg.get(s.key) if cfg and s.key else None)):
            if raw is not None and raw != "" and _parse(s, raw) is None:
                out.append(f"{where} {raw!r} is not a number")
    return out


def rows(environ: Mapping[str, str] | None = None) -> list[tuple[str, str, str, str | None]]:
    """(name, doc, default as shown — and the config key, value now) for the manual."""
    environ = os.environ if environ is None else environ
    out = []
    for s in SETTINGS:
        shown = s.shown or (f"{s.default:g}" if isinstance(s.default, float) else str(s.default))
        if s.env and s.key:
            shown += f" (config {s.key})"
        out.append((s.env or f"config {s.key}", s.doc, shown, environ.get(s.env) if s.env else None))
    return out
