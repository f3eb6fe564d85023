"""Footage on disk: segment names, the MP4 boxes that say how long a segment plays, the segment
index, and coverage (what is covered, where the holes are, mirror against primary).

Read by the worker (names, the index's place), the master's index writer, retention, metrics and
the commands; it never starts or stops a process (docs/design.md, "Package map").
"""
