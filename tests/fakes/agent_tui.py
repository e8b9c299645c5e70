"""A scripted fake agent TUI, run as a worker command: `python agent_tui.py
[--script FILE] [BRIEF]` (the brief, a runner's {{prompt_file}}, is ignored). It draws on the alternate screen like an agent CLI and is
driven by what is typed into it (its PTY stdin), after the lines of the
script file (one command each, run first, in order).

Screens (the test's looop.json gives the patterns that recognise them):
    ready     an input box `│ > <typed>` with the cursor after the text
    working   a spinner line `⠋ Working… (esc to interrupt)`, redrawn every 0.1 s
    asking    a permission dialog `Do you want to proceed? (y/n)`
    limited   a banner `You've hit your usage limit · resets 3pm`; with
              `limit SECS`: `· try again in SECS seconds`; `limit none`: no time
    hang      the spinner line drawn once, then nothing (a frozen agent)

Commands (typed, then Enter): `work SECS`, `ask`, `limit [SECS|none]`,
`hang`, `deaf` (ignore every key from now on, draw nothing), `quit`.
Anything else is "answered" on the transcript line — while limited, it
resumes the agent ("resumed: <line>"), as typing "continue" does once a
real agent's limit has reset. In `asking`, `y` or `n` answers; in
`working`, Esc interrupts. Bracketed paste (mode 2004, enabled here) is
taken as typed text. `--keylog FILE` appends every byte received, in every
mode (a frozen agent too), so a test sees what reached the agent.
"""
from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty

SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PASTE_ON, PASTE_OFF = b"\x1b[200~", b"\x1b[201~"


class Tui:
    def __init__(self) -> None:
        self.mode = "ready"
        self.typed = ""
        self.said = "fake agent ready"
        self.until = 0.0
        self.frame = 0
        self.deaf = False
        self.limit = "resets 3pm"

    def out(self, s: str) -> None:
        os.write(1, s.encode())

    def draw(self) -> None:
        rows = ["fake-agent v1", "", self.said, ""]
        if self.mode == "working" or self.mode == "hang":
            rows.append(f"{SPIN[self.frame % len(SPIN)]} Working… (esc to interrupt)")
        elif self.mode == "asking":
            rows += ["Bash command: rm -rf build", "Do you want to proceed? (y/n)"]
        elif self.mode == "limited":
            rows.append("You've hit your usage limit" + (f" · {self.limit}" if self.limit else ""))
        rows += ["", "╭" + "─" * 40 + "╮", "│ > " + self.typed, "╰" + "─" * 40 + "╯"]
        body = "\x1b[H\x1b[2J" + "\r\n".join(rows)
        # cursor into the box, after what was typed (row of "│ > ", 1-based)
        body += f"\x1b[{len(rows) - 1};{5 + len(self.typed)}H"
        self.out(body)

    def command(self, line: str) -> None:
        word, _, arg = line.strip().partition(" ")
        if word == "work":
            self.mode, self.until = "working", time.monotonic() + float(arg or 1)
        elif word in ("ask", "limit", "hang"):
            self.mode = {"ask": "asking", "limit": "limited", "hang": "hang"}[word]
            if word == "limit":
                self.limit = ("" if arg == "none" else f"try again in {arg} seconds" if arg
                              else "resets 3pm")
        elif word == "deaf":
            self.deaf = True
            return
        elif word == "quit":
            raise SystemExit(0)
        elif self.mode == "limited":
            self.mode, self.said = "ready", f"resumed: {line.strip()}"
        else:
            self.said = f"answered: {line.strip()}"
        self.draw()

    def key(self, data: bytes) -> None:
        if self.deaf or self.mode == "hang":
            return
        text = data.replace(PASTE_ON, b"").replace(PASTE_OFF, b"").decode("utf-8", "replace")
        if self.mode == "asking":
            if text.strip().lower() in ("y", "n"):
                self.mode, self.said = "ready", f"permission: {text.strip().lower()}"
                self.draw()
            return
        if self.mode == "working":
            if text == "\x1b":
                self.mode, self.said = "ready", "interrupted"
                self.draw()
            return
        for ch in text:
            if ch in "\r\n":
                line, self.typed = self.typed, ""
                self.command(line)
            elif ch in "\x7f\b":
                self.typed = self.typed[:-1]
            elif ch.isprintable():
                self.typed += ch
        if not self.deaf:
            self.draw()

    def tick(self) -> None:
        if self.mode == "working":
            if time.monotonic() >= self.until:
                self.mode, self.said = "ready", "done"
            self.frame += 1
            self.draw()


def main() -> None:
    tui = Tui()
    script = sys.argv[sys.argv.index("--script") + 1] if "--script" in sys.argv else None
    keylog = sys.argv[sys.argv.index("--keylog") + 1] if "--keylog" in sys.argv else None
    old = termios.tcgetattr(0)
    tty.setraw(0)
    tui.out("\x1b[?1049h\x1b[?2004h")
    try:
        tui.draw()
        if script:
            with open(script) as f:
                for line in f:
                    if line.strip():
                        tui.command(line)
        while True:
            wait = 0.1 if tui.mode == "working" else None
            r, _, _ = select.select([0], [], [], wait)
            if r:
                data = os.read(0, 4096)
                if not data:
                    return
                if keylog:
                    with open(keylog, "ab") as f:
                        f.write(data)
                tui.key(data)
            else:
                tui.tick()
    finally:
        tui.out("\x1b[?2004l\x1b[?1049l")
        termios.tcsetattr(0, termios.TCSADRAIN, old)


if __name__ == "__main__":
    main()
