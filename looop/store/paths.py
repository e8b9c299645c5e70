"""Where everything lives. A data dir is a profile: own lock, socket, sessions.

Pure functions of the environment; nothing here touches the disk except
`ensure_layout` and `socket_path` (which may need a fallback dir).
"""
from __future__ import annotations

import os
import re
import sys

from looop.errors import UsageError

ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
RESERVED = "pulse"
SOCKET_NAME = ".looop.sock"
# sun_path is 108 bytes on Linux (104 on macOS) including the NUL.
_SUN_PATH_MAX = 100


def data_dir() -> str:
    """`$LOOOP_DATA_DIR`, else `${XDG_STATE_HOME:-~/.local/state}/looop`, absolute."""
    d = os.environ.get("LOOOP_DATA_DIR")
    if not d:
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        d = os.path.join(base, "looop")
    return os.path.abspath(os.path.expanduser(d))


def is_default_profile(d: str) -> bool:
    saved = os.environ.pop("LOOOP_DATA_DIR", None)
    try:
        return data_dir() == d
    finally:
        if saved is not None:
            os.environ["LOOOP_DATA_DIR"] = saved


def config_path(d: str) -> str:
    return os.path.abspath(os.environ.get("LOOOP_CONFIG") or os.path.join(d, "looop.json"))


def check_id(value: str, what: str = "id", allow_pulse: bool = False) -> str:
    """Validate a session id / goal id / sensor name (raises UsageError).

    Accepts a legacy `looop-` prefix on session ids.
    """
    if not isinstance(value, str):
        raise UsageError(f"invalid {what}: expected a string")
    if what == "session" and value.startswith("looop-") and len(value) > 6:
        value = value[6:]
    if not ID_RE.fullmatch(value) or value.startswith("."):
        raise UsageError(f"invalid {what} {value!r}: use letters, digits, '.', '_', '-' "
                         f"(max 64, not starting with '.')")
    if value == RESERVED and not allow_pulse:
        raise UsageError(f"'{RESERVED}' is the loop itself, not a worker: "
                         f"watch it with `looop watch pulse`, stop it with Ctrl-C on `looop`")
    return value


def sessions_dir(d: str) -> str:
    return os.path.join(d, "sessions")


def session_dir(d: str, sid: str) -> str:
    return os.path.join(d, "sessions", sid)


def lock_path(d: str) -> str:
    return os.path.join(d, ".lock")


def socket_path(d: str) -> str:
    """The control socket; falls back to a hashed name in a private dir
    ($XDG_RUNTIME_DIR, else /tmp/looop-<uid>, created 0700) when the data-dir
    path is too long for a Unix socket. Raises UsageError if that dir is not
    private to us."""
    p = os.path.join(d, SOCKET_NAME)
    if len(os.fsencode(p)) <= _SUN_PATH_MAX:
        return p
    import hashlib  # rare path: kept off the import cost of every verb
    h = hashlib.sha256(os.fsencode(d)).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join("/tmp", f"looop-{os.getuid()}")
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.makedirs(base, mode=0o700, exist_ok=True)
        st = os.stat(base)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise UsageError(f"{base} is not private to this user; cannot put the control socket there")
    return os.path.join(base, f"looop-{os.getuid()}-{h}.sock")


LAYOUT = ("goals", "goals/archive", "sensors", "claims", "reports", "snapshots",
          "runs", "prompts", "sessions", "playbook.d")


def ensure_layout(d: str) -> None:
    os.makedirs(d, mode=0o700, exist_ok=True)
    for sub in LAYOUT:
        os.makedirs(os.path.join(d, sub), mode=0o700, exist_ok=True)


def looop_bin() -> str:
    """The absolute path of the `looop` executable, for workers and runners.

    Prefers the console script next to this interpreter; under `python -m
    looop` without one, falls back to argv[0] or PATH.
    """
    cand = os.path.join(os.path.dirname(sys.executable), "looop")
    if os.access(cand, os.X_OK):
        return cand
    a0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(a0) == "looop" and os.access(a0, os.X_OK):
        return a0
    import shutil
    return shutil.which("looop") or "looop"
