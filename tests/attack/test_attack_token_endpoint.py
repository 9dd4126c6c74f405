"""`POST /token` abused: odd grants, repeated and oversized parameters, tricky usernames and
passwords, user enumeration and brute force.

Every refusal is an RFC 6749 section 5.2 body (`error`, `error_description`, status, and
`Cache-Control: no-store`), and no attempt changes a user: the real ones still log in as
themselves.

Timing is not asserted anywhere: a wall-clock comparison would be flaky on a shared machine.
That an unknown user costs the same Argon2 work as a known one is pinned by
tests/unit/test_passwords.py (the dummy hash) and by `Grants.password` calling
`PasswordHasher.verify` on both paths; here the answers, headers and lockouts are compared.
"""

from __future__ import annotations

import base64
import concurrent.futures
import gzip
import http.client
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.attack.forge import assert_oauth_error
from tests.conftest import PASSWORD, Stack, claims_of

pytestmark = pytest.mark.slow

FORM = "application/x-www-form-urlencoded"
BAD_TYPE = f"content type must be {FORM}"
BAD_GRANT = "grant_type must be authorization_code, password, refresh_token or client_credentials"
BAD_LOGIN = "invalid username or password"
TOO_LONG = "username or password too long"
MAX_FAILURES = 3  # per (username, address)
MAX_PER_ADDRESS = 4  # above MAX_FAILURES, so one address can reach the pair's lockout


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """alice logs in throughout; victim gets locked out at one address;
    svc is a confidential client.

    Each request comes from an address of its own, as through a balancer on loopback (trusted
    with AUTH_TRUSTED_PROXIES), so the per-address limit can be small here without starving the
    other tests; the spraying test sends from one fixed address.
    """
    stack = Stack(tmp_path_factory.mktemp("attack-token"))
    try:
        stack.start_auth(
            AUTH_LOGIN_MAX_FAILURES=str(MAX_FAILURES),
            AUTH_LOGIN_MAX_ATTEMPTS_PER_IP=str(MAX_PER_ADDRESS),
            AUTH_TRUSTED_PROXIES='["127.0.0.1"]',
        )
        with concurrent.futures.ThreadPoolExecutor() as pool:  # each is a Python start and a hash
            added = [pool.submit(stack.add_user, name) for name in ("alice", "victim")]
            added.append(
                pool.submit(stack.add_client, "svc", "svc-secret-of-at-least-32-characters", scope="reports:read")
            )
            added.append(pool.submit(stack.add_client, "guessed", "guessed-secret-of-at-least-32-chars"))
            for job in added:
                job.result()
        stack.http.event_hooks = {"request": [_own_address]}
        yield stack
    finally:
        stack.stop()


def _own_address(request: httpx.Request) -> None:
    request.headers.setdefault(
        "X-Forwarded-For", f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    )


@pytest.fixture(scope="module")
def alice(issuer: Stack) -> str:
    """alice's sub."""
    return str(claims_of(str(issuer.login("alice")["access_token"]))[1]["sub"])


def raw(body: str | bytes, content_type: str | None = FORM, **headers: str) -> dict[str, Any]:
    """httpx keyword arguments for a body sent exactly as given."""
    if content_type is not None:
        headers["content-type"] = content_type
    return {"content": body.encode() if isinstance(body, str) else body, "headers": headers}


