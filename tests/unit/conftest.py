"""Fixtures shared by the verifier's unit tests."""

from __future__ import annotations

from typing import Any

import pytest

import resource_service.verifier as verifier_module


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full (signature-checking) decode the verifier does: a cache hit adds none."""
    calls: list[str] = []
    real = verifier_module.decode_with_key

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(verifier_module, "decode_with_key", counting)
    return calls
