"""docs/configuration.md is generated from the settings classes and must match them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from auth_service.config import Settings
from auth_service.config_reference import COMMAND, render, undocumented
from resource_service.config import ResourceSettings

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_reference_in_docs_matches_the_settings_classes() -> None:
    assert REFERENCE.read_text() == render(), f"docs/configuration.md is out of date: run `{COMMAND}`"


def test_every_setting_of_both_services_has_a_description() -> None:
    assert undocumented() == [], "add a description= to these settings, then run " + COMMAND


def test_a_setting_without_a_description_is_reported() -> None:
    class Example(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="EXAMPLE_")
        said: int = Field(1, description="documented")
        silent: int = 2

    assert undocumented(Example) == ["EXAMPLE_SILENT"]


def test_every_variable_appears_with_its_prefix() -> None:
    text = render()
    names = [f"AUTH_{n.upper()}" for n in Settings.model_fields] + [
        f"RESOURCE_{n.upper()}" for n in ResourceSettings.model_fields
    ]
    assert [name for name in names if f"### `{name}`" not in text] == []


def test_the_reference_does_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render()
    monkeypatch.setenv("AUTH_ACCESS_TOKEN_TTL", "60")
    monkeypatch.setenv("RESOURCE_LEEWAY", "5")
    assert render() == before


def test_defaults_constraints_and_choices_are_spelled_out() -> None:
    text = render()
    ttl = text.split("### `AUTH_ACCESS_TOKEN_TTL`", 1)[1].split("###", 1)[0]
    assert "- default: `900`" in ttl and "at least 30, at most 86,400" in ttl
    alg = text.split("### `AUTH_SIGNING_ALG`", 1)[1].split("###", 1)[0]
    assert "one of `RS256`, `ES256`, `Ed25519`, `EdDSA`" in alg
    required = text.split("### `RESOURCE_AUTH_URL`", 1)[1].split("###", 1)[0]
    assert "required" in required
    cores = text.split("### `AUTH_PASSWORD_HASH_CONCURRENCY`", 1)[1].split("###", 1)[0]
    assert "computed at start-up: the number of CPU cores" in cores
