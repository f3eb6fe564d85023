"""The adapter for supervisord: one ``[program:cam_<id>]`` per mirrored camera, generated from the
database with the same ``read_cameras`` + ``build_command`` as ours, so both run the same argv."""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
import xmlrpc.client
from typing import Any

from mirror_supervisor.cameras import database
from mirror_supervisor.master import reconcile
from mirror_supervisor.worker.ffmpeg import build_command

from .common import VENV_BIN, log, mono
from .systems import System

MAIN_CONF = """[unix_http_server]
file={sock}
chmod=0700

[supervisord]
logfile={work}/supervisord-main.log
logfile_maxbytes=5MB
logfile_backups=0
pidfile={work}/supervisord.pid
childlogdir={work}/childlogs
nodaemon=true
minfds=4096
identifier=bench

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

[include]
files = {programs}/*.conf
"""

PROGRAM_CONF = """[program:cam_{cid}]
command={command}
environment=TZ="UTC"
autostart=true
autorestart=true
startsecs=0
stopsignal=TERM
stopwaitsecs={stopwaitsecs}
stdout_logfile=NONE
stderr_logfile={work}/childlogs/cam_{cid}.err
stderr_logfile_maxbytes=64KB
stderr_logfile_backups=0
"""


class Supervisord(System):
    name = "supervisord"
    has_rpc = True
    has_gentle_reload = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.use_rpc = False  # apply over XML-RPC instead of supervisorctl (supervisord's best case)
        self.conf = self.work / "supervisord.conf"
        self.programs = self.work / "programs"
        self.sock = self.work / "supervisor.sock"
        (self.work / "childlogs").mkdir(exist_ok=True)
        self.programs.mkdir(exist_ok=True)
        self.conf.write_text(MAIN_CONF.format(sock=self.sock, work=self.work, programs=self.programs))

    def argv(self) -> list[str]:
        return [str(VENV_BIN / "supervisord"), "-n", "-c", str(self.conf)]

    def generate(self) -> int:
        """Regenerate one program file per mirrored camera from the database (what an operator's
        generator would do); returns how many files changed."""
        good, _bad = reconcile.wanted(database.read_cameras(self.nvr.path), True)
        wanted_files = {}
        for cid, camera in good.items():
            argv = build_command(self.ffmpeg, camera, self.mirror_dir)
            (self.mirror_dir / cid).mkdir(parents=True, exist_ok=True)  # ffmpeg does not create it
            command = " ".join(shlex.quote(a) for a in argv).replace("%", "%%")
            wanted_files[f"cam_{cid}.conf"] = PROGRAM_CONF.format(
                cid=cid, command=command, stopwaitsecs=int(self.stop_timeout), work=self.work)
        changed = 0
        for existing in self.programs.glob("*.conf"):
            if existing.name not in wanted_files:
                existing.unlink()
                changed += 1
        for name, text in wanted_files.items():
            path = self.programs / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed += 1
        return changed

    def start(self) -> None:
        self.generate()
        super().start()

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=120)

    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport("", "", f"unix://{self.sock}"))

    def apply(self) -> dict[str, float]:
        t0 = mono()
        self.generate()
        t1 = mono()
        if self.use_rpc:
            # What `supervisorctl update` does, over the XML-RPC socket.
            server = self.rpc().supervisor
            added, changed, removed = server.reloadConfig()[0]
            t2 = mono()
            for name in removed + changed:
                server.stopProcessGroup(name)
                server.removeProcessGroup(name)
            for name in changed + added:
                server.addProcessGroup(name)
        else:
            reread = self.ctl("reread")
            t2 = mono()
            update = self.ctl("update")
            if reread.returncode != 0 and "No config updates" not in reread.stdout:
                log(f"supervisorctl reread: {reread.returncode} {reread.stdout.strip()} {reread.stderr.strip()}")
            if update.returncode != 0:
                log(f"supervisorctl update: {update.returncode} {update.stdout.strip()} {update.stderr.strip()}")
        t3 = mono()
        return {"generate_s": t1 - t0, "reread_s": t2 - t1, "update_s": t3 - t2, "total_s": t3 - t0}

    def supervisor_pids(self) -> dict[str, list[int]]:
        return {"master": [self.root], "workers": []}

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = mono() + timeout
        while mono() < deadline:
            if self.sock.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(self.sock))
                    return
                except OSError:
                    pass
            time.sleep(0.01)
        raise RuntimeError("supervisord did not open its socket")
