"""Which pages a worker stops sharing with the zygote, and which Python objects live on them.

    python -P scripts/benchlib/cow_map.py RECORDER SECONDS [SEGMENT_SECONDS]   (as root: page frames)

This process plays the zygote: it imports what the zygote imports (``zygote._preload``), collects
and freezes, notes the address and size of every object it can reach (the gc's objects and what
they refer to: strings, code, ints), and forks one real worker (``run_worker``) that records with
the benchmark's ffmpeg stand-in (RECORDER) into a temporary mirror. After SECONDS it compares the
two processes' page frames (``/proc/<pid>/pagemap``): a page of the worker whose frame differs
from ours at the same address was copied, i.e. is the worker's own. Each such page is split
among the objects on it by their bytes (a page with no known object counts as "no object":
allocator headers, free space, C data). One JSON document on stdout: private KiB per mapping and
per kind of object (type, and module for code, functions and classes).
"""

import bisect
import gc
import json
import os
import struct
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from mirror_supervisor.cameras.camera import Camera
from mirror_supervisor.worker import zygote

PAGE = os.sysconf("SC_PAGE_SIZE")


def label(obj) -> str:
    kind = type(obj).__name__
    if kind == "code":
        return f"code {Path(obj.co_filename).stem}"
    if kind == "function":
        return f"function {getattr(obj, '__module__', '?')}"
    if isinstance(obj, type):
        return f"class {obj.__module__}"
    if kind == "dict" and "__name__" in obj and "__builtins__" in obj:
        return f"module dict {obj['__name__']}"
    return kind


def size_of(obj) -> int:
    """The object's own bytes: a dict's, list's or set's table is allocated apart from it."""
    if isinstance(obj, (dict, list, set, frozenset)):
        return type(obj).__basicsize__
    return sys.getsizeof(obj)


def object_map() -> tuple[list[int], list[int], list[str]]:
    """(start addresses, sizes, labels) of every object reachable from the gc's, sorted."""
    seen: dict[int, object] = {}
    stack = list(gc.get_objects())
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        stack.extend(o for o in gc.get_referents(obj) if id(o) not in seen)
    entries = sorted((addr, size_of(obj), label(obj)) for addr, obj in seen.items())
    return [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries]


def mappings(pid: int) -> list[tuple[int, int, str]]:
    found = []
    with open(f"/proc/{pid}/maps") as handle:
        for line in handle:
            fields = line.split(None, 5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = os.path.basename(fields[5].strip()) if len(fields) > 5 else "[anon]"
            found.append((start, end, name or "[anon]"))
    return found


def private_pages(pid: int) -> list[tuple[int, str]]:
    """(address, mapping) of each page present in ``pid`` and mapped by no other process (pagemap
    bit 56, "exclusively mapped"): the pages that make up its USS."""
    found = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for start, end, name in mappings(pid):
            pagemap.seek(start // PAGE * 8)
            try:
                data = pagemap.read((end - start) // PAGE * 8)
            except OSError:
                continue
            for i, (entry,) in enumerate(struct.iter_unpack("<Q", data)):
                if entry >> 63 & 1 and entry >> 56 & 1:
                    found.append((start + i * PAGE, name))
    return found


def uss_kib(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def attribute(pages: list[tuple[int, str]], starts: list[int], sizes: list[int], labels: list[str]) -> dict:
    by_mapping: dict[str, float] = defaultdict(float)
    by_kind: dict[str, float] = defaultdict(float)
    longest = max(sizes, default=0)
    for address, mapping in pages:
        by_mapping[mapping] += PAGE / 1024
        end = address + PAGE
        shares: dict[str, int] = defaultdict(int)
        i = bisect.bisect_left(starts, address - longest)
        while i < len(starts) and starts[i] < end:
            lo, hi = max(starts[i], address), min(starts[i] + sizes[i], end)
            if hi > lo:
                shares[labels[i]] += hi - lo
            i += 1
        covered = sum(shares.values())
        for kind, size in shares.items():
            by_kind[kind] += size / 1024
        by_kind["no object"] += (PAGE - min(covered, PAGE)) / 1024
    top = sorted(by_kind.items(), key=lambda item: -item[1])
    return {"by_mapping_kib": {k: round(v) for k, v in sorted(by_mapping.items(), key=lambda i: -i[1])},
            "by_object_kib": [(k, round(v, 1)) for k, v in top[:40]],
            "private_kib": round(len(pages) * PAGE / 1024)}


def play_zygote(recorder: str, segment: int, work: Path) -> None:
    """The zygote's part: import, note every object, freeze, fork the worker, print its pid and
    stay idle (a parent that goes on allocating would make the worker's pages exclusive)."""
    zygote._preload(os.getppid())  # the rehearsal arms SIGKILL at our parent's death, as the zygote does
    from mirror_supervisor.worker.ffmpeg import build_command
    from mirror_supervisor.worker.worker import WorkerSpec, run_worker

    mirror = work / "mirror"
    mirror.mkdir()
    camera = Camera(id="cam1", mirrored=True, url="rtsp://192.0.2.1:554/x", segment_seconds=segment)
    report_r, report_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # never read: a full pipe drops reports
    spec = WorkerSpec(camera=camera, argv=build_command(recorder, camera, mirror), directory=mirror / "cam1",
                      generation=1, stop_timeout=5.0, master_pid=os.getpid(), status_fd=report_w,
                      log=("INFO", str(work / "worker.log")))
    starts, sizes, labels = object_map()
    with open(work / "objects.json", "w") as handle:
        json.dump([starts, sizes, labels], handle)
    del starts, sizes, labels
    gc.collect()
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        os._exit(run_worker(spec, (report_r,)))
    os.write(1, f"{pid}\n".encode())
    while True:
        time.sleep(3600)


def main() -> None:
    if sys.argv[1] == "zygote":
        play_zygote(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        return
    recorder, seconds = sys.argv[1], float(sys.argv[2])
    segment = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    work = Path(tempfile.mkdtemp(prefix="cow-map-"))
    command = os.environ.get("COW_MAP_ZYGOTE", __file__).split()  # cow_variants.py VARIANT prices one feature
    import subprocess

    player = subprocess.Popen([sys.executable, "-P", *command, "zygote", recorder, str(segment), str(work)],
                              stdout=subprocess.PIPE)
    assert player.stdout is not None
    pid = int(player.stdout.readline())
    began = time.monotonic()
    timeline = []
    while time.monotonic() - began < seconds:
        timeline.append((round(time.monotonic() - began), uss_kib(pid)))
        time.sleep(max(1.0, seconds / 20))
    pages = private_pages(pid)
    timeline.append((round(time.monotonic() - began), uss_kib(pid)))
    starts, sizes, labels = json.loads((work / "objects.json").read_text())
    regions: dict = defaultdict(int)
    for start, end, name in mappings(pid):
        regions[(hex(start), (end - start) >> 10, name)] = sum(PAGE >> 10 for a, _ in pages if start <= a < end)
    result = attribute(pages, starts, sizes, labels)
    result["regions"] = sorted(([*k, v] for k, v in regions.items() if v), key=lambda r: -r[3])[:20]
    result.update({"seconds": seconds, "uss_kib_timeline": timeline})
    os.kill(pid, 15)
    time.sleep(1)
    player.kill()
    player.wait()
    log = work / "worker.log"
    result["worker_log_tail"] = log.read_text().splitlines()[-3:] if log.exists() else []
    print(json.dumps(result))


if __name__ == "__main__":
    main()
