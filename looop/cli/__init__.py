"""The command line: a verb table, each verb in a small module imported lazily.

`cli/` reaches a live tree only through process titles, store files and the
control socket.
"""
