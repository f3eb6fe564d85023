"""The camera cache file and the rules for using it (docs/design.md, "Camera cache"), against real
SQLite files written by another connection and a real cache directory.

The end-to-end behaviour (real master, ffmpeg, camera) is tests/faults/test_nvr_gone.py's; here
each rule is checked on its own: what the file holds and refuses, when it is written, and when
:class:`~mirror_supervisor.master.wanted.CameraSource` records from it.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from support.nvr import NvrDatabase

from mirror_supervisor import check
from mirror_supervisor.cameras import cache as camera_cache
from mirror_supervisor.cameras.cache import CacheError, CameraCache, cache_path, dump, load
from mirror_supervisor.cameras.database import RawTable
from mirror_supervisor.master.wanted import CameraSource
from mirror_supervisor.settings import Settings

ODD_ROW = ("odd", b"\xffname", None, 1.5, float("nan"), -7, "pässwörd")


def test_every_kind_of_raw_value_survives_the_file(tmp_path):
    table = RawTable(("id", "name", "vendor", "rtsp_port", "retention_hours", "segment_seconds", "password"),
                     [ODD_ROW, ("b", "", "x", 554, float("inf"), 60, b"")])
    path = tmp_path / "c.json"
    path.write_bytes(dump(table, 1.8e9, tmp_path / "db", tmp_path / "mirror"))
    loaded = load(path, tmp_path / "mirror")
    assert loaded.table.names == table.names and loaded.read_at == 1.8e9
    (odd, other) = loaded.table.rows
    assert odd[:4] == ODD_ROW[:4] and odd[4] != odd[4] and odd[5:] == ODD_ROW[5:]  # nan is nan
    assert other == ("b", "", "x", 554, float("inf"), 60, b"")
    assert [type(value) for value in odd] == [type(value) for value in ODD_ROW]


@pytest.mark.parametrize(("change", "reason"), [
    (lambda doc: doc.update(format=2), "format 2"),
    (lambda doc: doc.update(rows=[["x", "y"]]), "sha256"),
    (lambda doc: doc.update(kind="other"), "not a camera cache"),
])
def test_a_file_of_another_format_or_damaged_is_refused(tmp_path, change, reason):
    path = tmp_path / "c.json"
    path.write_bytes(dump(RawTable(("id",), [("a",)]), 1.8e9, tmp_path / "db", tmp_path / "mirror"))
    document = json.loads(path.read_bytes())
    change(document)
    path.write_text(json.dumps(document))
    with pytest.raises(CacheError, match=reason):
        load(path, tmp_path / "mirror")


def test_a_well_formed_file_with_bad_content_is_refused_even_with_a_matching_sha256(tmp_path):
    path = tmp_path / "c.json"
    document = {"kind": camera_cache.KIND, "format": 1, "read_at": 1.0, "db": "x", "mirror_dir": str(tmp_path),
                "columns": ["id", "rm -rf"], "rows": [["a", "b"]]}
    document["sha256"] = __import__("hashlib").sha256(camera_cache._canonical(document)).hexdigest()
    path.write_text(json.dumps(document))
    with pytest.raises(CacheError, match="columns"):
        load(path, tmp_path)


def test_a_cache_of_another_mirror_dir_is_refused_and_each_mirror_has_its_own_file(tmp_path):
    assert cache_path(tmp_path, tmp_path / "a") != cache_path(tmp_path, tmp_path / "b")
    path = tmp_path / "c.json"
    path.write_bytes(dump(RawTable(("id",), [("a",)]), 1.8e9, tmp_path / "db", tmp_path / "a"))
    with pytest.raises(CacheError, match="mirror dir"):
        load(path, tmp_path / "b")


def test_written_0600_in_a_0700_directory_and_only_when_the_rows_change(tmp_path):
    cache_dir, mirror = tmp_path / "state" / "cache", tmp_path / "mirror"
    keeper = CameraCache()
    keeper.open(cache_dir, mirror)
    assert keeper.problem == "none yet" and not cache_dir.exists()
    table = RawTable(("id", "password"), [("a", "pw")])
    keeper.keep(table, tmp_path / "db", mirror, 1.8e9)
    path = cache_path(cache_dir, mirror)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert path.stat().st_uid == os.geteuid()
    inode = path.stat().st_ino
    keeper.keep(RawTable(("id", "password"), [("a", "pw")]), tmp_path / "db", mirror, 1.8e9 + 60)
    assert path.stat().st_ino == inode and path.stat().st_mtime == 1.8e9, "an unchanged table is not written"
    keeper.keep(table, tmp_path / "db", mirror, 1.8e9 + camera_cache.CONFIRM_EVERY)
    assert path.stat().st_ino == inode and path.stat().st_mtime == 1.8e9 + camera_cache.CONFIRM_EVERY, \
        "now and then an unchanged table moves the file's mtime only: the time the cache last matched"
    keeper.keep(RawTable(("id", "password"), [("a", "new")]), tmp_path / "db", mirror, 1.8e9 + 700)
    assert path.stat().st_ino != inode and load(path, mirror).table.rows == [("a", "new")]
    assert [p.name for p in cache_dir.iterdir()] == [path.name], "no temporary file left behind"


def test_a_reload_that_moves_the_mirror_dir_writes_the_new_mirrors_own_file(tmp_path):
    cache_dir = tmp_path / "cache"
    keeper = CameraCache()
    keeper.open(cache_dir, tmp_path / "m1")
    keeper.keep(RawTable(("id",), [("a",)]), tmp_path / "db", tmp_path / "m1", 1.8e9)
    keeper.keep(RawTable(("id",), [("a",)]), tmp_path / "db", tmp_path / "m2", 1.8e9 + 5)
    assert load(cache_path(cache_dir, tmp_path / "m2"), tmp_path / "m2").table.rows == [("a",)]
    assert load(cache_path(cache_dir, tmp_path / "m1"), tmp_path / "m1").read_at == 1.8e9, "the old one left as it was"
    assert keeper.status("database")["cache"]["path"] == str(cache_path(cache_dir, tmp_path / "m2"))


def test_an_existing_directory_open_to_others_is_closed_and_one_another_user_can_write_is_refused(tmp_path):
    cache_dir, mirror = tmp_path / "cache", tmp_path / "mirror"
    cache_dir.mkdir(mode=0o755)
    cache_dir.chmod(0o755)  # systemd's StateDirectory= default
    keeper = CameraCache()
    keeper.open(cache_dir, mirror)
    keeper.keep(RawTable(("id",), [("a",)]), tmp_path / "db", mirror, 1.8e9)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    cache_dir.chmod(0o777)
    other = CameraCache()
    other.open(cache_dir, mirror)
    assert other.loaded is None and "writable by group or others" in (other.problem or "")


# -- the rules of use: CameraSource against real database files ------------------------------------

@pytest.fixture
def site(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    settings = Settings(db=tmp_path / "nvr.db", mirror_dir=mirror, state_dir=tmp_path / "state",
                        cache_dir=tmp_path / "cache")
    return settings


def move(src, dst) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{src}{suffix}"):
            os.replace(f"{src}{suffix}", f"{dst}{suffix}")


def read(settings: Settings, source: CameraSource | None = None, now: float = 1000.0):
    """A read as the master makes it: the cache is written after the pass's forks (settle)."""
    source = source or CameraSource()
    answer = source.read(settings, now=now, force=True)
    source.settle()
    return source, answer


