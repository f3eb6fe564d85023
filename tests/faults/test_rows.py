"""Hostile rows with the real daemon: a value that is not text, or a credential in a place no
masking rule used to reach, must cost only its own row and never show up in the log or in
status.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from support import procs
from support.supervisor import Supervisor

SEGMENT = re.compile(r"\d{8}_\d{6}\.mp4")
SECRET = "secretpw"
SECRET_HEX = "ff" + SECRET.encode().hex()  # \xff then the password: not UTF-8


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.mp4") if SEGMENT.fullmatch(p.name)) if directory.is_dir() else []


def status(sup: Supervisor) -> dict:
    try:
        return json.loads((sup.state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def camera_rows(sup: Supervisor) -> dict[str, dict]:
    return {row["id"]: row for row in status(sup).get("cameras", [])}


def errors_reported(sup: Supervisor, expected: dict[str, str]) -> dict[str, dict] | None:
    """The status rows once every camera in ``expected`` shows state error with that text."""
    rows = camera_rows(sup)
    for camera, text in expected.items():
        row = rows.get(camera, {})
        if row.get("state") != "error" or text not in (row.get("last_error") or ""):
            return None
    return rows


def recording(directory: Path) -> bool:
    files = segments(directory)
    return bool(files) and files[-1].stat().st_size > 0


def raw_outputs(sup: Supervisor) -> dict[str, bytes]:
    return {"log": sup.log_path.read_bytes(), "status.json": (sup.state_dir / "status.json").read_bytes()}


def insert(nvr, **sql: str) -> None:
    """A row from SQL expressions, so that a value can be bytes that SQLite calls TEXT."""
    nvr.execute(f"INSERT INTO cameras ({', '.join(sql)}) VALUES ({', '.join(sql.values())})")


def test_undecodable_values_cost_only_their_own_row(rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("good", rtsp.url("/live"))
    url = "'" + rtsp.url("/live") + "'"
    insert(nvr, id="'badname'", name="CAST(x'ff41' AS TEXT)", main_stream_url=url, segment_seconds="2",
           mirror_enabled="1")
    insert(nvr, id="'badpw'", vendor="'hikvision'", address="'127.0.0.1'", rtsp_port=str(rtsp.port),
           username="'admin'", password=f"CAST(x'{SECRET_HEX}' AS TEXT)", mirror_enabled="1")
    insert(nvr, id="CAST(x'ff41' AS TEXT)", main_stream_url=url, mirror_enabled="1")

    sup = supervisor("--poll-interval", "1")  # a fresh master: it has no earlier list to fall back on
    sup.wait_one_each({"good", "badname"}, timeout=60)
    procs.wait_for("good records", lambda: recording(mirror_dir / "good"), 60, interval=0.2)
    rows = procs.wait_for("bad rows reported per camera", lambda: errors_reported(
        sup, {"badpw": "password is not valid UTF-8 text", "\\xffA": "not valid UTF-8"}), 30)
    assert rows["good"]["state"] != "error" and status(sup)["master"]["db"]["state"] == "ok"
    log = sup.wait_log("badpw not recorded: password is not valid UTF-8 text", timeout=30)
    assert "Could not decode" not in log and "database unreadable" not in log

    for where, raw in raw_outputs(sup).items():
        assert b"\xff" not in raw and SECRET.encode() not in raw, where


def test_credentials_in_the_address_or_an_unencoded_url_never_reach_log_or_status(
        rtsp, nvr, mirror_dir, supervisor):
    nvr.add_mirrored("good", rtsp.url("/live"))
    nvr.add("in_address", vendor="hikvision", address=f"user:{SECRET}@127.0.0.1", rtsp_port=rtsp.port,
            mirror_enabled=1)
    nvr.add_mirrored("slash_in_url", f"rtsp://admin:12/34@127.0.0.1:{rtsp.port}/live")
    nvr.add_mirrored("empty_user_slash", f"rtsp://admin:/{SECRET}@127.0.0.1:{rtsp.port}/live")
    nvr.add_mirrored("query", rtsp.url("/live") + f"?user=admin&password={SECRET}")

    sup = supervisor("--poll-interval", "1")
    procs.wait_for("good records", lambda: recording(mirror_dir / "good"), 60, interval=0.2)
    sup.wait_log("query ffmpeg started", timeout=60)
    present = {"in_address", "slash_in_url", "empty_user_slash", "query"}
    procs.wait_for("every row in status", lambda: present <= set(camera_rows(sup)), 30)

    for where, raw in raw_outputs(sup).items():
        for secret in (SECRET, "12/34", "12%2F34", "admin:12"):
            assert secret.encode() not in raw, (where, secret)

    procs.wait_for("refused rows reported", lambda: errors_reported(sup, {
        "in_address": "address contains '@'",
        "slash_in_url": "'@' after its host part",
        "empty_user_slash": "'@' after its host part",
    }), 30)
