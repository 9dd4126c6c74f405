"""The `resource-service` command: run one replica of the demo API.

    resource-service serve --auth-url http://127.0.0.1:8000 --port 8001 --replica-id r1

Flags override `RESOURCE_*` environment variables; everything else is read from
the environment (see `ResourceSettings`). `serve` needs uvicorn, which the verifier alone does
not: without the `replica` extra it says what to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from .app import create_app
from .config import ResourceSettings
from .logs import configure_logging

if TYPE_CHECKING:
    import uvicorn

__all__ = ["main", "server_config"]

# What `serve` imports beyond the verifier: the `replica` extra, uvicorn[standard].
_SERVE_MODULES = ("uvicorn", "uvloop", "httptools")
_INSTALL = "pip install 'stateless-auth[replica]'"

# Seconds uvicorn gives open requests to finish after SIGTERM before closing them.
_GRACEFUL_SHUTDOWN = 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resource-service",
        description="A resource server that verifies the issuer's access tokens locally.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run one replica of the demo API")
    serve.add_argument("--host", help="interface to bind (RESOURCE_HOST)")
    serve.add_argument("--port", type=int, help="port to bind (RESOURCE_PORT)")
    serve.add_argument("--replica-id", help="name in X-Replica-Id (RESOURCE_REPLICA_ID)")
    serve.add_argument("--auth-url", help="base URL of the issuer (RESOURCE_AUTH_URL)")
    return parser


def settings_from_args(args: argparse.Namespace) -> ResourceSettings:
    """Environment settings, with the flags that were given taking precedence."""
    overrides = {
        name: value for name in ("host", "port", "replica_id", "auth_url") if (value := getattr(args, name)) is not None
    }
    return ResourceSettings(**overrides)


def server_config(settings: ResourceSettings) -> uvicorn.Config:
    """One worker on uvloop and httptools (guarded: see `serving`), no uvicorn access log: ours
    (RESOURCE_ACCESS_LOG) leaves the query string out, and stays off by default on the hot path."""
    from .serving import ServerConfig, limits_of

    return ServerConfig(
        create_app(settings),
        limits=limits_of(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        lifespan="on",
        access_log=False,
        log_config=None,  # uvicorn's loggers go through our handler (configure_logging)
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    if missing := [name for name in _SERVE_MODULES if importlib.util.find_spec(name) is None]:
        print(f"resource-service: serve needs uvicorn (no module {missing[0]}); run: {_INSTALL}", file=sys.stderr)
        return 1
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"resource-service: invalid settings\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    import uvicorn  # here, not at the top: `--help` and the verifier's users need no uvicorn

    from .serving import raise_open_file_limit

    # uvicorn handles SIGTERM and SIGINT: stop accepting, finish open requests,
    # run the lifespan shutdown (which stops the verifier's background tasks).
    raise_open_file_limit()
    uvicorn.Server(server_config(settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
