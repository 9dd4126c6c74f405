"""The grants of `POST /token`, as a table keyed by `grant_type`.

Each grant is a module with a typed request (parsed once from the form, RFC 6749 section
5.2 errors) and a handler that issues tokens. Adding a grant touches its module and
`grant_table` below; the route stays HTTP only.
"""

from __future__ import annotations

from ..clock import Clock
from ..config import Settings
from ..errors import InvalidRequest, UnsupportedGrantType
from ..login import PasswordCheck
from ..metrics import Metrics
from ..revocation import Revoker
from ..storage import FamilyStore, RevocationStore, SignInStore, UserStore
from ..tokens import TokenMinter
from .authorization_code import AuthorizationCodeGrant
from .client_credentials import ClientCredentialsGrant
from .common import Grant, Tokens
from .password import MAX_USERNAME_LENGTH, PasswordGrant
from .refresh import RefreshGrant

GRANT_TYPES = ("authorization_code", "password", "refresh_token", "client_credentials")


class GrantTable:
    """`grant_type` -> handler, for the grants this issuer serves."""

    def __init__(self, grants: dict[str, Grant]) -> None:
        self._grants = grants

    def __getitem__(self, grant_type: str) -> Grant:
        if not grant_type:
            raise InvalidRequest("missing parameter 'grant_type'")
        grant = self._grants.get(grant_type)
        if grant is None:
            *others, last = self._grants
            raise UnsupportedGrantType(f"grant_type must be {', '.join(others)} or {last}")
        return grant

    def names(self) -> list[str]:
        return list(self._grants)


def grant_table(
    *,
    settings: Settings,
    users: UserStore,
    families: FamilyStore,
    revocations: RevocationStore,
    sign_in: SignInStore,
    minter: TokenMinter,
    passwords: PasswordCheck,
    revoker: Revoker,
    clock: Clock,
    metrics: Metrics,
) -> GrantTable:
    password = PasswordGrant(
        settings=settings, passwords=passwords, families=families, revocations=revocations, minter=minter, clock=clock
    )
    refresh = RefreshGrant(
        settings=settings,
        users=users,
        families=families,
        revocations=revocations,
        minter=minter,
        revoker=revoker,
        clock=clock,
        metrics=metrics,
    )
    code = AuthorizationCodeGrant(
        settings=settings,
        users=users,
        sign_in=sign_in,
        revocations=revocations,
        minter=minter,
        revoker=revoker,
        clock=clock,
        metrics=metrics,
    )
    client_credentials = ClientCredentialsGrant(settings=settings, revocations=revocations, minter=minter, clock=clock)
    return GrantTable(
        {
            "authorization_code": code,
            "password": password,
            "refresh_token": refresh,
            "client_credentials": client_credentials,
        }
    )


__all__ = ["GRANT_TYPES", "MAX_USERNAME_LENGTH", "Grant", "GrantTable", "Tokens", "grant_table"]
