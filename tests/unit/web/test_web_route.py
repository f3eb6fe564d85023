"""``/`` of the listener (web/route.py) over real sockets: the routes table the listener child
serves (``/metrics``, ``/cluster/health``, ``/``), status codes, security headers, HEAD, unknown
paths, refused queries, a camera filter, and the timelines read by a real forked reader.

The listener runs in a thread of the test process, as in tests/cluster/test_cluster_health.py;
the end-to-end test with a real master and a browser is tests/browser/test_status_page.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from support import fmp4

from mirror_supervisor.cluster import health
from mirror_supervisor.plumbing import http_listener
from mirror_supervisor.web import reader, route

NOW = time.time()


def name(epoch: float) -> str:
    return time.strftime("%Y%m%d_%H%M%S.mp4", time.gmtime(epoch))


def write_status(state: Path, mirror: Path, cameras: list[dict]) -> None:
    status = {"version": 1, "updated": NOW,
              "master": {"pid": 1, "started": NOW - 60, "recorder_enabled": True, "mirror_dir": str(mirror),
                         "db_path": "/db", "db": {"state": "ok"}, "volume": {"state": "ok"}},
              "cameras": cameras}
    (state / "status.json").write_text(json.dumps(status))


@pytest.fixture
def served(tmp_path):
    """The listener with the child's routes, on a free port; a camera with a 60 s gap 15 min ago."""
    state, mirror = tmp_path / "state", tmp_path / "mirror"
    state.mkdir()
    at = NOW - 1200
    while at < NOW - 600:
        if not NOW - 900 <= at < NOW - 840:
            fmp4.write_segment(mirror / "cam1" / name(at), 20)
        at += 20
    (mirror / "cam2").mkdir()
    write_status(state, mirror, [{"id": "cam1", "name": "Gate", "state": "recording", "restarts": 0},
                                 {"id": "cam2", "name": "Yard", "state": "backoff", "restarts": 4}])
    (state / "metrics.prom").write_text("mirror_supervisor_build_info 1\n")
    page = route.StatusPage(state, host="test-host")
    routes = {"/metrics": http_listener.FileRoute(str(state / "metrics.prom"), "text/plain"),
              **health.routes(state), route.PATH: page}
    server = http_listener.listen("127.0.0.1", 0)
    threading.Thread(target=http_listener.Listener(server, routes).serve_forever, daemon=True).start()
    yield server.getsockname()[1], page, state
    server.close()


def ask(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_the_page_has_its_headers_and_one_row_per_camera(served):
    port, _, _ = served
    status, headers, body = ask(port, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer" and headers["connection"] == "close"
    text = body.decode()
    assert text.count('<tr class="camera"') == 2 and "test-host" in text and "Gate" in text
    head_status, head_headers, head_body = ask(port, "/", "HEAD")
    assert head_status == 200 and head_body == b"" and head_headers["content-length"] == headers["content-length"]
    assert ask(port, "/metrics")[0] == 200, "the other routes are still there"


def test_unknown_paths_methods_and_queries_are_refused(served):
    port, _, _ = served
    for path in ("/favicon.ico", "/index.html", "/status", "//", "/?/"):
        assert ask(port, path)[0] == (200 if path == "/?/" else 404), path
    assert ask(port, "/", "POST")[0] == 405
    status, headers, body = ask(port, "/?window=2h")
    assert status == 400 and b"window=1h, window=24h or window=7d" in body
    assert headers["x-content-type-options"] == "nosniff" and headers["content-type"].startswith("text/plain")
    status, _, body = ask(port, "/?camera=%3Cscript%3E")
    assert status == 400 and b"<script>" not in body
    assert ask(port, "/?" + "&".join(f"camera=c{i}" for i in range(100)))[0] == 400
    assert ask(port, "/?window=1h&unknown=1")[0] == 200, "other parameters are ignored"


def test_a_camera_filter_shows_that_camera_and_says_what_it_does_not_know(served):
    port, _, _ = served
    body = ask(port, "/?window=1h&camera=cam2&camera=nosuch")[2].decode()
    assert body.count('<tr class="camera"') == 1 and 'data-camera="cam2"' in body
    assert "no camera nosuch in the master&#x27;s status" in body


def test_the_timelines_come_from_the_reader_and_show_the_gap(served):
    port, page, _ = served
    deadline, gaps = time.monotonic() + 30, []
    while not gaps and time.monotonic() < deadline:
        page.pages.clear()  # build anew, do not wait out the page's few seconds of reuse
        body = ask(port, "/?window=1h&camera=cam1")[2].decode()
        gaps = [(float(a) - NOW, float(b) - NOW) for a, b in
                re.findall(r'data-kind="gap" data-start="([\d.]+)" data-end="([\d.]+)"', body)]
        gaps = [gap for gap in gaps if gap[0] > -1000]  # the planted one, not the hour before the footage
        time.sleep(0.1)
    assert gaps and gaps[0] == pytest.approx((-900, -840), abs=1), gaps
    assert gaps[1][0] == pytest.approx(-600, abs=1), "then nothing since the last segment"


def test_without_a_status_file_the_page_says_so_with_503(served):
    port, _, state = served
    (state / "status.json").unlink()
    status, headers, body = ask(port, "/?window=7d")
    assert status == 503 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"has not written its status yet" in body


def test_a_reader_that_hangs_never_holds_the_listener(served, monkeypatch):
    """A reader stuck on a hung mirror volume: the page still comes within the route's wait (with
    its timelines "not read yet"), and /metrics answers meanwhile."""
    port, page, _ = served

    def hung(job, start, end):
        time.sleep(60)
        return []

    monkeypatch.setattr(reader, "read_run", hung)
    try:
        began = time.monotonic()
        status, _, body = ask(port, "/?window=7d")
        waited = time.monotonic() - began
        assert status == 200 and page.reader.running
        assert 'data-kind="pending"' in body.decode() and '<meta http-equiv="refresh" content="5">' in body.decode()
        print(f"page with a hung reader in {waited:.2f}s")
        assert ask(port, "/metrics")[0] == 200
        first = page.reader.pid
        page.pages.clear()
        assert ask(port, "/?window=24h")[0] == 200
        assert page.reader.pid == first, "no second reader while the first lives"
    finally:
        if page.reader.pid is not None:
            os.kill(page.reader.pid, signal.SIGKILL)
