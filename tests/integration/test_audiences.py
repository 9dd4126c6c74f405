"""RFC 8707 end to end: one issuer, two APIs (replicas of different audiences), one client.

A token asked for API A works at A's replica and is refused at B's with the RFC 6750
challenge, and the other way round: a token for service A is not a token for service B.
"""

from __future__ import annotations

from tests.conftest import Stack, claims_of

API_A, API_B = "https://a.api.example", "https://b.api.example"


def test_a_replica_accepts_only_tokens_for_its_own_audience(stack: Stack) -> None:
    stack.start_auth()
    stack.add_user("alice", scope="reports:read")
    stack.add_public_client("web", "reports:read", f"--audience={API_A}", f"--audience={API_B}")
    replica_a = stack.start_replicas(1, RESOURCE_AUDIENCE=API_A)[0]
    replica_b = stack.start_replicas(1, RESOURCE_AUDIENCE=API_B)[0]
    for_a = stack.login(client_id="web", resource=API_A)
    for_b = stack.login(client_id="web", resource=API_B)
    assert claims_of(str(for_a["access_token"]))[1]["aud"] == API_A
    assert stack.me(replica_a, str(for_a["access_token"])).status_code == 200
    assert stack.me(replica_b, str(for_b["access_token"])).status_code == 200
    for replica, token in ((replica_b, for_a["access_token"]), (replica_a, for_b["access_token"])):
        refused = stack.me(replica, str(token))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == (
            'Bearer realm="api", error="invalid_token", error_description="token is not meant for this audience"'
        )
