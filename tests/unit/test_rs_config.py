"""resource_service.config: defaults, the RESOURCE_ prefix, and refusing unsafe values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resource_service.config import ResourceSettings

AUTH = "https://auth.internal:8000"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("RESOURCE_"):
            monkeypatch.delenv(name)


def test_defaults():
    settings = ResourceSettings(auth_url=AUTH)
    assert settings.issuer == AUTH
    assert settings.audience == "api"
    assert settings.jwks_min_refetch_interval == 10.0
    assert settings.revocation_poll_interval == 5.0
    assert settings.revocation_push is True
    assert settings.max_revocation_staleness is None
    assert settings.leeway == 30.0
    assert settings.token_cache_size == 10_000
    assert (settings.host, settings.port) == ("127.0.0.1", 8001)
    assert settings.replica_id  # hostname-pid
    assert (settings.log_format, settings.log_level, settings.access_log) == ("auto", "INFO", False)
    assert settings.docs_client_id == "docs"
    assert (settings.http_header_timeout, settings.http_body_timeout, settings.http_max_header_bytes) == (
        10.0,
        30.0,
        16_384,
    )


def test_values_are_read_from_resource_prefixed_environment(monkeypatch):
    monkeypatch.setenv("RESOURCE_AUTH_URL", AUTH)
    monkeypatch.setenv("RESOURCE_ISSUER", "https://auth.example")
    monkeypatch.setenv("RESOURCE_ALLOW_INSECURE_ISSUER", "true")
    monkeypatch.setenv("RESOURCE_ALLOWED_METADATA_HOSTS", '["Keys.Example:8443"]')
    monkeypatch.setenv("RESOURCE_AUDIENCE", "reports-api")
    monkeypatch.setenv("RESOURCE_REPLICA_ID", "r7")
    monkeypatch.setenv("RESOURCE_JWKS_MIN_REFETCH_INTERVAL", "20")
    monkeypatch.setenv("RESOURCE_REVOCATION_POLL_INTERVAL", "2")
    monkeypatch.setenv("RESOURCE_REVOCATION_PUSH", "false")
    monkeypatch.setenv("RESOURCE_REDIS_URL", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("RESOURCE_REDIS_PREFIX", "prod:")
    monkeypatch.setenv("RESOURCE_MAX_REVOCATION_STALENESS", "30")
    monkeypatch.setenv("RESOURCE_LEEWAY", "5")
    monkeypatch.setenv("RESOURCE_TOKEN_CACHE_SIZE", "50")
    monkeypatch.setenv("RESOURCE_METRICS_ENABLED", "false")
    monkeypatch.setenv("RESOURCE_LOG_FORMAT", "json")
    monkeypatch.setenv("RESOURCE_LOG_LEVEL", "debug")  # any case
    monkeypatch.setenv("RESOURCE_ACCESS_LOG", "true")
    monkeypatch.setenv("RESOURCE_DOCS_CLIENT_ID", "reports-docs")
    monkeypatch.setenv("RESOURCE_CORS_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("RESOURCE_HOST", "0.0.0.0")
    monkeypatch.setenv("RESOURCE_PORT", "9000")
    monkeypatch.setenv("RESOURCE_HTTP_HEADER_TIMEOUT", "5")
    monkeypatch.setenv("RESOURCE_HTTP_BODY_TIMEOUT", "6")
    monkeypatch.setenv("RESOURCE_HTTP_MAX_HEADER_BYTES", "8192")
    monkeypatch.setenv("RESOURCE_HTTP_LIMIT_CONCURRENCY", "100")
    monkeypatch.setenv("RESOURCE_HTTP_BACKLOG", "64")
    settings = ResourceSettings()
    assert settings.model_dump() == {
        "auth_url": AUTH,
        "issuer": "https://auth.example",
        "allow_insecure_issuer": True,
        "allowed_metadata_hosts": ["keys.example:8443"],
        "audience": "reports-api",
        "replica_id": "r7",
        "jwks_min_refetch_interval": 20.0,
        "revocation_snapshot_interval": 600.0,
        "revocation_poll_interval": 2.0,
        "revocation_push": False,
        "redis_url": "redis://127.0.0.1:6379/1",
        "redis_prefix": "prod:",
        "max_revocation_staleness": 30.0,
        "leeway": 5.0,
        "token_cache_size": 50,
        "metrics_enabled": False,
        "log_format": "json",
        "log_level": "DEBUG",
        "access_log": True,
        "docs_client_id": "reports-docs",
        "cors_origins": ["https://app.example"],
        "host": "0.0.0.0",
        "port": 9000,
        "http_header_timeout": 5.0,
        "http_body_timeout": 6.0,
        "http_max_header_bytes": 8192,
        "http_limit_concurrency": 100,
        "http_backlog": 64,
    }
    assert settings.expected_issuer == "https://auth.example"


def test_auth_url_is_required():
    with pytest.raises(ValidationError):
        ResourceSettings()


def test_trailing_slash_of_auth_url_is_dropped_and_the_default_issuer_follows():
    settings = ResourceSettings(auth_url=AUTH + "/")
    assert settings.auth_url == AUTH and settings.expected_issuer == AUTH


UNSAFE = {
    "leeway above five minutes": {"leeway": 301},
    "negative leeway": {"leeway": -1},
    "refetch interval below a second": {"jwks_min_refetch_interval": 0.1},
    "negative refetch interval": {"jwks_min_refetch_interval": -10},
    "zero poll interval": {"revocation_poll_interval": 0},
    "negative staleness bound": {"max_revocation_staleness": -1},
    "staleness bound the poll cannot meet": {
        "revocation_poll_interval": 10,
        "max_revocation_staleness": 10,
    },
    "negative cache size": {"token_cache_size": -1},
    "port out of range": {"port": 70000},
    "auth url without scheme": {"auth_url": "auth.internal:8000"},
    "auth url with another scheme": {"auth_url": "ftp://auth.internal"},
    "auth url with a query": {"auth_url": AUTH + "/?x=1"},
    "issuer that is not a URL": {"issuer": "auth"},
    "metadata host with a scheme": {"allowed_metadata_hosts": ["https://keys.example"]},
    "replica id with a newline": {"replica_id": "r1\r\nSet-Cookie: x=1"},
    "replica id with a space": {"replica_id": "r 1"},
    "unknown log format": {"log_format": "xml"},
    "unknown log level": {"log_level": "verbose"},
    "unknown setting": {"leway": 10},
}


@pytest.mark.parametrize("values", UNSAFE.values(), ids=UNSAFE.keys())
def test_unsafe_or_invalid_values_are_refused(values):
    with pytest.raises(ValidationError):
        ResourceSettings(**{"auth_url": AUTH, **values})


PLAIN_HTTP = {
    "issuer on another host": {"issuer": "http://auth.example"},
    "auth url standing in for the issuer": {"auth_url": "http://auth.internal:8000"},
    "any interface": {"auth_url": "http://0.0.0.0:8000"},
    "a name that merely starts like loopback": {"auth_url": "http://127.0.0.1.evil.example"},
}


@pytest.mark.parametrize("values", PLAIN_HTTP.values(), ids=PLAIN_HTTP.keys())
def test_plain_http_issuer_off_loopback_is_refused_naming_the_setting(values):
    with pytest.raises(ValidationError, match="RESOURCE_ALLOW_INSECURE_ISSUER"):
        ResourceSettings(**{"auth_url": AUTH, **values})
    assert ResourceSettings(**{"auth_url": AUTH, **values, "allow_insecure_issuer": True})


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "http://127.8.9.10", "http://[::1]:8000", "http://localhost:8000", "http://LOCALHOST"],
)
def test_plain_http_issuer_on_loopback_is_accepted(url):
    assert ResourceSettings(auth_url=url).expected_issuer == url


def test_internal_http_address_is_fine_when_the_issuer_is_https():
    # The metadata's key and feed URLs must stay at the (https) issuer, so discovery over
    # the internal address cannot redirect trust.
    settings = ResourceSettings(auth_url="http://auth.internal:8000", issuer="https://auth.example")
    assert settings.expected_issuer == "https://auth.example"


def test_a_refusal_never_echoes_a_redis_password():
    with pytest.raises(ValidationError) as refused:
        ResourceSettings(auth_url="http://auth.example", redis_url="redis://:hunter2-secret@redis:6379/0")
    assert "hunter2-secret" not in str(refused.value)
