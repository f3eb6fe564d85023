"""The ffmpeg command (docs/design.md, "ffmpeg command"): identical for every camera but for URL, length, audio, dir.

The argument list doubles as the camera's *recording key*: the master restarts a worker exactly
when the command its camera would run changes, so a reload never cuts footage that did not need
cutting, and a change of any recording-relevant field (URL, credentials, stream, segment length,
audio, mirror directory, ffmpeg binary) always takes effect.

The camera URL is *not* in the command. Linux shows every process's arguments to every local
user, and the URL carries the camera's password. ffmpeg reads it instead from a one-line
``ffconcat`` script (the concat demuxer with a single ``file`` entry), which the worker writes,
mode 0600 in a private directory, just before it starts ffmpeg (:func:`write_input`) and removes
once ffmpeg has read it. The command names that script by a relative path, ffmpeg's working
directory being the private directory, so the master can build the command without knowing which
user the worker will be. The script's name carries a digest of the URL keyed with a secret that
only this master process (and its forked workers) holds: the command still changes exactly when
the URL or its credentials change, and the digest says nothing about the password to anyone who
reads it.

Each input is held to what its scheme needs (:func:`input_options`): the script itself is the
only file ffmpeg may open, and the camera's input may use only its own protocols and, for
http(s), only live-stream container formats, so a hostile device cannot steer ffmpeg into
playlists, local files or other protocols.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import pwd
import re
import secrets
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..cameras.camera import MIN_SEGMENT_SECONDS, Camera
from ..plumbing import files, lifeline

SEGMENT_PATTERN = "%Y%m%d_%H%M%S.mp4"
MOVFLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1"
SOCKET_TIMEOUT_US = 15_000_000
INPUT_SUFFIX = ".ffconcat"
INPUT_MODE = 0o600
INPUT_DIR_MODE = 0o700
_OLD_INPUT = re.compile(r".+\.[0-9a-f]{20}" + re.escape(INPUT_SUFFIX))  # <camera_id>.<digest>.ffconcat

# Per scheme: the protocols the camera's input may open, and the demuxers it may use.
_RTSP = ("rtsp,tcp", "rtsp")
_HTTP_FORMATS = "mjpeg,mpjpeg,mpegts,flv,matroska,mov,h264,hevc,asf,avi"
INPUT_WHITELISTS = {
    "rtsp": _RTSP,
    "rtsps": ("rtsps,tls,tcp", "rtsp"),
    "http": ("http,tcp", _HTTP_FORMATS),
    "https": ("https,tls,tcp", _HTTP_FORMATS),
}

# Keys the digest in the input's name: known to this process and its forks only, so the name
# cannot be used to test password guesses. A new master computes new names, which is fine: the
# key is only ever compared within one master's life.
_KEY = secrets.token_bytes(32)


def camera_dir(mirror_dir: Path, camera_id: str) -> Path:
    return Path(mirror_dir) / camera_id


def output_dir(argv: tuple[str, ...]) -> Path:
    """The camera directory a :func:`build_command` argv records into (its last argument is the
    segment pattern there): how the master knows where a worker's segments are."""
    return Path(argv[-1]).parent


def input_name(camera: Camera) -> str:
    """The ffconcat script's file name: the camera id and a keyed digest of its URL."""
    assert camera.url is not None
    digest = hmac.new(_KEY, camera.url.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:20]
    return f"{camera.id}.{digest}{INPUT_SUFFIX}"


def build_command(ffmpeg: str, camera: Camera, mirror_dir: Path) -> tuple[str, ...]:
    """The argv that records ``camera``; the camera must have a URL (``camera.problem`` is None).

    It reads the input named ``input_name(camera)`` in its working directory (see the module
    docstring); ``write_input`` makes it.
    """
    if camera.url is None:
        raise ValueError(f"camera {camera.id!r} has no usable URL")
    args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning"]
    args += ["-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", input_name(camera), "-c", "copy"]
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


def input_options(url: str) -> list[tuple[str, str]]:
    """The options ffmpeg opens the camera's input with: transport, socket timeout, whitelists."""
    scheme = url.split(":", 1)[0].lower()
    protocols, formats = INPUT_WHITELISTS[scheme]
    options = [("rtsp_transport", "tcp")] if scheme in ("rtsp", "rtsps") else []
    options += [("timeout", str(SOCKET_TIMEOUT_US)), ("protocol_whitelist", protocols), ("format_whitelist", formats)]
    return options


def quote_token(text: str) -> str:
    """``text`` as one token of an ffconcat script: single-quoted, a quote as ``'\\''``."""
    return "'" + text.replace("'", "'\\''") + "'"


def concat_script(url: str) -> str:
    """The ffconcat script that makes ffmpeg read ``url`` with :func:`input_options`."""
    lines = ["ffconcat version 1.0", f"file {quote_token(url)}"]
    lines += [f"option {key} {quote_token(value)}" for key, value in input_options(url)]
    return "\n".join(lines) + "\n"


def input_dir(scope: Path | None = None, uid: int | None = None) -> Path:
    """The private directory of this user's ffconcat scripts (ffmpeg's working directory).

    Under the temporary directory (a private /tmp under systemd's ``PrivateTmp``), named after
    the user (``uid``, by default ours): :func:`prepare_input_dir` refuses one another user made
    or can write. With a ``scope`` (the mirror dir), a subdirectory of its own: two masters on one
    host (two mirror volumes) may record cameras of the same id, and a worker removes its camera's
    stale scripts.
    """
    base = Path(tempfile.gettempdir()) / f"mirror-supervisor-{os.geteuid() if uid is None else uid}-inputs"
    if scope is None:
        return base
    return base / hashlib.sha256(os.fsencode(str(scope))).hexdigest()[:16]


