"""FastAPI dependencies: each route names the collaborators it uses, and only those.

`create_app`'s lifespan wires an `Issuer` once (store, keys, grants, limits, clock) and
keeps it on the app; the dependencies below hand a route one part of it. A route never
reaches into `app.state` itself, and an in-process test can replace any part with
`app.dependency_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from .clients import ClientAuthenticator, client_address
from .clock import Clock
from .config import Settings
from .forms import Form, read_form
from .grants import GrantTable
from .keys import KeyManager
from .metrics import Metrics
from .passwords import PasswordHasher
from .revocation import RevocationFeed, Revoker
from .signin.flow import SignIn
from .signin.logout import EndSession
from .storage import FamilyStore, RevocationStore, Store, UserStore
from .streams import PullBudget, StreamSlots
from .tokens import TokenMinter

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Issuer:
    """Every collaborator of one running app, built once by `create_app`'s lifespan."""

    settings: Settings
    clock: Clock
    store: Store  # for wiring and readiness; routes take the narrow protocol they use
    keys: KeyManager
    minter: TokenMinter
    feed: RevocationFeed
    revoker: Revoker
    grants: GrantTable
    hasher: PasswordHasher
    clients: ClientAuthenticator  # logins, and client secrets guessed at any endpoint, share its limiter
    streams: StreamSlots  # open revocation push streams
    pull_budget: PullBudget  # revocation pull pages rendered per address
    metrics: Metrics
    signin: SignIn  # /authorize and its pages
    end_session: EndSession
    redis: Redis | None = None  # when AUTH_REDIS_URL is set


def _issuer(request: Request) -> Issuer:
    issuer: Issuer = request.app.state.issuer
    return issuer


# The dependencies below are `async def` though none awaits: FastAPI runs a plain `def`
# dependency in its thread pool, a hand-off to a worker thread and back per dependency and
# request (the pull route had five: 6 ms of issuer CPU to serve a cached page).
async def _issuer_dep(request: Request) -> Issuer:
    return _issuer(request)


async def _address(request: Request) -> str:
    return client_address(request)


async def _settings(request: Request) -> Settings:
    return _issuer(request).settings


async def _clock(request: Request) -> Clock:
    return _issuer(request).clock


async def _keys(request: Request) -> KeyManager:
    return _issuer(request).keys


async def _minter(request: Request) -> TokenMinter:
    return _issuer(request).minter


async def _feed(request: Request) -> RevocationFeed:
    return _issuer(request).feed


async def _revoker(request: Request) -> Revoker:
    return _issuer(request).revoker


async def _grants(request: Request) -> GrantTable:
    return _issuer(request).grants


async def _clients(request: Request) -> ClientAuthenticator:
    return _issuer(request).clients


async def _streams(request: Request) -> StreamSlots:
    return _issuer(request).streams


async def _pull_budget(request: Request) -> PullBudget:
    return _issuer(request).pull_budget


async def _metrics(request: Request) -> Metrics:
    return _issuer(request).metrics


async def _families(request: Request) -> FamilyStore:
    return _issuer(request).store


async def _revocations(request: Request) -> RevocationStore:
    return _issuer(request).store


async def _users(request: Request) -> UserStore:
    return _issuer(request).store


async def _signin(request: Request) -> SignIn:
    return _issuer(request).signin


async def _end_session(request: Request) -> EndSession:
    return _issuer(request).end_session


async def _audiences(request: Request) -> frozenset[str]:
    """Every audience this issuer mints access tokens for (it reads its own tokens of any)."""
    issuer = _issuer(request)
    registered = await issuer.store.clients()
    return frozenset([issuer.settings.audience, *(aud for client in registered for aud in client.audiences)])


IssuerDep = Annotated[Issuer, Depends(_issuer_dep)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ClockDep = Annotated[Clock, Depends(_clock)]
KeysDep = Annotated[KeyManager, Depends(_keys)]
MinterDep = Annotated[TokenMinter, Depends(_minter)]
FeedDep = Annotated[RevocationFeed, Depends(_feed)]
RevokerDep = Annotated[Revoker, Depends(_revoker)]
GrantsDep = Annotated[GrantTable, Depends(_grants)]
ClientsDep = Annotated[ClientAuthenticator, Depends(_clients)]
StreamsDep = Annotated[StreamSlots, Depends(_streams)]
PullBudgetDep = Annotated[PullBudget, Depends(_pull_budget)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
FamiliesDep = Annotated[FamilyStore, Depends(_families)]
RevocationsDep = Annotated[RevocationStore, Depends(_revocations)]
UsersDep = Annotated[UserStore, Depends(_users)]
SignInDep = Annotated[SignIn, Depends(_signin)]
EndSessionDep = Annotated[EndSession, Depends(_end_session)]
FormDep = Annotated[Form, Depends(read_form)]  # read once per request, however many ask
AddressDep = Annotated[str, Depends(_address)]
AudiencesDep = Annotated[frozenset[str], Depends(_audiences)]
