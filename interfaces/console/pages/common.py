"""What the page modules share: read-your-writes after a command, and small form conversions."""
from __future__ import annotations

from typing import Any

from domain.errors import DomainError, NotFound
from interfaces.http.errors import status_of


def is_htmx(request) -> bool:
    """A request htmx made for a fragment (not a page load)."""
    return request.headers.get("hx-request") == "true"


def settle(container, position: int | None) -> bool:
    """Wait (bounded, like `min_position` on the API) until the read models applied a command's
    position, so the page the browser is sent to next shows the write. False if they lag."""
    if not position:
        return True
    return container.supervisor.wait_for(position, container.settings.query_wait_seconds)


def org_url(scope_or_id: Any, *parts: Any) -> str:
    org = getattr(scope_or_id, "org_id", scope_or_id)
    return "/".join([f"/console/orgs/{org}", *(str(p) for p in parts)]).rstrip("/")


def split_list(text: str) -> list[str]:
    """`a, b c` -> ["a", "b", "c"] (tags, permissions typed in one field)."""
    return [part for part in text.replace(",", " ").split() if part]


def attempt(action, *args: Any, **kwargs: Any) -> tuple[Any, DomainError | None]:
    """Run a command; a refusal comes back as the error to show beside the form. NotFound is not
    a refusal to explain: it is the 404 page (another organisation's ids included)."""
    try:
        return action(*args, **kwargs), None
    except NotFound:
        raise
    except DomainError as exc:
        return None, exc


def status_for(error: DomainError | None, ok: int = 200) -> int:
    return status_of(error) if error is not None else ok
