"""The supervision tree: a single-threaded root forking one child per PTY.

Layering: tree/ never imports pulse/ or cli/.
"""
