"""Rendering: human and NDJSON lines, tables, screens."""
