"""resource_service.apidocs: /docs and /redoc load their scripts from the service, never a CDN."""

from __future__ import annotations

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
