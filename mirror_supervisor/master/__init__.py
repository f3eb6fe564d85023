"""The master: the pre-fork supervisor loop, one slot per camera with explicit states, the wanted
set read from the database, the pure reconcile diff, the ``System`` seam tests replace, systemd
notify, and when the pruner runs.

The top of the process tree; it uses every package below it (docs/design.md, "Master rules" and
"Package map").
"""
