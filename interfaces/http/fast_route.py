"""A route that answers requests with plain parameters without FastAPI's per-request solving.

FastAPI solves a route's dependencies and parameters generically on every request (about 9 µs per
parameter here, ~200 µs for the by-name fetch's ten, more than the rest of a cached answer). For the
hot path, the endpoint may carry a `fast_path` (see `fast_path`): `parse(request)` returns the
arguments when every parameter is plainly valid, exactly as FastAPI would have parsed it, or None;
`run(request, arguments)` then calls the route's own dependency functions and endpoint, in the order
the route declares them. Anything else (a repeated, empty or unusual value, a parameter only the
general path handles) goes through FastAPI as before: same answers, same validation errors. The
route's declaration, hence the OpenAPI document, is unchanged. Dependency overrides (tests) always
take the general path.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Parse = Callable[[Request], "dict[str, Any] | None"]
Run = Callable[[Request, "dict[str, Any]"], Awaitable[Response]]


@dataclass(frozen=True)
class FastPath:
    parse: Parse
    run: Run


def fast_path(parse: Parse, run: Run):
    """Decorator for an endpoint: attach its fast path (`parse` must have no side effects)."""

    def attach(endpoint):
        endpoint.fast_path = FastPath(parse, run)
        return endpoint

    return attach


class FastPathRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        general = super().get_route_handler()
        fast: FastPath | None = getattr(self.endpoint, "fast_path", None)
        if fast is None:
            return general

        async def handler(request: Request) -> Response:
            if not request.app.dependency_overrides:
                arguments = fast.parse(request)
                if arguments is not None:
                    return await fast.run(request, arguments)
            return await general(request)

        return handler
