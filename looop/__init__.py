"""looop: a small, Kubernetes-shaped control loop for a person's work.

Importing the package has no side effects and imports nothing heavy: the short
CLI verbs (`ls`, `send`, `key`) must start in about one interpreter start.
"""
__version__ = "0.1.0"
