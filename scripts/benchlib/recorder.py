"""The benchmark's ffmpeg stand-in: records nothing but looks like a recording ffmpeg.

The stand-in and scale suites run hundreds of cameras without hundreds of RTSP sources: the
supervisors are given this program as their ffmpeg. It takes the exact argv
``mirror_supervisor.worker.ffmpeg`` builds, ignores everything but ``-segment_time N`` and the last
argument (the strftime output pattern), and then does what a supervisor can observe of ffmpeg:

- opens ``strftime(pattern, UTC now)`` and keeps the descriptor open, so ``/proc/<pid>/fd``
  shows the file being written;
- appends a few KiB about once a second (mean ``STAND_IN_BYTES``, default 2048), so the
  worker's progress check (newest name and its size) sees data reach the disk;
- starts a new file every N seconds, as the segment muxer does;
- exits with status 255, as ffmpeg does, on SIGTERM or SIGINT.

It is a small C program, compiled with gcc (statically when the toolchain allows) into a
directory of the run (never committed), because 500 Python or dash recorders would take the
CPU and memory the master needs. Measured with ``--measure`` (10 instances, 10 s, 2 cores)
before the alternatives were dropped: C 0 ms start, ~0 % CPU, 899 KiB RSS / 119 KiB USS each;
dash 0.01 % CPU (a ``sleep`` forked a second), 1.7 MiB RSS; ``python3 -S`` 10 ms start,
9.1 MiB RSS / 3.4 MiB USS each. The binary is named ``ffmpeg-stand-in``: the benchmark's
observer (``procs.is_ffmpeg``) and the supervisor's own process-table checks recognise a
recorder by "ffmpeg" in its program name (or the ``%Y%m%d_%H%M%S.mp4`` pattern argument).

    python -m benchlib.recorder --build DIR      # prints the path of the build
    python -m benchlib.recorder --measure        # per-instance CPU and memory
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "ffmpeg-stand-in"

C_SOURCE = r"""
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_stop(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    long seg = 60, mean = 2048;
    const char *env = getenv("STAND_IN_BYTES");
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-segment_time") == 0) seg = atol(argv[i + 1]);
    if (env) mean = atol(env);
    if (seg < 1) seg = 1;
    if (mean < 2) mean = 2;
    if (argc < 2) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;            /* no SA_RESTART: nanosleep returns at once */
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    static char buf[1 << 16];
    memset(buf, 'x', sizeof buf);
    if (mean * 3 / 2 > (long)sizeof buf) mean = sizeof buf * 2 / 3;
    unsigned seed = (unsigned)getpid();
    int fd = -1;
    time_t opened = 0;
    while (!stop) {
        time_t now = time(0);
        if (fd < 0 || now - opened >= seg) {
            char name[4096];
            struct tm tm;
            gmtime_r(&now, &tm);
            if (strftime(name, sizeof name, argv[argc - 1], &tm) == 0) return 1;
            if (fd >= 0) close(fd);
            fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0) return 1;
            opened = now;
        }
        seed = seed * 1103515245u + 12345u;
        long n = mean / 2 + (long)((seed >> 8) % (unsigned long)mean);
        if (write(fd, buf, (size_t)n) < 0 && errno != EINTR) return 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec = 0;
        ts.tv_nsec = 1000000000L - ts.tv_nsec + 1000000L;  /* just past the next second */
        if (ts.tv_nsec >= 1000000000L) ts.tv_nsec -= 1000000000L;
        nanosleep(&ts, 0);
    }
    if (fd >= 0) close(fd);
    return 255;
}
"""

def build(directory: Path) -> Path:
    """Compile ``ffmpeg-stand-in`` into ``directory`` (once: an existing build is reused); return
    its path. Linked statically when the toolchain allows: no dynamic loader and no shared libc
    mapped, so each instance costs a few pages of private memory and nothing at start-up."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / NAME
    if target.exists():
        return target
    if shutil.which("gcc") is None:
        raise SystemExit("gcc not found: the stand-in recorder is compiled at run time (scripts/bench installs gcc)")
    source = directory / f"{NAME}.c"
    source.write_text(C_SOURCE)
    base = ["gcc", "-O2", "-s", "-o", str(target), str(source)]
    if subprocess.run(base[:1] + ["-static"] + base[1:], capture_output=True).returncode != 0:
        subprocess.run(base, check=True, capture_output=True)
    return target


def fake_argv(binary: Path, camera_dir: Path, segment_seconds: int = 60) -> list[str]:
    """The shape of the argv the supervisor builds, enough for the stand-in and for ``ps``."""
    return [str(binary), "-nostdin", "-i", "rtsp://127.0.0.1:1/cam", "-f", "segment",
            "-segment_time", str(segment_seconds), "-strftime", "1",
            str(camera_dir / "%Y%m%d_%H%M%S.mp4")]


def _proc_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` plus its reaped children."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _proc_memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, private = USS) in KiB, from smaps_rollup."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                values[parts[0].rstrip(":")] = int(parts[1])
    private = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return values.get("Rss", 0), private


def measure(instances: int, seconds: float) -> dict[str, float]:
    """Start ``instances`` copies for ``seconds``; per-instance start cost, CPU %, RSS, USS."""
    with tempfile.TemporaryDirectory(prefix="stand-in-measure-") as tmp:
        binary = build(Path(tmp) / "bin")
        procs = []
        began = time.monotonic()
        for i in range(instances):
            camera_dir = Path(tmp) / f"cam{i}"
            camera_dir.mkdir()
            procs.append(subprocess.Popen(fake_argv(binary, camera_dir), env={**os.environ, "TZ": "UTC"}))
        try:
            time.sleep(2.0)  # past start-up: Python imports, the loader
            start_cpu = sum(_proc_cpu_seconds(p.pid) for p in procs)
            steady_from = time.monotonic()
            time.sleep(seconds)
            steady_cpu = sum(_proc_cpu_seconds(p.pid) for p in procs) - start_cpu
            steady = time.monotonic() - steady_from
            memory = [_proc_memory_kib(p.pid) for p in procs]
            written = sum(f.stat().st_size for f in Path(tmp).glob("cam*/*.mp4"))
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(timeout=10) for proc in procs]
        return {
            "instances": instances,
            "start_cpu_ms": round(1000 * start_cpu / instances, 2),
            "steady_cpu_pct_of_core": round(100 * steady_cpu / steady / instances, 4),
            "rss_kib": round(sum(m[0] for m in memory) / instances),
            "uss_kib": round(sum(m[1] for m in memory) / instances),
            "bytes_per_second": round(written / (time.monotonic() - began) / instances),
            "exit_255": sum(code == 255 for code in codes),
        }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchlib.recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", metavar="DIR", type=Path, help="build into DIR and print the path")
    parser.add_argument("--measure", action="store_true", help="per-instance cost of the stand-in")
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.build:
        print(build(args.build))
        return 0
    if args.measure:
        r = measure(args.instances, args.seconds)
        print(f"{'start ms':>9} {'CPU %/inst':>11} {'RSS KiB':>8} {'USS KiB':>8} {'B/s':>6} {'exit 255':>8}")
        print(f"{r['start_cpu_ms']:9.2f} {r['steady_cpu_pct_of_core']:11.4f} {r['rss_kib']:8d} "
              f"{r['uss_kib']:8d} {r['bytes_per_second']:6d} {r['exit_255']:5d}/{r['instances']}")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
