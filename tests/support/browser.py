"""A real headless Chromium for the status page's tests (and scripts/screenshot), driven by
selenium through Debian's chromedriver.

Nothing is downloaded: the browser and the driver are the apt packages ``chromium`` and
``chromium-driver`` (scripts/setup.sh), named by path, so selenium's manager has nothing to look
up, and it is told to stay offline anyway (``SE_OFFLINE``). The browser runs as root, hence
``--no-sandbox``; everything that would reach the network by itself (component updates, sync,
background requests, QUIC) is switched off, and each browser gets a fresh profile.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions")


def missing() -> list[str]:
    return [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1200, height: int = 800) -> Iterator[object]:
    """A started browser (a selenium ``WebDriver``), quit on the way out; its console log is kept
    (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ARGS:
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    before = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # read while the driver starts: selenium's manager never goes online
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    finally:
        if before is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = before
    try:
        yield driver
    finally:
        driver.quit()
