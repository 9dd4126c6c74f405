"""Both services fuzzed from their own OpenAPI documents (schemathesis), as real processes.

Every operation gets schema-valid and schema-invalid requests, with and without
credentials, and every answer must be: no server error, a declared status code, a declared
content type, a body and headers matching the declaration, and a refusal for invalid input.
An answer the document does not describe is a bug in the document or in the code, never
something to filter out here. Secured operations also get valid tokens with one character
changed, which must be refused.

`schemathesis.pytest.from_fixture` does not run under pytest 9 (it sets `Function._nodeid`,
which pytest no longer has), so Hypothesis drives each operation's schemathesis strategy
directly; the cases and the checks are schemathesis' own.
"""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup

from tests.conftest import PASSWORD, Stack

pytestmark = pytest.mark.slow

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]
EXAMPLES = 40  # per operation and run
# The admin API's 13 operations share one body model per kind and one access check: fewer
# examples each cover it (about 25 s less of CI) without leaving a status undeclared.
ADMIN_EXAMPLES = 15


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )


FORM = "application/x-www-form-urlencoded"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"svc:svc-secret-of-at-least-32-characters").decode()}

# An SSE stream never ends, so no request to it completes: the push feed is covered by
# tests/unit/test_rs_revocation_sync.py and tests/integration/test_replicas.py.
NOT_FUZZED = {"GET /revocations/stream"}
AUTH_OPERATIONS = {
    "POST /token",
    "POST /revoke",
    "POST /introspect",
    "POST /logout",
    "GET /authorize",
    "GET /end-session",
    "POST /end-session",
    "GET /userinfo",
    "POST /userinfo",
    "GET /.well-known/oauth-authorization-server",
    "GET /.well-known/openid-configuration",
    "GET /.well-known/jwks.json",
    "GET /revocations",
    "GET /revocations/stream",
    "GET /healthz",
    "GET /readyz",
}
ADMIN_OPERATIONS = {
    "GET /admin/users",
    "POST /admin/users",
    "GET /admin/users/{username}",
    "PUT /admin/users/{username}/scope",
    "PUT /admin/users/{username}/password",
    "POST /admin/users/{username}/disable",
    "POST /admin/users/{username}/enable",
    "DELETE /admin/users/{username}",
    "GET /admin/clients",
    "POST /admin/clients",
    "GET /admin/clients/{client_id}",
    "POST /admin/clients/{client_id}/secret",
    "DELETE /admin/clients/{client_id}",
}
# A name the fuzzer will not generate, so its destructive calls never remove its own credential.
ADMIN_CLIENT = "ops-admin-of-the-fuzz-stack"
ADMIN_SECRET = "ops-secret-of-at-least-32-characters-long"
REPLICA_OPERATIONS = {"GET /me", "GET /reports", "GET /healthz", "GET /readyz"}
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=~"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An issuer and one replica. Login limits are raised so that fuzzing /token reaches the
    grants instead of 429 (which is declared all the same)."""
    s = Stack(tmp_path_factory.mktemp("fuzz"))
    try:
        s.start_auth(AUTH_LOGIN_MAX_FAILURES="1000000", AUTH_LOGIN_MAX_ATTEMPTS_PER_IP="1000000")
        s.add_user("alice", scope="reports:read profile")
        s.add_client("svc", "svc-secret-of-at-least-32-characters", scope="reports:read")
        s.start_replicas(1)
        yield s
    finally:
        s.stop()


@dataclass
class Plan:
    """How to call each operation beyond what its document says."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # credentials by operation
    forged: dict[str, str] = field(default_factory=dict)  # a valid bearer token to alter, by operation
    bodies: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # known-good forms, by operation


@dataclass
class Outcome:
    operations: set[str] = field(default_factory=set)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)

    def report(self) -> str:
        return "\n\n".join(self.failures)


def altered(token: str) -> st.SearchStrategy[str]:
    """`token` with one character replaced, inserted or deleted, or cut short."""
    index = st.integers(0, len(token) - 1)
    char = st.sampled_from(_TOKEN_CHARS)
    return st.one_of(
        st.tuples(index, char).map(lambda ic: token[: ic[0]] + ic[1] + token[ic[0] + 1 :]),
        st.tuples(index, char).map(lambda ic: token[: ic[0]] + ic[1] + token[ic[0] :]),
        index.map(lambda i: token[:i] + token[i + 1 :]),
        index.map(lambda i: token[:i]),
    ).filter(lambda t: t != token and t.strip() != "")


def fuzz(schema: Any, plan: Plan, examples: int = EXAMPLES) -> Outcome:
    outcome = Outcome()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation of the document does not load: {result.err()}"
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        outcome.operations.add(label)
        if label in NOT_FUZZED:
            continue
        headers = plan.headers.get(label)
        runs: list[tuple[str, st.SearchStrategy[Any], bool]] = [
            ("positive", operation.as_strategy(GenerationMode.POSITIVE, headers=headers), False)
        ]
        if _has_input(operation):
            runs.append(("negative", operation.as_strategy(GenerationMode.NEGATIVE, headers=headers), False))
        if headers is not None:
            runs.append(("positive without credentials", operation.as_strategy(GenerationMode.POSITIVE), False))
        if label in plan.forged:
            runs.append(
                (
                    "altered bearer token",
                    altered(plan.forged[label]).flatmap(
                        lambda t, op=operation: op.as_strategy(headers={"Authorization": f"Bearer {t}"})
                    ),
                    True,
                )
            )
        for i, body in enumerate(plan.bodies.get(label, []), 1):
            runs.append(
                (f"known-good form {i}", operation.as_strategy(headers=headers, body=body, media_type=FORM), False)
            )
        for name, strategy, must_refuse in runs:
            try:
                _run(strategy, outcome.statuses[f"{label} {name}"], must_refuse, examples)
            except FailureGroup as exc:  # collect every operation's failures, then report them all
                outcome.failures.append(f"{label} {name}:\n{exc}")
    return outcome


