"""The mailbox verbs: `ask` and `told` (inside a worker), `answer` and `tell`
(from anywhere). Files are the exchange, so they work while the root is busy
or down, and an answer given while nobody waits is kept for the next asker;
`ask` and `answer` then nudge the worker's child over the control socket (best
effort, looop.tree.control.nudge) so its activity moves without output.
"""
from __future__ import annotations

import os
import sys

from looop.cli.args import duration, parser, said
from looop.errors import LooopError, Timeout, UsageError
from looop.store import asks, paths, tells

ASK_TIMEOUT = "1d"


def _me(verb: str) -> str:
    sid = os.environ.get("LOOOP_SESSION_ID")
    if not sid:
        raise UsageError(f"not inside a worker (LOOOP_SESSION_ID is unset): `{verb}` is for workers"
                         + ("; from outside, use `looop tell <id> <msg>`" if verb == "told" else ""))
    return paths.check_id(sid, "session")


def cmd_ask(argv: list[str]) -> int:
    p = parser("ask", "Inside a worker: ask a human (or the decider) and block until answered. "
                      "stdout carries only the answer: answer=$(\"$LOOOP_BIN\" ask \"question\"). "
                      "Asking the same question again resumes waiting for it.")
    p.add_argument("question", nargs="+", help="words are joined with spaces")
    p.add_argument("--options", help="comma-separated allowed answers, e.g. yes,no")
    p.add_argument("--ref", metavar="FILE", help="a file the answerer should read first")
    p.add_argument("--timeout", default=ASK_TIMEOUT,
                   help=f"give up after this long, exit 124 (default {ASK_TIMEOUT})")
    a = p.parse_args(argv)
    worker = _me("ask")
    timeout = duration(a.timeout)
    options = [o.strip() for o in a.options.split(",") if o.strip()] if a.options else None
    ref = None
    if a.ref:
        ref = os.path.abspath(a.ref)
        if not os.path.isfile(ref):
            raise UsageError(f"--ref {a.ref}: no such file")
    question = " ".join(a.question)
    if not question.strip():
        raise UsageError("the question is empty")
    d = paths.data_dir()
    import psutil
    rec = asks.create(d, worker, question, options, ref, pid=os.getpid(),
                      pid_started=psutil.Process().create_time())
    from looop.tree.control import nudge
    nudge(d, worker)  # its activity becomes `asking` now, not at its next output
    print(f"looop ask: {rec['id']} is waiting — answer with: looop answer {rec['id']} <text>",
          file=sys.stderr, flush=True)
    got = asks.wait_answer(d, rec["id"], timeout)
    if got is None:
        raise Timeout(f"no answer to {rec['id']} within {said(a.timeout)} (it stays pending; "
                      "ask the same question again to keep waiting)")
    text = got["answer"]
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    asks.deliver(d, rec["id"])
    return 0


def cmd_answer(argv: list[str]) -> int:
    p = parser("answer", "Answer a worker's ask (see `looop inbox`). The first answer wins; "
                         "--force replaces one not yet delivered.")
    p.add_argument("ask_id", metavar="ASK_ID", help="e.g. w1-3")
    p.add_argument("text", nargs="+", help="the answer (words joined with spaces); - reads stdin")
    p.add_argument("--force", action="store_true", help="overwrite an answer not yet delivered")
    a = p.parse_args(argv)
    aid = asks.check_ask_id(a.ask_id)
    if a.text == ["-"]:
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text
    else:
        text = " ".join(a.text)
    if not text.strip():  # the first answer wins: an empty one is a slip, not a reply
        raise UsageError("the answer is empty (nothing answered)")
    d = paths.data_dir()
    rec = asks.answer(d, aid, text, force=a.force, by=os.environ.get("LOOOP_SESSION_ID") or "human")
    if isinstance(rec.get("worker"), str):
        from looop.tree.control import nudge
        nudge(d, rec["worker"])  # it leaves `asking` now, even if it prints nothing
    print(f"answered {aid}")
    return 0


def cmd_tell(argv: list[str]) -> int:
    p = parser("tell", "Leave a message for a live worker; it reads it once with `looop told`.")
    p.add_argument("id", help="session id of a live worker")
    p.add_argument("message", nargs="+", help="words are joined with spaces")
    a = p.parse_args(argv)
    sid = paths.check_id(a.id, "session")
    d = paths.data_dir()
    from looop.registry import rows
    row = next((r for r in rows(d) if r["id"] == sid and r["role"] == "worker"), None)
    if row is None:
        raise LooopError(f"no session {sid!r} — nothing sent")
    if not row["alive"]:
        raise LooopError(f"session {sid} is not running ({row['state']}) — nothing sent")
    rec = tells.send(d, sid, " ".join(a.message), sender=os.environ.get("LOOOP_SESSION_ID") or "human")
    print(f"told {sid} ({rec['id']})")
    return 0


def cmd_told(argv: list[str]) -> int:
    p = parser("told", "Inside a worker: print the messages left for you with `looop tell`, "
                       "each once, oldest first (nothing pending: no output).")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    a = p.parse_args(argv)
    worker = _me("told")
    from looop.store import jsonio
    for rec in tells.take(paths.data_dir(), worker):
        if a.json:
            print(jsonio.dumps(rec))
        elif rec["text"] is None:
            print(f"(unreadable message {rec['id']}: kept in tells/consumed/)")
        else:
            print(rec["text"])
    return 0
