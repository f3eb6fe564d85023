"""Retention: which mirror files are expired, the pruner child that deletes them, and the view of
which processes record into the mirror (so an open segment is never deleted).

Errs towards keeping (docs/design.md, "Retention" and "Package map").
"""
