"""How every bench app is served: the one uvicorn configuration all contenders share.

Each app module runs as `python -m <module> serve --host H --port P`, the command line
`auth_service.launch.Service` builds, so the harness starts our replicas, the no-auth
baseline and the peers the same way. The server settings match `resource-service serve`
(uvloop, httptools, one worker, no access log): a difference in req/s is then the app's.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.types import ASGIApp

__all__ = ["run", "serve_parser"]


def serve_parser(description: str) -> argparse.ArgumentParser:
    """The `serve --host --port` command line; an app adds its own flags to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser


def run(app: ASGIApp, args: argparse.Namespace) -> None:
    uvicorn.run(
        app, host=args.host, port=args.port, loop="uvloop", http="httptools", workers=1, lifespan="on", access_log=False
    )
