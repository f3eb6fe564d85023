"""One camera's worker process: the ffmpeg command and its stderr, the supervise loop, what ffmpeg
is writing, reconnect back-off and reachability, dropping privileges, the report to the master.

Forked by the master; never reads the NVR's database (docs/design.md, "Worker loop" and
"Package map").
"""
