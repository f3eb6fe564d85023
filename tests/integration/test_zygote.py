"""Workers made by the zygote (docs/design.md, "Zygote"), with the real master, ffmpeg, RTSP
server and signals: they are the master's children, carry nothing of the master's database code,
and a zygote or spare that is killed costs no camera."""

from __future__ import annotations

import signal
import time

import psutil
from support import procs

from mirror_supervisor.worker.zygote import SPARE_TITLE, TITLE


def helpers(master: int, title: str) -> list[psutil.Process]:
    return [c for c in psutil.Process(master).children() if procs.title(c) == title and procs.alive(c.pid)]


def test_workers_come_from_the_zygote_and_are_the_masters_children(rtsp, nvr, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "60")
    view = sup.wait_one_each({"cam"})["cam"]
    worker = psutil.Process(view.pid)
    assert worker.ppid() == sup.pid, "re-parented to the master, which reaps it"
    (zygote,) = procs.wait_for("the zygote", lambda: helpers(sup.pid, TITLE), 30)
    procs.wait_for("two spare workers", lambda: len(helpers(sup.pid, SPARE_TITLE)) == 2, 30)
    maps = open(f"/proc/{view.pid}/maps").read()
    assert "sqlite" not in maps, "a worker is no fork of the master: no database code in it"
    assert worker.memory_full_info().uss < zygote.memory_full_info().rss, "it shares the zygote's pages"
    assert "zygote ready" in sup.log()
    assert "rehearsal" not in sup.log(), "the zygote rehearsed a worker's start (worker/warm_up.py) without error"


def test_a_killed_zygote_and_spares_cost_no_camera(rtsp, nvr, supervisor):
    nvr.add_mirrored("cam", rtsp.url("/live"))
    sup = supervisor("--poll-interval", "60")
    before = sup.wait_one_each({"cam"})
    procs.wait_for("two spare workers", lambda: len(helpers(sup.pid, SPARE_TITLE)) == 2, 30)
    for process in helpers(sup.pid, SPARE_TITLE) + helpers(sup.pid, TITLE):
        process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    procs.wait_for("zygote and spares gone", lambda: not helpers(sup.pid, TITLE) and not helpers(sup.pid, SPARE_TITLE), 30)
    sup.wait_log("zygote pid=", timeout=30)  # reaped: "exited; workers are forked by the master until ..."

    nvr.add_mirrored("cam2", rtsp.url("/live"))
    sup.signal(signal.SIGHUP)  # within the restart interval: the master forks this worker itself
    table = sup.wait_one_each({"cam", "cam2"}, timeout=60)
    assert procs.disturbed(before, table, sup.log()) == [], "the first camera was not touched"
    assert psutil.Process(table["cam2"].pid).ppid() == sup.pid

    time.sleep(max(0.0, 11.0 - (time.monotonic() - killed)))  # a zygote is replaced at most once per 10 s
    nvr.add_mirrored("cam3", rtsp.url("/live"))
    sup.signal(signal.SIGHUP)
    sup.wait_one_each({"cam", "cam2", "cam3"}, timeout=60)
    procs.wait_for("a new zygote", lambda: helpers(sup.pid, TITLE), 30)
    assert sup.log().count("zygote ready") == 2
