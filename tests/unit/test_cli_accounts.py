"""The `users` and `clients` commands' output, run in process: `auth_service.cli.main` on a
real SQLite file, with stdout and stderr captured. No server is needed to read the store;
tests/integration covers the commands against a running issuer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auth_service.cli import main

PASSWORD = "correct horse battery staple"
SECRET = "svc-secret-of-at-least-32-characters"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    # main() configures logging as a command does (its own root handler): put pytest's back after.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("AUTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTH_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("AUTH_LOG_LEVEL", "WARNING")

    def command(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield command
    root.handlers[:] = handlers
    root.setLevel(level)


def test_users_list_and_show_print_every_user_as_json_without_the_hash(run: Any) -> None:
    assert run("users", "add", "alice", "--password-stdin", "--scope", "reports:read", stdin=PASSWORD + "\n")[0] == 0
    code, out, _ = run("users", "add", "Bob", "--password-stdin", stdin=PASSWORD + "\n")
    bob = json.loads(out)["sub"]
    listed = [json.loads(line) for line in run("users", "list")[1].splitlines()]
    assert [(u["username"], u["scope"], u["disabled"]) for u in listed] == [
        ("alice", "reports:read", False),
        ("Bob", "", False),
    ]
    assert listed[1]["sub"] == bob and all("password_hash" not in u for u in listed)
    assert json.loads(run("users", "show", "alice")[1]) == listed[0]
    run("users", "disable", "bob")  # names compare case-insensitively
    shown = json.loads(run("users", "show", "BOB")[1])
    assert shown["disabled"] is True and isinstance(shown["disabled_at"], int)
    assert set(shown) == {
        *("username", "sub", "scope", "disabled", "disabled_at", "password_changed_at"),
        *("name", "email", "email_verified"),
    }
    code, _, err = run("users", "show", "nobody")
    assert code == 1 and err.strip() == "auth-service: no user 'nobody'"


def test_clients_add_show_rotate_and_remove_print_json_and_never_a_hash(run: Any) -> None:
    assert run("clients", "list") == (0, "", "")  # a new database: no client, none with the password grant
    code, out, _ = run(
        "clients",
        "add",
        "web",
        "--public",
        "--grant=password",
        "--redirect-uri=https://app.example/cb",
        "--scope=reports:read",
        "--audience=https://api.example",
        "--name=Web",
        "--first-party",
    )
    web = json.loads(out)
    assert code == 0 and web == {
        "client_id": "web",
        "type": "public",
        "name": "Web",
        "grant_types": ["password"],
        "redirect_uris": ["https://app.example/cb"],
        "post_logout_redirect_uris": [],
        "scope": "reports:read",
        "audiences": ["https://api.example"],
        "first_party": True,
        "created_at": web["created_at"],
    }
    code, out, _ = run("clients", "add", "cron", "--generate-secret", "--scope=reports:read")
    generated = json.loads(out)["client_secret"]
    assert code == 0 and len(generated) >= 32 and json.loads(out)["grant_types"] == ["client_credentials"]
    assert run("clients", "add", "svc", "--secret-stdin", stdin=SECRET + "\n")[0] == 0
    assert generated not in run("clients", "show", "cron")[1] and "$argon2" not in run("clients", "list")[1]
    code, out, _ = run(
        "clients", "rotate-secret", "svc", "--secret-stdin", stdin="another-secret-of-at-least-32-chars\n"
    )
    assert code == 0 and json.loads(out) == {"client_id": "svc", "rotated": True}
    code, _, err = run("clients", "rotate-secret", "web", "--generate-secret")
    assert code == 2 and "public: it has no secret" in err
    code, out, _ = run("clients", "remove", "web")
    assert code == 0 and json.loads(out) == {"client_id": "web", "removed": True, "revocation_entries": 1}
    code, _, err = run("clients", "show", "web")
    assert code == 1 and err.strip() == "auth-service: no client 'web'"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["clients", "add", "c2", "--secret-stdin"], "s" * 31 + "\n", "client secret shorter than 32 characters"),
        (["clients", "add", "spa", "--public", "--grant=client_credentials"], "", "client_credentials is for"),
        (
            ["clients", "add", "spa", "--public", "--grant=password", "--redirect-uri=http://app.example/cb"],
            "",
            "http redirect URIs are for loopback only",
        ),
        (["clients", "add", "spa", "--public"], "", "a public client needs at least one --grant"),
    ],
)
def test_clients_add_refuses_what_breaks_a_rule_and_says_which(
    run: Any, args: list[str], stdin: str, message: str
) -> None:
    code, out, err = run(*args, stdin=stdin)
    assert (code, out) == (2, "") and message in err
    assert "s" * 31 not in err


def test_users_set_profile_sets_the_openid_claims_and_refuses_a_malformed_email(run: Any) -> None:
    assert run("users", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    code, out, _ = run("users", "set-profile", "alice", "--display-name", "Alice L", "--email", "a@example.com")
    assert code == 0 and json.loads(out) | {"sub": "-", "password_changed_at": 0} == {
        **{"username": "alice", "sub": "-", "scope": "", "disabled": False, "disabled_at": None},
        **{"password_changed_at": 0, "name": "Alice L", "email": "a@example.com", "email_verified": False},
    }
    code, _, err = run("users", "set-profile", "alice", "--email", "not an address")
    assert code != 0 and "email must be an address" in err
    assert json.loads(run("users", "show", "alice")[1])["email"] == "a@example.com"  # the refusal changed nothing


def test_users_consents_lists_nothing_until_granted_and_revoke_consent_says_when_there_is_none(run: Any) -> None:
    assert run("users", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    assert run("users", "consents", "alice") == (0, "", "")
    code, _, err = run("users", "revoke-consent", "alice", "third")
    assert code != 0 and "has not allowed client 'third'" in err
    code, _, err = run("users", "consents", "nobody")
    assert code != 0 and "no user 'nobody'" in err


def test_clients_add_keeps_post_logout_redirect_uris_checked_like_redirect_uris(run: Any) -> None:
    code, out, _ = run(
        "clients",
        "add",
        "spa",
        "--public",
        "--grant=authorization_code",
        "--redirect-uri=https://spa.example/cb",
        "--post-logout-redirect-uri=https://spa.example/bye",
    )
    assert code == 0 and json.loads(out)["post_logout_redirect_uris"] == ["https://spa.example/bye"]
    code, _, err = run(
        "clients",
        "add",
        "bad",
        "--public",
        "--grant=authorization_code",
        "--post-logout-redirect-uri=http://evil.example/",
    )
    assert code != 0 and "https" in err and '"bad"' not in run("clients", "list")[1]
