"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `GET`/`POST /end-session`.

An app sends the browser here with the ID token it holds (`id_token_hint`), where to return
(`post_logout_redirect_uri`, which must be registered for that app, compared exactly) and its
`state`. The issuer's login session ends, and with it every app's session it started: their
`sid` entries reach every replica through the revocation feed. Without a valid hint, the
person is asked first (a CSRF-protected form), so no other site can sign them out.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from fastapi import Request
from fastapi.responses import Response

from ..clock import Clock
from ..errors import InvalidRequest
from ..forms import Form, parse_form
from ..revocation import Revoker
from ..storage import Client, ClientStore, SignInStore, UserStore
from ..tokens import TokenError, TokenMinter
from .flow import SignIn
from .forms import MAX_FORM_BODY, MAX_FORM_VALUE, PageError
from .pages import redirect
from .request import MAX_STATE, redirect_location

security = logging.getLogger("auth_service.security")


class EndSession:
    def __init__(
        self,
        *,
        clients: ClientStore,
        users: UserStore,
        sign_in: SignInStore,
        minter: TokenMinter,
        revoker: Revoker,
        clock: Clock,
        pages: SignIn,
    ) -> None:
        self._clients = clients
        self._users = users
        self._store = sign_in
        self._minter = minter
        self._revoker = revoker
        self._clock = clock
        self._signin = pages

    async def start(self, request: Request) -> Response:
        try:
            params = await self._params(request)
            client, return_to, state = await self._return(params)
        except PageError as exc:
            return self._signin.pages.error(exc.message, status=exc.status)
        hint = await self._hint(params.get("id_token_hint"))
        if hint is not None and client is not None and client.client_id not in _audiences(hint):
            return self._signin.pages.error("The id_token_hint was issued to another application.")
        session = await self._signin.session(request)
        if hint is not None and (session is None or session.sub == hint["sub"]):
            ended = await self._end(session.id if session is not None else None, hint)
            security.info("end_session", extra={"sub": hint["sub"], "sessions": ended, "confirmed": False})
            return self._done(client, return_to, state)
        if session is None:  # nothing to end here: say so, and go back
            return self._done(client, return_to, state)
        user = await self._users.user_by_id(session.sub)
        logout = {"client_id": client.client_id if client else None, "return_to": return_to, "state": state}
        return self._signin.forms.page(
            "end_session.html",
            request,
            {"logout": logout},
            form_targets=(return_to,) if return_to else (),
            title="Sign out",
            username=user.username if user else None,
        )

    async def confirm(self, request: Request) -> Response:
        """The person's answer on the confirmation page."""
        try:
            form, claims = await self._signin.forms.read(request)
            logout = claims.get("logout")
            if not isinstance(logout, dict):
                raise PageError("This sign-out page is not valid.")
        except PageError as exc:
            return self._signin.pages.error(exc.message, status=exc.status)
        client_id, return_to, state = logout.get("client_id"), logout.get("return_to"), logout.get("state")
        client = await self._clients.client(client_id) if isinstance(client_id, str) else None
        if client is None or return_to not in client.post_logout_redirect_uris:
            return_to = None
        if form.get("decision") != "sign_out":
            if return_to:
                return redirect(redirect_location(return_to, {"state": state}))
            return self._signin.pages.render("signed_out.html", title="Still signed in", client_name=None)
        session = await self._signin.session(request)
        if session is not None:
            await self._end(session.id, None)
            security.info("end_session", extra={"sub": session.sub, "sessions": [session.id], "confirmed": True})
        return self._done(client, return_to, state)

    async def _params(self, request: Request) -> Form:
        if request.method == "POST":
            return await _form(request)
        pairs = request.query_params.multi_items()
        params = dict(pairs)
        if len(params) != len(pairs):
            raise PageError("A parameter was sent more than once.")
        if any(len(value) > MAX_FORM_VALUE for value in params.values()):
            raise PageError("A parameter is too long.")
        return params

    async def _return(self, params: Form) -> tuple[Client | None, str | None, str | None]:
        """The app (named, or the hint's audience) and where it may be sent back; PageError for
        a return address not registered for it (never redirected to)."""
        client_id = params.get("client_id") or _unverified_audience(params.get("id_token_hint"))
        client = await self._clients.client(client_id) if client_id and len(client_id) <= 128 else None
        return_to = params.get("post_logout_redirect_uri")
        if return_to is not None:
            if client is None:
                raise PageError("Name the application (client_id or id_token_hint) to be sent back to it.")
            if return_to not in client.post_logout_redirect_uris:
                security.info("end_session_unregistered_return", extra={"client_id": client.client_id})
                raise PageError("The post_logout_redirect_uri is not registered for this application.")
        state = params.get("state")
        if state is not None and len(state) > MAX_STATE:
            raise PageError("The state is too long.")
        return client, return_to, state

    async def _hint(self, token: str | None) -> dict[str, Any] | None:
        """The claims of a valid, unexpired ID token of ours; an expired or foreign one is no hint
        (the person is asked instead)."""
        if not token or len(token) > MAX_FORM_VALUE:
            return None
        registered = frozenset(client.client_id for client in await self._clients.clients())
        try:
            return self._minter.read_id_token(token, self._clock(), registered)
        except TokenError:
            return None

    async def _end(self, cookie_session: str | None, hint: dict[str, Any] | None) -> list[str]:
        ended = []
        hinted = await self._store.family_login_session(hint["sid"]) if hint is not None else None
        for session_id in dict.fromkeys(s for s in (cookie_session, hinted) if s is not None):
            await self._revoker.login_session(session_id)
            ended.append(session_id)
        if hint is not None and hinted is None:  # a session not from a browser sign-in: its own sid
            await self._revoker.sid(hint["sid"])
        return ended

    def _done(self, client: Client | None, return_to: str | None, state: str | None) -> Response:
        if return_to is not None:
            response: Response = redirect(redirect_location(return_to, {"state": state}))
        else:
            name = client.name or client.client_id if client else None
            response = self._signin.pages.render("signed_out.html", title="Signed out", client_name=name)
        self._signin.cookies.clear_session(response)
        return response


async def _form(request: Request) -> Form:
    try:
        return await parse_form(request, max_body=MAX_FORM_BODY, max_value=MAX_FORM_VALUE)
    except InvalidRequest as exc:
        raise PageError(f"The form could not be read: {exc.description}.") from None


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]


def _unverified_audience(token: str | None) -> str | None:
    """The `aud` an ID token names, unverified: only to find which app's return URIs to check."""
    if not token or len(token) > MAX_FORM_VALUE:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    audiences = _audiences(claims)
    return audiences[0] if audiences else None
