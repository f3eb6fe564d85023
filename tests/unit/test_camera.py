"""Parsing a camera row, building its URL, masking credentials (SPEC sections 2 and 3)."""

import pytest

from mirror_supervisor.camera import build_url, check_url, is_safe_id, mask, parse_row

MIRRORED = {"enabled": 1, "record_enabled": 1, "mirror_enabled": 1}


def row(**columns):
    return {"id": "gate_a_01", "name": "Gate", **MIRRORED, **columns}


class TestUrl:
    def test_hikvision_main_and_sub(self):
        cam = parse_row(row(vendor="hikvision", address="10.0.0.5"))
        assert cam.url == "rtsp://10.0.0.5:554/Streaming/Channels/101"
        cam = parse_row(row(vendor="hikvision", address="10.0.0.5", record_stream="sub", rtsp_port=8554))
        assert cam.url == "rtsp://10.0.0.5:8554/Streaming/Channels/102"

    def test_dahua_main_and_sub(self):
        assert parse_row(row(vendor="dahua", address="cam.local")).url == (
            "rtsp://cam.local:554/cam/realmonitor?channel=1&subtype=0"
        )
        assert parse_row(row(vendor="Dahua", address="cam.local", record_stream="sub")).url == (
            "rtsp://cam.local:554/cam/realmonitor?channel=1&subtype=1"
        )

    def test_credentials_are_percent_encoded_except_unreserved(self):
        cam = parse_row(row(vendor="hikvision", address="h", username="ad min", password="p@ss:w/rd%-._~"))
        assert cam.url == "rtsp://ad%20min:p%40ss%3Aw%2Frd%25-._~@h:554/Streaming/Channels/101"

    def test_user_without_password(self):
        assert parse_row(row(vendor="hikvision", address="h", username="viewer")).url == (
            "rtsp://viewer@h:554/Streaming/Channels/101"
        )

    def test_explicit_url_wins_and_is_trimmed(self):
        cam = parse_row(row(vendor="hikvision", address="h", main_stream_url="  rtsp://x:1/a  "))
        assert cam.url == "rtsp://x:1/a"
        cam = parse_row(row(record_stream="sub", main_stream_url="rtsp://x/main", sub_stream_url="rtsp://x/sub"))
        assert cam.url == "rtsp://x/sub"

    def test_blank_explicit_url_falls_back_to_vendor(self):
        assert parse_row(row(vendor="hikvision", address="h", main_stream_url="   ")).url.startswith("rtsp://h:554/")

    def test_generic_vendor_without_url_is_reported(self):
        cam = parse_row(row(vendor="generic", address="h"))
        assert cam.url is None and "no URL" in cam.problem

    def test_missing_address(self):
        assert "address is empty" in parse_row(row(vendor="hikvision")).problem

    def test_ipv6_address_is_bracketed(self):
        assert parse_row(row(vendor="hikvision", address="fd00::5")).url == "rtsp://[fd00::5]:554/Streaming/Channels/101"

    @pytest.mark.parametrize("port", ["abc", 0, 70000, -1])
    def test_bad_port(self, port):
        assert "rtsp_port" in parse_row(row(vendor="hikvision", address="h", rtsp_port=port)).problem

    @pytest.mark.parametrize(
        "url,reason",
        [
            ("file:/etc/passwd", "refused"),
            ("file:///etc/passwd", "refused"),
            ("concat:a.mp4|b.mp4", "refused"),
            ("pipe:0", "refused"),
            ("-i /etc/passwd", "'-'"),
            ("-rtsp://h/x", "'-'"),
            ("/dev/video0", "no scheme"),
            ("rtsp://h/a b", "whitespace"),
            ("rtsp://h/a\nb", "whitespace"),
            ("rtsp:///path", "no host"),
            ("rtsp:h/path", "refused"),
            ("rtsp://u:pa/ss@h/x", "'@' after its host part"),
            ("rtsp://admin:12/34@h/x", "'@' after its host part"),
            ("rtsp://admin:/pw@h/x", "'@' after its host part"),
            ("rtsp://admin:pa?ss@h/x", "'@' after its host part"),
            ("rtsp://admin:pa#ss@h/x", "'@' after its host part"),
            ("rtsp://h:554/a@b", "'@' after its host part"),
        ],
    )
    def test_refused_urls(self, url, reason):
        assert reason in check_url(url)
        cam = parse_row(row(main_stream_url=url))
        assert cam.url is None and reason in cam.problem

    @pytest.mark.parametrize("url", ["rtsp://h/x", "RTSPS://h:322/x", "http://h/x", "https://u:p@h/x",
                                     "rtsp://h:554/a%40b", "rtsp://[fd00::1]:554/x", "rtsp://u:p%2Fq@h/x"])
    def test_allowed_schemes(self, url):
        assert check_url(url) is None

    def test_build_url_rejects_hostile_address(self):
        assert build_url("hikvision", "evil/x@y", 554, "main", None, None)[0] is None


