"""The admin HTTP API under `/admin`: the CLI's users and clients commands, for automation.

HTTP only: every change goes through the same service layers as the CLI (`Directory`,
`Registry`), which check it, apply it, revoke where it calls for it and log it with the
admin client as `actor`. The caller is an admin client holding its own access token for this
issuer (client credentials, `resource=<AUTH_ISSUER>`, scope `admin`); see `admin_client`.
Every call is one `admin_call` security event naming the client, the route template and the
status, never a username, password or secret.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..directory import MAX_USERNAME_LENGTH, MAX_USERS_PAGE, user_view
from ..forms import MAX_VALUE
from ..passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ..registry import MAX_AUDIENCE, MAX_NAME, MAX_REDIRECT_URI, Registration, client_view
from .admin_access import MAX_CLIENT_ID, AdminDep, AdminRoute, DirectoryDep, RegistryDep, refusals
from .responses import CLIENT, CLIENT_LIST, NEW_CLIENT, ROTATED, USER, USER_LIST, errors, ok
from .token import NO_STORE

security = logging.getLogger("auth_service.security")

router = APIRouter(prefix="/admin", tags=["admin"], route_class=AdminRoute)
_MAX_LIST = 32  # grant types, redirect URIs, audiences per client


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE)


_DELETED: dict[int | str, dict[str, Any]] = {204: {"description": "Deleted; its tokens are revoked at every replica"}}
_REFUSED = (400, 401, 403, 503)
_NAMED = (*_REFUSED, 404, 405)  # 405: a `.` path segment, normalised away, can land on another route
# A path segment: no `/` (it would be another path) and no control characters.
_SEGMENT = r"^[^/\x00-\x1f\x7f]+$"
Username = Annotated[str, Path(min_length=1, max_length=MAX_USERNAME_LENGTH, pattern=_SEGMENT)]
ClientId = Annotated[str, Path(min_length=1, max_length=MAX_CLIENT_ID, pattern=r"^[!-.0-~]+$")]
Password = Annotated[
    str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH, json_schema_extra={"format": "password"})
]
Secret = Annotated[str, Field(max_length=MAX_PASSWORD_LENGTH, json_schema_extra={"format": "password"})]
Scope = Annotated[str, Field(max_length=MAX_VALUE)]


class _Body(BaseModel):
    # strict: `"public": "yes"` is refused, not read as true
    model_config = ConfigDict(extra="forbid", strict=True)


class NewUser(_Body):
    username: str = Field(min_length=1, max_length=MAX_USERNAME_LENGTH)
    password: Password
    scope: Scope = ""


class ScopeChange(_Body):
    scope: Scope


class PasswordChange(_Body):
    password: Password


class NewClient(_Body):
    client_id: str = Field(min_length=1, max_length=MAX_CLIENT_ID)
    public: bool = False
    grant_types: list[Annotated[str, Field(max_length=64)]] = Field([], max_length=_MAX_LIST)
    redirect_uris: list[Annotated[str, Field(max_length=MAX_REDIRECT_URI)]] = Field([], max_length=_MAX_LIST)
    post_logout_redirect_uris: list[Annotated[str, Field(max_length=MAX_REDIRECT_URI)]] = Field(
        [], max_length=_MAX_LIST
    )
    scope: Scope = ""
    audiences: list[Annotated[str, Field(max_length=MAX_AUDIENCE)]] = Field([], max_length=_MAX_LIST)
    name: str = Field("", max_length=MAX_NAME)
    first_party: bool = False
    secret: Secret | None = None  # a confidential client without one gets a generated secret


class SecretChange(_Body):
    secret: Secret | None = None


# -- users -------------------------------------------------------------------------------


@router.get("/users", summary="A page of users, in username order", responses={**ok(USER_LIST), **errors(*_REFUSED)})
async def list_users(
    _: AdminDep,
    directory: DirectoryDep,
    after: str | None = Query(None, max_length=MAX_USERNAME_LENGTH, description="`next` of the previous page"),
    limit: int = Query(100, ge=1, le=MAX_USERS_PAGE),
) -> JSONResponse:
    with refusals("user"):
        page = await directory.users(after=after, limit=limit)
    following = page[-1].username if len(page) == limit else None
    return _json({"users": [user_view(user) for user in page], "next": following})


@router.post(
    "/users", status_code=201, summary="Add a user", responses={**ok(USER, "Added", 201), **errors(*_REFUSED, 409)}
)
async def add_user(body: NewUser, actor: AdminDep, directory: DirectoryDep) -> JSONResponse:
    with refusals("user"):
        user = await directory.add_user(body.username, body.password, body.scope, actor=actor)
    return _json(user_view(user), 201)


@router.get("/users/{username}", summary="One user", responses={**ok(USER), **errors(*_NAMED)})
async def show_user(username: Username, _: AdminDep, directory: DirectoryDep) -> JSONResponse:
    with refusals("user"):
        return _json(user_view(await directory.user(username)))


@router.put(
    "/users/{username}/scope",
    summary="What the user may be granted; its next refresh is narrowed to it",
    responses={**ok(USER), **errors(*_NAMED)},
)
async def set_scope(username: Username, body: ScopeChange, actor: AdminDep, directory: DirectoryDep) -> JSONResponse:
    with refusals("user"):
        return _json(user_view(await directory.set_scope(username, body.scope, actor=actor)))


@router.put(
    "/users/{username}/password",
    summary="A new password; the user's tokens are revoked",
    responses={**ok(USER), **errors(*_NAMED)},
)
async def set_password(
    username: Username, body: PasswordChange, actor: AdminDep, directory: DirectoryDep
) -> JSONResponse:
    with refusals("user"):
        return _json(user_view(await directory.set_password(username, body.password, actor=actor)))


@router.post(
    "/users/{username}/disable",
    summary="No more logins or refreshes; every session ends now",
    responses={**ok(USER), **errors(*_NAMED)},
)
async def disable_user(username: Username, actor: AdminDep, directory: DirectoryDep) -> JSONResponse:
    with refusals("user"):
        return _json(user_view(await directory.disable(username, actor=actor)))


@router.post(
    "/users/{username}/enable",
    summary="Logins work again; ended sessions stay ended",
    responses={**ok(USER), **errors(*_NAMED)},
)
async def enable_user(username: Username, actor: AdminDep, directory: DirectoryDep) -> JSONResponse:
    with refusals("user"):
        return _json(user_view(await directory.enable(username, actor=actor)))


@router.delete(
    "/users/{username}",
    status_code=204,
    response_class=Response,
    summary="Remove the user and revoke its tokens",
    responses={**_DELETED, **errors(*_NAMED)},
)
async def delete_user(username: Username, actor: AdminDep, directory: DirectoryDep) -> Response:
    with refusals("user"):
        await directory.delete(username, actor=actor)
    return Response(status_code=204, headers=NO_STORE)


# -- clients -----------------------------------------------------------------------------


@router.get("/clients", summary="Every registered client", responses={**ok(CLIENT_LIST), **errors(*_REFUSED)})
async def list_clients(_: AdminDep, registry: RegistryDep) -> JSONResponse:
    return _json({"clients": [client_view(client) for client in await registry.clients()]})


@router.post(
    "/clients",
    status_code=201,
    summary="Register a client; a confidential one without `secret` gets a generated `client_secret`, shown once",
    responses={**ok(NEW_CLIENT, "Registered", 201), **errors(*_REFUSED, 409)},
)
async def add_client(body: NewClient, actor: AdminDep, registry: RegistryDep) -> JSONResponse:
    registration = Registration(
        client_id=body.client_id,
        public=body.public,
        grant_types=tuple(body.grant_types),
        redirect_uris=tuple(body.redirect_uris),
        post_logout_redirect_uris=tuple(body.post_logout_redirect_uris),
        scope=body.scope,
        audiences=tuple(body.audiences),
        name=body.name,
        first_party=body.first_party,
    )
    with refusals("client"):
        client, generated = await registry.add(registration, body.secret, actor=actor)
    view = client_view(client) | ({"client_secret": generated} if generated is not None else {})
    return _json(view, 201)


@router.get("/clients/{client_id}", summary="One client", responses={**ok(CLIENT), **errors(*_NAMED)})
async def show_client(client_id: ClientId, _: AdminDep, registry: RegistryDep) -> JSONResponse:
    with refusals("client"):
        return _json(client_view(await registry.client(client_id)))


@router.post(
    "/clients/{client_id}/secret",
    summary="A new secret for a confidential client; the old one stops working at once",
    responses={**ok(ROTATED), **errors(*_NAMED)},
)
async def rotate_secret(
    client_id: ClientId, actor: AdminDep, registry: RegistryDep, body: SecretChange | None = None
) -> JSONResponse:
    with refusals("client"):
        generated = await registry.rotate_secret(client_id, body.secret if body else None, actor=actor)
    answer: dict[str, Any] = {"client_id": client_id, "rotated": True}
    if generated is not None:
        answer["client_secret"] = generated
    return _json(answer)


@router.delete(
    "/clients/{client_id}",
    status_code=204,
    response_class=Response,
    summary="Remove the client; its sessions and its own tokens are revoked",
    responses={**_DELETED, **errors(*_NAMED)},
)
async def delete_client(client_id: ClientId, actor: AdminDep, registry: RegistryDep) -> Response:
    with refusals("client"):
        await registry.remove(client_id, actor=actor)
    return Response(status_code=204, headers=NO_STORE)
