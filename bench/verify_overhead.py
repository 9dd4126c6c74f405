"""What verifying a bearer token costs a replica, measured with wrk in one run.

    python bench/verify_overhead.py [--seconds 5] [--rounds 2]

Contenders, alternated A B C A B C (the machine is shared and noisy; ratios come from
one run): the replica's unauthenticated `/healthz` (same app, same middleware stack,
no token), `/me` with the verified-token cache (one token repeated: warm), and `/me` on
a replica whose cache is off (every request a full RS256 verification: cold). The replicas
run on core 0, wrk on core 1. Needs wrk (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_service.launch import Service, auth_process, cli, replica_process  # noqa: E402

_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, token: str | None, seconds: int) -> dict[str, float]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url]
    if token:
        cmd[-1:-1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {p: float(v) * _UNIT[u] for p, v, u in _LATENCY.findall(out)}
    return {"rps": rps, "p50_ms": lat.get("50", 0.0), "p99_ms": lat.get("99", 0.0),
            "non2xx": float(bad.group(1)) if bad else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        auth = auth_process(data=data).start()
        services: list[Service] = [auth]
        try:
            cli(["users", "add", "bench", "--password-stdin"], data=data, stdin="bench password\n")
            token = httpx.post(f"{auth.url}/token", data={"grant_type": "password", "username": "bench",
                                                          "password": "bench password"}).json()["access_token"]
            warm = replica_process("warm", auth_url=auth.url, data=data)
            cold = replica_process("cold", auth_url=auth.url, data=data, env={"RESOURCE_TOKEN_CACHE_SIZE": "0"})
            for rep in (warm, cold):
                rep._cmd[:0] = ["taskset", "-c", "0"]  # noqa: SLF001 - pin the server to core 0
                services.append(rep.start())
            contenders = {"no auth (/healthz)": (f"{warm.url}/healthz", None),
                          "/me warm (cached)": (f"{warm.url}/me", token),
                          "/me cold (full RS256 verify)": (f"{cold.url}/me", token)}
            for url, tok in contenders.values():  # warm-up
                wrk(url, tok, 1)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
            for _ in range(args.rounds):
                for name, (url, tok) in contenders.items():
                    runs[name].append(wrk(url, tok, args.seconds))
        finally:
            for service in services:
                service.stop()
    base = statistics.median(r["rps"] for r in runs["no auth (/healthz)"])
    print(f"{'contender':<30}{'req/s median':>14}{'min-max':>18}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, results in runs.items():
        rps = [r["rps"] for r in results]
        print(f"{name:<30}{statistics.median(rps):>14.0f}{f'{min(rps):.0f}-{max(rps):.0f}':>18}"
              f"{statistics.median(rps) / base:>8.2f}{statistics.median(r['p50_ms'] for r in results):>9.2f}"
              f"{statistics.median(r['p99_ms'] for r in results):>9.2f}{sum(r['non2xx'] for r in results):>9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
