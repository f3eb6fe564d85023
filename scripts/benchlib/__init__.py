"""Benchmarks of mirror-supervisor: side by side with supervisord (one program per camera), and
at scale (one master, hundreds of cameras).

Run it with ``scripts/bench`` (sets the machine up, gcc included, then ``python -m benchlib`` with
``scripts/`` on the path); it rewrites the generated region of docs/benchmarks.md and the raw
figures in docs/benchmarks.json::

    scripts/bench                                   # every suite: real, stand-in, fork harness, scale
    scripts/bench --skip-scale                      # the side-by-side suites only (about 12 min)
    scripts/bench --scale --cameras 500 --minutes 10   # the scale suite only (about 11 min)
    scripts/bench --quick                           # a small run into build/bench-quick.md/.json
    scripts/bench --render-only docs/benchmarks.json   # re-render the tables, no measurement

A ``--scale`` run replaces only the scale suite's figures in the existing JSON and re-renders
the whole region from it, so the other suites' published tables stay; a run without the scale
suite keeps the published scale figures the same way (``suites``, ``__main__.merge``).

One module per job:

- observing: ``procs`` (the process table), ``recordings`` (segments on disk), ``stats``
- the systems under test, one adapter each: ``systems`` (what a scenario needs), ``ours``,
  ``supervisord``
- fixtures: ``schema`` + ``nvr`` (the NVR's ``cameras`` table), ``rtsp`` (the synthetic camera),
  ``recorder`` (the ffmpeg stand-in, a C program compiled at run time; also
  ``python -m benchlib.recorder --measure``), ``fork_harness`` (run as its own process),
  ``machine`` (what the run ran on)
- scenarios, one function each, returning plain data: ``session`` (one system + its cameras, and
  the waits), ``scenarios`` (start, add, change, reload, kills, shutdown, orphans), ``costs``
  (memory, idle CPU, reconcile cost)
- suites, each running scenarios into one JSON-able value: ``suite_real``, ``suite_standin``,
  ``forking``, ``suite_scale`` (with ``scale_stage``: database, master, cleanup; ``scale_watch``:
  status.json, /proc, the disk); ``suites`` lists them with their renderers; ``context`` is what
  a suite receives
- the report, tables only: ``report`` (the generated region of the document), ``tables`` (helpers),
  ``tables_real``, ``tables_standin``, ``tables_fork``, ``tables_scale``, ``targets``
- ``__main__``: options, the run, merging into the existing JSON, the report
"""
