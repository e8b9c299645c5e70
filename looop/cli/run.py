"""`looop [--json]`: become the root of the tree, in the foreground."""
from __future__ import annotations

from looop.cli.args import parser


def cmd_run(argv: list[str]) -> int:
    p = parser("run", "Start the tree in the foreground and stream the pulse's output. "
                      "Ctrl-C, SIGTERM or SIGHUP tear everything down.")
    p.add_argument("--json", action="store_true", help="the pulse emits NDJSON (also LOOOP_LOG_FORMAT=json)")
    a = p.parse_args(argv)
    # Everything a child needs is imported once, here, before any fork: children
    # share these pages copy-on-write (SPEC §13: fork from a warmed root).
    import orjson, psutil, ptyprocess, setproctitle  # noqa: F401,E401
    from looop import screen
    screen.preload()
    from looop.store import config, paths
    from looop.tree.supervisor import Root
    from looop.ui.out import Printer, json_mode
    json = json_mode(a.json)
    out = Printer(json=json)
    d = paths.data_dir()
    paths.ensure_layout(d)
    cfg, created = config.ensure(d)  # a broken config fails here, before anything starts
    if created:
        out.line("info", "config.created", f"wrote {paths.config_path(d)} — runner: {cfg['default']}",
                 runner=cfg["default"])
    try:
        from looop.pulse import seeds
    except ImportError:
        seeds = None
    if seeds is not None:
        for path in seeds.seed(d):
            out.line("info", "seed", f"seeded {path}", path=path)
    return Root(d, json_mode=json, printer=out).run()
