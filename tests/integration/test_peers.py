"""Real peers against our running services: authlib's OAuth 2.0 client, PyJWT's PyJWKClient,
and joserfc for RFC 9864's `Ed25519` (PyJWT 2 knows that signature only as `EdDSA`).

They know nothing of this project: they only read what the standards publish (RFC 8414
metadata, RFC 6749 tokens, RFC 7009 revocation, RFC 7517 keys). If they work, a stranger's
client and a stranger's verifier will.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio.from_thread
import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from auth_service.launch import Service
from tests.conftest import PASSWORD, Stack, claims_of, eventually

with warnings.catch_warnings():  # authlib prefers the httpx2 fork; its httpx support is what our callers use
    import authlib.deprecate  # noqa: F401  (its import switches its warnings on: silence this one after)

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client, OAuthError

WELL_KNOWN = "/.well-known/oauth-authorization-server"


@pytest.fixture(scope="module")
def replica(issuer: Stack) -> Service:
    return issuer.start_replicas(1)[0]


@pytest.fixture(params=["OAuth2Client", "AsyncOAuth2Client"])
def authlib_client(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Callable[..., Any]]]:
    """An authlib client of the confidential client `svc` (HTTP Basic, authlib's default), and
    `run(method, *args, **kwargs)` that calls its methods and waits for them, sync or async."""
    if request.param == "OAuth2Client":
        client = OAuth2Client(client_id="svc", client_secret="svc-secret-of-at-least-32-characters", timeout=10)
        yield client, lambda method, *args, **kwargs: method(*args, **kwargs)
        client.close()
        return
    with anyio.from_thread.start_blocking_portal() as portal:
        aclient = AsyncOAuth2Client(client_id="svc", client_secret="svc-secret-of-at-least-32-characters", timeout=10)

        def run(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return portal.call(functools.partial(method, *args, **kwargs))

        yield aclient, run
        portal.call(aclient.aclose)


def test_authlib_logs_in_refreshes_and_revokes_against_the_running_issuer(
    issuer: Stack, replica: Service, authlib_client: tuple[Any, Callable[..., Any]]
) -> None:
    client, run = authlib_client
    assert issuer.auth is not None
    metadata = run(client.request, "GET", issuer.auth.url + WELL_KNOWN, withhold_token=True).json()
    assert metadata["issuer"] == issuer.auth.url
    client.metadata["token_endpoint"] = metadata["token_endpoint"]  # what authlib refreshes against

    token = run(
        client.fetch_token,
        metadata["token_endpoint"],
        grant_type="password",
        username="alice",
        password=PASSWORD,
        scope="profile",
    )
    me = run(client.get, f"{replica.url}/me")
    assert me.status_code == 200
    assert (me.json()["claims"]["preferred_username"], me.json()["claims"]["client_id"]) == ("alice", "svc")

    first_refresh = token["refresh_token"]
    refreshed = run(client.refresh_token, metadata["token_endpoint"])
    assert refreshed["refresh_token"] != first_refresh and refreshed["access_token"] != token["access_token"]
    assert claims_of(refreshed["access_token"])[1]["sid"] == claims_of(token["access_token"])[1]["sid"]
    assert run(client.get, f"{replica.url}/me").status_code == 200

    # authlib refreshes by itself a token it believes expired, at the endpoint from the metadata.
    client.token["expires_at"] = int(time.time()) - 1
    assert run(client.get, f"{replica.url}/me").status_code == 200
    assert client.token["access_token"] != refreshed["access_token"]
    access = client.token["access_token"]

    revoked = run(client.revoke_token, metadata["revocation_endpoint"], token=access, token_type_hint="access_token")
    assert revoked.status_code == 200
    assert eventually(lambda: issuer.me(replica, access).status_code == 401, timeout=5)
    refused = run(client.get, f"{replica.url}/me")
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]

    # Revoking the refresh token ends the session: authlib's next refresh is refused.
    run(
        client.revoke_token,
        metadata["revocation_endpoint"],
        token=client.token["refresh_token"],
        token_type_hint="refresh_token",
    )
    with pytest.raises(OAuthError) as caught:
        run(client.refresh_token, metadata["token_endpoint"])
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_pyjwt_verifies_our_access_tokens_from_the_jwks_uri(stack: Stack, alg: str) -> None:
    auth = stack.start_auth(AUTH_SIGNING_ALG=alg)
    stack.add_user("alice")
    metadata = stack.http.get(auth.url + WELL_KNOWN).json()
    token = str(stack.login()["access_token"])

    keys = jwt.PyJWKClient(metadata["jwks_uri"])
    key = keys.get_signing_key_from_jwt(token)
    assert key.algorithm_name == alg  # the algorithm comes from the published key, not the token
    claims = jwt.decode(
        token,
        key,
        algorithms=[key.algorithm_name],
        audience="api",
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["preferred_username"] == "alice"
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"

    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=[alg], audience="another-api", issuer=metadata["issuer"])
    header, _, signature = token.split(".")
    forged = claims_of(token)[1] | {"preferred_username": "mallory"}
    tampered = ".".join([header, jwt.utils.base64url_encode(json.dumps(forged).encode()).decode(), signature])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, key, algorithms=[alg], audience="api", issuer=metadata["issuer"])


def test_joserfc_verifies_our_ed25519_access_tokens_from_the_jwks_uri(stack: Stack) -> None:
    auth = stack.start_auth(AUTH_SIGNING_ALG="Ed25519")
    stack.add_user("alice")
    metadata = stack.http.get(auth.url + WELL_KNOWN).json()
    token = str(stack.login()["access_token"])

    keys = KeySet.import_key_set(stack.http.get(metadata["jwks_uri"]).json())
    verified = jose_jwt.decode(token, keys, algorithms=["Ed25519"])
    assert verified.header["alg"] == "Ed25519" and verified.header["typ"] == "at+jwt"
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]}, aud={"essential": True, "value": "api"}
    ).validate(verified.claims)
    assert verified.claims["preferred_username"] == "alice"

    header, _, signature = token.split(".")
    forged = claims_of(token)[1] | {"preferred_username": "mallory"}
    tampered = ".".join([header, jwt.utils.base64url_encode(json.dumps(forged).encode()).decode(), signature])
    with pytest.raises(BadSignatureError):
        jose_jwt.decode(tampered, keys, algorithms=["Ed25519"])
