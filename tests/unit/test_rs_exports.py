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
