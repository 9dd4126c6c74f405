"""A replica survives a hostile issuer: deep JSON, endless bodies, an endless event-stream
line and gzip bombs are logged errors and retries, never a crash and never unbounded memory.

The issuer here is a small HTTP server of the test's own that answers discovery with good
metadata pointing at itself, then serves poison where the replica reads next."""

from __future__ import annotations

import functools
import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from auth_service.launch import free_port, replica_process

pytestmark = pytest.mark.slow

DEEP = b"[" * 200_000 + b"]" * 200_000  # 400 KB: small, but far deeper than any decoder recursion
ENDLESS_MB = 300  # what the issuer offers of an endless body or line; the replica must not hold it
BOMB_MB = 512  # what a gzip bomb inflates to


@functools.cache
def bomb(layers: int) -> bytes:
    """BOMB_MB of zeros gzipped `layers` times: 500 KB once, 1 KB twice."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    body = b"".join([*(squeeze.compress(block) for _ in range(BOMB_MB)), squeeze.flush()])
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


class Hostile(BaseHTTPRequestHandler):
    poison: ClassVar[dict[str, str]] = {}

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        path = self.path.split("?")[0]
        if path == "/.well-known/oauth-authorization-server":
            self._send(
                json.dumps(
                    {
                        "issuer": base,
                        "jwks_uri": f"{base}/.well-known/jwks.json",
                        "token_endpoint": f"{base}/token",
                        "revocation_list_uri": f"{base}/revocations",
                        "revocation_stream_uri": f"{base}/revocations/stream",
                    }
                ).encode()
            )
            return
        what = self.poison.get(path, "empty")
        if what == "deep":
            self._send(DEEP)
        elif what == "endless_body":
            self._endless(b" ", "application/json")
        elif what == "endless_line":
            self._endless(b"x", "text/event-stream", first=b"event: revocation\ndata: ")
        elif what == "gzip_bomb":
            self._send(bomb(1), encoding="gzip")
        elif what == "stacked_gzip_bomb":
            stream = path.endswith("/stream")
            self._send(bomb(2), "text/event-stream" if stream else "application/json", encoding="gzip, gzip")
        elif path == "/.well-known/jwks.json":
            self._send(b'{"keys": []}')
        else:
            self._send(b'{"feed": "F", "cursor": 0, "snapshot": true, "more": false, "entries": []}')

    def _send(self, body: bytes, content_type: str = "application/json", encoding: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, fill: bytes, content_type: str, first: bytes = b"") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()  # no length: the body ends when we say so
        chunk = fill * 65536
        try:
            self.wfile.write(first)
            for _ in range(ENDLESS_MB * 16):
                self.wfile.write(chunk)
        except OSError:
            pass  # the replica hung up: what it should do


@pytest.fixture
def hostile() -> Iterator[tuple[str, dict[str, str]]]:
    poison: ClassVar[dict[str, str]] = {}
    handler = type("Handler", (Hostile,), {"poison": poison})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", poison
    server.shutdown()
    server.server_close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak, not just now
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param({"/.well-known/jwks.json": "deep"}, id="deep-jwks"),
        pytest.param({"/revocations": "deep"}, id="deep-revocation-page"),
        pytest.param({"/.well-known/jwks.json": "endless_body"}, id="endless-jwks"),
        pytest.param({"/revocations": "endless_body"}, id="endless-revocation-page"),
        pytest.param({"/revocations/stream": "endless_line"}, id="endless-event-stream-line"),
        pytest.param({"/revocations": "gzip_bomb"}, id="gzip-bomb-revocation-page"),
        pytest.param({"/revocations": "stacked_gzip_bomb"}, id="stacked-gzip-bomb-revocation-page"),
        pytest.param({"/.well-known/jwks.json": "stacked_gzip_bomb"}, id="stacked-gzip-bomb-jwks"),
        pytest.param({"/revocations/stream": "stacked_gzip_bomb"}, id="stacked-gzip-bomb-event-stream"),
    ],
)
def test_a_replica_outlives_a_hostile_issuer_with_bounded_memory(
    tmp_path: Path, hostile: tuple[str, dict[str, str]], poison: dict[str, str]
) -> None:
    url, served = hostile
    served.update(poison)
    replica = replica_process(
        "replica", auth_url=url, data=tmp_path, env={"RESOURCE_REVOCATION_POLL_INTERVAL": "1"}
    ).start()
    try:
        time.sleep(4)  # several fetches, pulls and stream reconnects
        assert replica.running(), (tmp_path / "replica.log").read_text()[-2000:]
        assert httpx.get(f"{replica.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{replica.url}/readyz", timeout=5).status_code == 503  # nothing usable: fail closed
        assert replica.pid is not None and rss_mb(replica.pid) < 200
        log = (tmp_path / "replica.log").read_text()
        assert "Traceback" not in log
    finally:
        replica.stop()