def _has_input(operation: Any) -> bool:
    """Whether there is anything to make invalid (an operation without parameters or body
    has no negative cases)."""
    return bool(operation.body) or any(
        len(params) for params in (operation.path_parameters, operation.query, operation.headers, operation.cookies)
    )


def _run(strategy: st.SearchStrategy[Any], seen: Counter[int], must_refuse: bool, examples: int) -> None:
    @_settings(examples)
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=10)
        seen[response.status_code] += 1
        if must_refuse:
            assert response.status_code in (400, 401), f"an altered token got {response.status_code}"

    run()


def test_the_auth_service_answers_only_what_its_openapi_document_declares(fuzzed: Stack) -> None:
    assert fuzzed.auth is not None
    logout_token = str(fuzzed.login()["access_token"])  # a session of its own: /logout ends it
    other = fuzzed.login()
    plan = Plan(
        headers={
            "POST /logout": {"Authorization": f"Bearer {logout_token}"},
            "POST /introspect": BASIC,
            "POST /revoke": BASIC,
            "POST /token": BASIC,
        },
        forged={"POST /logout": logout_token},
        bodies={
            "POST /token": [{"grant_type": "client_credentials"}],
            "POST /introspect": [{"token": str(other["access_token"])}, {"token": str(other["refresh_token"])}],
        },
    )
    # /admin changes users and clients: fuzzed on a stack of its own, below.
    schema = schemathesis.openapi.from_url(f"{fuzzed.auth.url}/openapi.json").exclude(path_regex="^/admin/")
    outcome = fuzz(schema, plan)
    assert not outcome.failures, outcome.report()
    assert outcome.operations == AUTH_OPERATIONS
    seen = outcome.statuses
    # The credentials took fuzzing past authentication, and the known-good forms succeeded.
    assert seen["POST /logout positive"][204] > 0
    assert seen["POST /logout positive without credentials"][401] > 0
    assert seen["POST /token known-good form 1"][200] > 0
    assert seen["POST /introspect known-good form 1"][200] == seen["POST /introspect known-good form 2"][200] == 1


def test_the_replica_answers_only_what_its_openapi_document_declares(fuzzed: Stack) -> None:
    replica = fuzzed.replicas[0]
    token = str(fuzzed.login()["access_token"])
    secured = ("GET /me", "GET /reports")
    plan = Plan(
        headers={label: {"Authorization": f"Bearer {token}"} for label in secured}, forged=dict.fromkeys(secured, token)
    )
    schema = schemathesis.openapi.from_url(f"{replica.url}/openapi.json")
    outcome = fuzz(schema, plan)
    assert not outcome.failures, outcome.report()
    assert outcome.operations == REPLICA_OPERATIONS
    for label in secured:
        assert outcome.statuses[f"{label} positive"][200] > 0
        assert outcome.statuses[f"{label} positive without credentials"][401] > 0
        assert sum(outcome.statuses[f"{label} altered bearer token"].values()) == EXAMPLES


def test_a_scope_the_token_lacks_is_refused_as_declared(fuzzed: Stack) -> None:
    """The 403 row of /reports, reached with a token without `reports:read`."""
    replica = fuzzed.replicas[0]
    narrow = fuzzed.token(grant_type="password", username="alice", password=PASSWORD, scope="profile").json()
    plan = Plan(headers={"GET /reports": {"Authorization": f"Bearer {narrow['access_token']}"}})
    schema = schemathesis.openapi.from_url(f"{replica.url}/openapi.json").include(path="/reports")
    outcome = fuzz(schema, plan)
    assert not outcome.failures, outcome.report()
    assert outcome.statuses["GET /reports positive"][403] > 0


@pytest.fixture(scope="module")
def admin_fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An issuer whose users and clients the fuzzer may add, change and remove at will, and
    its admin client, registered as docs/http-api.md says."""
    s = Stack(tmp_path_factory.mktemp("admin-fuzz"))
    try:
        auth = s.start_auth()
        s.add_user("alice", scope="reports:read")
        s.add_client(ADMIN_CLIENT, ADMIN_SECRET, scope="admin", grants=("client_credentials",), audiences=(auth.url,))
        yield s
    finally:
        s.stop()


def test_the_admin_api_answers_only_what_its_openapi_document_declares(admin_fuzzed: Stack) -> None:
    assert admin_fuzzed.auth is not None
    url = admin_fuzzed.auth.url
    answer = admin_fuzzed.http.post(
        f"{url}/token", data={"grant_type": "client_credentials", "resource": url}, auth=(ADMIN_CLIENT, ADMIN_SECRET)
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    plan = Plan(
        headers={label: {"Authorization": f"Bearer {token}"} for label in ADMIN_OPERATIONS},
        forged=dict.fromkeys(ADMIN_OPERATIONS, token),
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").include(path_regex="^/admin/")
    outcome = fuzz(schema, plan, ADMIN_EXAMPLES)
    assert not outcome.failures, outcome.report()
    assert outcome.operations == ADMIN_OPERATIONS
    seen = outcome.statuses
    # The token took fuzzing past authentication: the lists answered, and users were added.
    assert seen["GET /admin/users positive"][200] > 0
    assert seen["GET /admin/clients positive"][200] > 0
    assert seen["POST /admin/users positive"][201] > 0
    for label in ADMIN_OPERATIONS:
        assert seen[f"{label} positive without credentials"][401] > 0, label
        assert sum(seen[f"{label} altered bearer token"].values()) == ADMIN_EXAMPLES, label
