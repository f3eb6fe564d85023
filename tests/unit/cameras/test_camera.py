"""Parsing a camera row, building its URL, masking credentials (docs/design.md, "Database" and "Recorded URL")."""

from urllib.parse import quote, unquote

import pytest

from mirror_supervisor.cameras.camera import build_url, check_url, is_safe_id, parse_row
from mirror_supervisor.plumbing.masking import mask, url_secrets

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


# Every credential form a row can express: (columns, password). Whatever happens to the row
# (recorded or refused), the password must not show, plain or percent-encoded, anywhere a
# Camera's text goes: masked_url, problem, warnings, or ffmpeg's stderr passed through mask().
CREDENTIAL_FORMS = [
    ({"main_stream_url": "rtsp://admin:s3cr3tpw@h/x"}, "s3cr3tpw"),
    ({"main_stream_url": "rtsp://admin:pa@ss9@h/x"}, "pa@ss9"),
    ({"main_stream_url": "rtsp://admin:pa%40ss9@h/x"}, "pa@ss9"),
    ({"main_stream_url": "rtsp://ad%3Amin:colonuser9@h/x"}, "colonuser9"),
    ({"main_stream_url": "rtsp://ad:min:colonpw9@h/x"}, "min:colonpw9"),
    ({"main_stream_url": "rtsp://admin:pa%2Fss9@h/x"}, "pa/ss9"),
    ({"main_stream_url": "rtsp://admin:12/34@h:554/x"}, "12/34"),
    ({"main_stream_url": "rtsp://admin:/pw99@h/x"}, "/pw99"),
    ({"main_stream_url": "rtsp://admin:pa?ss9@h/x"}, "pa?ss9"),
    ({"main_stream_url": "rtsp://admin:pa#ss9@h/x"}, "pa#ss9"),
    ({"main_stream_url": "rtsp://admin:pa%3Fs%23s9@h/x"}, "pa?s#s9"),
    ({"main_stream_url": "rtsp://:nouser99@h/x"}, "nouser99"),
    ({"main_stream_url": "rtsp://admin:p%25ss%20w9@h/x"}, "p%ss w9"),
    ({"main_stream_url": "rtsp://admin:v6secret@[fd00::1]:554/x"}, "v6secret"),
    ({"main_stream_url": "  rtsp://admin:wspass99@h/x  "}, "wspass99"),
    ({"main_stream_url": "rtsp://admin:pa ss99@h/x"}, "pa ss99"),
    ({"main_stream_url": "rtsp://h/x?user=admin&password=qsecret9"}, "qsecret9"),
    ({"main_stream_url": "rtsp://h/x?user=admin&PWD=a%26b9999"}, "a&b9999"),
    ({"main_stream_url": "rtsp://h/x?pass=short&channel=1"}, "short"),
    ({"main_stream_url": "rtsp://h:554/user=admin_password=xm5ecret_channel=1_stream=0.sdp"}, "xm5ecret"),
    ({"vendor": "hikvision", "address": "h", "username": "admin", "password": "p@ss:w/rd?#%"}, "p@ss:w/rd?#%"),
    ({"vendor": "hikvision", "address": "h", "username": "ad:min", "password": "pw:9999"}, "pw:9999"),
    ({"vendor": "hikvision", "address": "h", "username": "admin", "password": " spa ce "}, " spa ce "),
    ({"vendor": "hikvision", "address": "h", "username": "admin", "password": "%41%42cd"}, "%41%42cd"),
    ({"vendor": "hikvision", "address": "fd00::7", "username": "admin", "password": "v6column"}, "v6column"),
    ({"vendor": "hikvision", "address": "h", "password": "lonely99"}, "lonely99"),
    ({"vendor": "hikvision", "address": "user:secretpw@10.0.0.7"}, "secretpw"),
    ({"vendor": "hikvision", "address": "user:secretpw@10.0.0.7", "username": "u", "password": "other99"}, "secretpw"),
    ({"vendor": "hikvision", "address": "rtsp://user:secretpw@10.0.0.7/x"}, "secretpw"),
    ({"vendor": "hikvision", "address": "admin:secretpw"}, "secretpw"),
    ({"vendor": "hikvision", "address": "10.0.0.7/?password=secretpw"}, "secretpw"),
    ({"vendor": "hikvision", "address": "10.0.0.7 secretpw"}, "secretpw"),
    ({"vendor": "hikvision", "address": "[secretpw]"}, "secretpw"),
    ({"vendor": "nosuch", "address": "h", "username": "admin", "password": "novendor9"}, "novendor9"),
    ({"vendor": "hikvision", "address": "h", "username": "admin", "password": "badport9", "rtsp_port": "x"},
     "badport9"),
]


