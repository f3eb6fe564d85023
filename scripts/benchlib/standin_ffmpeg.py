#!/usr/bin/python3 -S
"""A recorder that costs next to nothing, passed to both supervisors in place of ffmpeg.

It takes ffmpeg's argv, ignores all of it but the last argument (the strftime output pattern),
writes a small file named by the current UTC second once a second, and exits at once on SIGTERM
or SIGINT. The benchmark copies it to ``<work>/bin/ffmpeg-standin`` (the observer recognises a
recorder by "ffmpeg" in its name) and runs it with the system Python; ``-S`` skips the site
import, so it starts in about 10 ms.
"""
import os
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.signal(signal.SIGINT, lambda *_: os._exit(0))
pattern = sys.argv[-1]
while True:
    with open(time.strftime(pattern, time.gmtime()), "ab") as f:
        f.write(b"standin segment data " * 48)
    time.sleep(1.0 - time.time() % 1.0 + 0.001)
