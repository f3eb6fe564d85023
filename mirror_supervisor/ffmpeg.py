"""The ffmpeg command (docs/design.md, "ffmpeg command"): identical for every camera but for URL, length, audio, dir.

The argument list doubles as the camera's *recording key*: the master restarts a worker exactly
when the command its camera would run changes, so a reload never cuts footage that did not need
cutting, and a change of any recording-relevant field (URL, credentials, stream, segment length,
audio, mirror directory, ffmpeg binary) always takes effect.
"""

from __future__ import annotations

from pathlib import Path

from .camera import MIN_SEGMENT_SECONDS, Camera

SEGMENT_PATTERN = "%Y%m%d_%H%M%S.mp4"
MOVFLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1"
SOCKET_TIMEOUT_US = 15_000_000


def camera_dir(mirror_dir: Path, camera_id: str) -> Path:
    return Path(mirror_dir) / camera_id


def build_command(ffmpeg: str, camera: Camera, mirror_dir: Path) -> tuple[str, ...]:
    """The argv that records ``camera``; the camera must have a URL (``camera.problem`` is None)."""
    if camera.url is None:
        raise ValueError(f"camera {camera.id!r} has no usable URL")
    args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning"]
    if camera.url.lower().startswith(("rtsp://", "rtsps://")):
        args += ["-rtsp_transport", "tcp"]
    args += ["-timeout", str(SOCKET_TIMEOUT_US), "-i", camera.url, "-c", "copy"]
    args += ["-c:a", "copy"] if camera.record_audio else ["-an"]
    args += [
        "-f", "segment",
        "-segment_time", str(max(MIN_SEGMENT_SECONDS, camera.segment_seconds)),
        "-segment_format", "mp4",
        "-segment_format_options", MOVFLAGS,
        "-reset_timestamps", "1",
        "-strftime", "1",
        str(camera_dir(mirror_dir, camera.id) / SEGMENT_PATTERN),
    ]
    return tuple(args)


def environment(base: dict[str, str]) -> dict[str, str]:
    """ffmpeg names segments with strftime in local time; UTC makes names unambiguous."""
    env = dict(base)
    env["TZ"] = "UTC"
    return env
