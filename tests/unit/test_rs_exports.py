"""What `import resource_service` offers is a contract: pin it."""

from __future__ import annotations

import resource_service


def test_public_names_are_pinned():
    assert sorted(resource_service.__all__) == sorted(
        [
            "Authenticated",
            "AuthError",
            "BearerAuthMiddleware",
            "ClientCredentials",
            "InsufficientScope",
            "InvalidRequest",
            "InvalidToken",
            "MissingCredentials",
            "ReplicaIdMiddleware",
            "RequestIdMiddleware",
            "ResourceSettings",
            "TokenError",
            "TokenRequestError",
            "Unavailable",
            "UserLogin",
            "Verifier",
            "create_app",
            "current_claims",
            "install_error_handlers",
            "metrics_endpoint",
        ]
    )


def test_every_public_name_is_defined_and_documented():
    for name in resource_service.__all__:
        member = getattr(resource_service, name)
        assert member.__doc__, name


def test_error_classes_carry_their_rfc_6750_code_and_status():
    errors = {
        resource_service.InvalidRequest: (400, "invalid_request"),
        resource_service.InvalidToken: (401, "invalid_token"),
        resource_service.InsufficientScope: (403, "insufficient_scope"),
        resource_service.MissingCredentials: (401, None),
        resource_service.Unavailable: (503, "temporarily_unavailable"),
    }
    for cls, (status, code) in errors.items():
        assert issubclass(cls, resource_service.AuthError)
        assert (cls.status_code, cls.error) == (status, code)


def test_the_package_carries_its_version_and_a_pep_561_marker():
    from importlib.metadata import version
    from pathlib import Path

    assert resource_service.__version__ == version("stateless-auth")
    assert (Path(resource_service.__file__).parent / "py.typed").is_file()  # mypy reads its annotations


def test_importing_the_verifier_loads_no_issuer_dependency_and_no_redis_client():
    """In a fresh interpreter (this one has imported the issuer already): what an app that only
    verifies pays for `import resource_service`. Redis is loaded only with RESOURCE_REDIS_URL set."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, sys, resource_service, resource_service.verifier; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True, text=True).stdout)
    )
    issuer_side = {"auth_service", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "argon2", "passlib", "jinja2"}
    assert not loaded & (issuer_side | {"redis"}), loaded & (issuer_side | {"redis"})
    assert {"resource_service", "httpx", "jwt", "cryptography"} <= loaded  # the probe did import the verifier
