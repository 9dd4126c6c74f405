"""auth_service.config: settings that would make the issuer unsafe are refused at start-up."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from auth_service.config import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AUTH_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("issuer", ["http://auth.example", "http://0.0.0.0:8000", "http://10.0.0.5:8000"])
def test_plain_http_issuer_off_loopback_is_refused_naming_the_setting(issuer):
    with pytest.raises(ValidationError, match="AUTH_ALLOW_INSECURE_ISSUER"):
        Settings(issuer=issuer)
    assert Settings(issuer=issuer, allow_insecure_issuer=True).issuer == issuer


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:8000", "http://[::1]:8000", "http://localhost:8000", "https://auth.example"]
)
def test_https_or_loopback_issuer_is_accepted(issuer):
    assert Settings(issuer=issuer).issuer == issuer


def test_the_insecure_opt_in_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUTH_ISSUER", "http://auth.internal:8000")
    monkeypatch.setenv("AUTH_ALLOW_INSECURE_ISSUER", "true")
    assert Settings().issuer == "http://auth.internal:8000"


def test_a_keys_passphrase_under_16_characters_is_refused_naming_the_setting():
    with pytest.raises(ValidationError, match="AUTH_KEYS_PASSPHRASE must be at least 16 characters"):
        Settings(keys_passphrase="a")
    with pytest.raises(ValidationError, match="AUTH_KEYS_PASSPHRASE"):
        Settings(keys_passphrase="fifteen chars!!")
    assert Settings(keys_passphrase="sixteen chars!!!").keys_passphrase is not None
    assert Settings().keys_passphrase is None


@pytest.mark.parametrize(
    "values",
    [{"keys_passphrase": "short-secret"}, {"issuer": "http://auth.example", "keys_passphrase": "a-long-enough-secret"}],
    ids=["the refused passphrase", "another refused value"],
)
def test_a_refusal_never_echoes_the_passphrase(values):
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    assert values["keys_passphrase"] not in str(refused.value)


@pytest.mark.parametrize(
    "name,default,accepted,refused",
    [
        pytest.param("revocation_pull_max_age", 2, ("0", 0), ("-1", "61", "1.5"), id="pull-max-age-0-to-60-s"),
        pytest.param("revocation_tail_interval", 0.1, ("0.5", 0.5), ("0", "0.001", "5.5"), id="tail-10-ms-to-5-s"),
    ],
)
def test_revocation_feed_timings_are_read_from_the_environment_within_their_range(
    monkeypatch, name, default, accepted, refused
):
    assert getattr(Settings(), name) == default
    monkeypatch.setenv(f"AUTH_{name.upper()}", accepted[0])
    assert getattr(Settings(), name) == accepted[1]
    for value in refused:
        monkeypatch.setenv(f"AUTH_{name.upper()}", value)
        with pytest.raises(ValidationError, match=name):
            Settings()
