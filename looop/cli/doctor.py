"""`looop doctor`: one line per check, exit 1 if any check failed hard.

Each check is a small function returning `(level, subject, message)` with
level "ok" | "warn" | "fail" | "info"; CHECKS is the table that runs them in
order. Checks only observe: doctor never takes the lock, never rewrites the
config, and connects to the control socket only to `ping` (so running it next
to a live tree, or while one is starting, is harmless).

"warn" is for what degrades looop without stopping it (no tmux, a stale lock
file that the next start replaces); "fail" is for what stops `looop` from
working (runner missing, config broken, data dir not writable, a live root
that does not answer).
"""
from __future__ import annotations

import os
import sys
from typing import Callable

Result = tuple[str, str, str]
GLYPH = {"ok": "✓", "warn": "⚡", "fail": "✗", "info": "·"}
DEPS = ("setproctitle", "psutil", "ptyprocess", "colorama", "orjson", "pyte")


class Ctx:
    """What every check reads: the profile, and the config once parsed."""

    def __init__(self) -> None:
        from looop.store import paths
        self.d = paths.data_dir()
        self.config_path = paths.config_path(self.d)
        self.cfg: dict | None = None
        self.cfg_error: str | None = None
        self.root_pid: int | None = None  # a live root holding the lock, if any


def check_python(c: Ctx) -> Result:
    v = sys.version_info
    text = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})"
    return ("ok" if v >= (3, 10) else "fail"), "python", text + ("" if v >= (3, 10) else " — looop needs ≥ 3.10")


def check_deps(c: Ctx) -> Result:
    from importlib import metadata
    from looop import __version__
    found, missing = [f"looop {__version__}"], []
    for name in DEPS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return "fail", "deps", f"missing: {', '.join(missing)} — reinstall looop (pip install looop)"
    return "ok", "deps", ", ".join(found)


