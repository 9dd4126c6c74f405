"""Verify the issuer's access tokens in any ASGI app, with no call to the issuer per request.

from resource_service import BearerAuthMiddleware, ResourceSettings, Verifier

verifier = Verifier(ResourceSettings(auth_url="https://auth.example"))
app.add_middleware(BearerAuthMiddleware, verifier=verifier)
# and `await verifier.start()` / `await verifier.stop()` in the app's lifespan
"""

from importlib.metadata import PackageNotFoundError, version

from .app import create_app
from .asgi import BearerAuthMiddleware, ReplicaIdMiddleware, current_claims
from .client import ClientCredentials, TokenRequestError, UserLogin
from .config import ResourceSettings
from .deps import Authenticated, install_error_handlers
from .errors import (
    AuthError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingCredentials,
    Unavailable,
)
from .jose import TokenError
from .logs import RequestIdMiddleware
from .metrics import metrics_endpoint
from .verifier import Verifier

try:
    __version__ = version("stateless-auth")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AuthError",
    "Authenticated",
    "BearerAuthMiddleware",
    "ClientCredentials",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "MissingCredentials",
    "ReplicaIdMiddleware",
    "RequestIdMiddleware",
    "ResourceSettings",
    "TokenError",
    "TokenRequestError",
    "Unavailable",
    "UserLogin",
    "Verifier",
    "create_app",
    "current_claims",
    "install_error_handlers",
    "metrics_endpoint",
]
