"""The sign-in pages' forms: each carries state signed by the issuer (`typ: signin+jwt`) and
bound to this browser's CSRF cookie, so any issuer instance can take the post and no other site
can make one (login CSRF).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..clock import Clock
from ..config import Settings
from ..errors import InvalidRequest
from ..forms import Form, parse_form
from ..tokens import TokenError, TokenMinter
from .pages import Cookies, Pages, hashed

security = logging.getLogger("auth_service.security")

FORM_LIFETIME = 900  # seconds a sign-in page may stay open before its post is refused
MAX_FORM_BODY = 16 * 1024
MAX_FORM_VALUE = 12 * 1024


class PageError(Exception):
    """A post that cannot go on: shown as an error page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class SignedForms:
    def __init__(self, settings: Settings, pages: Pages, cookies: Cookies, minter: TokenMinter, clock: Clock) -> None:
        self._settings = settings
        self._pages = pages
        self._cookies = cookies
        self._minter = minter
        self._clock = clock

    def page(
        self,
        template: str,
        request: Request,
        state: dict[str, Any],
        *,
        form_targets: tuple[str, ...],
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        """A page whose form carries `state`, signed and bound to this browser's CSRF cookie."""
        csrf, new = self._cookies.csrf_token(request)
        token = self._minter.signed_state({**state, "csrf": hashed(csrf)}, now=int(self._clock()), ttl=FORM_LIFETIME)
        page = self._pages.render(
            template, status=status, headers=headers, form_targets=form_targets, request_token=token, **context
        )
        if new:
            self._cookies.set_csrf(page, csrf)
        return page

    async def read(self, request: Request) -> tuple[Form, dict[str, Any]]:
        """A post from our own page in this browser: its fields and the state it carries, or `PageError`."""
        self.check_origin(request)
        try:
            form = await parse_form(request, max_body=MAX_FORM_BODY, max_value=MAX_FORM_VALUE)
        except InvalidRequest as exc:
            raise PageError(f"The form could not be read: {exc.description}.") from None
        return form, self.read_state(request, form.get("request", ""))

    def check_origin(self, request: Request) -> None:
        """Login CSRF, first line: a browser says where a post comes from; only our own pages may
        post. Our pages' `Referrer-Policy: no-referrer` makes a browser send `Origin: null` with
        their forms, so `null` is judged by `Sec-Fetch-Site` (and, as every post, by the CSRF cookie)."""
        origin = request.headers.get("origin")
        ours = _origin(self._settings.issuer)
        if origin is not None and origin not in (ours, "null"):
            security.warning("signin_cross_origin_post", extra={"origin": origin[:200]})
            raise PageError("This form was sent from another site.", status=403)
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            security.warning("signin_cross_site_post", extra={"site": site[:40]})
            raise PageError("This form was sent from another site.", status=403)

    def read_state(self, request: Request, token: str) -> dict[str, Any]:
        """The signed state of a form, which must be bound to this browser's CSRF cookie."""
        try:
            claims = self._minter.read_state(token, self._clock()) if 0 < len(token) <= MAX_FORM_VALUE else None
        except TokenError:
            claims = None
        if claims is None:
            raise PageError("This sign-in page has expired. Start again from the application.")
        csrf = self._cookies.csrf(request)
        bound = claims.get("csrf")
        if csrf is None or not isinstance(bound, str) or not hmac.compare_digest(hashed(csrf), bound):
            security.warning("signin_csrf_mismatch", extra={})
            raise PageError("This form does not belong to this browser. Start again from the application.", 403)
        return claims


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
