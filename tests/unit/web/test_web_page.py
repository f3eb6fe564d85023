"""The status page's HTML (web/page.py, web/state.py, web/document.py): every value from the
NVR's database or the master's files is text, in elements and in attributes; credentials are
masked; the legend and the axis follow the page's mode and window; the policy names the one
style sheet the page has."""

from __future__ import annotations

import base64
import calendar
import hashlib
import re
from html.parser import HTMLParser

from mirror_supervisor.web import page, state
from mirror_supervisor.web import timeline as tl
from mirror_supervisor.web.document import CSP, HEADERS

NOW = calendar.timegm((2026, 12, 7, 12, 0, 0))
HOSTILE = "<img src=x onerror=alert(1)>"
QUOTES = "\"'><script>alert('x')</script>&amp;"


class Elements(HTMLParser):
    """Every element a browser's parser would make, with its attributes, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def status(**camera) -> dict:
    row = {"id": "cam1", "name": "Front door", "state": "recording", "restarts": 2, "segment": "20261207_115900.mp4",
           "last_error": None, **camera}
    return {"version": 1, "updated": NOW - 1,
            "master": {"pid": 7, "started": NOW - 3700, "recorder_enabled": True, "mirror_dir": "/srv/mirror",
                       "db_path": "/var/lib/heldar/heldar.db", "db": {"state": "ok", "error": None, "since": None},
                       "volume": {"state": "ok", "error": None, "since": None}, "camera_table": {"source": "database"}},
            "cameras": [row]}


def view(data: dict, window: str = "24h", primary: bool = False, probe: dict | None = None) -> page.View:
    span = page.WINDOWS[window]
    drawn = tl.build(NOW - span, NOW, [(NOW - span, NOW - 600), (NOW - 300, NOW - 20)], first=NOW - 2 * span,
                     primary=[(NOW - span, NOW - 400)] if primary else None)
    rows = [page.Row(row, drawn) for row in state.rows(data, probe, NOW)]
    return page.View("nvr-mirror-1", state.header(data, probe, NOW - 5, NOW - 1, NOW), window, NOW, rows,
                     primary=primary, primary_available=True)


def test_a_hostile_name_id_and_error_are_text_in_elements_and_attributes():
    data = status(id=QUOTES, name=HOSTILE, last_error=f"{HOSTILE} {QUOTES}", state=QUOTES)
    html = page.render(view(data))
    parsed = Elements(html)
    assert parsed.named("img") == [] and parsed.named("script") == [], "no element came from the data"
    text = "".join(parsed.text)
    assert HOSTILE in text and QUOTES in text, "shown as the very text"
    (row,) = [attrs for attrs in parsed.named("tr") if attrs.get("class") == "camera"]
    assert row["data-camera"] == QUOTES, "an attribute holds the value whole, quotes and all"
    assert [a for a in parsed.named("a") if "camera=" in (a.get("href") or "")] == [], \
        "no filter link for what is no camera id (it would be refused)"
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    safe = page.render(view(status(name=HOSTILE)))
    hrefs = [a["href"] for a in Elements(safe).named("a") if "camera=" in (a.get("href") or "")]
    assert hrefs == ["?window=24h&camera=cam1"] and HOSTILE not in safe


def test_credentials_in_an_error_are_masked_in_every_form():
    data = status(last_error="ffmpeg: rtsp://admin:s3cr3t-pw@10.0.0.9:554/Streaming failed; "
                             "http://cam/snap?user=a&password=hunter2 refused")
    html = page.render(view(data))
    assert "s3cr3t-pw" not in html and "hunter2" not in html
    assert "rtsp://***@10.0.0.9:554/Streaming" in html and "password=***" in html


def test_the_header_tells_host_uptime_database_volume_and_status():
    html = page.render(view(status(), probe={"free": 5 * 1024 ** 4, "cameras": {
        "cam1": {"20261207_115900.mp4": [1000, NOW - 4]}}}))
    text = " ".join(Elements(html).text)
    for expected in ("nvr-mirror-1", "pid 7, up 1 h 01 min", "/var/lib/heldar/heldar.db: ok",
                     "/srv/mirror: 5.0 TiB free", "20261207_115900.mp4", "last write seen 4 s ago"):
        assert expected in text


def test_a_database_error_and_the_camera_cache_are_told_apart():
    data = status()
    data["master"]["db"] = {"state": "error", "error": "database is locked", "since": NOW - 90}
    fact = state.database(data["master"], NOW)
    assert fact.bad and fact.text == ("/var/lib/heldar/heldar.db: unreadable since 2026-12-07 11:58:30 UTC "
                                      "(1 min 30 s ago): database is locked")
    data["master"]["camera_table"] = {"source": "cache", "cache": {"confirmed_at": NOW - 7200}}
    assert "recording from the camera cache of 2026-12-07 10:00:00 UTC" in state.database(data["master"], NOW).text


def test_a_hung_volume_and_an_old_probe_answer_are_told():
    data = status()
    data["master"]["volume"] = {"state": "not responding", "error": "no answer in 5s", "since": NOW - 30}
    assert state.volume(data["master"], {"free": 1}, NOW, NOW).bad
    assert state.volume(status()["master"], {"free": 1024}, NOW - 600, NOW).text.endswith(
        "measured 10 min 00 s ago (the volume probe has not answered since)")
    assert "not measured yet" in state.volume(status()["master"], None, None, NOW).text


def test_the_cluster_section_becomes_header_lines():
    data = status()
    data["cluster"] = {"host": 1, "hosts": 3, "copies": 2, "recording": 4, "extra": 0, "below_copies": 0,
                       "failover": True, "peers": [{"host": 0, "address": "mirror-a:9101", "state": "down",
                                                    "since": NOW - 60, "error": "refused"}]}
    text = " ".join(Elements(page.render(view(data))).text)
    assert "host 1 of 3 (0-based), 2 copies" in text and "peer host 0 (mirror-a:9101): down since" in text


def test_with_the_primary_the_legend_shows_both_sides_in_their_colours():
    html = page.render(view(status(), primary=True))
    legend = re.search(r'<ul class="legend">.*?</ul>', html)
    assert legend is not None
    assert "only in the primary" in legend[0] and "only in the mirror" in legend[0]
    assert 'data-kind="only_mirror"' in html and 'data-kind="both"' in html and 'data-kind="only_primary"' in html
    plain = page.render(view(status()))
    assert "only in the primary" not in plain and 'data-kind="gap"' in plain


def test_the_window_links_keep_the_filter_and_the_axis_follows_the_window():
    hour = view(status(), window="1h")
    hour.cameras = ("cam1",)
    html = page.render(hour)
    links = [attrs["href"] for attrs in Elements(html).named("a")]
    assert "?window=24h&camera=cam1" in links and "?window=7d&camera=cam1" in links and "?window=1h" in links
    labels = set(re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', html))
    day = set(re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', page.render(view(status(), window="24h"))))
    assert labels and day and labels != day


def test_the_page_reloads_itself_and_sooner_while_reading():
    shown = view(status())
    assert '<meta http-equiv="refresh" content="30">' in page.render(shown)
    shown.rows[0].timeline = tl.build(NOW - 3600, NOW, [], pending=[(NOW - 3600, NOW)])
    assert '<meta http-equiv="refresh" content="5">' in page.render(shown)


def test_the_policy_names_the_style_sheet_and_allows_nothing_else():
    html = page.render(view(status()))
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None and html.count("<style>") == 1
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CSP and CSP.startswith("default-src 'none';")
    assert "script" not in CSP and "unsafe" not in CSP
    parsed = Elements(html)
    assert all("style" not in attrs for _, attrs in parsed.tags), "no style attribute: the policy would refuse it"
    assert parsed.named("script") == [] and parsed.named("form") == [] and parsed.named("button") == []
    headers = dict(HEADERS)
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
