"""Owner of `looop.json`: runner presets, cadence, limits.

A config that does not parse is an error naming the file and position; it is
never overwritten. With no config, the default runner is the first of claude,
codex, pi found on PATH, else the built-in offline `rules` runner.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from looop.errors import BadInput
from looop.store import paths

PRESETS: dict[str, dict[str, str]] = {
    "claude": {
        "tick": "claude -p --dangerously-skip-permissions",
        "interactive": 'claude --dangerously-skip-permissions "$(cat {{prompt_file}})"',
    },
    "codex": {
        "tick": "codex exec --full-auto -",
        "interactive": 'codex --full-auto "$(cat {{prompt_file}})"',
    },
    "pi": {
        # pipefail: a failing pi fails the beat even though _fmt exits 0
        "tick": 'set -o pipefail; pi -p --mode json "$(cat {{prompt_file}})" | "$LOOOP_BIN" _fmt',
        "interactive": 'pi "$(cat {{prompt_file}})"',
    },
    "rules": {
        "tick": '"$LOOOP_BIN" _rules',
        "interactive": "bash {{prompt_file}}",
    },
}
DETECT_ORDER = ("claude", "codex", "pi")
DEFAULTS: dict[str, Any] = {"interval": 60, "session_ttl": 3 * 86400}

# The numeric knobs live in looop.settings (one table for env and config).


_DETECTED: dict[str | None, str] = {}  # PATH → detected runner (load_cached only)


def detect_runner() -> str:
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
    return {"default": detect_runner(), "runners": {k: dict(v) for k, v in PRESETS.items()},
            **DEFAULTS}


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


def load(d: str) -> dict[str, Any]:
    """The effective config: the file merged over presets and defaults.

    Missing file → defaults (not written here; `ensure` writes it)."""
    return _load(d, detect_runner)


def _load(d: str, detect: Any) -> dict[str, Any]:
    path = paths.config_path(d)
    try:
        with open(path, encoding="utf-8") as f:
            cfg = parse(f.read(), path)
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


def runner(cfg: dict[str, Any], name: str | None) -> tuple[str, dict[str, str]]:
    """(name, {"tick", "interactive"}) for `name` or the default runner."""
    name = name or cfg.get("default") or "rules"
    r = cfg.get("runners", {}).get(name)
    if not isinstance(r, dict):
        known = ", ".join(sorted(cfg.get("runners", {})))
        raise BadInput(f"unknown runner {name!r} (known: {known})")
    return name, r


def knob(cfg: dict[str, Any], key: str, default: float | None = None) -> float | None:
    """A numeric setting (looop.settings): env over config over its default
    (or `default` when the table has none)."""
    from looop import settings
    v = settings.get(key, cfg, default)
    return None if v is None else float(v)
