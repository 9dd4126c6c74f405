"""The sign-in pages as HTML the server renders (Jinja2, autoescaped), with the headers every
page we render carries, and the two cookies the pages use.

No page loads anything from another host, runs a script, or may be framed: the
Content-Security-Policy allows our own stylesheet and images, forms posting to us (and the
redirect to the client that follows a form), and nothing else.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..config import Settings

_HERE = Path(__file__).parent
STYLESHEET = _HERE / "static" / "signin.css"
MAX_LOGO_BYTES = 256 * 1024
LOGO_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}

_environment = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# The scopes a person is asked about, in words; any other scope is shown by name.
SCOPE_WORDS = {
    "openid": "Know who you are (your account id)",
    "profile": "See your username and name",
    "email": "See your email address",
}


def page_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    """Headers of every page we render. `form_targets`: where a form's redirect may go."""
    form_action = " ".join(("'self'", *(_csp_source(uri) for uri in form_targets)))
    policy = (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",  # for browsers older than frame-ancestors
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def _csp_source(uri: str) -> str:
    """A CSP source matching a redirect URI: the URL itself, or its scheme for an app's
    private-use scheme (`com.example.app:`). Quotes and semicolons cannot occur: registered
    redirect URIs have no spaces, and CSP-significant characters are percent-encoded."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}{parts.path}".replace(";", "%3B").replace(",", "%2C")
    return f"{parts.scheme}:"


class Pages:
    """Renders the sign-in pages for one issuer (its name, logo and URLs)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.has_logo = settings.product_logo is not None
        self.logo = _read_logo(settings.product_logo)  # (bytes, media type), read once at start-up

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        form_targets: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        html = _environment.get_template(template).render(
            product=self._settings.product_name,
            logo=self.has_logo,
            issuer=self._settings.issuer,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={**page_headers(form_targets), **(headers or {})})

    def error(self, message: str, *, status: int = 400) -> HTMLResponse:
        return self.render("error.html", status=status, title="Sign-in failed", message=message)


def _read_logo(path: Path | None) -> tuple[bytes, str] | None:
    """AUTH_PRODUCT_LOGO if it is an image file of a known type within MAX_LOGO_BYTES, else None."""
    media_type = LOGO_TYPES.get(path.suffix.lower()) if path is not None else None
    if path is None or media_type is None or not path.is_file() or path.stat().st_size > MAX_LOGO_BYTES:
        return None
    return path.read_bytes(), media_type


def redirect(location: str, *, status: int = 303) -> RedirectResponse:
    """A redirect that no cache keeps and that leaks no Referer."""
    return RedirectResponse(
        location, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def hashed(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class Cookies:
    """The issuer's cookies: its login session, and the token that binds a sign-in form to the
    browser that opened it (login CSRF). Their names carry a digest of AUTH_ISSUER, so two
    issuers on one host never read (or overwrite) each other's; on https they are `__Host-`
    cookies (Secure, Path=/, no Domain)."""

    def __init__(self, settings: Settings) -> None:
        self.secure = settings.issuer.startswith("https://")
        suffix = hashlib.sha256(settings.issuer.encode("utf-8")).hexdigest()[:10]
        prefix = "__Host-" if self.secure else ""
        self.session_name = f"{prefix}auth_session_{suffix}"
        self.csrf_name = f"{prefix}auth_csrf_{suffix}"
        self._session_lifetime = settings.session_max_lifetime

    def session(self, request: Request) -> str | None:
        return _bounded(request.cookies.get(self.session_name))

    def csrf(self, request: Request) -> str | None:
        return _bounded(request.cookies.get(self.csrf_name))

    def set_session(self, response: Response, value: str) -> None:
        response.set_cookie(
            self.session_name,
            value,
            max_age=self._session_lifetime,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",  # sent on the top-level navigation from another app: single sign-on
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session_name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def csrf_token(self, request: Request) -> tuple[str, bool]:
        """This browser's CSRF token, and whether it is new (then `set_csrf` it on the page)."""
        value = self.csrf(request)
        return (value, False) if value is not None else (secrets.token_urlsafe(32), True)

    def set_csrf(self, response: Response, value: str) -> None:
        response.set_cookie(self.csrf_name, value, path="/", secure=self.secure, httponly=True, samesite="strict")


def _bounded(value: str | None) -> str | None:
    """A cookie value we could have set (43 base64url characters), else None."""
    if value is None or len(value) != 43 or not value.replace("-", "").replace("_", "").isalnum():
        return None
    return value
