"""The pulse: the reconcile loop (sense → diff → decide → act → log).

It runs as `looop _pulse` inside the pulse child's PTY and talks to the tree
only through the link fd it inherits (LOOOP_PULSE_FD).
"""
