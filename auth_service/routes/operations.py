"""`GET /healthz` (liveness), `GET /readyz` (database, signing key, Redis) and `GET /metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from resource_service.metrics import CONTENT_TYPE

from ..deps import ClockDep, IssuerDep, RevocationsDep
from ..metrics import AuthMetrics
from ..storage.keystore import KeystoreError

router = APIRouter(tags=["operations"])

_READINESS = {
    "type": "object",
    "required": ["ready", "checks"],
    "properties": {
        "ready": {"type": "boolean"},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, signing key, Redis",
    responses={
        200: {"description": "Ready", "content": {"application/json": {"schema": _READINESS}}},
        503: {"description": "Not ready: a check failed", "content": {"application/json": {"schema": _READINESS}}},
    },
)
async def readyz(issuer: IssuerDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await issuer.store.feed_head()
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is what readiness is for
        checks["database"] = f"unavailable ({type(exc).__name__})"
    try:
        issuer.keys.signing_key(int(issuer.clock()))
        checks["signing_key"] = "ok"
    except KeystoreError:
        checks["signing_key"] = "missing"
    if issuer.redis is not None:
        try:
            await issuer.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable ({type(exc).__name__})"
    ready = all(result == "ok" for result in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def metrics_router(metrics: AuthMetrics) -> APIRouter:
    """`GET /metrics` in the Prometheus text format, outside the OpenAPI document."""
    scrape = APIRouter(include_in_schema=False)

    @scrape.get("/metrics")
    async def prometheus(revocations: RevocationsDep, clock: ClockDep) -> Response:
        await metrics.refresh(revocations, int(clock()))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return scrape
