#!/usr/bin/python3
"""A synthetic IP camera: a real RTSP server on 127.0.0.1 for the tests and the demo.

Why this exists: the supervisor's whole job is driving ffmpeg against IP
cameras, and mocks cannot reproduce RTSP handshakes, auth failures, dropped
connections or stalled TCP streams.  This script serves a live H.264 + AAC
test stream on 127.0.0.1 with GstRtspServer, on the mount paths our vendor
URL builders produce (Hikvision /Streaming/Channels/10x, Dahua
/cam/realmonitor?channel=1&subtype=0, generic /live).

It needs GStreamer introspection (python3-gi), so it runs under Debian's
/usr/bin/python3 as a subprocess (see tests/support/rtsp.py and scripts/demo), never inside
the test interpreter.  Prints "READY <port>" once listening; exits 0 on
SIGTERM/SIGINT or when its parent process dies.
"""
import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MOUNTS = ("/Streaming/Channels/101", "/Streaming/Channels/102", "/cam/realmonitor", "/live")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--bitrate", type=int, default=800, help="video kbit/s (<200 also drops AAC to 16 kbit/s)")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--unshared", action="store_true",
                    help="a pipeline of its own for every client (no client can hold up another's stream)")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=str(args.port))
    audio_kbps = 16 if args.bitrate < 200 else 64
    # No rtph264pay config-interval=-1: x264enc already repeats SPS/PPS before
    # each IDR and doubling them makes ffmpeg warn "Non-monotonous DTS" every GOP.
    launch = (
        f"( videotestsrc is-live=true pattern=smpte horizontal-speed=4 "
        f"! video/x-raw,width=640,height=360,framerate={args.fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
        f"bitrate={args.bitrate} ! video/x-h264,profile=baseline "
        f"! rtph264pay name=pay0 pt=96 "
        f"audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample "
        f"! audio/x-raw,rate=16000,channels=1 ! voaacenc bitrate={audio_kbps * 1000} "
        f"! rtpmp4gpay name=pay1 pt=97 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(not args.unshared)  # by default one pipeline, many concurrent clients

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken.new()  # writable_structure() edits a copy in PyGObject
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        # Clients percent-encode userinfo in the URL; ffmpeg decodes it and sends
        # base64("user:password") -- so any character in the password is fine.
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))

    # Mount lookup uses only the URL's path (RTSPMountPoints' default make_path
    # drops the query), so "/cam/realmonitor?channel=1&subtype=0" hits
    # "/cam/realmonitor" -- verified with ffmpeg 5.1 / GStreamer 1.22.
    mounts = GstRtspServer.RTSPMountPoints()
    for path in MOUNTS:
        mounts.add_factory(path, factory)
    server.set_mount_points(mounts)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    parent = os.getppid()
    GLib.timeout_add(500, lambda: os.getppid() == parent or loop.quit())  # orphaned -> exit

    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