def ffmpeg_like(url: str) -> str:
    """What ffmpeg's stderr may say about a URL: as given, and decoded."""
    return (f"[rtsp @ 0x55d0c] method DESCRIBE failed: 401 Unauthorized\n"
            f"{url}: Server returned 401 Unauthorized (authorization failed)\n"
            f"[tcp @ 0x55d0d] Connection to {unquote(url)} failed: Connection refused")


@pytest.mark.parametrize("columns,password", CREDENTIAL_FORMS)
def test_no_credential_form_shows_its_password(columns, password):
    cam = parse_row(row(**columns))
    shown = [cam.masked_url, cam.problem or "", *cam.warnings, repr(cam)]
    if cam.url:
        shown.append(mask(ffmpeg_like(cam.url), cam.secrets))
        shown.append(mask(cam.url))  # the log formatter's last line of defence knows no secrets
    for form in {password, quote(password, safe="")}:
        for text in shown:
            assert form not in text, (form, text)


@pytest.mark.parametrize("address,reason", [
    ("user:secretpw@10.0.0.7", "contains '@'"),
    ("admin:secretpw", "not an IPv6 address"),
    ("10.0.0.7:8554", "not an IPv6 address"),
    ("10.0.0.7/x", "contains '/'"),
    ("10.0.0.7 x", "whitespace"),
    ("[nope]", "bracketed IPv6"),
])
def test_refused_addresses_are_never_quoted(address, reason):
    cam = parse_row(row(vendor="hikvision", address=address))
    assert cam.url is None and reason in cam.problem and address not in cam.problem


@pytest.mark.parametrize("address,url", [
    ("fd00::5", "rtsp://[fd00::5]:554/Streaming/Channels/101"),
    ("[fd00::5]", "rtsp://[fd00::5]:554/Streaming/Channels/101"),
    (" cam-1.local ", "rtsp://cam-1.local:554/Streaming/Channels/101"),
])
def test_accepted_addresses(address, url):
    assert parse_row(row(vendor="hikvision", address=address)).url == url


def test_password_without_username_is_a_warning_not_a_silent_drop():
    cam = parse_row(row(vendor="hikvision", address="h", password="lonely99"))
    assert cam.url == "rtsp://h:554/Streaming/Channels/101" and "username is empty" in cam.warnings[0]


def test_url_secrets_of_query_and_userinfo():
    assert set(url_secrets("rtsp://a:p%2Fw@h/x?password=q%26r&pwd=")) == {"p%2Fw", "p/w", "q%26r", "q&r"}
    assert url_secrets("rtsp://h/x") == ()


def test_mask_hides_password_parameters_and_keeps_others():
    assert mask("rtsp://h/x?user=admin&password=abc&channel=1") == "rtsp://h/x?user=admin&password=***&channel=1"


def test_mask_longer_secret_first():
    assert mask("token abcdef", ["abcd", "abcdef"]) == "token ***"


class TestBytes:
    """Values that are not text reach parse_row as bytes (database.decode_text)."""

    def test_name_is_shown_with_replacement(self):
        cam = parse_row(row(vendor="hikvision", address="h", name=b"\xffGate"))
        assert cam.problem is None and cam.name == "\ufffdGate"

    @pytest.mark.parametrize("column", ["username", "password", "address", "main_stream_url"])
    def test_credential_columns_are_refused_without_the_value(self, column):
        columns = {"vendor": "hikvision", "address": "h", "username": "u", "password": "p"}
        cam = parse_row(row(**{**columns, column: b"\xffhunter22"}))
        assert cam.url is None and cam.problem == f"{column} is not valid UTF-8 text"

    def test_bad_password_is_ignored_when_an_explicit_url_is_used(self):
        assert parse_row(row(password=b"\xff", main_stream_url="rtsp://h/x")).url == "rtsp://h/x"

    def test_id_is_escaped(self):
        cam = parse_row(row(id=b"\xff\x1b[2J", vendor="hikvision", address="h"))
        assert cam.id == "\\xff\x1b[2J" and "not valid UTF-8" in cam.problem and "\x1b" not in cam.problem

    @pytest.mark.parametrize("column", ["enabled", "record_audio", "segment_seconds", "record_stream", "rtsp_port",
                                        "vendor"])
    def test_other_columns_never_show_raw_bytes(self, column):
        cam = parse_row(row(**{"vendor": "hikvision", "address": "h", column: b"\xff\xfe"}))
        for text in (cam.problem or "", *cam.warnings):
            assert "\xff" not in text and "\\xff" not in text


def test_an_unreadable_on_off_value_is_reported_not_silently_skipped():
    camera = parse_row({"id": "cam", "mirror_enabled": "maybe", "main_stream_url": "rtsp://h/x"})
    assert camera.mirrored and camera.problem is not None and camera.problem.startswith("mirror_enabled:")
    off = parse_row({"id": "cam", "enabled": 0, "mirror_enabled": "maybe"})
    assert not off.mirrored and off.problem is None, "another column says off for sure"