class TestRow:
    def test_mirrored_only_when_all_three_flags(self):
        assert parse_row(row(vendor="hikvision", address="h")).mirrored
        cam = parse_row(row(enabled=0, mirror_enabled=0))
        assert not cam.mirrored and cam.not_mirrored_because == "disabled (enabled = 0), mirror off (mirror_enabled = 0)"

    def test_defaults_for_missing_columns(self):
        cam = parse_row({"id": "a", "mirror_enabled": 1, "vendor": "hikvision", "address": "h"})
        assert cam.mirrored and cam.segment_seconds == 60 and cam.record_audio is False
        assert cam.url == "rtsp://h:554/Streaming/Channels/101"
        assert not parse_row({"id": "a"}).mirrored  # mirror_enabled defaults to 0

    def test_null_in_every_column_never_raises(self):
        columns = ["name", "vendor", "address", "rtsp_port", "username", "password", "main_stream_url",
                   "sub_stream_url", "record_stream", "segment_seconds", "retention_hours", "record_audio",
                   "record_enabled", "enabled", "updated_at"]
        cam = parse_row({"id": "a", "mirror_enabled": 1, **{c: None for c in columns}})
        assert cam.mirrored and cam.problem  # generic vendor, no URL

    @pytest.mark.parametrize("value,expected", [(None, 60), (1, 2), (-5, 2), (0, 2), ("30", 30), (7.9, 7)])
    def test_segment_seconds(self, value, expected):
        assert parse_row(row(vendor="hikvision", address="h", segment_seconds=value)).segment_seconds == expected

    def test_non_numeric_segment_seconds_uses_default_with_warning(self):
        cam = parse_row(row(vendor="hikvision", address="h", segment_seconds="abc"))
        assert cam.segment_seconds == 60 and cam.problem is None and "not a number" in cam.warnings[0]

    def test_unreadable_flag_is_a_problem(self):
        assert "mirror_enabled" in parse_row(row(mirror_enabled="maybe")).problem

    @pytest.mark.parametrize("camera_id", ["", ".", "..", "../x", "a/b", "a\x00b", "a\nb", "x" * 129, ".hidden", " a"])
    def test_unsafe_ids(self, camera_id):
        assert not is_safe_id(camera_id)
        cam = parse_row(row(id=camera_id, vendor="hikvision", address="h"))
        assert cam.url is None and "unsafe id" in cam.problem

    @pytest.mark.parametrize("camera_id", ["gate_a_01", "G-1.2", "x" * 128, "7"])
    def test_safe_ids(self, camera_id):
        assert is_safe_id(camera_id)


class TestMask:
    def test_masks_userinfo(self):
        assert mask("rtsp://admin:secret@10.0.0.5:554/x") == "rtsp://***@10.0.0.5:554/x"

    def test_at_sign_inside_password(self):
        assert mask("rtsp://admin:p@ss@host:554/Streaming") == "rtsp://***@host:554/Streaming"

    def test_user_only(self):
        assert mask("rtsp://viewer@host/x") == "rtsp://***@host/x"

    def test_url_without_credentials_unchanged(self):
        assert mask("rtsp://host:554/a%40b?x=1") == "rtsp://host:554/a%40b?x=1"

    def test_every_url_in_free_text(self):
        text = "[rtsp @ 0x5] method DESCRIBE failed for rtsp://u:pw@h/x: 401\nretry http://a:b@c/"
        assert mask(text) == "[rtsp @ 0x5] method DESCRIBE failed for rtsp://***@h/x: 401\nretry http://***@c/"

    def test_literal_secrets(self):
        assert mask("Password 'hunter22' rejected", ["hunter22"]) == "Password '***' rejected"

    def test_camera_masked_url_and_secrets(self):
        cam = parse_row(row(main_stream_url="rtsp://admin:se/cret@h:554/x"))
        assert cam.url is None and "%2F" in cam.problem and "cret" not in cam.problem
        cam = parse_row(row(main_stream_url="rtsp://admin:p@ss@h:554/x"))
        assert cam.url == "rtsp://admin:p@ss@h:554/x" and cam.masked_url == "rtsp://***@h:554/x"
        assert "p@ss" in cam.secrets
        cam = parse_row(row(vendor="hikvision", address="h", username="u", password="p@ss w0rd"))
        assert "p@ss w0rd" in cam.secrets and "p%40ss%20w0rd" in cam.secrets
        assert cam.masked_url == "rtsp://***@h:554/Streaming/Channels/101"