def test_a_start_without_a_database_records_from_the_cache_and_the_database_wins_when_it_reads(site, caplog):
    caplog.set_level("INFO", logger="mirror_supervisor")
    nvr = NvrDatabase(site.db)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    nvr.add_mirrored("b", "rtsp://10.0.0.1/b")
    _, first = read(site)
    assert set(first.cameras) == {"a", "b"}
    moved = site.db.with_name("away.db")
    move(site.db, moved)

    source, fallback = read(site)
    assert fallback is not None and set(fallback.cameras) == {"a", "b"}, "recorded from the cache"
    assert fallback.keys == first.keys, "the same argv, so nothing restarts when the database returns"
    assert source.error and source.table["source"] == "cache"
    assert read(site, source, 1001.0)[1] is None, "later failures are no news, as always"

    nvr.path = moved
    nvr.delete("b")
    move(moved, site.db)
    back = read(site, source, 1002.0)[1]
    assert back is not None and set(back.cameras) == {"a"} and back.keys["a"] == first.keys["a"]
    assert source.error is None and source.table["source"] == "database"
    move(site.db, moved)
    assert read(site, source, 1003.0)[1] is None, "an outage after that is no news: the cache is done"
    move(moved, site.db)
    assert read(site, source, 1004.0)[1] is not None
    again = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database readable again")]
    assert again == ["database readable again; the camera cache is no longer used", "database readable again"]


