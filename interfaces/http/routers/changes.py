"""The change feed: paged with long-poll, or as Server-Sent Events (resumable, with heartbeats)."""
from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from domain.errors import DomainError
from domain.permissions import Permission
from interfaces.http.deps import ContainerDep, ReadScope, fresh, still_allowed
from interfaces.http.errors import ApiError
from interfaces.http.schemas.changes import ChangeOut, ChangePage
from interfaces.http.schemas.common import ERRORS

router = APIRouter(prefix="/v1/orgs/{org_id}/changes", tags=["changes"], responses=ERRORS)
MAX_WAIT = 30
HEARTBEAT_SECONDS = 15.0
MAX_POSITION = 2**63 - 1


def change_out(row: dict[str, Any]) -> ChangeOut:
    return ChangeOut(**{k: row[k] for k in ChangeOut.model_fields})


def _visible(row: dict[str, Any], audit: bool) -> bool:
    return audit or row["audience"] == "prompts"


Start = Annotated[Literal["beginning", "now"], Query(description=(
    "Without a cursor (`after`, `Last-Event-ID`): `beginning` (the whole feed) or `now` (only what "
    "happens from now on; a watcher needs no backlog)."))]


def _cursor(container: Any, after: int | None, last_event_id: str | None, start: str) -> int:
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or int(last_event_id) > MAX_POSITION:
            raise ApiError(400, "INVALID_PARAMETER", "Last-Event-ID must be a change's position")
        return int(last_event_id)
    if after is not None:
        return after
    return container.supervisor.positions().get("changes", 0) if start == "now" else 0


@router.get("", response_model=ChangePage, summary="Changes after a position (long-poll with `wait`)")
async def changes(
    scope: ReadScope, request: Request, container: ContainerDep, _: fresh("changes"),
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="The cursor: `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for a change when none is there")] = 0,
    start: Start = "beginning",
) -> ChangePage:
    """This organisation's changes after `after`, oldest first, in the public vocabulary (see the
    README): prompt, review and release changes with `prompts:read`; members, keys and settings too
    with `audit:read`. With `wait`, an empty answer is held until a change arrives or `wait` passes,
    and then comes back with the same cursor."""
    audit = scope.grant.allows(Permission.AUDIT_READ)
    org = str(scope.org_id)
    after = _cursor(container, after, None, start)
    rows = await run_in_threadpool(container.changes.after, org, after, audit=audit, limit=limit)
    if not rows and wait > 0:
        hub = request.app.state.change_hub
        subscriber = hub.subscribe(org)
        try:
            rows = await run_in_threadpool(container.changes.after, org, after, audit=audit, limit=limit)
            deadline = asyncio.get_running_loop().time() + wait
            while not rows:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    row = await asyncio.wait_for(subscriber.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if row["position"] > after and _visible(row, audit):
                    rows = await run_in_threadpool(container.changes.after, org, after, audit=audit, limit=limit)
        finally:
            hub.unsubscribe(subscriber)
    return ChangePage(items=[change_out(r) for r in rows], next=rows[-1]["position"] if rows else after)


@router.get("/stream", summary="Changes as Server-Sent Events (resumable with Last-Event-ID)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": (
                "`id: <position>`, `event: <type>`, `data: <change JSON>` per change; a `: caught-up` comment "
                "once the backlog is sent; a `: heartbeat` comment every 15 s.")}})
async def stream(
    scope: ReadScope, request: Request, container: ContainerDep, _: fresh("changes"),
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    start: Start = "beginning",
) -> StreamingResponse:
    """The same changes as a stream. Resume after a disconnect with `Last-Event-ID` (browsers do it
    themselves) or `after`; `start=now` skips the backlog; `min_position` waits until your own write
    is in the feed. Access is checked again at every heartbeat: a revoked key, a removed
    member or an ended session closes the stream."""
    hub = request.app.state.change_hub
    org = str(scope.org_id)
    subscriber = hub.subscribe(org)  # before the cursor is taken: nothing falls in between
    try:
        cursor = _cursor(container, after, last_event_id, start)
    except ApiError:
        hub.unsubscribe(subscriber)
        raise

    async def events():
        nonlocal cursor
        audit = scope.grant.allows(Permission.AUDIT_READ)
        try:
            yield ": connected\n\n"
            backlog = await run_in_threadpool(container.changes.after, org, cursor, audit=audit, limit=1000)
            while backlog:
                for row in backlog:
                    yield _event(row)
                    cursor = row["position"]
                backlog = await run_in_threadpool(container.changes.after, org, cursor, audit=audit, limit=1000)
            yield ": caught-up\n\n"  # the backlog is sent: live changes follow
            while True:
                try:
                    row = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    try:  # still allowed? (revocations, removals and ended sessions end the stream)
                        grant = await run_in_threadpool(still_allowed, request, scope, Permission.PROMPTS_READ)
                    except DomainError:
                        return
                    audit = grant.allows(Permission.AUDIT_READ)
                    yield ": heartbeat\n\n"
                    continue
                if row["position"] > cursor and _visible(row, audit):
                    cursor = row["position"]
                    yield _event(row)
        finally:
            hub.unsubscribe(subscriber)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _event(row: dict[str, Any]) -> str:
    """The SSE text of a change, made once per row: the hub hands the same row to every stream of
    the organisation (bench/results/sse_fanout.md: re-serialising it per stream was a tenth of a
    fan-out's event-loop time)."""
    text = row.get("_sse")
    if text is None:
        data = change_out(row).model_dump_json()
        text = row["_sse"] = f"id: {row['position']}\nevent: {row['type']}\ndata: {data}\n\n"
    return text

