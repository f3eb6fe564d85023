"""The ffmpeg argv (docs/design.md, "ffmpeg command") and its use as the recording key."""

from pathlib import Path

from mirror_supervisor.camera import parse_row
from mirror_supervisor.ffmpeg import build_command, environment

BASE = {"id": "cam1", "enabled": 1, "record_enabled": 1, "mirror_enabled": 1, "vendor": "hikvision", "address": "h"}


def command(**columns):
    return build_command("/usr/bin/ffmpeg", parse_row({**BASE, **columns}), Path("/mirror"))


def test_exact_argument_order():
    assert command(segment_seconds=60) == (
        "/usr/bin/ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
        "-rtsp_transport", "tcp", "-timeout", "15000000",
        "-i", "rtsp://h:554/Streaming/Channels/101", "-c", "copy", "-an",
        "-f", "segment", "-segment_time", "60", "-segment_format", "mp4",
        "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1",
        "-reset_timestamps", "1", "-strftime", "1", "/mirror/cam1/%Y%m%d_%H%M%S.mp4",
    )


def test_audio_copied_when_asked():
    argv = command(record_audio=1)
    assert "-an" not in argv and argv[argv.index("-c:a") + 1] == "copy"


def test_segment_time_has_a_floor_of_two():
    argv = command(segment_seconds=1)
    assert argv[argv.index("-segment_time") + 1] == "2"


def test_rtsp_transport_only_for_rtsp_inputs():
    assert "-rtsp_transport" in command(main_stream_url="rtsps://h/x")
    assert "-rtsp_transport" not in command(main_stream_url="http://h/x.mjpg")


def test_key_changes_with_recording_fields_only():
    same = command(name="Gate", retention_hours=24)
    assert same == command(name="Renamed", retention_hours=48)
    for change in ({"segment_seconds": 30}, {"record_audio": 1}, {"record_stream": "sub"},
                   {"username": "u", "password": "p"}, {"main_stream_url": "rtsp://other/x"}):
        assert command(**change) != same, change


def test_environment_forces_utc():
    assert environment({"TZ": "Europe/Oslo", "PATH": "/bin"}) == {"TZ": "UTC", "PATH": "/bin"}
