"""auth_service.app: what create_app wires, checked in process (no lifespan, no store)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.streams import StreamSlots

pytestmark = pytest.mark.anyio


def _app(tmp_path: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(Settings(data_dir=tmp_path, keys_dir=tmp_path / "keys", **settings))  # type: ignore[arg-type]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=("192.0.2.7", 40_000)), base_url="http://127.0.0.1:8000"
    )


@pytest.mark.parametrize("path", ["/token/", "/revoke/", "/.well-known/jwks.json/", "/healthz/"])
async def test_a_trailing_slash_is_404_never_a_redirect_built_from_the_host_header(tmp_path: Path, path: str) -> None:
    async with _app(tmp_path) as client:
        answer = await client.post(path, headers={"Host": "evil.example"}, data={"grant_type": "password"})
    assert answer.status_code in (404, 405) and "location" not in answer.headers


def test_stream_slots_cap_each_address_and_all_of_them() -> None:
    slots = StreamSlots(total=3, per_address=2)
    assert [slots.take("a"), slots.take("a"), slots.take("a")] == [True, True, False]
    assert [slots.take("b"), slots.take("c")] == [True, False], "three open in all"
    slots.give_back("a")
    assert slots.take("c") and not slots.take("a")
    for address in ("a", "b", "c"):
        slots.give_back(address)
    assert slots.take("a") and slots.take("a") and slots.take("b")


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path) -> None:
    assert Settings(trusted_proxies=["10.0.0.5", "10.1.0.0/16", "::1"]).trusted_proxies  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings(trusted_proxies=["balancer.internal"])  # type: ignore[call-arg]


def test_revocation_streams_leave_room_for_other_connections() -> None:
    with pytest.raises(ValueError, match="revocation_streams_max must stay below http_limit_concurrency"):
        Settings(revocation_streams_max=500, http_limit_concurrency=500)  # type: ignore[call-arg]
