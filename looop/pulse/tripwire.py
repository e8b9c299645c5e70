"""The run_shell deny-list: a TRIPWIRE, not a sandbox.

It catches the obvious catastrophic one-liners a confused decider might emit
(wiping / or ~, sudo, mkfs, dd onto a device, force-pushing main, piping a
download into a shell, powering the machine off, writing raw disks). Anything
determined to do harm gets past a regex; the real boundary is what the user
lets the runner do. LOOOP_SHELL_ALLOW_DANGEROUS=1 disables it.
"""
from __future__ import annotations

import re

# A "segment" is one simple command: text up to ; & | or a newline.
_SEG = r"[^;&|\n]*"
_ROOTS = {"/", "/*", "~", "~/", "~/*", "$HOME", "${HOME}", "$HOME/", "$HOME/*", "${HOME}/", "${HOME}/*"}
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(rx)) for name, rx in (
    ("sudo", r"(?:^|[;&|(`\s])sudo\b"),
    ("mkfs", r"\bmkfs(?:\.\w+)?\b"),
    ("dd onto a device", r"\bdd\b" + _SEG + r"\bof=/dev/"),
    ("force-push to main/master", r"\bgit\b" + _SEG + r"\bpush\b(?=" + _SEG
     + r"(?:\s--force\b|\s-f\b|\s--force-with-lease\b|\s-[a-zA-Z]*f))(?=" + _SEG
     + r"\b(?:main|master)\b)"),
    ("force-push to main/master", r"\bgit\b" + _SEG + r"\bpush\b" + _SEG + r"\s\+(?:main|master)\b"),
    ("download piped into a shell", r"\b(?:curl|wget)\b[^;&\n]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b"),
    ("shutdown/reboot", r"(?:^|[;&|(`\s])(?:shutdown|reboot|poweroff|halt)\b|\binit\s+[06]\b"),
    ("write to a raw disk", r">\s*/dev/(?:sd[a-z]|hd[a-z]|nvme\d|vd[a-z]|xvd[a-z]|mmcblk\d|disk\d)"),
))


def _rm_root(cmd: str) -> bool:
    """`rm` with a recursive flag aimed at / or the home dir, in any segment."""
    for seg in re.split(r"[;&|\n()`]", cmd):
        words = [w.strip("'\"") for w in seg.split()]
        if "rm" not in words:
            continue
        rest = words[words.index("rm") + 1:]
        flags = [w for w in rest if w.startswith("-")]
        recursive = any(f == "--recursive" or (not f.startswith("--") and set(f) & {"r", "R"})
                        for f in flags)
        if recursive and any(w in _ROOTS for w in rest if not w.startswith("-")):
            return True
    return False


def screen(cmd: str) -> str | None:
    """The name of the first rule `cmd` trips, or None."""
    if _rm_root(cmd):
        return "rm -rf of / or ~"
    for name, rx in _RULES:
        if rx.search(cmd):
            return name
    return None
