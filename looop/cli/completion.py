"""`looop config bash|zsh`: shell completion scripts, generated so they cannot drift.

Verbs and their one-line summaries come from `looop.cli.main.VERBS`; each
verb's flags come from its own argparse parser, captured by running the verb
with `parse_known_args` patched to raise before anything else happens (every
verb parses its arguments first — SPEC §7 "every verb: --help"). The script
is static except for session ids, which it asks for on TAB with
`looop config --ids live|all`: a raw /proc scan of process titles (about one
interpreter start, no psutil) plus the profile's `sessions/` directory, for
the profile in the shell's environment (`LOOOP_DATA_DIR`; zsh also honours a
`LOOOP_DATA_DIR=… looop` prefix typed on the line, bash cannot see one).
"""
from __future__ import annotations

import os
import sys
from typing import Any

# Verbs whose <id> must be a live worker (the socket verbs); the others take
# any recorded session, the pulse included.
LIVE_ONLY = frozenset({"send", "key", "resize", "kill", "flag", "unflag", "detach", "attach", "tell"})
NEW_ID = frozenset({"start-session"})  # names a new session: nothing to complete


class _Captured(Exception):
    def __init__(self, parser: Any) -> None:
        self.parser = parser


def capture_parser(verb: str) -> Any | None:
    """The argparse parser `looop <verb>` builds, captured before it parses
    anything (so the verb never runs), or None if the verb's module is missing
    or it does not use argparse. Blocks only for the import of that module."""
    import argparse
    import contextlib
    import importlib
    import io
    from looop.cli.main import VERBS
    module, func, _ = VERBS[verb]

    def capture(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> Any:
        raise _Captured(self)

    saved = argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_known_args = capture  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            getattr(importlib.import_module(module), func)(["--help"])
    except _Captured as c:
        return c.parser
    except (Exception, SystemExit):  # noqa: BLE001 — a broken verb must not break completion
        pass
    finally:
        argparse.ArgumentParser.parse_known_args = saved  # type: ignore[method-assign]
    return None


def verb_spec(verb: str) -> tuple[list[str], bool]:
    """(flags, takes a session id first) for one verb, from its own parser."""
    p = capture_parser(verb)
    if p is None:
        return [], False
    flags = sorted({s for act in p._actions for s in act.option_strings})
    pos = [act.dest for act in p._actions if not act.option_strings]
    return flags, bool(pos) and pos[0] == "id"


def table() -> list[tuple[str, str, list[str], str]]:
    """(verb, summary, flags, id kind: "live" | "all" | "") for every public verb."""
    from looop.cli.main import VERBS
    rows = []
    for verb, (_m, _f, summary) in VERBS.items():
        if verb.startswith("_"):
            continue
        flags, takes_id = verb_spec(verb)
        kind = ("live" if verb in LIVE_ONLY else "all") if takes_id and verb not in NEW_ID else ""
        rows.append((verb, summary, flags, kind))
    return rows


KEY_NAMES = ("Enter Tab Esc Space Backspace Delete Up Down Left Right Home End PageUp PageDown "
             "Insert F1 F2 F3 F4 F5 F6 F7 F8 F9 F10 F11 F12 C-c C-d C-z C-l M-x")


def values(verb: str) -> list[tuple[str, str]]:
    """(pattern, shell words) for what follows a flag (`verb:--flag`) or
    fills a positional (`verb.N`, N counted after the verb): each argparse
    `choices`, plus key names for `key` and the config's runners for
    `start-session` (a live `looop config --runners` on TAB)."""
    p = capture_parser(verb)
    out: list[tuple[str, str]] = []
    if p is None:
        return out
    pos = 0
    for act in p._actions:
        if act.option_strings:
            if act.choices:
                out += [(f"{verb}:{o}", " ".join(map(str, act.choices))) for o in act.option_strings]
            continue
        if act.choices:
            out.append((f"{verb}.{pos}", " ".join(map(str, act.choices))))
        pos += 1
    if verb == "key":
        out.append(("key.[1-9]*", KEY_NAMES))
    if verb == "start-session":
        out.append(("start-session.2", "@RUNNERS@"))
    return out


def runner_names() -> list[str]:
    from looop.store import config, paths
    try:
        return sorted(config.load(paths.data_dir()).get("runners", {}))
    except Exception:  # noqa: BLE001 — completion must never fail loudly
        return sorted(config.PRESETS)


def _value_arms(fmt: str, runners: str) -> str:
    from looop.cli.main import VERBS
    arms = []
    for verb in VERBS:
        if verb.startswith("_"):
            continue
        for pat, words in values(verb):
            quoted = pat if "[" in pat else f"'{pat}'"
            arms.append(fmt.format(pat=quoted, words=runners if words == "@RUNNERS@" else f"'{words}'"))
    return "\n".join(arms)


def session_ids(mode: str) -> list[str]:
    """Session ids of this profile: "live" = running workers (from titles),
    "all" = live ones plus every session recorded on disk, the pulse included."""
    from looop.store import paths
    from looop.store.title import live_titles
    d = paths.data_dir()
    live = {t.sid for _pid, t in live_titles() if t.role != "root" and t.data_dir == d}
    if mode == "live":
        return sorted(live - {"pulse"})
    try:
        on_disk = {n for n in os.listdir(paths.sessions_dir(d)) if not n.startswith(".")}
    except OSError:
        on_disk = set()
    return sorted(live | on_disk)


def _case_arms(rows: list[tuple[str, str, list[str], str]], pick: int, fmt: str) -> str:
    return "\n".join(fmt.format(verb=r[0], words=" ".join(r[pick])) for r in rows if r[pick])


def bash_script() -> str:
    rows = table()
    verbs = " ".join(r[0] for r in rows)
    flags = _case_arms(rows, 2, "    {verb}) echo '{words}' ;;")
    live = "|".join(r[0] for r in rows if r[3] == "live")
    anyid = "|".join(r[0] for r in rows if r[3] == "all")
    vals = _value_arms("    {pat}) echo {words} ;;", '"$($2 config --runners 2>/dev/null)"')
    return BASH.replace("@VERBS@", verbs).replace("@FLAGS@", flags).replace("@VALUES@", vals) \
        .replace("@LIVE@", live or "_none_").replace("@ANY@", anyid or "_none_")


def zsh_script() -> str:
    rows = table()

    def q(s: str) -> str:
        return "'" + s.replace("'", "'\\''") + "'"
    described = "\n".join(f"    {q(r[0] + ':' + r[1].replace(':', chr(92) + ':'))}" for r in rows)
    flags = _case_arms(rows, 2, "    ({verb}) print -r -- '{words}' ;;")
    live = "|".join(r[0] for r in rows if r[3] == "live")
    anyid = "|".join(r[0] for r in rows if r[3] == "all")
    vals = _value_arms("    ({pat}) print -r -- {words} ;;", '"$($2 config --runners 2>/dev/null)"')
    return ZSH.replace("@DESCRIBED@", described).replace("@FLAGS@", flags).replace("@VALUES@", vals) \
        .replace("@LIVE@", live or "_none_").replace("@ANY@", anyid or "_none_")


def cmd_config(argv: list[str]) -> int:
    from looop.cli.args import parser
    p = parser("config", 'Print a shell completion script. Add to ~/.bashrc: eval "$(looop config bash)"; '
                         'to ~/.zshrc: eval "$(looop config zsh)". Completes verbs, flags and the '
                         "session ids of the profile in $LOOOP_DATA_DIR.")
    p.add_argument("shell", nargs="?", choices=("bash", "zsh"))
    p.add_argument("--ids", choices=("live", "all"), help="print session ids, one a line (used on TAB)")
    p.add_argument("--runners", action="store_true", help="print the config's runner names (used on TAB)")
    a = p.parse_args(argv)
    if a.runners:
        sys.stdout.write("".join(n + "\n" for n in runner_names()))
        return 0
    if a.ids:
        ids = session_ids(a.ids)
        sys.stdout.write("".join(i + "\n" for i in ids))
        return 0
    if a.shell is None:
        from looop.errors import UsageError
        raise UsageError("which shell? `looop config bash` or `looop config zsh`")
    sys.stdout.write(bash_script() if a.shell == "bash" else zsh_script())
    return 0


BASH = r'''# looop bash completion. Add to ~/.bashrc:  eval "$(looop config bash)"
_looop_flags() {
  case "$1" in
@FLAGS@
    *) echo '-h --help' ;;
  esac
}
# Values of a flag (`verb:--flag`) or a positional (`verb.N`); $2 = looop.
_looop_values() {
  case "$1" in
@VALUES@
  esac
}
# Ids of the profile in $LOOOP_DATA_DIR. (bash strips a `VAR=… looop` prefix
# from COMP_WORDS and COMP_LINE alike, so only an exported value can count.)
_looop_ids() {
  "$1" config --ids "$2" 2>/dev/null
}
_looop() {
  local cur="${COMP_WORDS[COMP_CWORD]}" i=1 cmd="${COMP_WORDS[0]}"
  COMPREPLY=()
  while (( i < COMP_CWORD )) && [[ "${COMP_WORDS[i]}" == -* ]]; do i=$((i + 1)); done
  if (( i == COMP_CWORD )); then
    COMPREPLY=( $(compgen -W "@VERBS@ --json --help --version" -- "$cur") )
    return 0
  fi
  local verb="${COMP_WORDS[i]}" pos=0 j
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$(_looop_flags "$verb")" -- "$cur") )
    return 0
  fi
  for (( j = i + 1; j < COMP_CWORD; j++ )); do [[ "${COMP_WORDS[j]}" == -* ]] || pos=$((pos + 1)); done
  local vals
  vals="$(_looop_values "$verb:${COMP_WORDS[COMP_CWORD-1]}" "$cmd")"
  [[ -n "$vals" ]] || vals="$(_looop_values "$verb.$pos" "$cmd")"
  if [[ -n "$vals" ]]; then
    COMPREPLY=( $(compgen -W "$vals" -- "$cur") )
    return 0
  fi
  case "$verb" in
    help) (( pos == 0 )) && COMPREPLY=( $(compgen -W "@VERBS@" -- "$cur") ) ;;
    config) (( pos == 0 )) && COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ) ;;
    @LIVE@) (( pos == 0 )) && COMPREPLY=( $(compgen -W "$(_looop_ids "$cmd" live)" -- "$cur") ) ;;
    @ANY@) (( pos == 0 )) && COMPREPLY=( $(compgen -W "$(_looop_ids "$cmd" all)" -- "$cur") ) ;;
  esac
  return 0
}
complete -F _looop looop
'''

ZSH = r'''# looop zsh completion. Add to ~/.zshrc:  eval "$(looop config zsh)"
(( $+functions[compdef] )) || { autoload -Uz compinit && compinit -i }
_looop_flags() {
  case $1 in
@FLAGS@
    (*) print -r -- '-h --help' ;;
  esac
}
# Values of a flag (`verb:--flag`) or a positional (`verb.N`); $2 = looop.
_looop_values() {
  case $1 in
@VALUES@
  esac
}
# Ids of the profile this command line targets: a `LOOOP_DATA_DIR=… looop`
# prefix in $BUFFER, else the env.
_looop_ids() {
  local dd=$LOOOP_DATA_DIR
  [[ " $BUFFER" =~ '[[:space:]]LOOOP_DATA_DIR=([^[:space:]]+)[[:space:]]' ]] && dd=${match[1]/#\~/$HOME}
  LOOOP_DATA_DIR=$dd $1 config --ids $2 2>/dev/null
}
_looop() {
  local -a verbs
  verbs=(
@DESCRIBED@
  )
  local i=2
  while (( i < CURRENT )) && [[ $words[i] == -* ]]; do (( i++ )); done
  if (( i == CURRENT )); then
    _describe -t verbs 'looop verb' verbs
    return
  fi
  local verb=$words[i] pos=0 j
  if [[ $PREFIX == -* ]]; then
    compadd -- ${=$(_looop_flags $verb)}
    return
  fi
  for (( j = i + 1; j < CURRENT; j++ )); do [[ $words[j] == -* ]] || (( pos++ )); done
  local vals
  vals=$(_looop_values "$verb:$words[CURRENT-1]" $words[1])
  [[ -n $vals ]] || vals=$(_looop_values "$verb.$pos" $words[1])
  if [[ -n $vals ]]; then
    compadd -- ${=vals}
    return
  fi
  (( pos == 0 )) || return 1
  case $verb in
    (help) _describe -t verbs 'looop verb' verbs ;;
    (config) compadd bash zsh ;;
    (@LIVE@) compadd -- ${(f)"$(_looop_ids $words[1] live)"} ;;
    (@ANY@) compadd -- ${(f)"$(_looop_ids $words[1] all)"} ;;
  esac
}
compdef _looop looop
'''
