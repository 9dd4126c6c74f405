"""The browser sign-in's HTTP surface: `/authorize`, its forms, RP-initiated logout, and the
pages' stylesheet and logo. The behaviour lives in `auth_service.signin`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..deps import EndSessionDep, SignInDep
from ..signin.pages import STYLESHEET

router = APIRouter(tags=["sign-in"])

_PAGE = {"content": {"text/html": {}}, "description": "A sign-in page"}
_REDIRECT = {"description": "Back to the client's redirect URI with `code` (or `error`), `state` and `iss`"}


@router.get(
    "/authorize",
    summary="Authorization endpoint (RFC 6749 4.1, PKCE S256 required)",
    response_class=Response,
    responses={200: _PAGE, 302: _REDIRECT, 303: _REDIRECT, 400: _PAGE},
)
async def authorize(request: Request, signin: SignInDep) -> Response:
    return await signin.authorize(request)


@router.post("/authorize/login", include_in_schema=False)
async def login(request: Request, signin: SignInDep) -> Response:
    return await signin.login(request)


@router.post("/authorize/consent", include_in_schema=False)
async def consent(request: Request, signin: SignInDep) -> Response:
    return await signin.consent(request)


async def end_session(request: Request, logout: EndSessionDep) -> Response:
    return await logout.start(request)


for _method in ("GET", "POST"):  # the same parameters, in the query or as a form
    router.add_api_route(
        "/end-session",
        end_session,
        methods=[_method],
        name=f"end_session_{_method.lower()}",
        operation_id=f"end_session_{_method.lower()}",
        summary="End the sign-in session (OpenID Connect RP-Initiated Logout)",
        response_class=Response,
        responses={
            200: _PAGE,
            303: {"description": "To the registered post_logout_redirect_uri, with `state`"},
            400: _PAGE,
        },
    )


@router.post("/end-session/confirm", include_in_schema=False)
async def end_session_confirm(request: Request, logout: EndSessionDep) -> Response:
    return await logout.confirm(request)


_CSS = STYLESHEET.read_bytes()


@router.get("/signin/static/signin.css", include_in_schema=False)
async def stylesheet() -> Response:
    return Response(
        _CSS,
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/signin/logo", include_in_schema=False)
async def logo(signin: SignInDep) -> Response:
    """AUTH_PRODUCT_LOGO, served by the issuer itself (an SVG sandboxed: it runs nothing)."""
    if signin.pages.logo is None:
        return Response(status_code=404)
    content, media_type = signin.pages.logo
    headers = {
        "Cache-Control": "public, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    return Response(content, media_type=media_type, headers=headers)
