"""The status page in a real headless Chromium (README, "The status page").

A real master with ``--metrics-listen`` on a free port of 127.0.0.1, real ffmpegs recording two
real RTSP cameras (tests/support/rtsp.py) into a real mirror, from a real SQLite database: the
camera ``yard`` has a camera of its own, which is stopped for :data:`OUTAGE` seconds; ``evil`` is
named ``<img src=x onerror=alert(1)>`` in the NVR's table. The browser loads the page as an
operator would and reads what it shows: one row per camera with its state, the hostile name as
text with no element and no dialog made of it, the axis of ``?window=1h`` against the default
day, the outage as a gap element at its place and of its length (its attributes, its hover
title), and a console with no failed request and no policy violation. A screenshot is saved in
the test's directory.

One test, one master: the checks that need no gap run while the camera is stopped, so the whole
costs about as long as the outage takes to appear on the page. Every wait is for an eventual
state, with a generous time-out; no duration is asserted.
"""

from __future__ import annotations

import re
import time

import pytest
from support import browser, procs, recordings
from support.rtsp import RtspServer, free_port

from mirror_supervisor.plumbing.status_file import read_status

HOSTILE = "<img src=x onerror=alert(1)>"
OUTAGE = 10.0
CAMERAS = {"gate", "evil", "yard"}
BAR = 600.0  # web/timeline.py WIDTH: the bar's user units


def states(sup) -> dict[str, str]:
    data = read_status(sup.state_dir) or {}
    return {row.get("id"): row.get("state") for row in data.get("cameras") or []}


def rows(driver) -> dict[str, object]:
    from selenium.webdriver.common.by import By

    return {row.get_attribute("data-camera"): row for row in driver.find_elements(By.CSS_SELECTOR, "tr.camera")}


def stretches(row, kind: str | None = None) -> list[dict]:
    """The row's timeline stretches as drawn: kind, times (epoch), x and width (bar units), title."""
    from selenium.webdriver.common.by import By

    found = []
    for rect in row.find_elements(By.CSS_SELECTOR, "svg.timeline rect"):
        if kind is not None and rect.get_attribute("data-kind") != kind:
            continue
        found.append({"kind": rect.get_attribute("data-kind"), "start": float(rect.get_attribute("data-start")),
                      "end": float(rect.get_attribute("data-end")), "x": float(rect.get_attribute("x")),
                      "width": float(rect.get_attribute("width")),
                      "title": rect.find_element(By.TAG_NAME, "title").get_attribute("textContent")})
    return found


def axis(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [label.get_attribute("textContent") for label in
            driver.find_elements(By.CSS_SELECTOR, "tr.camera svg.timeline")[0].find_elements(By.CSS_SELECTOR, "text.tick")]


def console_problems(driver) -> list[dict]:
    """Warnings and errors in the browser's console: failed requests, policy violations."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") in ("SEVERE", "WARNING")]


def check_rows_names_and_no_dialog(driver, base: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    shown = rows(driver)
    assert set(shown) == CAMERAS, "one row per camera"
    for cid in ("gate", "evil"):
        assert shown[cid].find_element(By.CSS_SELECTOR, "td.state").text == "recording"
    assert shown["evil"].find_element(By.CSS_SELECTOR, "td.id .name").text == HOSTILE, "the name, as text"
    assert driver.find_elements(By.TAG_NAME, "img") == [] and driver.find_elements(By.TAG_NAME, "script") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - the property raises when no dialog is open
    assert "mirror-supervisor on " in driver.find_element(By.TAG_NAME, "h1").text


def check_the_window_changes_the_axis(driver, base: str) -> None:
    driver.get(base + "/?window=24h&camera=gate")
    day = axis(driver)
    driver.get(base + "/?window=1h&camera=gate")
    hour = axis(driver)
    assert day and hour and day != hour
    assert all(re.fullmatch(r"\d\d:\d0", label) for label in hour)
    assert all(re.fullmatch(r"\d\d:00", label) and int(label[:2]) % 3 == 0 for label in day)
    assert set(rows(driver)) == {"gate"}


def closed_gap(driver, base: str, stopped: float) -> tuple[dict, dict] | None:
    """The outage's gap in yard's hour, once footage follows it; and the stretch after it."""
    driver.get(base + "/?window=1h&camera=yard")
    row = rows(driver).get("yard")
    if row is None:
        return None
    drawn = stretches(row)
    for gap, after in zip(drawn, drawn[1:], strict=False):
        if gap["kind"] == "gap" and gap["end"] > stopped and after["kind"] == "covered" and after["start"] == gap["end"]:
            return gap, {"window_end": max(s["end"] for s in drawn)}
    return None


def test_the_status_page_in_a_real_browser(supervisor, nvr, mirror_dir, rtsp, tmp_path):
    if browser.missing():
        pytest.fail(f"missing {', '.join(browser.missing())}: scripts/test installs chromium and chromium-driver")
    yard = RtspServer()
    yard.start()
    try:
        nvr.add_mirrored("gate", rtsp.url(), name="Gate")
        nvr.add_mirrored("evil", rtsp.url(), name=HOSTILE)
        nvr.add_mirrored("yard", yard.url(), name="Yard")
        port = free_port()
        sup = supervisor("--poll-interval", "1", "--metrics-listen", f"127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        procs.wait_for("every camera recording", lambda: set(states(sup)) == CAMERAS and
                       all(state == "recording" for state in states(sup).values()), 60)
        recordings.wait_growth(mirror_dir / "yard")  # footage before the outage
        stopped = time.time()
        yard.stop()
        with browser.chromium(tmp_path / "profile") as driver:
            check_rows_names_and_no_dialog(driver, base)
            check_the_window_changes_the_axis(driver, base)
            time.sleep(max(0.0, stopped + OUTAGE - time.time()))
            yard.start()
            restarted = time.time()
            gap, seen = procs.wait_for("the outage as a gap with footage after it",
                                       lambda: closed_gap(driver, base, stopped), 90, interval=1.0)
            print(f"outage {stopped:.1f}..{restarted:.1f}; gap drawn {gap['start']:.1f}..{gap['end']:.1f}: "
                  f"x={gap['x']} width={gap['width']} title={gap['title']!r}")
            assert stopped - 5 <= gap["start"] <= stopped + 2, "where the camera stopped"
            assert restarted <= gap["end"] and OUTAGE - 2 <= gap["end"] - gap["start"] <= OUTAGE + 40
            window_start = seen["window_end"] - 3600
            assert gap["x"] == pytest.approx((gap["start"] - window_start) / 3600 * BAR, abs=0.02)
            assert gap["width"] == pytest.approx(max(1.0, (gap["end"] - gap["start"]) / 3600 * BAR), abs=0.02)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(gap["start"]))
            assert gap["title"].startswith(f"gap: nothing recorded: {stamp} UTC to ")
            assert re.search(r"\(\d+ s\)$", gap["title"]), "its length"
            driver.get(base + "/?window=1h")
            driver.save_screenshot(str(tmp_path / "status-page.png"))
            assert (tmp_path / "status-page.png").stat().st_size > 0
            assert console_problems(driver) == [], "no failed request, no policy violation"
    finally:
        yard.stop()
