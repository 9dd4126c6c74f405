"""Serve the example single-page app on its own origin (standard library only).

    python examples/spa/serve.py --issuer http://127.0.0.1:8000 --api http://127.0.0.1:8001

Serves index.html (at / and at /callback, the redirect URI), app.js, oidc-client-ts's browser
build from node_modules (run `npm ci` here first), and /config.json with the URLs the page needs.
Only those paths: nothing else in this directory is reachable.
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBRARY = HERE / "node_modules" / "oidc-client-ts" / "dist" / "browser" / "oidc-client-ts.min.js"
_FILES = {
    "/": (HERE / "index.html", "text/html; charset=utf-8"),
    "/callback": (HERE / "index.html", "text/html; charset=utf-8"),
    "/app.js": (HERE / "app.js", "text/javascript; charset=utf-8"),
    "/oidc-client-ts.min.js": (LIBRARY, "text/javascript; charset=utf-8"),
}


def handler(config: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    """A request handler that serves the app's files and `config`."""
    # The page may load code only from here and talk only to here, the issuer and the API; the
    # code in the redirect's query must not leak in a Referer.
    policy = (
        f"default-src 'self'; connect-src 'self' {config['issuer']} {config['api']}; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/config.json":
                self._send(json.dumps(config).encode(), "application/json")
            elif path in _FILES:
                file, content_type = _FILES[path]
                if not file.exists():
                    self.send_error(HTTPStatus.NOT_FOUND, f"{file.name} is missing: run `npm ci` in {HERE}")
                    return
                self._send(file.read_bytes(), content_type)
            elif path == "/favicon.ico":  # asked by every browser; none here
                self.send_response(HTTPStatus.NO_CONTENT)
                self.end_headers()
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", policy)
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True, help="the issuer's public URL (AUTH_ISSUER)")
    parser.add_argument("--api", required=True, help="the replica (or load balancer) whose /me the page calls")
    parser.add_argument("--client-id", default="spa")
    parser.add_argument("--scope", default="openid profile reports:read")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5173)
    args = parser.parse_args()
    config = {"issuer": args.issuer, "api": args.api, "client_id": args.client_id, "scope": args.scope}
    server = ThreadingHTTPServer((args.host, args.port), handler(config))
    print(f"serving the example SPA at http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
