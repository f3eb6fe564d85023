"""Cameras: the NVR's ``cameras`` table and what one row means.

The row parser and its recorded URL, the read-only database read (unreadable is no news), the
local cache of the last good table and the consistent snapshot for other hosts. Uses only the
plumbing below it (docs/design.md, "Package map").
"""
