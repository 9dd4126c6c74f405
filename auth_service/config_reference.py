"""Print the configuration reference (Markdown) from the settings classes themselves.

    python -m auth_service.config_reference > docs/configuration.md

The reference is generated rather than written so that it cannot drift from the code:
`tests/unit/test_config_reference.py` regenerates it and compares it with the file, and
refuses a setting without a `description=`. Nothing here reads the environment: the
output depends on the classes only, so it is the same on every machine.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from resource_service.config import ResourceSettings

from .config import Settings

__all__ = ["COMMAND", "render", "undocumented"]

COMMAND = "python -m auth_service.config_reference > docs/configuration.md"

# (class, who reads it, what it configures); the order of the generated sections.
_SECTIONS: tuple[tuple[type[BaseSettings], str, str], ...] = (
    (
        Settings,
        "auth service (issuer)",
        (
            "Read by `auth-service serve` and by every other `auth-service` command (`users`, `clients`, "
            "`keys`, `revoke`, `db`), which must see the same database and keystore settings as the server."
        ),
    ),
    (
        ResourceSettings,
        "resource replicas and apps that mount the verifier",
        (
            "Read by `resource-service serve` and by `ResourceSettings()` in your own app (see "
            "[quickstart.md](quickstart.md)). Keyword arguments to `ResourceSettings(...)` take precedence "
            "over the environment."
        ),
    ),
)

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean (`true`/`false`, `1`/`0`)",
    Path: "path",
    SecretStr: "string, secret (hidden in `repr` and logs)",
}


def _prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def _type(annotation: Any) -> str:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _type(inner)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if origin is list:
        return f'JSON list of {_type(args[0])}s, e.g. `["https://app.example"]`'
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no reference wording for the type {annotation!r}: add it to _SCALARS")


def _literal(value: Any, *, seconds: bool) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value}` (relative to the working directory)"
    if isinstance(value, float) and value.is_integer():
        return f"`{value:g}`"
    if isinstance(value, int) and seconds and value >= 3600:
        return f"`{value}` ({_duration(value)})"
    return f"`{value}`"


def _duration(seconds: int) -> str:
    for unit, size in (("days", 86_400), ("hours", 3600)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds:,} seconds"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "none: required"
    factory = field.default_factory
    if factory is not None:
        if factory in (list, dict):  # an empty container: say it as it is
            return f"`{factory()}` (none)"
        doc = (factory.__doc__ or "").strip()
        if not doc:
            raise ValueError(f"default_factory {factory!r} needs a docstring saying what it computes")
        first = doc.splitlines()[0].rstrip(".")
        return "computed at start-up: " + (first[0].lower() + first[1:] if first[1:2].islower() else first)
    if field.default is None or field.default is PydanticUndefined:
        return "unset"
    seconds = "seconds" in (field.description or "").lower()
    return _literal(field.default, seconds=seconds)


_BOUNDS = (
    (annotated_types.Ge, "ge", "at least {}"),
    (annotated_types.Gt, "gt", "greater than {}"),
    (annotated_types.Le, "le", "at most {}"),
    (annotated_types.Lt, "lt", "less than {}"),
    (annotated_types.MinLen, "min_length", "at least {} character(s)"),
    (annotated_types.MaxLen, "max_length", "at most {} characters"),
)


def _constraints(field: FieldInfo) -> list[str]:
    out = []
    for item in field.metadata:
        for kind, attribute, wording in _BOUNDS:
            if isinstance(item, kind):
                value = getattr(item, attribute)
                out.append(wording.format(f"{value:g}" if isinstance(value, float) else f"{value:,}"))
    return out


def _fields(cls: type[BaseSettings]) -> Iterator[tuple[str, FieldInfo]]:
    prefix = _prefix(cls)
    for name, field in cls.model_fields.items():
        yield f"{prefix}{name.upper()}", field


def undocumented(*classes: type[BaseSettings]) -> list[str]:
    """Environment variables whose field has no `description=` (the reference would say nothing
    there), in `classes` or by default in both services' settings."""
    return [
        env
        for cls in classes or [section[0] for section in _SECTIONS]
        for env, field in _fields(cls)
        if not (field.description or "").strip()
    ]


def _entry(env: str, field: FieldInfo) -> list[str]:
    lines = [
        f"### `{env}`",
        "",
        (field.description or "").strip(),
        "",
        f"- type: {_type(field.annotation)}",
        f"- default: {_default(field)}",
    ]
    if constraints := _constraints(field):
        lines.append(f"- allowed: {', '.join(constraints)}")
    return [*lines, ""]


def render() -> str:
    """The whole reference; raises ValueError when a setting lacks a description."""
    if missing := undocumented():
        raise ValueError(f"settings without a description: {', '.join(missing)}")
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the settings classes; do not edit. Regenerate with:",
        f"     {COMMAND} -->",
        "",
        "Every setting is an environment variable. This file is generated from",
        "`auth_service.config.Settings` and `resource_service.config.ResourceSettings` by",
        f"`{COMMAND}`; a test fails when it",
        "is out of date. Values that would make a service unsafe are refused at start-up with a",
        "message naming the setting.",
        "",
    ]
    for cls, who, note in _SECTIONS:
        out += [f"## `{_prefix(cls)}*`: {who}", "", note, ""]
        for env, field in _fields(cls):
            out += _entry(env, field)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    try:
        sys.stdout.write(render())
    except (ValueError, TypeError) as exc:
        print(f"config_reference: {exc}", file=sys.stderr)
        sys.exit(1)
