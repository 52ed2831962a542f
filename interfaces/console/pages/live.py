"""Live updates: the prompt page's Server-Sent Events (htmx's SSE extension swaps each in).

One subscription to the process's change hub (interfaces.http.feed.ChangeHub, as the change feed's
stream uses), filtered to the prompt on the page; each change arrives as a small HTML notice. The
session and the membership are checked again at every heartbeat: signing out or losing access ends
the stream."""
from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from domain.errors import DomainError
from domain.permissions import Permission
from interfaces.console.rendering import actor_name, fragment, people_of
from interfaces.console.session import ReadPage
from interfaces.http.deps import ContainerDep
from interfaces.http.kit import prompt_id_of

router = APIRouter(prefix="/orgs/{org_id}/prompts/{prompt_id}")
HEARTBEAT_SECONDS = 10.0
MAX_POSITION = 2**63 - 1


def _event(row: dict[str, Any], people: dict[str, str], org_id: str) -> str:
    html = fragment("partials/live_notice.html", change=row, who=actor_name(people, row["actor"]), org_id=org_id)
    data = "".join(f"data: {line}\n" for line in html.strip().splitlines())
    return f"id: {row['position']}\nevent: change\n{data}\n"


@router.get("/live")
async def live(request: Request, scope: ReadPage, prompt_id: str, container: ContainerDep,
               after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0) -> StreamingResponse:
    """The prompt's changes after `after` (the position the page was rendered at)."""
    pid = str(prompt_id_of(prompt_id))
    org = str(scope.org_id)
    hub = request.app.state.change_hub
    subscriber = hub.subscribe(org)
    last = request.headers.get("last-event-id", "").strip()  # a reconnecting EventSource resumes
    cursor = max(after, int(last)) if last.isdigit() and len(last) < 19 else after
    session = request.app.state.console_keys.read(request)

    async def still_allowed() -> bool:
        try:
            await run_in_threadpool(container.app.check_session, session.session_id, session.user_id)
            await run_in_threadpool(container.app.grant, scope.principal, scope.org_id, Permission.PROMPTS_READ)
        except DomainError:
            return False
        return True

    async def events():
        nonlocal cursor
        try:
            people = await run_in_threadpool(people_of, container, org)
            yield "retry: 2000\n: connected\n\n"
            backlog = await run_in_threadpool(container.changes.after, org, cursor, audit=False, limit=100)
            for row in backlog:
                cursor = row["position"]
                if row["prompt_id"] == pid:
                    yield _event(row, people, org)
            while True:
                try:
                    row = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
                except asyncio.TimeoutError:
                    if await request.is_disconnected() or not await still_allowed():
                        return
                    yield ": heartbeat\n\n"
                    continue
                if row["position"] > cursor and row["prompt_id"] == pid and row["audience"] == "prompts":
                    cursor = row["position"]
                    if row["actor"] not in people:
                        people = await run_in_threadpool(people_of, container, org)
                    yield _event(row, people, org)
        finally:
            hub.unsubscribe(subscriber)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
