"""A real load balancer in front of the replicas: nginx, when it is installed.

The config is generated (round robin, keep-alive to the upstreams, retry on a dead
replica) and nginx runs as a child process in the foreground with every file in a work
directory: nothing touches /etc/nginx or needs a system service. The same template is
what `docs/nginx.conf.example` shows for a real deployment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


def config(upstreams: Sequence[str], port: int, workdir: Path) -> str:
    """nginx.conf balancing `host:port` upstreams round robin on 127.0.0.1:`port`."""
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=5s;" for u in upstreams)
    user = "user root;\n" if os.geteuid() == 0 else ""  # a root master's worker must read the work dir
    return f"""{user}worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    upstream replicas {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, binary: str, upstreams: Sequence[str], port: int, workdir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._conf = workdir / "nginx.conf"
        self._conf.write_text(config(upstreams, port, workdir))
        self._cmd = [binary, "-p", str(workdir), "-c", str(self._conf), "-e", str(workdir / "error.log")]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Nginx:
        self._proc = subprocess.Popen(
            self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self._workdir / 'error.log').read_text()[-500:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nginx did not answer in time")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
