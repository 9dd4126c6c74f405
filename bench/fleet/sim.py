"""One simulator process: `count` simulated replicas, each a real `resource_service.Verifier`.

A simulated replica is a replica without uvicorn and routes: its own `Verifier` with its own
httpx client (and Redis client), so its own connections, `JwksCache`, `RevocationSync` and
`RevocationList`, running the same background tasks a replica runs. Many share one event loop
(uvloop when installed, as under uvicorn[standard]).

The driver (`bench.fleet.Simulators`) speaks JSON lines over stdin/stdout, one answer per
command, in order:

    {"op": "build", "count": N, "auth_url": ..., "mode": "sse" | "redis" | "pull", ...}
    {"op": "start", "feed": F, "head": H}       start every verifier at once; answer when all
                                                hold feed F at cursor >= H (the cold start)
    {"op": "watch", "jti": J}                   note when each replica first refuses jti J
    {"op": "arrivals", "jti": J, "timeout": T}  wait for all (or T s); monotonic arrival times
    {"op": "verify", "token": T}                every replica verifies T; outcomes, unknown kids
    {"op": "state", "feed": F, "head": H, "jtis": PATH, "size": N}
                                                how many replicas hold exactly the issuer's list
    {"op": "stats"}                             RSS, CPU, push connections
    {"op": "teardown"}                          stop every verifier
    {"op": "exit"}

Arrival times come from wrapping each list's `apply_push` and `apply_pull`: after the real
method returns, the watched jtis are looked up with `is_revoked`, as a request would be.
`time.monotonic()` is CLOCK_MONOTONIC, one clock for every process on the machine, so the
driver compares it with when its `POST /revoke` returned.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import resource
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from resource_service.config import ResourceSettings
from resource_service.errors import AuthError
from resource_service.jose import header_kid
from resource_service.revocations import RevocationList
from resource_service.verifier import Verifier

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class Fleet:
    def __init__(self) -> None:
        # httpx builds an SSL context per client (about 0.9 MB with the CA bundle loaded), once
        # per real replica process: the simulated replicas of one process share one, so the
        # memory per simulated replica is the replica's own. Each still has its own transport,
        # so its own connections.
        self._tls = ssl.create_default_context()
        self.verifiers: list[Verifier] = []
        self.watched: dict[str, dict[int, float]] = {}  # jti -> replica index -> arrival (monotonic)
        self._complete: dict[str, asyncio.Event] = {}
        self.unknown_kids = 0  # tokens whose kid a replica did not hold when it verified them

    def build(self, command: dict[str, Any]) -> dict[str, Any]:
        mode = command["mode"]
        for i in range(int(command["count"])):
            settings = ResourceSettings(
                auth_url=command["auth_url"],
                replica_id=f"{command['name']}-{i}",
                revocation_push=mode != "pull",
                revocation_poll_interval=float(command.get("poll", 10.0)),
                redis_url=command.get("redis_url") if mode == "redis" else None,
                redis_prefix=command.get("redis_prefix", "auth:"),
            )
            verifier = Verifier(settings, transport=httpx.AsyncHTTPTransport(verify=self._tls))
            self._instrument(i, verifier.revocations)
            self.verifiers.append(verifier)
        return stats()

    def _instrument(self, index: int, revocations: RevocationList) -> None:
        push, pull = revocations.apply_push, revocations.apply_pull

        def apply_push(entry: Any, now: float) -> bool:
            result = push(entry, now)
            self._arrived(index, revocations)
            return result

        def apply_pull(body: Any, now: float, **kwargs: Any) -> bool:
            result = pull(body, now, **kwargs)
            self._arrived(index, revocations)
            return result

        revocations.apply_push = apply_push  # type: ignore[method-assign]  # instrumentation only
        revocations.apply_pull = apply_pull  # type: ignore[method-assign]

    def _arrived(self, index: int, revocations: RevocationList) -> None:
        if not self.watched:
            return
        now = time.monotonic()
        for jti, arrived in self.watched.items():
            if index not in arrived and revocations.is_revoked({"jti": jti}):
                arrived[index] = now
                if len(arrived) == len(self.verifiers):
                    self._complete[jti].set()

    async def start(self, feed: str | None, head: int) -> dict[str, Any]:
        go = time.monotonic()
        cpu = _cpu()
        await asyncio.gather(*(v.start() for v in self.verifiers))
        started = time.monotonic()
        while not all(self._synced(v, feed, head) for v in self.verifiers):
            if time.monotonic() - go > 300:
                return {"error": f"{sum(self._synced(v, feed, head) for v in self.verifiers)} in sync after 300 s"}
            await asyncio.sleep(0.005)
        done = time.monotonic()
        return {"go": go, "started": started, "synced": done, "cpu": _cpu() - cpu, **stats()}

    @staticmethod
    def _synced(verifier: Verifier, feed: str | None, head: int) -> bool:
        revocations = verifier.revocations
        jwks = verifier.jwks
        return (
            jwks is not None
            and bool(jwks.keys)
            and revocations.staleness(time.time()) is not None
            and (feed is None or revocations.feed == feed)
            and revocations.cursor >= head
        )

    def watch(self, jti: str) -> None:
        self.watched[jti] = {}
        self._complete[jti] = asyncio.Event()
        for index, verifier in enumerate(self.verifiers):  # already held (a pull raced the command)
            if verifier.revocations.is_revoked({"jti": jti}):
                self.watched[jti][index] = time.monotonic()
        if len(self.watched[jti]) == len(self.verifiers):
            self._complete[jti].set()

    async def arrivals(self, jti: str, timeout: float) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                await self._complete[jti].wait()
        except TimeoutError:
            pass
        arrived = self.watched.pop(jti)
        del self._complete[jti]
        return {"times": [arrived.get(i) for i in range(len(self.verifiers))]}

    async def verify(self, token: str) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        kid = header_kid(token)

        async def one(verifier: Verifier) -> None:
            jwks = verifier.jwks
            if jwks is not None and kid not in jwks.keys:
                self.unknown_kids += 1
            try:
                await verifier.verify(token)
                outcome = "accepted"
            except AuthError as exc:
                outcome = getattr(exc, "reason", None) or type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        await asyncio.gather(*(one(v) for v in self.verifiers))
        return {"outcomes": outcomes, "unknown_kids": self.unknown_kids}

    def state(self, feed: str, head: int, jtis: list[str], size: int) -> dict[str, Any]:
        at_head = holding = sized = 0
        for verifier in self.verifiers:
            revocations = verifier.revocations
            at_head += revocations.feed == feed and revocations.cursor == head
            holding += all(revocations.is_revoked({"jti": jti}) for jti in jtis)
            sized += len(revocations) == size
        return {"replicas": len(self.verifiers), "at_head": at_head, "holding_all": holding, "sized": sized}

    async def teardown(self) -> dict[str, Any]:
        await asyncio.gather(*(v.stop() for v in self.verifiers))
        self.verifiers.clear()
        self.watched.clear()
        self._complete.clear()
        self.unknown_kids = 0
        gc.collect()
        return stats()

    def connected(self) -> int:
        return sum(1 for v in self.verifiers if v.sync is not None and v.sync.push_connected)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stats() -> dict[str, Any]:
    return {"rss": _rss(), "cpu_total": _cpu(), "pid": os.getpid()}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    fleet = Fleet()
    handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
        "build": fleet.build,
        "start": lambda c: fleet.start(c.get("feed"), int(c["head"])),
        "watch": lambda c: fleet.watch(c["jti"]),
        "arrivals": lambda c: fleet.arrivals(c["jti"], float(c["timeout"])),
        "verify": lambda c: fleet.verify(c["token"]),
        "state": lambda c: fleet.state(c["feed"], int(c["head"]), Path(c["jtis"]).read_text().split(), int(c["size"])),
        "stats": lambda c: {**stats(), "connected": fleet.connected(), "replicas": len(fleet.verifiers)},
        "teardown": lambda c: fleet.teardown(),
    }
    print(json.dumps({"ready": True, **stats()}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "exit":
            break
        try:
            answer = handlers[command["op"]](command)
            if asyncio.iscoroutine(answer):
                answer = await answer
        except Exception as exc:  # reported to the driver, which fails the suite with it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer if isinstance(answer, dict) else {"ok": True}), flush=True)
    await fleet.teardown()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
