"""Reading a real SQLite ``cameras`` table whose values are not all valid text.

One bad value must cost only its own row: the table stays readable, the other cameras are
recorded, and no message quotes a credential or carries raw undecodable bytes.
"""

import errno
import os
import sqlite3

import pytest
from support.nvr import NvrDatabase

from mirror_supervisor.cameras.database import DatabaseError, decode_text, describe, probe, read_table
from mirror_supervisor.master.wanted import CameraSource
from mirror_supervisor.plumbing import volume
from mirror_supervisor.settings import Settings

PASSWORD_BYTES = "ff" + b"hunter22".hex()  # \xff then "hunter22": not UTF-8
BASE = {"mirror_enabled": "1", "vendor": "'hikvision'", "address": "'10.0.0.9'"}
BAD = f"CAST(x'{PASSWORD_BYTES}' AS TEXT)"


@pytest.fixture
def nvr(tmp_path):
    db = NvrDatabase(tmp_path / "nvr.db")
    db.add("good", mirror_enabled=1, vendor="hikvision", address="10.0.0.5", username="admin", password="pw")
    return db


def insert(nvr, id_sql, **sql):
    """Insert a row from SQL expressions (so that a value can be bytes SQLite calls TEXT)."""
    columns = {"id": id_sql, **BASE, **sql}
    nvr.execute(f"INSERT INTO cameras ({', '.join(columns)}) VALUES ({', '.join(columns.values())})")


def by_id(cameras):
    return {camera.id: camera for camera in cameras}


def texts(camera):
    return [camera.id, camera.name, camera.masked_url, camera.problem or "", *camera.warnings]


def test_undecodable_name_is_shown_with_replacement_and_recorded(nvr):
    insert(nvr, "'badname'", name="CAST(x'ff41' AS TEXT)")
    cameras = by_id(read_table(nvr.path)[0])
    assert cameras["good"].problem is None
    assert cameras["badname"].problem is None and cameras["badname"].name == "\ufffdA"
    assert cameras["badname"].url == "rtsp://10.0.0.9:554/Streaming/Channels/101"


@pytest.mark.parametrize("column", ["password", "username", "address"])
def test_undecodable_credential_column_refuses_only_its_row_without_the_value(nvr, column):
    insert(nvr, "'bad'", **{"username": "'admin'", "password": "'x'", column: BAD})
    cameras = by_id(read_table(nvr.path)[0])
    assert cameras["good"].problem is None and cameras["good"].url
    bad = cameras["bad"]
    assert bad.url is None and bad.problem == f"{column} is not valid UTF-8 text"
    for text in texts(bad):
        assert "hunter22" not in text and "\xff" not in text and "\ufffd" not in text


def test_undecodable_explicit_url_refuses_its_row(nvr):
    url = b"rtsp://admin:".hex() + PASSWORD_BYTES + b"@h/x".hex()
    insert(nvr, "'bad'", main_stream_url=f"CAST(x'{url}' AS TEXT)")
    bad = by_id(read_table(nvr.path)[0])["bad"]
    assert bad.url is None and bad.problem == "main_stream_url is not valid UTF-8 text"


def test_undecodable_unused_column_is_ignored(nvr):
    insert(nvr, "'subonly'", sub_stream_url=BAD)
    assert by_id(read_table(nvr.path)[0])["subonly"].problem is None


def test_undecodable_id_is_escaped_and_refused(nvr):
    insert(nvr, "CAST(x'ff41' AS TEXT)")
    insert(nvr, "CAST(x'fe41' AS TEXT)")
    cameras = by_id(read_table(nvr.path)[0])
    assert set(cameras) == {"good", "\\xffA", "\\xfeA"}  # distinct bad ids stay distinct
    assert "not valid UTF-8" in cameras["\\xffA"].problem and cameras["\\xffA"].url is None


def test_blob_values_in_text_columns(nvr):
    insert(nvr, "'blobok'", username="x'61646d696e'", password="x'68756e7465723232'")  # valid UTF-8
    insert(nvr, "'blobbad'", username="'admin'", password=f"x'{PASSWORD_BYTES}'")
    cameras = by_id(read_table(nvr.path)[0])
    assert cameras["blobok"].url == "rtsp://admin:hunter22@10.0.0.9:554/Streaming/Channels/101"
    assert "hunter22" in cameras["blobok"].secrets
    assert cameras["blobbad"].problem == "password is not valid UTF-8 text"


def test_nul_characters(nvr):
    insert(nvr, "'nul' || char(0) || 'id'")
    insert(nvr, "'nulname'", name="'a' || char(0) || 'b'")
    insert(nvr, "'nulurl'", main_stream_url="'rtsp://h/x' || char(0) || '-i'")
    cameras = by_id(read_table(nvr.path)[0])
    assert "unsafe id" in cameras["nul\x00id"].problem
    assert cameras["nulname"].problem is None
    assert cameras["nulurl"].url is None and "control characters" in cameras["nulurl"].problem


def test_huge_numbers(nvr):
    insert(nvr, "'hugeport'", rtsp_port="'" + "9" * 5000 + "'")
    insert(nvr, "'hugeseg'", segment_seconds=str(2**63 - 1))
    insert(nvr, "'infseg'", segment_seconds="1e999")
    cameras = by_id(read_table(nvr.path)[0])
    assert "rtsp_port" in cameras["hugeport"].problem and len(cameras["hugeport"].problem) < 80
    assert cameras["hugeseg"].segment_seconds == 3600 and "above" in cameras["hugeseg"].warnings[0]
    assert cameras["infseg"].segment_seconds == 60 and "not a number" in cameras["infseg"].warnings[0]


def test_probe_reads_a_table_with_undecodable_values(nvr):
    insert(nvr, "'bad'", username="'admin'", password=BAD)
    assert "password" in probe(nvr.path)


def test_decode_text():
    assert decode_text("é".encode()) == "é"
    assert decode_text(b"\xffA") == b"\xffA"


def test_describe_never_quotes_a_value():
    exc = sqlite3.OperationalError("Could not decode to UTF-8 column 'password' with text 'hunter\udcff'")
    assert describe(exc) == "Could not decode to UTF-8 column 'password'"
    assert describe(sqlite3.OperationalError("database is locked")) == "database is locked"


def test_missing_file_is_a_database_error(tmp_path):
    with pytest.raises(DatabaseError):
        read_table(tmp_path / "none.db")


@pytest.mark.parametrize("err", [errno.EAGAIN, errno.ENOMEM], ids=["EAGAIN", "ENOMEM"])
def test_a_refused_fork_before_the_read_is_no_news_and_asked_again_next_poll(nvr, tmp_path, monkeypatch, err):
    """The master asks the database's volume from a child before each read (a kept one,
    ``asker``); when it has to fork one and the kernel refuses that fork (the process limit,
    memory), the read is no news like any unreadable database: nothing raises out of it (an
    exception would fail the master's pass, and with it the systemd watchdog's beat), and the
    next poll asks again at once, not 10 s later."""
    settings = Settings(db=nvr.path, mirror_dir=tmp_path, state_dir=tmp_path)
    source = CameraSource()
    assert "good" in source.read(settings, 0.0).cameras

    def refused() -> int:
        raise OSError(err, os.strerror(err))

    source.asker.close()  # the kept asking child is gone: the next read must fork another
    with monkeypatch.context() as patch:
        patch.setattr(volume.os, "fork", refused)
        assert source.read(settings, 1.0, force=True) is None
    assert source.error == f"database not read: cannot fork to ask: {os.strerror(err)}"
    again = source.read(settings, 2.0, force=True)
    assert again is not None and "good" in again.cameras and source.error is None