def login_form(username: str, password: str = PASSWORD, **extra: str) -> dict[str, Any]:
    return {"data": {"grant_type": "password", "username": username, "password": password, **extra}}


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _chunks(size: int) -> Iterator[bytes]:
    yield b"grant_type=password&username="
    for _ in range(size // 1024):
        yield b"a" * 1024


# name -> (httpx keyword arguments, status, error, description)
ABUSE: dict[str, tuple[dict[str, Any], int, str, str]] = {
    # RFC 6749 section 5.2 unsupported_grant_type; section 3.2: parameters come in the POST body.
    **{
        f"grant_type {grant}": ({"data": {"grant_type": grant}}, 400, "unsupported_grant_type", BAD_GRANT)
        for grant in (
            "AUTHORIZATION_CODE",
            "implicit",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "PASSWORD",
            "password ",
            "password\t",
            "p\u0430ssword",
            "client_credentials,password",
        )
    },
    "grant_type split by a semicolon (CVE-2021-23336)": (
        raw("grant_type=password;username=alice;password=x"),
        400,
        "unsupported_grant_type",
        BAD_GRANT,
    ),
    "grant_type with a NUL byte": (
        raw("grant_type=password%00"),
        400,
        "invalid_request",
        "parameter 'grant_type' contains control characters",
    ),
    "grant_type of 5000 characters": (
        {"data": {"grant_type": "p" * 5000}},
        400,
        "invalid_request",
        "parameter 'grant_type' too long",
    ),
    "grant_type empty": (
        {"data": {"grant_type": "", "username": "alice"}},
        400,
        "invalid_request",
        "missing parameter 'grant_type'",
    ),
    "grant_type missing": (
        {"data": {"username": "alice", "password": PASSWORD}},
        400,
        "invalid_request",
        "missing parameter 'grant_type'",
    ),
    "credentials in the query string only": (
        {"params": {"grant_type": "password", "username": "alice", "password": PASSWORD}, **raw("")},
        400,
        "invalid_request",
        "missing parameter 'grant_type'",
    ),
    "refresh_token grant without a refresh_token": (
        {"data": {"grant_type": "refresh_token"}},
        400,
        "invalid_request",
        "missing parameter 'refresh_token'",
    ),
    "refresh_token grant with an empty refresh_token": (
        {"data": {"grant_type": "refresh_token", "refresh_token": ""}},
        400,
        "invalid_request",
        "missing parameter 'refresh_token'",
    ),
    "password grant without a username": (
        {"data": {"grant_type": "password", "password": PASSWORD}},
        400,
        "invalid_request",
        "missing parameter 'username'",
    ),
    "password grant with an empty password": (
        login_form("alice", ""),
        400,
        "invalid_request",
        "missing parameter 'password'",
    ),
    "client_credentials by a public client": (
        {"data": {"grant_type": "client_credentials"}},
        401,
        "invalid_client",
        "client authentication required",
    ),
    # Public clients name themselves; a name past the documented 128 characters names no client
    # (and its tokens would outgrow what /token accepts back).
    "a public client_id of 129 characters": (
        login_form("alice", client_id="c" * 129),
        401,
        "invalid_client",
        "client authentication failed",
    ),
    "a public client_id of 3000 characters": (
        login_form("alice", client_id="c" * 3000),
        401,
        "invalid_client",
        "client authentication failed",
    ),
    # RFC 9110 section 5.3: Authorization is a singleton; a proxy and the app may read different ones.
    "two Authorization headers, the real client's first": (
        {
            "data": {"grant_type": "client_credentials"},
            "headers": [
                ("Authorization", _basic("svc", "svc-secret-of-at-least-32-characters")),
                ("Authorization", _basic("evil", "x")),
            ],
        },
        400,
        "invalid_request",
        "several Authorization headers were sent",
    ),
    "two Authorization headers, the real client's last": (
        {
            "data": {"grant_type": "client_credentials"},
            "headers": [
                ("Authorization", _basic("evil", "x")),
                ("Authorization", _basic("svc", "svc-secret-of-at-least-32-characters")),
            ],
        },
        400,
        "invalid_request",
        "several Authorization headers were sent",
    ),
    "two client authentication methods at once": (
        {
            **login_form("alice", client_id="svc", client_secret="svc-secret-of-at-least-32-characters"),
            "auth": ("svc", "svc-secret-of-at-least-32-characters"),
        },
        400,
        "invalid_request",
        "use one client authentication method, not two",
    ),
    # RFC 6749 section 3.2: request and response parameters MUST NOT be included more than once.
    **{
        f"{name} twice": (raw(body), 400, "invalid_request", f"parameter '{name}' repeated")
        for name, body in (
            ("grant_type", "grant_type=password&grant_type=password&username=alice&password=x"),
            ("username", "grant_type=password&username=bob&username=alice&password=x"),
            ("password", "grant_type=password&username=alice&password=x&password=y"),
            ("client_id", "grant_type=password&client_id=a&client_id=svc&username=alice&password=x"),
            ("scope", "grant_type=password&scope=profile&scope=admin&username=alice&password=x"),
            ("refresh_token", "grant_type=refresh_token&refresh_token=a&refresh_token=b"),
        )
    },
    "grant_type twice with different values": (
        raw("grant_type=client_credentials&grant_type=password"),
        400,
        "invalid_request",
        "parameter 'grant_type' repeated",
    ),
    "grant_type twice, once percent-encoded": (
        raw("grant_type=password&gr%61nt_type=password"),
        400,
        "invalid_request",
        "parameter 'grant_type' repeated",
    ),
    "seventeen parameters": (
        raw("&".join(f"p{i}=x" for i in range(17))),
        400,
        "invalid_request",
        "malformed form body",
    ),
    # Bounded input (forms.py): 8 KiB of body, 4096 characters a value.
    "a body of 9000 bytes": (
        {"data": {"grant_type": "password", "username": "a" * 9000}},
        400,
        "invalid_request",
        "request body larger than 8192 bytes",
    ),
    "a chunked body of 64 KiB without Content-Length": (
        {"content": _chunks(65536), "headers": {"content-type": FORM}},
        400,
        "invalid_request",
        "request body larger than 8192 bytes",
    ),
    "a value of 4097 characters": (login_form("a" * 4097), 400, "invalid_request", "parameter 'username' too long"),
    "a JSON body": (
        {"json": {"grant_type": "password", "username": "alice", "password": PASSWORD}},
        400,
        "invalid_request",
        BAD_TYPE,
    ),
    "a multipart body": ({"files": {"x": b"y"}, "data": {"grant_type": "password"}}, 400, "invalid_request", BAD_TYPE),
    "a text/plain body": (raw("grant_type=password", "text/plain"), 400, "invalid_request", BAD_TYPE),
    "no content type": (raw("grant_type=password", None), 400, "invalid_request", BAD_TYPE),
    "a content type with our type as a prefix": (
        raw("grant_type=password", FORM + "-evil"),
        400,
        "invalid_request",
        BAD_TYPE,
    ),
    "a gzip-compressed body (decompression bomb)": (
        raw(gzip.compress(b"grant_type=password&username=" + b"a" * 10**6), **{"content-encoding": "gzip"}),
        400,
        "invalid_request",
        "malformed form body",
    ),
    "raw UTF-8 in the body instead of percent-escapes": (
        raw("grant_type=password&username=\u00e4lice&password=x"),
        400,
        "invalid_request",
        "malformed form body",
    ),
    # RFC 6749 section 3.3: scope tokens are %x21 / %x23-5B / %x5D-7E.
    "a scope with a quote": (login_form("alice", scope='"admin"'), 400, "invalid_request", "malformed scope"),
    "a scope with two spaces in a row": (
        login_form("alice", scope="profile  admin"),
        400,
        "invalid_request",
        "malformed scope",
    ),
    "a scope with a non-ASCII letter": (
        login_form("alice", scope="\u0430dmin"),
        400,
        "invalid_request",
        "malformed scope",
    ),
}


@pytest.mark.parametrize("case", list(ABUSE.values()), ids=list(ABUSE))
def test_token_endpoint_abuse_gets_the_exact_rfc6749_error(
    issuer: Stack, case: tuple[dict[str, Any], int, str, str]
) -> None:
    assert issuer.auth is not None
    kwargs, status, error, description = case
    response = issuer.http.post(f"{issuer.auth.url}/token", **kwargs)
    assert_oauth_error(response, status=status, error=error, description=description)


def test_a_content_length_of_a_gibibyte_is_refused_before_the_body_is_read(issuer: Stack) -> None:
    assert issuer.auth is not None
    connection = http.client.HTTPConnection(urlsplit(issuer.auth.url).netloc, timeout=10)
    try:
        connection.putrequest("POST", "/token")
        connection.putheader("Content-Type", FORM)
        connection.putheader("Content-Length", str(2**30))
        connection.endheaders(b"grant_type=password")
        answer = connection.getresponse()
        assert answer.status == 400
        assert json.loads(answer.read()) == {
            "error": "invalid_request",
            "error_description": "request body larger than 8192 bytes",
        }
    finally:
        connection.close()


# name -> (username, password, None when it logs in as alice, else (error, description))
ALICE = None
LOGINS: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    # Usernames compare in NFKC + casefold (storage/sql.py username_key): a lookalike that folds
    # to alice IS alice, so it can never be a second account; anything else is nobody.
    "username in upper case": ("ALICE", PASSWORD, ALICE),
    "username in fullwidth letters (NFKC)": ("\uff41\uff4c\uff49\uff43\uff45", PASSWORD, ALICE),
    "username with a zero-width space": ("ali\u200bce", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a zero-width joiner": ("alice\u200d", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username behind a right-to-left override": ("\u202eecila", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a Cyrillic a (homoglyph)": ("\u0430lice", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a combining accent": ("alice\u0301", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a byte order mark": ("\ufeffalice", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a soft hyphen": ("al\u00adice", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a trailing space": ("alice ", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a trailing tab": ("alice\t", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a line separator": ("alice\u2028", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username of 256 ligatures NFKC expands 18-fold": ("\ufdfa" * 256, PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username SQL injection": ("alice' OR '1'='1' --", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username LIKE wildcards": ("al%", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username one LIKE wildcard": ("_lice", PASSWORD, ("invalid_grant", BAD_LOGIN)),
    "username with a NUL byte": (
        "alice\x00",
        PASSWORD,
        ("invalid_request", "parameter 'username' contains control characters"),
    ),
    "username with CR LF (log injection)": (
        "alice\r\nlogin_success sub=admin",
        PASSWORD,
        ("invalid_request", "parameter 'username' contains control characters"),
    ),
    "username with DEL": (
        "alice\x7f",
        PASSWORD,
        ("invalid_request", "parameter 'username' contains control characters"),
    ),
    "username of 257 characters": ("a" * 257, PASSWORD, ("invalid_request", TOO_LONG)),
    "username of 10,000 characters": (
        "a" * 10_000,
        PASSWORD,
        ("invalid_request", "request body larger than 8192 bytes"),
    ),
    "password of 1025 characters": ("alice", "p" * 1025, ("invalid_request", TOO_LONG)),
    "password with a NUL byte after the right one": (
        "alice",
        PASSWORD + "\x00",
        ("invalid_request", "parameter 'password' contains control characters"),
    ),
    "password with a NUL byte for a C library to cut at": (
        "alice",
        "\x00" + PASSWORD,
        ("invalid_request", "parameter 'password' contains control characters"),
    ),
    "password of 1024 characters for nobody": ("nobody-" + "x" * 8, "p" * 1024, ("invalid_grant", BAD_LOGIN)),
}


@pytest.mark.parametrize("case", list(LOGINS.values()), ids=list(LOGINS))
def test_a_tricky_username_or_password_logs_in_as_nobody_else(
    issuer: Stack, alice: str, case: tuple[str, str, tuple[str, str] | None]
) -> None:
    username, password, refusal = case
    response = issuer.token(grant_type="password", username=username, password=password)
    if refusal is ALICE:
        assert response.status_code == 200, response.text
        assert claims_of(response.json()["access_token"])[1]["sub"] == alice
    else:
        assert_oauth_error(response, status=400, error=refusal[0], description=refusal[1])
    # Nothing was created or changed: alice is still alice, with her password.
    assert claims_of(str(issuer.login("alice")["access_token"]))[1]["sub"] == alice


@pytest.mark.parametrize("password", [PASSWORD + " ", PASSWORD.upper()], ids=["with a trailing space", "in upper case"])
def test_a_near_miss_of_the_right_password_is_a_wrong_password(issuer: Stack, password: str) -> None:
    response = issuer.token(grant_type="password", username="alice", password=password)
    assert_oauth_error(response, status=400, error="invalid_grant", description=BAD_LOGIN)


def _answer(response: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    """Everything a client sees but the Date and X-Request-Id headers (fresh on every answer)."""
    headers = tuple(sorted((k, v) for k, v in response.headers.items() if k not in ("date", "x-request-id")))
    return response.status_code, response.content, headers


def test_an_unknown_user_and_a_wrong_password_get_byte_identical_answers(issuer: Stack) -> None:
    wrong = issuer.token(grant_type="password", username="alice", password="not her password")
    unknown = issuer.token(grant_type="password", username=f"nobody-{secrets.token_hex(4)}", password="x")
    folded = issuer.token(grant_type="password", username="\uff2e\uff2f\uff22\uff2f\uff24\uff39", password="x")
    assert _answer(wrong) == _answer(unknown) == _answer(folded)
    assert_oauth_error(wrong, status=400, error="invalid_grant", description=BAD_LOGIN)


def test_brute_force_locks_the_guessers_address_out_of_the_username_in_every_spelling_but_no_one_else(
    issuer: Stack, alice: str
) -> None:
    assert issuer.auth is not None
    ghost = f"ghost-{secrets.token_hex(4)}"  # locking out must not tell a real account from none

    def login(username: str, password: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return issuer.http.post(
            f"{issuer.auth.url}/token",
            headers=headers,  # type: ignore[union-attr]
            data={"grant_type": "password", "username": username, "password": password},
        )

    guessers = {"victim": {"X-Forwarded-For": "198.51.100.7"}, ghost: {"X-Forwarded-For": "198.51.100.17"}}
    answers: dict[str, list[httpx.Response]] = {"victim": [], ghost: []}
    for name, sent in answers.items():
        for attempt in range(MAX_FAILURES):
            sent.append(login(name, f"guess-{attempt}", guessers[name]))
    assert len({_answer(r) for r in answers["victim"] + answers[ghost]}) == 1
    assert_oauth_error(answers["victim"][0], status=400, error="invalid_grant", description=BAD_LOGIN)
    locked = {
        name: [
            login(spelling, PASSWORD, guessers[name])
            for spelling in (name, name.upper(), "".join(chr(ord(c) + 0xFEE0) for c in name))
        ]
        for name in answers
    }  # the right password, in three spellings of the name
    for response in locked["victim"] + locked[ghost]:
        assert_oauth_error(
            response, status=429, error="temporarily_unavailable", description="too many login attempts; retry later"
        )
        assert 1 <= int(response.headers["retry-after"]) <= 300
    assert _answer(locked["victim"][0])[:2] == _answer(locked[ghost][0])[:2]
    assert login("victim", PASSWORD).status_code == 200, "the victim, from her own address, logs in"
    assert claims_of(str(issuer.login("alice")["access_token"]))[1]["sub"] == alice, "another user is unaffected"


def test_guessing_a_client_secret_at_any_endpoint_locks_that_address_out_of_that_client_only(issuer: Stack) -> None:
    assert issuer.auth is not None
    url = issuer.auth.url
    guesser = {"X-Forwarded-For": "198.51.100.8"}
    guesses = [
        ("token", {"grant_type": "client_credentials"}),
        ("introspect", {"token": "x"}),
        ("revoke", {"token": "x"}),
    ]
    for attempt in range(MAX_FAILURES):  # one address, every endpoint: one count
        path, form = guesses[attempt % len(guesses)]
        wrong = issuer.http.post(
            f"{url}/{path}", data=form, headers={**guesser, "Authorization": _basic("guessed", f"guess-{attempt}")}
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    for path, form in guesses:  # from the guesser's address, even the right secret waits
        stopped = issuer.http.post(
            f"{url}/{path}",
            data=form,
            headers={**guesser, "Authorization": _basic("guessed", "guessed-secret-of-at-least-32-chars")},
        )
        assert_oauth_error(
            stopped, status=429, error="temporarily_unavailable", description="too many login attempts; retry later"
        )
        assert 1 <= int(stopped.headers["retry-after"]) <= 300
    own = issuer.http.post(
        f"{url}/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic("guessed", "guessed-secret-of-at-least-32-chars")},
    )
    assert own.status_code == 200, "the client, from its own address, is never refused its right secret"
    other = issuer.http.post(
        f"{url}/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic("svc", "svc-secret-of-at-least-32-characters")},
    )
    assert other.status_code == 200, "another client is unaffected"


def test_password_spraying_from_one_address_is_stopped_by_the_per_address_limit(issuer: Stack, alice: str) -> None:
    sprayer = {"X-Forwarded-For": "203.0.113.9"}
    for i in range(MAX_PER_ADDRESS):  # one common password against many (here unknown) usernames
        sprayed = issuer.http.post(
            f"{issuer.auth.url}/token",
            headers=sprayer,
            data={  # type: ignore[union-attr]
                "grant_type": "password",
                "username": f"user{i}",
                "password": "Summer2024!",
            },
        )
        assert_oauth_error(sprayed, status=400, error="invalid_grant", description=BAD_LOGIN)
    for username, password in (("user9", "Summer2024!"), ("alice", PASSWORD)):  # even the right password
        stopped = issuer.http.post(
            f"{issuer.auth.url}/token",
            headers=sprayer,
            data={  # type: ignore[union-attr]
                "grant_type": "password",
                "username": username,
                "password": password,
            },
        )
        assert_oauth_error(
            stopped, status=429, error="temporarily_unavailable", description="too many login attempts; retry later"
        )
        assert 1 <= int(stopped.headers["retry-after"]) <= 300
    assert claims_of(str(issuer.login("alice")["access_token"]))[1]["sub"] == alice, "from elsewhere she logs in"


def test_a_percent_encoded_lone_surrogate_is_a_malformed_body(issuer: Stack) -> None:
    assert issuer.auth is not None
    for escape in ("%ED%A0%80", "%C0%AF", "%F4%90%80%80", "%FF"):  # surrogate, overlong, > U+10FFFF, not UTF-8
        body = f"grant_type=password&username=alice{escape}&password={quote(PASSWORD)}"
        response = issuer.http.post(f"{issuer.auth.url}/token", **raw(body))
        assert_oauth_error(response, status=400, error="invalid_request", description="malformed form body")
