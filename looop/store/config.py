"""Owner of `looop.json`: runner presets, cadence, limits.

A config that does not parse is an error naming the file and position; it is
never overwritten. With no config, the default runner is the first of claude,
codex, pi found on PATH, else the built-in offline `rules` runner.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

from looop.errors import BadInput
from looop.store import paths
from looop.store.readfile import NotRegular, read_bounded

def _claude_hooks() -> str:
    """`--settings` JSON for a claude worker: its own hooks report to looop
    (`looop _event`), so its activity has the agent's word, not only the
    screen. Passed on the command line, so the user's ~/.claude/settings.json
    is never touched; Claude Code merges --settings hooks with the user's
    (https://github.com/anthropics/claude-code/issues/11392). Events and
    matchers: Notification `permission_prompt` / `idle_prompt`, Stop
    (https://devhints.io/claude-code-hooks, code.claude.com/docs hooks guide).
    `|| true`: a hook must never fail the agent (exit 2 would block a Stop)."""
    def hook(state: str, note: str) -> list[dict[str, str]]:
        return [{"type": "command",
                 "command": f'"$LOOOP_BIN" _event "$LOOOP_SESSION_ID" {state} {note} || true'}]
    return json.dumps({"hooks": {
        "Notification": [{"matcher": "permission_prompt", "hooks": hook("asking", "permission_prompt")},
                         {"matcher": "idle_prompt", "hooks": hook("ready", "idle_prompt")}],
        "Stop": [{"hooks": hook("ready", "Stop")}]}}, separators=(",", ":"))


# `states`: regexes matched against a worker's settled screen (SPEC §15,
# looop.tree.activity). Each comes from the tool's own docs or issue threads,
# cited beside it; none is invented. Where a tool documents no string for a
# state, there is no pattern and the timing rules decide (settled → ready).
PRESETS: dict[str, dict[str, Any]] = {
    "claude": {
        "tick": "claude -p --dangerously-skip-permissions",
        "interactive": ("claude --settings " + shlex.quote(_claude_hooks())
                        + ' --dangerously-skip-permissions "$(cat {{prompt_file}})"'),
        "states": {
            "working": [
                # the spinner line "(esc to interrupt)":
                # https://github.com/anthropics/claude-code/issues/16905 and /issues/14526
                r"esc to interrupt",
            ],
            "asking": [
                # permission dialogs "Do you want to proceed?" / "…make this edit to <file>?" /
                # "…create <file>?": https://github.com/anthropics/claude-code/issues/10732,
                # catalogued in https://github.com/judell/bram/issues/197
                r"Do you want to (?:proceed|make this edit|create|overwrite|allow)",
                # the dialog's last option: https://github.com/anthropics/claude-code/issues/10732
                r"No, and tell Claude what to do differently",
            ],
            "limited": [
                # "You've hit your session limit · resets 12:50am (America/Los_Angeles)":
                # https://github.com/anthropics/claude-code/issues/74079, /issues/54698
                r"You[’']ve hit your (?:session |weekly )?limit",
                # "Claude usage limit reached. Your limit will reset at 9am (America/Chicago)":
                # https://github.com/anthropics/claude-code/issues/15064
                r"usage limit reached",
            ],
            "ready": [
                # after Esc: "Interrupted · What should Claude do instead?":
                # https://github.com/gnachman/iTerm2/pull/758, anthropics/claude-code/issues/33235
                r"Interrupted · What should Claude do instead\?",
            ],
        },
    },
    "codex": {
        "tick": "codex exec --full-auto -",
        "interactive": 'codex --full-auto "$(cat {{prompt_file}})"',
        "states": {
            "working": [
                # "Working (··· • esc to interrupt)" (and "esc esc" after openai/codex#8760):
                # https://github.com/openai/codex/issues/17095, https://github.com/openai/codex/pull/8760
                r"esc (?:esc )?to interrupt",
            ],
            "asking": [
                # the exec approval overlay: https://github.com/openai/codex/issues/1260 (comment)
                r"Would you like to run the following command\?",
                # older "Allow command?" dialog: https://github.com/openai/codex/issues/392
                r"Allow command\?",
                # approval option label: https://github.com/openai/codex/pull/7543
                r"Yes, proceed",
            ],
            "limited": [
                # "■ You've hit your usage limit. … try again in 5 days 22 hours 11 minutes." /
                # "… or try again at Jul 5th, 2026 8:19 PM.": https://github.com/openai/codex/issues/3899,
                # https://github.com/openai/codex/issues/26668
                r"You[’']ve hit your usage limit",
            ],
        },
    },
    "pi": {
        # pipefail: a failing pi fails the beat even though _fmt exits 0
        "tick": 'set -o pipefail; pi -p --mode json "$(cat {{prompt_file}})" | "$LOOOP_BIN" _fmt',
        "interactive": 'pi "$(cat {{prompt_file}})"',
        "states": {
            "working": [
                # the loader "Working... (esc to interrupt)": badlogic/pi-mono
                # packages/coding-agent/src/modes/interactive/interactive-mode.ts
                # (`${defaultWorkingMessage} (${keyText("app.interrupt")} to interrupt)`)
                r"Working\.\.\. \(.+ to interrupt\)",
            ],
        },
    },
    "rules": {
        "tick": '"$LOOOP_BIN" _rules',
        "interactive": "bash {{prompt_file}}",
        "ladder": False,  # scripts, not agents: a quiet one is not typed into (SPEC §16)
    },
}
DETECT_ORDER = ("claude", "codex", "pi")
DEFAULT_SETTLE = 1.5        # seconds of quiet before a screen counts as settled
DEFAULT_STUCK = 15 * 60.0   # LOOOP_WORKER_STUCK
DEFAULT_STARTING = 30.0     # LOOOP_WORKER_STARTING (= looop.tree.activity.STARTING_MAX)
DEFAULTS: dict[str, Any] = {"interval": 60, "session_ttl": 3 * 86400}

# The numeric knobs live in looop.settings (one table for env and config).


_DETECTED: dict[str | None, str] = {}  # PATH → detected runner (load_cached only)


def detect_runner() -> str:
    import shutil  # (imports bz2 and lzma: only when a runner must be detected)
    for name in DETECT_ORDER:
        if shutil.which(name):
            return name
    return "rules"


def _detect_once() -> str:
    path = os.environ.get("PATH")
    if path not in _DETECTED:
        _DETECTED[path] = detect_runner()
    return _DETECTED[path]


def default_config() -> dict[str, Any]:
    # the written file leaves the preset `states` out: they apply anyway
    # (runner_states), and a newer looop's patterns then reach old files
    runners = {k: {f: v for f, v in r.items() if f != "states"} for k, r in PRESETS.items()}
    return {"default": detect_runner(), "runners": runners, **DEFAULTS}


def parse(text: str, path: str) -> dict[str, Any]:
    """Parse config text strictly; BadInput names the file and the position."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"config {path} does not parse: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(cfg, dict):
        raise BadInput(f"config {path}: expected a JSON object at the top level")
    runners = cfg.get("runners", {})
    if not isinstance(runners, dict) or not all(isinstance(v, dict) for v in runners.values()):
        raise BadInput(f"config {path}: 'runners' must map names to objects")
    return cfg


MAX_CONFIG = 1 << 20

def load(d: str) -> dict[str, Any]:
    """The effective config: the file merged over presets and defaults.

    Missing file → defaults (not written here; `ensure` writes it)."""
    return _load(d, detect_runner)


def _load(d: str, detect: Any) -> dict[str, Any]:
    path = paths.config_path(d)
    try:
        raw = read_bounded(path, MAX_CONFIG + 1, follow=True)  # a FIFO must not hang a verb
        if len(raw) > MAX_CONFIG:
            raise BadInput(f"config {path} is over {MAX_CONFIG >> 10} KiB")
        cfg = parse(raw.decode("utf-8"), path)
    except NotRegular as e:
        raise BadInput(f"config {path} is {e.strerror}") from None
    except FileNotFoundError:
        return {"default": detect(), "runners": {k: dict(v) for k, v in PRESETS.items()}, **DEFAULTS}
    except UnicodeDecodeError:
        raise BadInput(f"config {path} is not UTF-8") from None
    merged = {**DEFAULTS, **cfg}
    merged["runners"] = {**{k: dict(v) for k, v in PRESETS.items()}, **cfg.get("runners", {})}
    if "default" not in merged:
        merged["default"] = detect()
    return merged


_CACHE: dict[str, tuple[tuple[int, int, int, str | None] | None, dict[str, Any]]] = {}


def load_cached(d: str) -> dict[str, Any]:
    """`load` for a long-lived reader (the root, once per worker start): the
    parsed config is reused while the file's (inode, mtime, size) and PATH are
    unchanged, and runner auto-detection runs once per PATH. Read-only: the
    caller must not mutate the result. A broken file raises every time."""
    path = paths.config_path(d)
    try:
        st = os.stat(path)
        key: tuple[int, int, int, str | None] | None = (st.st_ino, st.st_mtime_ns, st.st_size,
                                                        os.environ.get("PATH"))
    except FileNotFoundError:
        key = (0, 0, -1, os.environ.get("PATH"))
    except OSError:
        key = None
    hit = _CACHE.get(d)
    if key is not None and hit is not None and hit[0] == key:
        return hit[1]
    cfg = _load(d, _detect_once)
    _CACHE[d] = (key, cfg)
    return cfg


def ensure(d: str) -> tuple[dict[str, Any], bool]:
    """Load the config, writing the default one if absent. Returns (cfg, created)."""
    from looop.store.atomic import write_atomic
    path = paths.config_path(d)
    if os.path.exists(path):
        return load(d), False
    cfg = default_config()
    write_atomic(path, json.dumps(cfg, indent=2) + "\n")
    return cfg, True


def _own(cfg: dict[str, Any], name: str | None) -> dict[str, Any]:
    """What looop.json itself says of runner `name` ({} if nothing)."""
    r = cfg.get("runners", {}).get(name or "")
    return r if isinstance(r, dict) else {}


def runner_states(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """A runner's `states` table: its preset's patterns, each state the
    user's entry names replaced by the user's list (user entries override)."""
    preset = PRESETS.get(name, {}).get("states") or {}
    mine = _own(cfg, name).get("states")
    if mine is None or not isinstance(mine, dict):
        return dict(preset) if mine is None else mine  # a bad value reaches validation as is
    return {**preset, **mine}


_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: Any) -> float | None:
    """A duration knob (`1.5s`, `500ms`, `15m`, bare seconds) → seconds, None if unparsable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    m = _DUR.match(str(value))
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def runner_settle(cfg: dict[str, Any], name: str) -> float:
    """A runner's `settle` (default 1.5 s): the quiet that makes a screen settled."""
    raw = _own(cfg, name).get("settle", PRESETS.get(name, {}).get("settle"))
    got = seconds(raw) if raw is not None else None
    return DEFAULT_SETTLE if got is None else got


# The recovery ladder's per-runner keys (SPEC §16, looop.pulse.ladder):
# `nudge`, the text typed (then Enter) into a stuck worker, and into a parked
# one once its usage limit has reset; `limited_retry`, how long a worker
# parked on a limit that names no reset time waits before that resume.
DEFAULT_NUDGE = "continue"
DEFAULT_LIMITED_RETRY = 30 * 60.0


def runner_nudge(cfg: dict[str, Any], name: str | None) -> str:
    """A runner's `nudge` text (default "continue"); a non-string or blank one is the default."""
    raw = _own(cfg, name).get("nudge")
    return raw if isinstance(raw, str) and raw.strip() else DEFAULT_NUDGE


def runner_limited_retry(cfg: dict[str, Any], name: str | None) -> float:
    """A runner's `limited_retry` (default 30 min): a limit that names no reset time."""
    raw = _own(cfg, name).get("limited_retry")
    got = seconds(raw) if raw is not None else None
    return DEFAULT_LIMITED_RETRY if not got else got


def ladder_errors(name: str, r: dict[str, Any]) -> list[str]:
    """What is wrong with a runner's ladder keys (for `looop doctor`)."""
    errs = []
    if "nudge" in r and (not isinstance(r["nudge"], str) or not r["nudge"].strip()):
        errs.append(f"runner {name!r}: 'nudge' must be a non-empty string")
    if "ladder" in r and not isinstance(r["ladder"], bool):
        errs.append(f"runner {name!r}: 'ladder' must be true or false")
    if "limited_retry" in r and not seconds(r["limited_retry"]):
        errs.append(f"runner {name!r}: 'limited_retry' {r['limited_retry']!r} is not a positive duration")
    return errs


def _positive(name: str, default: float) -> float:
    from looop import settings
    got = settings.get(name)
    return default if got is None or got <= 0 else float(got)


def worker_stuck() -> float:
    """LOOOP_WORKER_STUCK (default 15 min): quiet this long while working is stuck."""
    return _positive("LOOOP_WORKER_STUCK", DEFAULT_STUCK)


def worker_starting() -> float:
    """LOOOP_WORKER_STARTING (default 30 s): the longest a silent worker is `starting`."""
    return _positive("LOOOP_WORKER_STARTING", DEFAULT_STARTING)


def runner(cfg: dict[str, Any], name: str | None) -> tuple[str, dict[str, str]]:
    """(name, {"tick", "interactive"}) for `name` or the default runner."""
    name = name or cfg.get("default") or "rules"
    r = cfg.get("runners", {}).get(name)
    if not isinstance(r, dict):
        known = ", ".join(sorted(cfg.get("runners", {})))
        raise BadInput(f"unknown runner {name!r} (known: {known})")
    return name, r


SHELL_WORDS = frozenset(("set", "exec", "cd", "export", "source", ".", "eval", "env", "command",
                         "if", "for", "while", "case", "{", "(", "!", "time", "nohup"))


def program(cmd: str) -> str | None:
    """The program a runner command line starts: its first word that is not
    a VAR=value assignment; None if it does not parse or starts with shell
    syntax we do not follow (`set -o pipefail; …`, `cd x && …`)."""
    import re
    import shlex
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    prog = next((w for w in words if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", w)), None)
    return None if prog is None or prog in SHELL_WORDS or prog.endswith(";") else prog


def knob(cfg: dict[str, Any], key: str, default: float | None = None) -> float | None:
    """A numeric setting (looop.settings): env over config over its default
    (or `default` when the table has none)."""
    from looop import settings
    v = settings.get(key, cfg, default)
    return None if v is None else float(v)


def usd_limit(cfg: dict[str, Any], key: str) -> float | None:
    """A daily spend limit (max_daily_usd, warn_daily_usd): a positive
    amount, or None when unset, zero or not a number (off)."""
    v = knob(cfg, key)
    return v if v is not None and v > 0 else None
