"""`/docs` (Swagger UI) and `/redoc` served with their scripts from this package, not a CDN.

FastAPI's own pages load swagger-ui-dist and redoc from jsDelivr without integrity hashes:
whoever controls that CDN (or the path to it) runs script in the page where people type
passwords. `install_docs` serves the same pages with the files of `static/` (see its
NOTICE.md) at `/docs/static/...`, same origin. `/docs/oauth2-redirect` is FastAPI's page with
an inline script: the redirect URI of the docs' client, it hands the authorization code from the
issuer's login pop-up back to the `/docs` window, which exchanges it with its PKCE verifier.
Swagger UI's `initOAuth` comes from the app's `swagger_ui_init_oauth`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_PATHS", "install_docs"]

_STATIC = Path(__file__).parent / "static"
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
_PREFIX = "/docs/static/"
STATIC_PATHS = tuple(_PREFIX + name for name in _FILES)  # exact paths, for the bearer middleware's exemptions


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, `/docs/oauth2-redirect`, `/redoc` and their static files to an app made with
    `docs_url=None, redoc_url=None`."""
    assert app.docs_url is None and app.redoc_url is None, "create the app with docs_url=None, redoc_url=None"

    def static(request: Request, name: str) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + _PREFIX + name

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + str(app.openapi_url),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + "/docs/oauth2-redirect",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
            swagger_js_url=static(request, "swagger-ui-bundle.js"),
            swagger_css_url=static(request, "swagger-ui.css"),
            swagger_favicon_url=static(request, "favicon.png"),
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=root + str(app.openapi_url),
            title=f"{app.title} - ReDoc",
            redoc_js_url=static(request, "redoc.standalone.js"),
            redoc_favicon_url=static(request, "favicon.png"),
            with_google_fonts=False,
        )

    app.mount(_PREFIX.rstrip("/"), StaticFiles(directory=_STATIC), name="docs-static")
