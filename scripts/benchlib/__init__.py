"""Side-by-side benchmark: mirror-supervisor against supervisord with one program per camera.

Run it with ``scripts/bench`` (sets the machine up, then ``python -m benchlib`` with ``scripts/`` on
the path). The package is split by job:

- observation: ``procs`` (the process table), ``recordings`` (segments on disk), ``stats``
- the systems under test, one adapter each: ``systems`` (common part), ``ours``, ``supervisord``
- fixtures: ``schema`` + ``nvr`` (the NVR's ``cameras`` table), ``rtsp`` (the synthetic camera),
  ``standin_ffmpeg`` (a recorder that costs nothing), ``fork_harness`` (run as its own process)
- scenarios, one function each, returning plain data: ``scenarios`` (start, add, change, reload,
  kills, shutdown, orphans), ``costs`` (memory, idle CPU, reconcile cost), ``forking``
- suites, which run scenarios against each system and return one JSON-able dict: ``suite_real``,
  ``suite_standin``, ``forking``; ``suites`` lists them
- the report, tables only: ``report`` (the document), ``tables_real``, ``tables_standin``, ``targets``
"""
