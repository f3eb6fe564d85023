"""The ground floor: process and file plumbing that every other package stands on.

Atomic files, locks and the pidfile, parent-death lifelines and the fork idiom, signal wake-ups,
process titles, masked log lines, the status file, asking a volume with a deadline, the bounded
HTTP listener. Nothing here knows what a camera or a segment is; it imports no other package of
mirror_supervisor (docs/design.md, "Package map").
"""
