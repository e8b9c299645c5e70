"""Activity of live workers through real trees (SPEC §15): the fake agent TUI
(tests/fakes/agent_tui.py) driven through every state, and the bad input."""
from __future__ import annotations

import json
import os

from conftest import run


def write_config(d: str, cfg: dict) -> None:
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(cfg, f)


def test_doctor_names_runner_state_and_index_of_a_bad_regex(data_dir):
    write_config(data_dir, {"default": "rules", "runners": {
        "fake": {"tick": "true", "interactive": "x {{prompt_file}}",
                 "states": {"ready": ["ok", "(unclosed"]}}}})
    r = run("doctor")
    assert r.returncode == 1
    line = next(ln for ln in r.stdout.splitlines() if " states" in ln)
    assert line.startswith("✗") and "runner 'fake': states.ready[1] '(unclosed' is not a valid regex" in line
    write_config(data_dir, {"default": "rules", "runners": {
        "fake": {"tick": "true", "interactive": "x {{prompt_file}}", "states": {"idle": ["x"]}}}})
    line = next(ln for ln in run("doctor").stdout.splitlines() if " states" in ln)
    assert "unknown state 'idle'" in line
    write_config(data_dir, {"default": "rules"})
    r = run("doctor")
    line = next(ln for ln in r.stdout.splitlines() if " states" in ln)
    assert line.startswith("✓") and "activity patterns compile" in line
