"""Owner of `prompts/<id>.md`: each worker's prompt as launched.

The file is the worker contract followed by the brief. For script workers
(the `rules` runner runs `bash {{prompt_file}}`) the contract is kept as shell
comments so the file stays a valid script.
"""
from __future__ import annotations

import os
from importlib import resources

from looop.store.atomic import write_atomic


_CONTRACT: str | None = None


def contract() -> str:
    """The worker contract, read from the package once per process (the root
    reads it at start: it ships with the code, so it cannot change under us)."""
    global _CONTRACT
    if _CONTRACT is None:
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
