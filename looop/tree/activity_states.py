"""The names of a worker's activity states (SPEC §15), a leaf: the verbs
that only need the names — `looop inbox` (which states are items) and
`looop _event` (which states a hook may report) — read them here without
importing the classifier in tree/activity.py (dataclasses, which imports
inspect: several ms of every such call). activity.py re-exports them."""

STATES = ("starting", "working", "ready", "asking", "limited", "stuck")
PATTERN_STATES = ("asking", "limited", "working", "ready")  # match order on a settled screen
EVENT_STATES = ("working", "ready", "asking", "limited", "stuck")  # what `_event` may say
SOURCES = ("ask", "flag", "event", "screen", "timing")
NEEDS_SOMEONE = ("asking", "limited", "stuck")  # each an inbox item (looop.inbox)
