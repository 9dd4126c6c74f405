"""`GET /authorize` and the forms behind it: sign in, consent, and the code that ends it.

A person's way through, each step one request:

1. `/authorize` checks the request (`request.py`). With a live login session in this browser
   (its cookie) and nothing more to ask, the code goes straight back to the client.
2. Otherwise the login page: its form carries the checked request, signed by the issuer and
   bound to this browser's CSRF cookie, so any instance can take the post.
3. `POST /authorize/login` checks the password exactly as the password grant does (limits
   first, Argon2id off the event loop, one text for every failure), starts the login session
   and sets its cookie.
4. A client not registered first-party gets the consent page once per new scope.
5. The code: random, stored by hash, single use, 60 seconds, bound to the client, the redirect
   URI, the PKCE challenge, the nonce, the scope and the audience.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..clients import client_address
from ..clock import Clock
from ..config import Settings
from ..errors import InvalidGrant, RateLimited
from ..forms import Form
from ..grants.authorization_code import code_hash
from ..login import PasswordCheck
from ..oidc import signin_scope
from ..passwords import MAX_PASSWORD_LENGTH
from ..revocation import Revoker
from ..storage import AuthorizationCode, Client, ClientStore, LoginSession, SignInStore, UserStore
from ..tokens import TokenMinter, new_id
from .forms import PageError, SignedForms
from .pages import SCOPE_WORDS, Cookies, Pages, hashed, redirect
from .request import MAX_QUERY, AuthorizationRequest, Refused, Untrusted, parse_request, redirect_location

security = logging.getLogger("auth_service.security")

CODE_LIFETIME = 60  # seconds (RFC 6749 section 4.1.2 recommends at most 10 minutes)
MAX_USERNAME = 256


class SignIn:
    def __init__(
        self,
        *,
        settings: Settings,
        clients: ClientStore,
        users: UserStore,
        sign_in: SignInStore,
        passwords: PasswordCheck,
        minter: TokenMinter,
        revoker: Revoker,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._users = users
        self._store = sign_in
        self._passwords = passwords
        self._minter = minter
        self._revoker = revoker
        self._clock = clock
        self.pages = Pages(settings)
        self.cookies = Cookies(settings)
        self.forms = SignedForms(settings, self.pages, self.cookies, minter, clock)

    # -- GET /authorize ----------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        if len(request.url.query) > MAX_QUERY:
            return self.pages.error("The sign-in request is too long.")
        try:
            client, pending = await parse_request(
                request.query_params.multi_items(), self._clients, self._settings.audience
            )
        except Untrusted as exc:
            security.info("authorize_untrusted", extra={"reason": exc.description})
            return self.pages.error(f"This sign-in request cannot be accepted: {exc.description}.")
        except Refused as exc:
            return self._refuse(exc)
        session = await self.session(request)
        now = int(self._clock())
        too_old = pending.max_age is not None and session is not None and now - session.auth_time > pending.max_age
        if session is None or "login" in pending.prompt or "select_account" in pending.prompt or too_old:
            if "none" in pending.prompt:
                return self._refuse(self._refused(pending, "login_required", "the user is not signed in"))
            return self._login_page(request, client, pending, username=pending.login_hint)
        return await self._proceed(request, client, pending, session)

    # -- POST /authorize/login ---------------------------------------------------------

    async def login(self, request: Request) -> Response:
        try:
            form, pending, client = await self._posted(request)
        except PageError as exc:
            return self.pages.error(exc.message, status=exc.status)
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD_LENGTH:
            return self._login_page(
                request, client, pending, username=username[:MAX_USERNAME], error="Enter your username and password."
            )
        try:
            checked = await self._passwords.check(
                username, password, client_id=client.client_id, address=client_address(request)
            )
        except RateLimited as exc:
            return self._login_page(
                request,
                client,
                pending,
                username=username,
                status=429,
                error=f"Too many sign-in attempts. Try again in {exc.retry_after} seconds.",
                headers=exc.headers,
            )
        except InvalidGrant:
            return self._login_page(
                request, client, pending, username=username, status=400, error="Incorrect username or password."
            )
        now = int(self._clock())
        earlier = await self.session(request)
        session = LoginSession(
            id=new_id(), sub=checked.user.id, auth_time=now, expires_at=now + self._settings.session_max_lifetime
        )
        cookie = secrets.token_urlsafe(32)
        same_person = earlier is not None and earlier.sub == session.sub
        replaces = earlier.id if same_person and earlier is not None else None
        if not await self._store.start_login_session(session, hashed(cookie), checked.credential, replaces=replaces):
            security.warning("login_superseded", extra={"sub": session.sub, "client_id": client.client_id})
            return self._login_page(
                request, client, pending, username=username, error="Your account changed while signing in. Try again."
            )
        if earlier is not None and not same_person:  # another person signs in on this browser
            await self._revoker.login_session(earlier.id)
        security.info("login_success", extra={"sub": session.sub, "session": session.id, "client_id": client.client_id})
        response = await self._proceed(request, client, pending, session)
        self.cookies.set_session(response, cookie)
        return response

    # -- POST /authorize/consent -------------------------------------------------------

    async def consent(self, request: Request) -> Response:
        try:
            form, pending, client = await self._posted(request)
        except PageError as exc:
            return self.pages.error(exc.message, status=exc.status)
        session = await self.session(request)
        if session is None:  # signed out (or the session ended) while the page was open
            return self._login_page(request, client, pending)
        decision = form.get("decision")
        if decision == "allow":
            user = await self._users.user_by_id(session.sub)
            if user is None:
                return self._login_page(request, client, pending)
            scope = signin_scope(client, user.scope, pending.scope)
            await self._store.grant_consent(session.sub, client.client_id, scope, int(self._clock()))
            security.info("consent_granted", extra={"sub": session.sub, "client_id": client.client_id})
            return await self._issue(client, pending, session, scope)
        if decision == "deny":
            security.info("consent_denied", extra={"sub": session.sub, "client_id": client.client_id})
            return self._refuse(self._refused(pending, "access_denied", "the user denied the request"))
        return self.pages.error("Choose Allow or Deny.")

    # -- the steps ---------------------------------------------------------------------

    async def _proceed(
        self, request: Request, client: Client, pending: AuthorizationRequest, session: LoginSession
    ) -> Response:
        """Signed in: ask consent if this client needs it, else send the code."""
        user = await self._users.user_by_id(session.sub)
        if user is None:
            return self._login_page(request, client, pending)
        scope = signin_scope(client, user.scope, pending.scope)
        if not client.first_party:
            allowed = set((await self._store.consent(session.sub, client.client_id) or "").split())
            if "consent" in pending.prompt or not set(scope.split()) <= allowed:
                if "none" in pending.prompt:
                    return self._refuse(self._refused(pending, "consent_required", "the user has not consented"))
                return self._consent_page(request, client, pending, user.username, scope)
        return await self._issue(client, pending, session, scope)

    async def _issue(
        self, client: Client, pending: AuthorizationRequest, session: LoginSession, scope: str
    ) -> Response:
        now = int(self._clock())
        code = secrets.token_urlsafe(32)
        sid = new_id()
        await self._store.add_code(
            AuthorizationCode(
                code_hash=code_hash(code),
                client_id=client.client_id,
                redirect_uri=pending.redirect_uri,
                code_challenge=pending.code_challenge,
                nonce=pending.nonce,
                scope=scope,
                audience=pending.audience,
                sub=session.sub,
                login_session=session.id,
                auth_time=session.auth_time,
                sid=sid,
                expires_at=now + CODE_LIFETIME,
            )
        )
        security.info("code_issued", extra={"sub": session.sub, "sid": sid, "client_id": client.client_id})
        location = redirect_location(
            pending.redirect_uri, {"code": code, "state": pending.state, "iss": self._settings.issuer}
        )
        return redirect(location)

    def _refused(self, pending: AuthorizationRequest, error: str, description: str) -> Refused:
        return Refused(pending.redirect_uri, pending.state, error, description)

    def _refuse(self, refused: Refused) -> Response:
        """RFC 6749 section 4.1.2.1, with `iss` (RFC 9207)."""
        location = redirect_location(
            refused.redirect_uri,
            {
                "error": refused.error,
                "error_description": refused.description,
                "state": refused.state,
                "iss": self._settings.issuer,
            },
        )
        return redirect(location)

    def _login_page(
        self,
        request: Request,
        client: Client,
        pending: AuthorizationRequest,
        *,
        username: str | None = None,
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return self._page(
            "login.html",
            request,
            pending,
            status=status,
            headers=headers,
            title="Sign in",
            client_name=client.name or client.client_id,
            username=username,
            error=error,
        )

    def _consent_page(
        self, request: Request, client: Client, pending: AuthorizationRequest, username: str, scope: str
    ) -> Response:
        scopes = [(name, SCOPE_WORDS.get(name, name)) for name in scope.split()]
        return self._page(
            "consent.html",
            request,
            pending,
            title="Allow access?",
            client_name=client.name or client.client_id,
            username=username,
            scopes=scopes,
        )

    def _page(
        self,
        template: str,
        request: Request,
        pending: AuthorizationRequest,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        """A page whose form carries `pending`, signed and bound to this browser's CSRF cookie."""
        return self.forms.page(
            template,
            request,
            {"req": pending.as_claims()},
            status=status,
            headers=headers,
            form_targets=(pending.redirect_uri,),
            **context,
        )

    async def _posted(self, request: Request) -> tuple[Form, AuthorizationRequest, Client]:
        """A sign-in form's post with the request it carries, whose client and redirect URI are
        still registered. Else `PageError`."""
        form, claims = await self.forms.read(request)
        try:
            pending = AuthorizationRequest.from_claims(claims["req"])
        except (KeyError, TypeError, ValueError):
            raise PageError("This sign-in page is not valid. Start again from the application.") from None
        client = await self._clients.client(pending.client_id)
        if client is None or pending.redirect_uri not in client.redirect_uris:
            raise PageError("The application is no longer registered here.")
        return form, pending, client

    async def session(self, request: Request) -> LoginSession | None:
        """The live login session this browser's cookie names, if any."""
        cookie = self.cookies.session(request)
        if cookie is None:
            return None
        return await self._store.login_session(hashed(cookie), int(self._clock()))