def prepare_input_dir(directory: Path) -> None:
    """Create ``directory`` 0700, or accept an existing one that only we can use."""
    try:
        os.mkdir(directory, INPUT_DIR_MODE)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"{directory} is not a directory of uid {os.geteuid()}")
    if stat.S_IMODE(info.st_mode) != INPUT_DIR_MODE:
        os.chmod(directory, INPUT_DIR_MODE, follow_symlinks=False)


def input_of(argv: tuple[str, ...] | list[str], camera: Camera) -> str:
    """The script name an argv of :func:`build_command` reads. A worker takes it from there, not
    from :func:`input_name`: the key is the master's, and a worker forked by the zygote has another.
    An argv without ``-i`` (a test's) gets :func:`input_name`."""
    args = list(argv)
    return args[args.index("-i") + 1] if "-i" in args[:-1] else input_name(camera)


def write_input(directory: Path, camera: Camera, name: str | None = None) -> Path:
    """Write ``camera``'s ffconcat script (mode 0600) into ``directory`` as ``name`` (by default
    :func:`input_name`); returns its path.

    Written like every file of ours (``files.write_atomically``): a fresh random name created
    exclusively without following links, then renamed, so nothing planted is written through.
    """
    assert camera.url is not None
    path = Path(directory) / (name or input_name(camera))
    remove_stale_inputs(directory, camera.id, keep=path.name)
    files.write_atomically(path, concat_script(camera.url), mode=INPUT_MODE)
    return path


def open_input(directory: Path | None, camera: Camera, log: Any, scope: Path | None = None,
               name: str | None = None) -> tuple[Path, Path]:
    """Write ``camera``'s input script in ``directory`` (by default :func:`input_dir` of
    ``scope``); returns (the directory ffmpeg runs in, the script). Raises OSError when it
    cannot be written.

    Someone else may have made the well-known directory name first (a shared /tmp): then a
    directory of a fresh random name is used, which cannot be taken, and ffmpeg finds its input by
    a relative path either way.
    """
    chain = [directory] if directory is not None else list(dict.fromkeys((input_dir(), input_dir(scope))))
    directory = chain[-1]
    try:
        for path in chain:
            prepare_input_dir(path)
    except PermissionError as exc:
        fallback = Path(tempfile.mkdtemp(prefix=f"mirror-supervisor-{camera.id}-"))
        log.warning("%s; using %s instead", exc, fallback)
        directory = fallback
    return directory, write_input(directory, camera, name)


def remove_stale_inputs(directory: Path, camera_id: str, keep: str | None = None) -> None:
    """Remove the camera's scripts left behind by a worker that was killed before it could (a
    camera has one worker at a time, so none of them is in use)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name != keep and name.startswith(camera_id + ".") and name.endswith(INPUT_SUFFIX) \
                and name.count(".") == camera_id.count(".") + 2:
            remove_input(Path(directory) / name)


def remove_old_layout_inputs(uid: int) -> int:
    """Remove the scripts that workers of releases before the per-mirror-dir subdirectories left in
    ``uid``'s :func:`input_dir` itself (a killed worker's, with a camera password in them): nothing
    looks there any more. Returns how many; called by the master at start, as root or as ``uid``.

    Only in a directory that is ``uid``'s and private (a look-alike someone else made is left
    alone), only regular files of ``uid`` with our names, through a descriptor of that directory
    opened without following links: nothing outside it is reached, whatever its owner swaps in.
    A worker of an older master elsewhere on the host may still use one for the seconds before its
    ffmpeg reads it; that ffmpeg then fails once and its worker writes it again.
    """
    try:
        fd = os.open(input_dir(uid=uid), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    removed = 0
    try:
        info = os.fstat(fd)
        if info.st_uid != uid or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            return 0
        for name in os.listdir(fd):
            if _OLD_INPUT.fullmatch(name) and _remove_own_file(fd, name, uid):
                removed += 1
    except OSError:
        pass
    finally:
        os.close(fd)
    return removed


def remove_old_layout(user: str | None, log: Any) -> None:
    """At the master's start: :func:`remove_old_layout_inputs` for our own uid and, with ``--user``,
    for the workers' (an unknown user is the workers' error to report)."""
    uids = {os.geteuid()}
    if user:
        try:
            uids.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            pass
    for uid in sorted(uids):
        removed = remove_old_layout_inputs(uid)
        if removed:
            log.info("removed %d ffmpeg input scripts left in %s by an older release", removed, input_dir(uid=uid))


def _remove_own_file(dir_fd: int, name: str, uid: int) -> bool:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            return False
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        return False
    return True


def remove_input(path: Path | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def environment(base: dict[str, str]) -> dict[str, str]:
    """ffmpeg names segments with strftime in local time; UTC makes names unambiguous."""
    env = dict(base)
    env["TZ"] = "UTC"
    return env


def start(argv: tuple[str, ...], cwd: Path) -> tuple[subprocess.Popen, int]:
    """ffmpeg, asking for SIGTERM when the worker that starts it dies, and the read end of its
    stderr (a plain pipe: no file object or buffer for a stream only a reader thread drains).

    The death signal is asked for by Python in the child before exec (a fork, not a vfork: 2-3
    ms); ``setpriv --pdeathsig`` fails under the unit's capability bounding set."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_fd,
            env=environment(dict(os.environ)), cwd=cwd, close_fds=True,
            preexec_fn=functools.partial(lifeline.exec_child_dies_with, os.getpid()),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return proc, read_fd