def check_config(c: Ctx) -> Result:
    from looop.errors import LooopError
    from looop.store import config
    try:
        with open(c.config_path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        c.cfg = config.load(c.d)
        return "ok", "config", f"{c.config_path} not written yet — defaults apply; `looop` writes it on first run"
    except OSError as e:
        c.cfg_error = f"cannot read {c.config_path}: {e.strerror}"
        return "fail", "config", c.cfg_error
    try:
        config.parse(raw.decode("utf-8"), c.config_path)
        c.cfg = config.load(c.d)
    except UnicodeDecodeError:
        c.cfg_error = f"config {c.config_path} is not UTF-8"
    except LooopError as e:
        c.cfg_error = str(e)
    if c.cfg_error:
        return "fail", "config", c.cfg_error + " — fix it by hand (looop never overwrites it)"
    return "ok", "config", f"{c.config_path} parses"


def check_runner(c: Ctx) -> Result:
    """The default runner's program must be on PATH (`rules` is built in)."""
    import re
    import shlex
    import shutil
    from looop.errors import LooopError
    from looop.store import config
    if c.cfg is None:
        return "info", "runner", "not checked: the config does not parse"
    try:
        name, r = config.runner(c.cfg, None)
    except LooopError as e:  # an unknown default runner
        return "fail", "runner", str(e)
    tick = r.get("tick", "")
    if not tick:
        return "fail", "runner", f"runner {name!r} has no 'tick' command in {c.config_path}"
    try:  # the program: the first word that is not a VAR=value assignment
        prog = next(w for w in shlex.split(tick) if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", w))
    except (ValueError, StopIteration):
        return "fail", "runner", f"runner {name!r}: cannot parse its tick command {tick!r}"
    if prog in ("$LOOOP_BIN", "${LOOOP_BIN}"):
        llms = [n for n in config.DETECT_ORDER if shutil.which(n)]
        extra = (f" (also on PATH: {', '.join(llms)})" if llms
                 else " — no claude, codex or pi on PATH; goals with `run:` still work")
        return "ok", "runner", f"{name}: looop's built-in offline decider{extra}"
    where = shutil.which(prog)
    if where is None:
        return ("fail", "runner", f"{name}: `{prog}` not found on PATH — install it, or set "
                f'"default": "rules" in {c.config_path}')
    return "ok", "runner", f"{name}: {where}"


def check_states(c: Ctx) -> Result:
    """Every runner's activity patterns compile (SPEC §15): a bad regex is
    named with its runner, state and index."""
    from looop.store import config
    from looop.tree.activity import PatternError, compile_patterns
    if c.cfg is None:
        return "info", "states", "skipped (config unreadable)"
    n = 0
    for name in sorted(c.cfg.get("runners", {})):
        try:
            n += sum(len(v) for v in compile_patterns(name, config.runner_states(c.cfg, name)).values())
        except PatternError as e:
            return "fail", "states", f"{e} — fix it in {c.config_path}"
    return "ok", "states", f"{n} activity patterns compile"


def check_data_dir(c: Ctx) -> Result:
    import tempfile
    d = c.d
    if os.path.exists(d) and not os.path.isdir(d):
        return "fail", "data dir", f"{d} exists but is not a directory"
    if not os.path.isdir(d):
        parent = d
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if os.access(parent, os.W_OK | os.X_OK):
            return "ok", "data dir", f"{d} does not exist yet — `looop` creates it"
        return "fail", "data dir", f"{d} does not exist and {parent} is not writable"
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".doctor-"):
            pass
    except OSError as e:
        return "fail", "data dir", f"{d} is not writable: {e.strerror}"
    return "ok", "data dir", f"{d} is writable"


def check_lock(c: Ctx) -> Result:
    """Who holds `<data>/.lock`: read the pid inside and ask the process
    table (title = `looop: root … <data dir>`). Never takes the lock."""
    from looop.store import paths
    from looop.store.lock import is_root_of
    try:
        with open(paths.lock_path(c.d), "rb") as f:
            text = f.read(32).decode(errors="replace").strip()
    except FileNotFoundError:
        return "ok", "lock", "free (looop has not run here yet)"
    except OSError as e:
        return "fail", "lock", f"cannot read {paths.lock_path(c.d)}: {e.strerror}"
    pid = int(text) if text.isdigit() else None
    if pid is not None and is_root_of(pid, c.d):
        c.root_pid = pid
        return "ok", "lock", f"held by pid {pid} (looop is running)"
    if pid is None:
        return "ok", "lock", "free"
    return "ok", "lock", f"free (stale: pid {pid} is gone or not looop; the next start takes it)"


def check_socket(c: Ctx) -> Result:
    from looop.errors import LooopError
    from looop.store import paths
    from looop.tree import control
    path = paths.socket_path(c.d)
    if not os.path.exists(path):
        if c.root_pid is not None:
            return "fail", "socket", f"looop (pid {c.root_pid}) runs but {path} is missing"
        return "ok", "socket", f"{path} absent (looop not running)"
    try:
        reply = control.call(c.d, "ping", timeout=2.0)
    except LooopError as e:
        if c.root_pid is not None:
            return "fail", "socket", f"looop (pid {c.root_pid}) does not answer on {path}: {e}"
        return "warn", "socket", f"{path} is stale (nobody listens); the next `looop` replaces it"
    except OSError as e:
        return "fail", "socket", f"{path}: {e.strerror or e}"
    n = len(reply.get("sessions") or [])
    return "ok", "socket", f"{path} answers (root pid {reply.get('pid')}, {n} sessions)"


def check_tmux(c: Ctx) -> Result:
    import shutil
    import subprocess
    tmux = shutil.which("tmux")
    if tmux is None:
        return "warn", "tmux", "not found — optional: flagged workers then only show in `looop ls`"
    try:
        v = subprocess.run([tmux, "-V"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        v = "version unknown"
    return "ok", "tmux", f"{v} ({tmux})"


def check_resume(c: Ctx) -> Result:
    """A runner's `resume` (used to restart its workers) needs {{prompt_file}}."""
    if c.cfg is None:
        return "info", "resume", "not checked: the config does not parse"
    bad = sorted(n for n, r in c.cfg.get("runners", {}).items()
                 if "resume" in r and (not isinstance(r["resume"], str) or "{{prompt_file}}" not in r["resume"]))
    if bad:
        return ("fail", "resume", f"runner {', '.join(bad)}: 'resume' must contain {{{{prompt_file}}}} "
                f"(in {c.config_path})")
    have = sorted(n for n, r in c.cfg.get("runners", {}).items() if "resume" in r)
    return "ok", "resume", (f"restarts resume with: {', '.join(have)}" if have
                            else "no runner defines 'resume' (restarts rerun the command)")


def check_ladder(c: Ctx) -> Result:
    """A runner's recovery-ladder keys (`nudge`, `limited_retry`) must parse."""
    if c.cfg is None:
        return "info", "ladder", "not checked: the config does not parse"
    from looop.store import config
    errs = [e for n, r in sorted(c.cfg.get("runners", {}).items()) for e in config.ladder_errors(n, r)]
    if errs:
        return "fail", "ladder", "; ".join(errs) + f" (in {c.config_path})"
    return "ok", "ladder", "recovery ladder keys parse (nudge, limited_retry)"


def check_settings(c: Ctx) -> Result:
    """A setting that does not parse is ignored (settings.py: never a crash);
    say so, since the fallback may be "off" (max_daily_usd)."""
    if c.cfg is None:
        return "info", "settings", "not checked: the config does not parse"
    from looop import settings
    bad = settings.ignored(c.cfg)
    if bad:
        return "warn", "settings", "; ".join(bad) + " — ignored: the next source or the default applies"
    return "ok", "settings", "every numeric setting parses (looop.json, environment)"


CHECKS: tuple[Callable[[Ctx], Result], ...] = (
    check_python, check_deps, check_config, check_runner, check_states, check_resume, check_ladder,
    check_settings, check_data_dir,
    check_lock, check_socket, check_tmux,
)


def run_checks() -> list[Result]:
    """Every check, in order; a check that raises is reported, not fatal."""
    c, out = Ctx(), []
    for check in CHECKS:
        try:
            out.append(check(c))
        except Exception as e:  # noqa: BLE001 — doctor must report, not crash
            out.append(("fail", check.__name__[6:], f"check crashed: {e!r}"))
    return out


def cmd_doctor(argv: list[str]) -> int:
    from looop.cli.args import parser
    p = parser("doctor", "Check the runner, config, data dir, lock, socket, tmux and "
                         "dependencies; one line per check, exit 1 on any hard failure.")
    p.add_argument("--json", action="store_true", help='a JSON array of {"check","level","msg"}')
    a = p.parse_args(argv)
    results = run_checks()
    if a.json:
        from looop.store import jsonio
        print(jsonio.dumps([{"check": s, "level": lv, "msg": m} for lv, s, m in results]))
    else:
        from looop.ui.out import color_enabled
        paint = _painter(color_enabled(sys.stdout))
        width = max(len(s) for _, s, _ in results)
        for lv, s, m in results:
            print(paint(lv, f"{GLYPH[lv]} {s.ljust(width)}  {m}"))
    return 1 if any(lv == "fail" for lv, _, _ in results) else 0


def _painter(on: bool) -> Callable[[str, str], str]:
    if not on:
        return lambda _lv, text: text
    from colorama import Fore, Style
    colors = {"ok": Fore.GREEN, "warn": Fore.YELLOW, "fail": Fore.RED, "info": Style.DIM}
    return lambda lv, text: colors[lv] + text + Style.RESET_ALL
