"""`auth-service demo --replicas N`: the horizontal-scaling story, live, on loopback.

One auth service and N replica processes. A user logs in once; every replica accepts the
token with no session store and no call to the issuer. Then the hard parts of tokens:
a key rotation under traffic, refresh rotation with reuse detection, and a revocation
timed until every replica refuses it. Tokens are never printed, only their ids.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .balancer import Nginx, find_nginx
from .launch import Service, auth_process, cli, free_port, replica_process

_CLIENT = "demo-terminal"  # the demo's own registered client, as any real caller has
_PASSWORD = "correct horse battery staple"
_USER_ROUTES = re.compile(r'route="/(token|me)"')
_SETTINGS = {
    # Short cache and publish lead so the rotation completes in seconds, not minutes.
    "AUTH_JWKS_MAX_AGE": "1",
    "AUTH_KEY_ROTATION_INTERVAL": "3600",
    "AUTH_REVOCATION_HEARTBEAT": "1",
    "AUTH_ACCESS_TOKEN_TTL": "600",
}
_REPLICA_SETTINGS = {"RESOURCE_REVOCATION_POLL_INTERVAL": "2"}


def run_demo(replicas: int) -> int:
    if not 1 <= replicas <= 32:
        print("auth-service demo: --replicas must be between 1 and 32")
        return 2
    with tempfile.TemporaryDirectory(prefix="auth-demo-") as tmp:
        return _Demo(Path(tmp), replicas).run()


def _kid(token: str) -> str:
    header = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


class _Demo:
    def __init__(self, tmp: Path, replicas: int) -> None:
        self.tmp = tmp
        self.auth = auth_process(data=tmp, env=_SETTINGS)
        self.replicas = [
            replica_process(f"replica-{i + 1}", auth_url=self.auth.url, data=tmp, env=_REPLICA_SETTINGS)
            for i in range(replicas)
        ]
        self.http = httpx.Client(timeout=10.0)
        self.summary: list[str] = []
        self.balancer: Nginx | None = None

    def run(self) -> int:
        started: list[Service] = []
        try:
            self._step(f"Starting 1 auth service and {len(self.replicas)} replicas on 127.0.0.1")
            started.append(self.auth.start())
            print(f"  auth service   {self.auth.url}  (SQLite + keystore in a temp dir)")
            for rep in self.replicas:
                started.append(rep.spawn())
            for rep in self.replicas:
                rep.wait_healthy(30.0)
                print(f"  {rep.name:<14} {rep.url}")
            self._start_balancer()
            return self._story()
        except Exception as exc:
            print(f"\nDEMO FAILED: {exc}\nlogs are in {self.tmp} until this process exits")
            return 1
        finally:
            self.http.close()
            if self.balancer is not None:
                self.balancer.stop()
            for service in reversed(started):
                service.stop()

    def _story(self) -> int:
        ok = True
        self._step(f"Registering client {_CLIENT!r} (public: password and refresh grants, reports:read, for API 'api')")
        self._cli(
            "clients",
            "add",
            _CLIENT,
            "--public",
            "--grant=password",
            "--grant=refresh_token",
            "--scope=reports:read",
            "--audience=api",
            "--name=The demo's terminal",
            "--first-party",
        )
        self._step("Creating user 'demo' (Argon2id) and logging in once")
        self._cli("users", "add", "demo", "--password-stdin", "--scope", "reports:read", stdin=_PASSWORD + "\n")
        first = self._login()
        print(f"  access token: kid {_kid(first['access_token'])[:12]}..., expires in {first['expires_in']} s")

        self._step("Calling GET /me through every replica with that one token")
        for rep in self.replicas:
            response = self._me(rep, first["access_token"])
            who = response.json().get("claims", {}).get("preferred_username") if response.is_success else None
            print(
                f"  {rep.name:<14} -> {response.status_code}, answered by {response.headers.get('x-replica-id')}"
                f", user {who}"
            )
            ok &= response.status_code == 200
        spread = self._spread(first["access_token"], 10 * len(self.replicas))
        codes = [code for code, _ in spread]
        answered = {name: sum(1 for _, who in spread if who == name) for name in sorted({w or "" for _, w in spread})}
        via = "through nginx" if self.balancer else "round robin by the demo itself"
        print(f"  {len(spread)} more requests {via}: {codes.count(200)} x 200, answered by {answered}")
        ok &= codes.count(200) == len(spread) and len(answered) == len(self.replicas)
        self.summary.append(
            f"any replica accepts a token: {codes.count(200)}/{len(spread)} requests OK, "
            f"spread over {len(answered)} replicas {via}, no session store"
        )

        ok &= self._rotation(first)
        ok &= self._refresh_reuse()
        ok &= self._revocation(first)
        self._metrics()
        self._step("Summary")
        for line in self.summary:
            print(f"  - {line}")
        print("  RESULT: " + ("all checks passed" if ok else "SOME CHECKS FAILED"))
        return 0 if ok else 1

    def _rotation(self, old: dict[str, Any]) -> bool:
        self._step("Rotating the signing key while requests keep flowing")
        failures: list[int | str] = []
        sent: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=10.0) as http:
                i = 0
                while not stop.is_set():
                    rep = self.replicas[i % len(self.replicas)]
                    code: int | str
                    try:
                        code = http.get(
                            f"{rep.url}/me", headers={"Authorization": f"Bearer {old['access_token']}"}
                        ).status_code
                    except httpx.HTTPError as exc:  # counted and named, not a crash of the demo
                        code = f"{type(exc).__name__} at {rep.name}"
                    if code != 200:
                        failures.append(code)
                    sent.append(1)
                    i += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        rotated = json.loads(cli(["keys", "rotate"], data=self.tmp, env=_SETTINGS).stdout)
        lead = rotated["activates_at"] - time.time()
        print(
            f"  new key {rotated['kid'][:12]}... published now, signs in {max(lead, 0):.1f} s "
            "(after every replica's JWKS cache has refreshed)"
        )
        time.sleep(max(lead, 0) + 1.2)
        new = self._login()
        stop.set()
        worker.join()
        print(f"  old token kid {_kid(old['access_token'])[:12]}..., new token kid {_kid(new['access_token'])[:12]}...")
        good = _kid(new["access_token"]) == rotated["kid"] and not failures
        for rep in self.replicas:
            codes = (self._me(rep, old["access_token"]).status_code, self._me(rep, new["access_token"]).status_code)
            print(f"  {rep.name:<14} old token -> {codes[0]}, new token -> {codes[1]}")
            good &= codes == (200, 200)
        causes = f" ({', '.join(sorted(set(map(str, failures))))})" if failures else ""
        print(f"  requests during the rotation: {len(sent)}, failed: {len(failures)}{causes}")
        self.summary.append(f"key rotation: old and new tokens accepted everywhere, {len(failures)} failed requests")
        return good

    def _refresh_reuse(self) -> bool:
        self._step("Refresh rotation and reuse detection")
        login = self._login()
        renewed = self.http.post(
            f"{self.auth.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"], "client_id": _CLIENT},
        )
        print(f"  refresh with the new login's refresh token -> {renewed.status_code} (a new refresh token)")
        replay = self.http.post(
            f"{self.auth.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"], "client_id": _CLIENT},
        )
        print(
            f"  replaying the retired refresh token -> {replay.status_code} {replay.json().get('error')}: "
            "the whole session is revoked"
        )
        time.sleep(0.3)
        after = self._me(self.replicas[0], renewed.json()["access_token"]) if renewed.is_success else None
        print(
            f"  the session's newest access token at {self.replicas[0].name} -> {after.status_code if after else 'n/a'}"
        )
        good = (
            renewed.status_code == 200 and replay.status_code == 400 and after is not None and after.status_code == 401
        )
        self.summary.append("refresh reuse: replay refused and the family revoked, at the replicas too")
        return good

    def _revocation(self, victim: dict[str, Any]) -> bool:
        self._step(f"Revoking the first token and timing until all {len(self.replicas)} replicas refuse it")
        refused_at: dict[str, float] = {}
        revoked = threading.Event()

        def watch(rep: Service) -> None:
            with httpx.Client(timeout=5.0) as http:
                revoked.wait()
                deadline = time.perf_counter() + 10
                while time.perf_counter() < deadline:
                    code = http.get(
                        f"{rep.url}/me", headers={"Authorization": f"Bearer {victim['access_token']}"}
                    ).status_code
                    if code == 401:
                        refused_at[rep.name] = time.perf_counter()
                        return
                    time.sleep(0.001)

        watchers = [threading.Thread(target=watch, args=(rep,)) for rep in self.replicas]
        for w in watchers:
            w.start()
        response = self.http.post(
            f"{self.auth.url}/revoke", data={"token": victim["access_token"], "client_id": _CLIENT}
        )
        start = time.perf_counter()
        revoked.set()
        for w in watchers:
            w.join()
        delays = {name: (at - start) * 1000 for name, at in refused_at.items()}
        for rep in self.replicas:
            shown = f"{delays[rep.name]:.1f} ms" if rep.name in delays else "NOT refused within 10 s"
            print(f"  {rep.name:<14} refuses the token after {shown}")
        good = response.status_code == 200 and len(delays) == len(self.replicas)
        if delays:
            self.summary.append(
                f"revocation reached all {len(delays)} replicas: median "
                f"{statistics.median(delays.values()):.1f} ms, worst {max(delays.values()):.1f} ms"
            )
        return good

    def _metrics(self) -> None:
        """What the issuer and one replica counted during the story (GET /metrics, Prometheus)."""
        self._step("What the services counted (GET /metrics, non-zero counters)")
        for name, url in [("auth service", self.auth.url), (self.replicas[0].name, self.replicas[0].url)]:
            response = self.http.get(f"{url}/metrics")
            if response.status_code != 200:
                print(f"  {name}: /metrics answered {response.status_code}")
                continue
            for line in response.text.splitlines():
                name_part, _, value = line.rpartition(" ")
                # Of the latency histograms, only how many requests /token and /me answered.
                timed = "_duration_seconds" in line
                wanted = not timed or ("_count{" in line and _USER_ROUTES.search(line) is not None)
                if (
                    line.startswith(("auth_", "resource_"))
                    and value not in ("0.0", "NaN")
                    and "_created" not in line
                    and wanted
                ):
                    print(f"  {name_part} {value}")

    def _start_balancer(self) -> None:
        binary = find_nginx()
        if binary is None:
            print(
                "  load balancer  none: nginx is not installed (apt-get install nginx), so the demo "
                "spreads requests across the replicas itself"
            )
            return
        upstreams = [f"127.0.0.1:{rep.port}" for rep in self.replicas]
        self.balancer = Nginx(binary, upstreams, free_port(), self.tmp / "nginx").start()
        print(f"  load balancer  {self.balancer.url}  (nginx, round robin over {len(upstreams)} replicas)")

    def _spread(self, token: str, count: int) -> list[tuple[int, str | None]]:
        """(status, answering replica) of `count` requests through the balancer, if any."""
        headers = {"Authorization": f"Bearer {token}"}
        urls = [self.balancer.url] if self.balancer else [rep.url for rep in self.replicas]
        out = []
        for i in range(count):
            response = self.http.get(f"{urls[i % len(urls)]}/me", headers=headers)
            out.append((response.status_code, response.headers.get("x-replica-id")))
        return out

    def _cli(self, *args: str, stdin: str | None = None) -> None:
        done = cli(list(args), data=self.tmp, env=_SETTINGS, stdin=stdin)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())

    def _login(self) -> dict[str, Any]:
        response = self.http.post(
            f"{self.auth.url}/token",
            data={"grant_type": "password", "username": "demo", "password": _PASSWORD, "client_id": _CLIENT},
        )
        if response.status_code != 200:
            raise RuntimeError(f"login failed: {response.status_code} {response.text[:200]}")
        body: dict[str, Any] = response.json()
        return body

    def _me(self, rep: Service, token: str) -> httpx.Response:
        return self.http.get(f"{rep.url}/me", headers={"Authorization": f"Bearer {token}"})

    @staticmethod
    def _step(title: str) -> None:
        print(f"\n== {title}")
