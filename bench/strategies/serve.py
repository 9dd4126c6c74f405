"""Run one replica of a session strategy as its own uvicorn process.

    python -m bench.strategies.serve --strategy redis|sticky|cluster --port P --replica-id ID
        [--peers URL,URL...] [--redis-url URL] [--redis-prefix P]

Same server settings as our token replicas (uvloop, httptools, one worker, no access log),
so the only difference the benchmark sees is how a request finds its session.
`--peers` lists the other replicas: cluster replicates to them and pulls a copy from them
on start; the other strategies ignore it. A sticky replica's `--replica-id` is also its
route (the `route` cookie it sets at login): lower-case letters, digits and single hyphens.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

import uvicorn

from .common import SessionStore, create_app

__all__ = ["STRATEGIES", "build_store", "main"]

_HOST = "127.0.0.1"


def _redis(args: argparse.Namespace) -> SessionStore:
    from .redis_store import RedisStore  # only this strategy needs the redis client

    return RedisStore(args.redis_url, prefix=args.redis_prefix)


def _sticky(args: argparse.Namespace) -> SessionStore:
    from .sticky import StickyStore

    return StickyStore()


def _cluster(args: argparse.Namespace) -> SessionStore:
    from .cluster import ClusterStore

    return ClusterStore(args.peers, port=args.port)


_BUILDERS: dict[str, Callable[[argparse.Namespace], SessionStore]] = {
    "redis": _redis,
    "sticky": _sticky,
    "cluster": _cluster,
}
STRATEGIES = tuple(_BUILDERS)


def _peers(value: str) -> list[str]:
    return [p.strip().rstrip("/") for p in value.split(",") if p.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.strategies.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--strategy", choices=STRATEGIES, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replica-id", required=True)
    parser.add_argument("--peers", type=_peers, default=[], help="other replicas' base URLs, comma-separated")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--redis-prefix", default="bench-sessions")
    return parser


def build_store(args: argparse.Namespace) -> SessionStore:
    return _BUILDERS[args.strategy](args)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(build_store(args), args.replica_id)
    # Keep-alive outlives the balancer's (nginx upstream keepalive_timeout 60s), so the balancer,
    # not the replica, closes idle pooled connections and never sends on one being closed.
    uvicorn.run(
        app,
        host=_HOST,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