def test_a_start_while_the_database_is_locked_records_from_the_cache(site):
    import sqlite3

    nvr = NvrDatabase(site.db, wal=False)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    read(site)
    holder = sqlite3.connect(site.db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the NVR mid-commit for longer than the 1 s busy timeout
    try:
        source, answer = read(site)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer is not None and set(answer.cameras) == {"a"} and "locked" in (source.error or "")


def test_a_readable_database_with_no_mirrored_camera_is_news_and_outranks_the_cache(site):
    nvr = NvrDatabase(site.db)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    read(site)
    nvr.update("a", mirror_enabled=0)
    source, answer = read(site)
    assert answer is not None and answer.cameras == {} and source.table["source"] == "database"


def test_a_database_that_lost_a_column_the_cache_has_is_unreadable_at_start(site):
    nvr = NvrDatabase(site.db, not_null=False)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    read(site)
    nvr.execute("ALTER TABLE cameras DROP COLUMN mirror_enabled")  # mid-migration: every camera would read as off
    source, answer = read(site)
    assert answer is not None and set(answer.cameras) == {"a"} and source.table["source"] == "cache"
    assert "lost column(s) mirror_enabled since the camera cache" in (source.error or "")


def test_a_master_that_read_the_database_never_falls_back_to_the_cache(site):
    nvr = NvrDatabase(site.db)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    source, _ = read(site)
    site.db.unlink()
    assert read(site, source, 1001.0)[1] is None, "no news: its own last read stays in force"
    assert source.table["source"] == "database"


def test_without_a_cache_dir_nothing_is_written_and_a_start_without_a_database_knows_nothing(tmp_path, site):
    import dataclasses

    settings = dataclasses.replace(site, cache_dir=None)
    NvrDatabase(settings.db).add_mirrored("a", "rtsp://10.0.0.1/a")
    read(settings)
    settings.db.unlink()
    _, answer = read(settings)
    assert answer is None and not (tmp_path / "cache").exists()


def test_a_failed_read_never_writes_the_cache(site):
    nvr = NvrDatabase(site.db)
    nvr.add_mirrored("a", "rtsp://10.0.0.1/a")
    source, _ = read(site)
    path = cache_path(site.cache_dir, site.mirror_dir)
    before = path.read_bytes()
    nvr.execute("ALTER TABLE cameras RENAME TO cameras_old")
    assert read(site, source, 1001.0)[1] is None
    assert path.read_bytes() == before


# -- what an operator sees ---------------------------------------------------------------------------

def test_status_metrics_and_systemd_say_the_cameras_come_from_the_cache(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from mirror_supervisor.metrics import metrics
    from mirror_supervisor.status import render

    confirmed = 1.8e9
    table = {"source": "cache", "cache": {"path": "/var/lib/x/cameras-1.json", "read_at": confirmed - 3600,
                                          "confirmed_at": confirmed, "cameras": 2, "problem": None}}
    data = {"master": {"pid": 1, "started": confirmed, "db_path": "/nvr.db", "camera_table": table,
                       "db": {"state": "error", "error": "database '/nvr.db' does not exist", "since": confirmed}},
            "cameras": []}
    text = render(data, now=confirmed + 300)
    assert ("database /nvr.db: unreadable, recording from the cache of 2027-01-15T08:00:00Z (5m00s ago): "
            "database '/nvr.db' does not exist") in text
    assert "camera cache /var/lib/x/cameras-1.json: matched the database at 2027-01-15T08:00:00Z" in text
    assert camera_cache.note(table) == ", from the cache of 2027-01-15T08:00:00Z"
    assert camera_cache.note({**table, "source": "database"}) == ""

    exporter = metrics.Exporter(Settings(db=tmp_path / "db", mirror_dir=tmp_path, state_dir=tmp_path,
                                         metrics_file=tmp_path / "m.prom"))
    exporter.observe(0.0, [], {}, database_up=False, table=table)
    got = {(s.name, tuple(s.labels.items())): s.value
           for family in text_string_to_metric_families(exporter.render(1.0).decode()) for s in family.samples}
    assert got[("mirror_supervisor_camera_table_source", (("source", "cache"),))] == 1
    assert got[("mirror_supervisor_camera_table_source", (("source", "database"),))] == 0
    assert got[("mirror_supervisor_camera_cache_timestamp_seconds", ())] == confirmed


def test_check_names_the_cache_its_age_and_whether_a_start_could_use_it(tmp_path):
    mirror = tmp_path / "mirror"
    line, usable = check.describe_cache(tmp_path / "cache", mirror)
    assert "none yet" in line and not usable
    keeper = CameraCache()
    keeper.open(tmp_path / "cache", mirror)
    keeper.keep(RawTable(("id",), [("a",), ("b",)]), tmp_path / "db", mirror, 1.8e9)
    line, usable = check.describe_cache(tmp_path / "cache", mirror, now=1.8e9 + 7200)
    assert usable and line == (f"camera cache {cache_path(tmp_path / 'cache', mirror)}: 2 cameras, matched the "
                               "database at 2027-01-15T08:00:00Z (2h00m ago)")
    cache_path(tmp_path / "cache", mirror).write_text("{")
    line, usable = check.describe_cache(tmp_path / "cache", mirror)
    assert "UNUSABLE: not JSON" in line and not usable
