"""`grant_type=authorization_code` (RFC 6749 section 4.1.3, RFC 7636 section 4.6): a code from
`/authorize`, its PKCE verifier, and the redirect URI it was issued for, for tokens.

The code is checked against what `/authorize` bound to it (client, redirect URI, challenge),
then redeemed: marked used and its refresh family stored in one transaction. A code used a
second time is refused, and what its first use issued is revoked at every replica.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from ..clients import Caller
from ..clock import Clock
from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest
from ..forms import Form, require
from ..metrics import Metrics
from ..oidc import user_claims
from ..revocation import Revoker
from ..storage import RedeemOutcome, RevocationStore, SignInStore, UserStore
from ..tokens import TokenMinter
from .common import Tokens, security, stored_refresh

MAX_CODE = 128
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 section 4.1


def code_hash(code: str) -> str:
    """How a code is stored: a database read gives nobody a usable code."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def s256(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class CodeRequest:
    code: str
    redirect_uri: str
    code_verifier: str

    @classmethod
    def parse(cls, form: Form) -> CodeRequest:
        code, redirect_uri = require(form, "code"), require(form, "redirect_uri")
        verifier = form.get("code_verifier")
        if not verifier:
            raise InvalidRequest("missing parameter 'code_verifier': PKCE is required (RFC 7636)")
        if not _VERIFIER.fullmatch(verifier):
            raise InvalidRequest("code_verifier must be 43 to 128 unreserved characters (RFC 7636 section 4.1)")
        if len(code) > MAX_CODE or not code.isascii():
            raise InvalidGrant("authorization code invalid")
        return cls(code, redirect_uri, verifier)


class AuthorizationCodeGrant:
    def __init__(
        self,
        *,
        settings: Settings,
        users: UserStore,
        sign_in: SignInStore,
        revocations: RevocationStore,
        minter: TokenMinter,
        revoker: Revoker,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._users = users
        self._sign_in = sign_in
        self._revocations = revocations
        self._minter = minter
        self._revoker = revoker
        self._clock = clock
        self._metrics = metrics

    async def __call__(self, form: Form, caller: Caller, address: str) -> Tokens:
        return await self.issue(CodeRequest.parse(form), caller)

    async def issue(self, request: CodeRequest, caller: Caller) -> Tokens:
        hashed = code_hash(request.code)
        code = await self._sign_in.authorization_code(hashed)
        if code is None:
            raise InvalidGrant("authorization code invalid")
        if code.used_at is None:  # a replay is revoked below, whoever presents it
            if not hmac.compare_digest(code.client_id, caller.client_id):
                security.warning("code_wrong_client", extra={"client_id": caller.client_id, "sid": code.sid})
                raise InvalidGrant("authorization code was issued to another client")
            if code.redirect_uri != request.redirect_uri:
                raise InvalidGrant("redirect_uri differs from the one the code was issued for")
            if not hmac.compare_digest(s256(request.code_verifier), code.code_challenge):
                security.info("code_verifier_mismatch", extra={"client_id": caller.client_id, "sid": code.sid})
                raise InvalidGrant("code_verifier does not match the code_challenge")
        user = await self._users.user_by_id(code.sub)
        now = int(self._clock())
        floor = await self._revocations.revoked_before(code.sub)
        session_end = code.auth_time + self._settings.session_max_lifetime
        refresh = self._minter.refresh_token(
            sub=code.sub,
            client_id=code.client_id,
            scope=code.scope,
            sid=code.sid,
            now=now,
            iat_floor=floor,
            not_after=session_end,
        )
        first = stored_refresh(
            refresh,
            sid=code.sid,
            sub=code.sub,
            client_id=code.client_id,
            scope=code.scope,
            audience=code.audience,
            login_session=code.login_session,
        )
        outcome = await self._sign_in.redeem_code(hashed, first, now, self._revoker.horizon(now))
        if outcome is RedeemOutcome.REPLAYED:
            self._revoker.notify()
            self._metrics.revoked("sid")  # the store appended a sid entry in the same transaction
            security.warning("code_replay", extra={"sub": code.sub, "sid": code.sid, "client_id": caller.client_id})
            raise InvalidGrant("authorization code already used; the tokens it issued are revoked")
        if outcome is not RedeemOutcome.REDEEMED or user is None:
            raise InvalidGrant(f"authorization code {outcome.value}")
        access = self._minter.access_token(
            sub=code.sub,
            client_id=code.client_id,
            scope=code.scope,
            audience=code.audience,
            sid=code.sid,
            username=user.username,
            now=now,
            iat_floor=floor,
        )
        id_token = None
        if "openid" in code.scope.split():
            id_token = self._minter.id_token(
                sub=code.sub,
                client_id=code.client_id,
                now=access.iat,
                auth_time=code.auth_time,
                sid=code.sid,
                nonce=code.nonce,
                access_token=access.token,
                claims=user_claims(user, code.scope),
            )
        security.info("code_exchanged", extra={"sub": code.sub, "sid": code.sid, "client_id": caller.client_id})
        keeps_refresh = "refresh_token" in caller.client.grant_types
        return Tokens(access, code.scope, refresh if keeps_refresh else None, id_token)
