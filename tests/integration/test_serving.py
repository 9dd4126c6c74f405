"""Both `serve` commands against slow, oversized and vanishing clients, over raw sockets."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from auth_service.launch import Service
from tests.conftest import Stack, eventually, json_log_lines

HEADER_TIMEOUT = "1"  # seconds: short, so the tests wait little
BODY_TIMEOUT = "1"
MAX_HEADER_BYTES = 16_384
HOST = b"Host: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An issuer and a replica, both with one-second header and body deadlines."""
    stack = Stack(tmp_path_factory.mktemp("serving"))
    try:
        stack.start_auth(AUTH_HTTP_HEADER_TIMEOUT=HEADER_TIMEOUT, AUTH_HTTP_BODY_TIMEOUT=BODY_TIMEOUT)
        stack.start_replicas(1, RESOURCE_HTTP_HEADER_TIMEOUT=HEADER_TIMEOUT, RESOURCE_HTTP_BODY_TIMEOUT=BODY_TIMEOUT)
        yield stack
    finally:
        stack.stop()


def _service(stack: Stack, which: str) -> Service:
    assert stack.auth is not None
    return stack.auth if which == "issuer" else stack.replicas[0]


def _connect(service: Service) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    sock.settimeout(0.25)
    return sock


def _answer_or_close(sock: socket.socket) -> bytes | None:
    """What the server sent before closing (b"" when it closed without a word), or None while
    the connection is still open and silent."""
    received = b""
    try:
        while chunk := sock.recv(65_536):
            received += chunk
    except (TimeoutError, BlockingIOError):
        return None if not received else received
    except (ConnectionResetError, BrokenPipeError):
        pass
    return received


def _trickle_until_closed(sock: socket.socket, pieces: Callable[[int], bytes], rounds: int) -> bytes | None:
    """Send one piece per round (each round waits up to 0.25 s for an answer); the server's last
    words once it closes, or None if it was still open after `rounds`."""
    for i in range(rounds):
        try:
            sock.sendall(pieces(i))
        except (BrokenPipeError, ConnectionResetError):
            return b""
        answer = _answer_or_close(sock)
        if answer is not None:
            return answer
    return None


@pytest.mark.parametrize("which", ["issuer", "replica"])
def test_a_slowloris_connection_is_closed_by_the_header_deadline(served: Stack, which: str) -> None:
    service = _service(served, which)
    with _connect(service) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST)
        # One header byte per round, never the blank line: 40 rounds is 10 s and more, far past the 1 s deadline.
        last = _trickle_until_closed(sock, lambda i: b"X-a: b\r\n"[i % 8 : i % 8 + 1], rounds=40)
    assert last is not None, "the connection was still open"
    assert last == b"" or last.startswith(b"HTTP/1.1 408 ")
    assert httpx.get(f"{service.url}/healthz").status_code == 200


@pytest.mark.parametrize("which", ["issuer", "replica"])
@pytest.mark.parametrize("complete", [True, False], ids=["in-one-piece", "never-ending"])
def test_headers_over_16_kib_get_431_while_healthz_answers(served: Stack, which: str, complete: bool) -> None:
    service = _service(served, which)
    big = b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 65_536 + (b"\r\n\r\n" if complete else b"")
    with _connect(service) as sock:
        sock.sendall(big[: MAX_HEADER_BYTES // 2])
        last = _trickle_until_closed(
            sock, lambda i: big[(i + 1) * MAX_HEADER_BYTES // 2 :][: MAX_HEADER_BYTES // 2], rounds=12
        )
        assert httpx.get(f"{service.url}/healthz").status_code == 200, "others are answered meanwhile"
    assert last is not None, "the connection was still open"
    assert last == b"" or last.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("which", ["issuer", "replica"])
def test_headers_under_the_cap_are_served(served: Stack, which: str) -> None:
    service = _service(served, which)
    cookie = "c=" + "a" * (MAX_HEADER_BYTES - 1_024)
    assert httpx.get(f"{service.url}/healthz", headers={"Cookie": cookie}).status_code == 200


def test_a_stalled_body_is_closed_by_the_body_deadline(served: Stack) -> None:
    assert served.auth is not None
    with _connect(served.auth) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\n" + HOST + b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\ngrant_type"
        )
        last = _trickle_until_closed(sock, lambda i: b"", rounds=40)  # then nothing, for 10 s and more
    assert last is not None, "the connection was still open"
    assert httpx.get(f"{served.auth.url}/healthz").status_code == 200


def _token_requests(url: str) -> dict[str, float]:
    """Counts of POST /token in the latency histogram, by status."""
    text = httpx.get(f"{url}/metrics").text
    return {
        m["status"]: float(m["count"])
        for m in re.finditer(
            r'auth_http_request_duration_seconds_count\{[^}]*method="POST"[^}]*route="/token"[^}]*'
            r'status="(?P<status>\d+)"[^}]*\} (?P<count>\S+)',
            text,
        )
    }


def test_a_client_hanging_up_mid_body_is_no_error_and_no_500(served: Stack) -> None:
    assert served.auth is not None
    before = _token_requests(served.auth.url)
    with _connect(served.auth) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\n" + HOST + b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\ngrant_type=pass"
        )
    counted = eventually(lambda: _token_requests(served.auth.url) != before)  # type: ignore[union-attr]
    assert counted, "the request was never counted"
    after = _token_requests(served.auth.url)
    assert after.get("500", 0) == before.get("500", 0)
    assert after.get("499", 0) == before.get("499", 0) + 1
    assert [line for line in json_log_lines(served.auth.log_path.read_text()) if line["level"] == "error"] == []


def test_a_nul_in_a_basic_client_id_is_invalid_client_on_postgresql(stack: Stack, postgres_url: str) -> None:
    stack.start_auth(AUTH_DATABASE_URL=postgres_url, AUTH_KEYS_PASSPHRASE="a sixteen-plus passphrase")
    assert stack.auth is not None
    for credentials in (b"svc\x00x:secret", b"svc%00x:secret", b"svc:sec\x01ret"):
        answer = stack.http.post(
            f"{stack.auth.url}/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
        )
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "invalid_client"
    assert "Traceback" not in stack.auth.log_path.read_text()
