"""Operations endpoints: liveness, readiness, Prometheus metrics. Unauthenticated, never rate-limited,
excluded from the OpenAPI schema (they are for probes and scrapers, not API clients)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from interfaces.observability.health import readiness
from interfaces.observability.metrics import CONTENT_TYPE

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """Liveness: the process answers. Touches no dependency."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Readiness: every configured dependency with status and latency. 503 only when the event store
    or the read-model database is down; Redis or Qdrant down is 200 with status `degraded`."""
    status, checks = readiness(request.app.state.container)
    return JSONResponse({"status": status, "checks": checks},
                        status_code=503 if status == "unavailable" else 200, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(request.app.state.container.metrics.render(), media_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})
