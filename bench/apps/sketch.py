"""The controls: the least an auth layer can cost, around the baseline's route.

Default: a dict of verified tokens.
Not a verifier to use: a hit checks expiry only (no revocation list, no check that the key is
still published, no metrics), and the first sight of a token is verified by our `Verifier`.
What it measures is the floor under any bearer check in front of the baseline's route: the
server parsing a ~900-byte Authorization header, one ASGI layer and a dict lookup. The gap
between it and the no-auth route is not ours to close; the gap between it and our
contenders is.

`--signature-only`: every request's token has its RS256 signature checked with the issuer's
key (`Key.verify`, which is cryptography's, on OpenSSL) and nothing else: no JSON, no claim,
no cache. A cold verifier can be no faster; what our cold row costs beyond this is ours.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from bench.apps import run, serve_parser
from bench.apps.noauth import create_app as create_baseline
from resource_service import ResourceSettings, Verifier
from resource_service.errors import AuthError, InvalidToken, render

_BEARER = b"Bearer "


def _authorization(scope: Scope) -> bytes:
    return next((value for name, value in scope["headers"] if name == b"authorization"), b"")


def create_app(*, signature_only: bool = False) -> Any:
    """The baseline app itself (`bench.apps.noauth`, its route and body unchanged) behind one
    of the two controls."""
    verifier = Verifier(ResourceSettings())
    verified: dict[bytes, dict[str, Any]] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await verifier.start()
        yield
        await verifier.stop()

    inner = create_baseline(lifespan=lifespan)

    async def signed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            signing_input, _, signature = _authorization(scope).removeprefix(_BEARER).rpartition(b".")
            keys = verifier.jwks.keys if verifier.jwks is not None else {}
            key = next(iter(keys.values()), None)
            sig = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
            if key is None or not key.verify(signing_input, sig):
                await render(InvalidToken("token signature is invalid", reason="bad_signature"))(scope, receive, send)
                return
        await inner(scope, receive, send)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            header = _authorization(scope)
            claims = verified.get(header)
            if claims is None or time.time() >= claims["exp"]:
                try:
                    verified[header] = await verifier.verify(header.removeprefix(_BEARER).decode())
                except AuthError as exc:
                    await render(exc)(scope, receive, send)
                    return
        await inner(scope, receive, send)

    return signed if signature_only else app


if __name__ == "__main__":
    parser = serve_parser(__doc__ or "")
    parser.add_argument("--signature-only", action="store_true", help="check each token's signature, nothing else")
    args = parser.parse_args()
    run(create_app(signature_only=args.signature_only), args)
