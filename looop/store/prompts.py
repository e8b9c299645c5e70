"""Owner of `prompts/<id>.md`: each worker's prompt as launched.

The file is the worker contract followed by the brief. For script workers
(the `rules` runner runs `bash {{prompt_file}}`) the contract is kept as shell
comments so the file stays a valid script.
"""
from __future__ import annotations

import os

from looop.store.atomic import write_atomic


_CONTRACT: str | None = None


def contract() -> str:
    """The worker contract, read from the package once per process (the root
    reads it at start: it ships with the code, so it cannot change under us)."""
    global _CONTRACT
    if _CONTRACT is None:
        from importlib import resources  # (tempfile, shutil, zipfile: kept off `ls`)
        _CONTRACT = resources.files("looop.seeds").joinpath("worker-contract.md").read_text(encoding="utf-8")
    return _CONTRACT


def write(d: str, sid: str, brief: str, as_script: bool = False) -> str:
    """Write the prompt file; returns its absolute path."""
    text = contract()
    if as_script:
        text = "#!/usr/bin/env bash\n" + "".join(f"# {ln}\n" if ln else "#\n" for ln in text.splitlines())
    body = text + "\n" + brief + ("" if brief.endswith("\n") else "\n")
    path = os.path.join(d, "prompts", f"{sid}.md")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # no fsync: the rename alone keeps it old-or-new, and the file is
    # rewritten on every start (it is not a policy file)
    write_atomic(path, body, fsync=False)
    return path


def script_body(path: str, limit: int = 200) -> str:
    """A script worker's own commands (the contract comments and blank lines
    dropped), joined with `; ` — at most `limit` characters ('' if unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(64 << 10)
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    out = "; ".join(lines)
    return out if len(out) <= limit else out[:limit - 1] + "…"
