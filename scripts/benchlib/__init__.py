"""Side-by-side benchmark: mirror-supervisor against supervisord with one program per camera.

Run it with ``scripts/bench`` (sets the machine up, then ``python -m benchlib`` with ``scripts/`` on
the path). One module per job:

- observing: ``procs`` (the process table), ``recordings`` (segments on disk), ``stats``
- the systems under test, one adapter each: ``systems`` (what a scenario needs), ``ours``,
  ``supervisord``
- fixtures: ``schema`` + ``nvr`` (the NVR's ``cameras`` table), ``rtsp`` (the synthetic camera),
  ``standin_ffmpeg`` (a recorder that costs nothing; copied and run as a program),
  ``fork_harness`` (run as its own process), ``machine`` (what the run ran on)
- scenarios, one function each, returning plain data: ``session`` (one system + its cameras, and
  the waits), ``scenarios`` (start, add, change, reload, kills, shutdown, orphans), ``costs``
  (memory, idle CPU, reconcile cost)
- suites, each running scenarios against every system into one JSON-able value: ``suite_real``,
  ``suite_standin``, ``forking``; ``suites`` lists them with their renderers; ``context`` is what
  a suite receives
- the report, tables only: ``report`` (the generated region of the document), ``tables`` (helpers),
  ``tables_real``, ``tables_standin``, ``tables_fork``, ``targets``
- ``__main__``: options, the run, the JSON, the report
"""
