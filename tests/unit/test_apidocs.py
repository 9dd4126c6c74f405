"""resource_service.apidocs: /docs and /redoc load their scripts from the service, never a CDN."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from auth_service.app import create_app as create_issuer
from auth_service.config import Settings
from resource_service import ResourceSettings, create_app

pytestmark = pytest.mark.anyio
_ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def _apps(tmp_path):
    issuer = create_issuer(Settings(data_dir=tmp_path / "data", keys_dir=tmp_path / "keys"))
    replica = create_app(ResourceSettings(auth_url="http://127.0.0.1:9", replica_id="r1"))
    return {"issuer": issuer, "replica": replica}


@pytest.mark.parametrize("which", ["issuer", "replica"])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_doc_pages_reference_only_same_origin_files_which_are_served(tmp_path, which, page):
    app = _apps(tmp_path)[which]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
        html = (await client.get(page)).text
        assets = _ASSET.findall(html)
        assert assets and all(url.startswith("/docs/static/") for url in assets), assets
        assert "http://" not in html.replace("http://svc", "") and "https://" not in html
        for url in assets:  # no token needed at the replica either: the page loads before login
            served = await client.get(url)
            assert served.status_code == 200 and len(served.content) > 1000, url


def _init_oauth(html: str) -> dict[str, object]:
    found = re.search(r"ui\.initOAuth\((\{.*?\})\)", html, flags=re.DOTALL)
    assert found, "the page calls no ui.initOAuth"
    return dict(json.loads(found.group(1)))


async def test_replica_docs_sign_in_with_the_code_flow_and_pkce_at_the_issuer():
    settings = ResourceSettings(auth_url="http://10.0.0.9:8000", issuer="https://auth.example", replica_id="r1")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
        schema = (await client.get("/openapi.json")).json()
        html = (await client.get("/docs")).text
    schemes = schema["components"]["securitySchemes"]
    assert list(schemes) == ["OAuth2AuthorizationCodeBearer"]  # no password flow on offer
    flow = schemes["OAuth2AuthorizationCodeBearer"]["flows"]["authorizationCode"]
    # The browser goes to the issuer's public URL, not the address the replica reaches it at.
    assert flow["authorizationUrl"] == "https://auth.example/authorize"
    assert flow["tokenUrl"] == "https://auth.example/token"
    assert flow["scopes"] == {"reports:read": "Read reports"}
    assert schema["paths"]["/reports"]["get"]["security"] == [{"OAuth2AuthorizationCodeBearer": ["reports:read"]}]
    assert _init_oauth(html) == {
        "clientId": "docs",
        "usePkceWithAuthorizationCodeGrant": True,
        "scopes": ["reports:read"],
    }
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in html


async def test_replica_docs_client_id_is_a_setting():
    app = create_app(ResourceSettings(auth_url="http://127.0.0.1:9", replica_id="r1", docs_client_id="api-docs"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
        html = (await client.get("/docs")).text
    assert _init_oauth(html)["clientId"] == "api-docs"


@pytest.mark.parametrize("which", ["issuer", "replica"])
async def test_oauth2_redirect_page_is_served_inline_without_a_token(tmp_path, which):
    app = _apps(tmp_path)[which]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
        page = await client.get("/docs/oauth2-redirect", params={"code": "c", "state": "s"})
    assert page.status_code == 200 and "swaggerUIRedirectOauth2" in page.text  # hands the code to /docs
    assert _ASSET.findall(page.text) == [] and "http" not in page.text  # its script is inline: no other file
