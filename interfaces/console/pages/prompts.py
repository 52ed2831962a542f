"""Prompts: the list (folders, search, filters, pages), a prompt (now, a version, or as of a moment),
diffs, the render preview, new prompts and new versions (with the stale-base conflict shown)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.errors import Conflict, DomainError, Invalid, NotFound
from domain.values import clean_prompt_name
from interfaces.console import diffing
from interfaces.console.pages.common import attempt, is_htmx, org_url, settle, split_list, status_for
from interfaces.console.rendering import redirect, render
from interfaces.console.session import Form, FormDep, OrgPage, ReadPage, WritePage
from interfaces.console.views import (
    highlight, message_rows, messages_arg, parse_json_field, placeholder_values, problems_by_field, render_values,
    rows_of_messages, searchable, snippet, terms_of, variable_fields,
)
from interfaces.http.deps import ContainerDep, OrgScope, RequestId
from interfaces.http.kit import MAX_VERSION, norm_label, parse_instant, prompt_id_of, version_number
from interfaces.http.routers.prompts import require_prompt
from interfaces.http.views import content

router = APIRouter(prefix="/orgs/{org_id}/prompts")
PAGE_SIZE = 50
TIMELINE = 50
SUGGESTED_LABELS = ("production", "staging", "canary", "dev")


def _folder(value: str | None) -> str | None:
    value = (value or "").strip().strip("/")
    return clean_prompt_name(value) if value else None


def instant(value: str | None) -> datetime | None:
    """`as_of` from a link (RFC 3339) or the datetime-local input (no offset: UTC)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if len(value) in (16, 19) and "T" in value and not value.endswith(("Z", "z")):
        value += ":00Z" if len(value) == 16 else "Z"
    return parse_instant(value, "as_of")


# -- the list ----------------------------------------------------------------------------------
@router.get("")
def prompt_list(
    request: Request, scope: ReadPage, container: ContainerDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    folder: Annotated[str | None, Query(max_length=200)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    org = str(scope.org_id)
    folder_path = _folder(folder)
    label, tag = norm_label(label) or None, (tag or "").strip().lower() or None
    filters = {"q": q, "folder": folder_path, "label": label, "tag": tag}
    hits, rows, next_cursor, notice = [], [], None, None
    if q and q.strip():
        found = request.app.state.search.search(org, q, "hybrid", PAGE_SIZE, tags=[tag] if tag else [], label=label)
        terms = terms_of(q)
        hits = [{"row": h.row, "name": highlight(h.row["name"], terms),
                 "snippet": highlight(snippet(searchable(h.row), terms), terms)} for h in found.results]
        notice = found.notice
    else:
        page = container.catalogue.list(org, tag=tag, label=label, folder=folder_path, limit=PAGE_SIZE, cursor=cursor)
        rows, next_cursor = page.items, page.next_cursor
    template = "partials/prompt_results.html" if is_htmx(request) and request.headers.get("hx-target") == "results" \
        else "prompts.html"
    return render(request, template, scope=scope, rows=rows, hits=hits, next_cursor=next_cursor, filters=filters,
                  crumbs=_crumbs(folder_path), notice=notice, cursor=cursor,
                  suggested_labels=sorted({*SUGGESTED_LABELS, *scope.grant.org.protected_labels}))


@router.get("/folders")
def folder_tree(request: Request, scope: ReadPage, container: ContainerDep,
                parent: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """A folder's sub-folders with their prompt counts: fetched by the list page after it is shown
    (counting every folder of a large organisation is the slowest part of the list), or a page of
    its own without JavaScript."""
    folder_path = _folder(parent)
    tree = container.catalogue.folders(str(scope.org_id), folder_path or "")
    template = "partials/folder_tree.html" if is_htmx(request) else "folders.html"
    return render(request, template, scope=scope, tree=tree, crumbs=_crumbs(folder_path), folder=folder_path)


def _crumbs(folder: str | None) -> list[dict[str, str]]:
    parts = folder.split("/") if folder else []
    return [{"name": p, "path": "/".join(parts[:i + 1])} for i, p in enumerate(parts)]


# -- creating ----------------------------------------------------------------------------------
def _blank_form(folder: str = "") -> dict[str, Any]:
    return {"name": (folder + "/") if folder else "", "type": "text", "template": "", "tags": "", "model_config": "",
            "variables": "", "message": "", "template_format": "mustache",
            "rows": [{"role": "system", "content": ""}, {"role": "user", "content": ""}]}


@router.get("/new")
def new_prompt_page(request: Request, scope: WritePage,
                    folder: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    return render(request, "prompt_new.html", scope=scope, form=_blank_form(_folder(folder) or ""), errors={})


def _content_fields(form: Form) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(command arguments, problems reading the form, what to show again) of the content fields."""
    rows = message_rows(form)
    errors: dict[str, str] = {}
    model_config, errors["model_config"] = parse_json_field(form, "model_config", "Model config", dict)
    variables, errors["variables"] = parse_json_field(form, "variables", "Variables", list)
    errors = {k: v for k, v in errors.items() if v}
    # The form always shows the tags and the model config: blank fields mean none (not "keep"). A blank
    # variables field declares nothing: the application keeps the declarations of the names still used.
    args = {"model_config": model_config or {}, "variables": variables, "tags": split_list(form.get("tags")),
            "message": form.get("message"), "template_format": form.get("template_format") or None}
    shown = {"template": form.get("template"), "tags": form.get("tags"), "model_config": form.get("model_config"),
             "variables": form.get("variables"), "message": form.get("message"), "rows": rows,
             "template_format": form.get("template_format") or "mustache"}
    return args, errors, shown


@router.post("/new")
def create_prompt(request: Request, form: FormDep, scope: OrgPage, container: ContainerDep, rid: RequestId) -> Response:
    args, errors, shown = _content_fields(form)
    kind = "chat" if form.get("type") == "chat" else "text"
    shown.update(name=form.get("name"), type=kind)
    if form.get("action") == "add_message":
        shown["rows"] = [*shown["rows"], {"role": "user", "content": ""}]
        return render(request, "prompt_new.html", scope=scope, form=shown, errors={})
    if errors:
        return render(request, "prompt_new.html", scope=scope, status=422, form=shown, errors=errors)
    content_args = {"messages": messages_arg(shown["rows"])} if kind == "chat" else {"template": form.get("template")}
    result, error = attempt(container.app.create_prompt, scope.principal, scope.org_id, name=form.get("name"), type=kind,
                            request_id=rid, **content_args, **args)
    if error is not None:
        return render(request, "prompt_new.html", scope=scope, status=status_for(error), form=shown, errors={},
                      error=error.message)
    settle(container, result.position)
    return redirect(org_url(scope, "prompts", result.id), done="created")


# -- one prompt --------------------------------------------------------------------------------
def _dependencies(container, org: str, row: dict[str, Any], version: int) -> tuple[list, str | None]:
    fetched = container.catalogue.fetch(org, row["name"], version=version)
    if fetched is None or fetched["template"] is None:
        return [], None
    try:
        return container.catalogue.compose(org, fetched, None).dependencies, None
    except DomainError as exc:  # a label moved since: the composition is broken now
        return [], exc.message


def prompt_view(scope: OrgScope, container, prompt_id: str, *, version: int | None = None,
                as_of: str | None = None) -> dict[str, Any]:
    """What the prompt page shows: from the read models, or folded from the event stream as of a
    moment (the prompt, its labels and its dependencies as they were)."""
    org = str(scope.org_id)
    pid = prompt_id_of(prompt_id)
    moment = instant(as_of)
    row = require_prompt(container, org, pid)
    if moment is not None:
        try:
            prompt, chosen, composed = container.app.resolve_prompt(scope.principal, scope.org_id, pid,
                                                                    version=version, as_of=moment)
        except NotFound as exc:
            if exc.code != "PROMPT_NOT_FOUND":
                raise
            # This organisation's prompt, created after that moment: say so beside the current one.
            return {**prompt_view(scope, container, prompt_id, version=version), "not_yet": moment,
                    "as_of_input": moment.strftime("%Y-%m-%dT%H:%M:%S")}
        labels, splits = dict(prompt.labels), dict(getattr(prompt, "splits", {}))
        latest_then, dependencies, broken = prompt.latest_version, composed.dependencies, None
        shown = dict(chosen)
        shown.setdefault("created_at", None)
    else:
        labels, splits, latest_then = dict(row["labels"]), dict(row["splits"]), row["latest_version"]
        number = version or row["latest_version"]
        shown = container.catalogue.version(org, str(pid), number)
        if shown is None:
            raise NotFound("version not found", code="VERSION_NOT_FOUND")
        dependencies, broken = _dependencies(container, org, row, number)
    versions = container.catalogue.versions(org, str(pid), after=max(0, row["latest_version"] - TIMELINE),
                                            limit=TIMELINE)
    fields = variable_fields(shown.get("variable_schema"), list(shown.get("variables") or []))
    placeholders = [m["name"] for m in shown.get("messages") or [] if m.get("type") == "placeholder"]
    return {
        "row": row, "pid": str(pid), "shown": shown, "content": content(shown), "labels": labels, "splits": splits,
        "latest_then": latest_then, "as_of": moment, "as_of_input": moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else "",
        "versions": list(reversed(versions)), "older_versions": max(0, row["latest_version"] - TIMELINE),
        "label_history": list(reversed(container.label_history.list(org, str(pid), limit=100))),
        "dependencies": dependencies, "broken": broken, "dependents": container.catalogue.dependents(org, str(pid)),
        "fields": fields, "placeholders": placeholders, "protected": set(scope.grant.org.protected_labels),
        "live_after": row["position"], "suggested_labels": sorted({*SUGGESTED_LABELS, *scope.grant.org.protected_labels}),
        "open_reviews": container.reviews.list(org, status="open", prompt_id=str(pid), limit=20),
    }


def refused_on_prompt_page(request: Request, scope: OrgScope, container, prompt_id: str, error: DomainError,
                           label: str | None = None) -> Response:
    """The prompt page again, with a command's refusal shown where it happened (labels, or the top)."""
    where = {"label_error": error.message, "label_error_code": error.code, "label_error_label": label} \
        if label is not None else {"error": error.message}
    return render(request, "prompt.html", scope=scope, status=status_for(error), **where,
                  **prompt_view(scope, container, prompt_id))


@router.get("/{prompt_id}")
def prompt_page(request: Request, scope: ReadPage, prompt_id: str, container: ContainerDep,
                as_of: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    return render(request, "prompt.html", scope=scope, **prompt_view(scope, container, prompt_id, as_of=as_of))


@router.get("/{prompt_id}/versions/{number}")
def version_page(request: Request, scope: ReadPage, prompt_id: str, number: str, container: ContainerDep) -> Response:
    view = prompt_view(scope, container, prompt_id, version=version_number(number))
    return render(request, "prompt.html", scope=scope, single_version=True, **view)


# -- diff --------------------------------------------------------------------------------------
@router.get("/{prompt_id}/diff")
def diff_page(request: Request, scope: ReadPage, prompt_id: str, container: ContainerDep,
              from_version: Annotated[int | None, Query(alias="from", ge=1, le=MAX_VERSION)] = None,
              to_version: Annotated[int | None, Query(alias="to", ge=1, le=MAX_VERSION)] = None) -> Response:
    org, pid = str(scope.org_id), prompt_id_of(prompt_id)
    row = require_prompt(container, org, pid)
    to_version = to_version or row["latest_version"]
    from_version = from_version or max(1, to_version - 1)
    a, b = (container.catalogue.version(org, str(pid), n) for n in (from_version, to_version))
    if a is None or b is None:
        raise NotFound("version not found", code="VERSION_NOT_FOUND")
    return render(request, "diff.html", scope=scope, row=row, pid=str(pid), a=a, b=b, diff=diffing.versions(a, b),
                  numbers=range(row["latest_version"], 0, -1))


# -- render preview ----------------------------------------------------------------------------
@router.post("/{prompt_id}/render")
def render_preview(request: Request, form: FormDep, scope: ReadPage, prompt_id: str, container: ContainerDep) -> Response:
    """The preview's fragment: the output, or every problem beside its input (422)."""
    pid = prompt_id_of(prompt_id)
    number = form.int("version")
    as_of = instant(form.get("as_of"))
    _, chosen, composed = container.app.resolve_prompt(scope.principal, scope.org_id, pid, version=number, as_of=as_of)
    fields = variable_fields(composed.variable_schema, list(composed.variables))
    placeholders = [m["name"] for m in composed.messages or [] if m.get("type") == "placeholder"]
    values, problems = render_values(fields, form)
    given_placeholders, placeholder_problems = placeholder_values(placeholders, form)
    problems.update(placeholder_problems)
    output, error = None, None
    if not problems:
        try:
            _, _, output = container.app.render_prompt(scope.principal, scope.org_id, pid, values, version=number,
                                                       placeholders=given_placeholders, as_of=as_of)
        except Invalid as exc:
            problems, error = problems_by_field(exc.details), exc.message
    context = {"fields": fields, "placeholders": placeholders, "problems": problems, "error": error, "output": output,
               "chat": chosen["type"] == "chat", "entered": form.prefixed("var_"), "entered_ph": form.prefixed("ph_")}
    return render(request, "partials/render_result.html", scope=scope, status=422 if problems or error else 200,
                  **context)


# -- new versions ------------------------------------------------------------------------------
def _edit_form(version: dict[str, Any]) -> dict[str, Any]:
    return {"template": version.get("template") or "", "rows": rows_of_messages(version.get("messages")),
            "tags": " ".join(version.get("tags") or []),
            "model_config": json.dumps(version["model_config"], indent=2) if version.get("model_config") else "",
            "variables": "", "message": "", "template_format": version.get("template_format") or "mustache"}


@router.get("/{prompt_id}/edit")
def edit_page(request: Request, scope: WritePage, prompt_id: str, container: ContainerDep) -> Response:
    org, pid = str(scope.org_id), prompt_id_of(prompt_id)
    row = require_prompt(container, org, pid)
    latest = container.catalogue.version(org, str(pid), row["latest_version"])
    return render(request, "prompt_edit.html", scope=scope, row=row, pid=str(pid), base_version=row["latest_version"],
                  form=_edit_form(latest), errors={}, conflict=None)


@router.post("/{prompt_id}/edit")
def revise(request: Request, form: FormDep, scope: OrgPage, prompt_id: str, container: ContainerDep,
           rid: RequestId) -> Response:
    """A new version from the version the author started from (`base_version`). If someone saved
    a version meanwhile, nothing is saved: the page shows what changed since the base and keeps the
    author's text, to re-apply on the current version with one more click."""
    org, pid = str(scope.org_id), prompt_id_of(prompt_id)
    row = require_prompt(container, org, pid)
    args, errors, shown = _content_fields(form)
    base = form.int("base_version", 0) or 0
    page = {"row": row, "pid": str(pid), "base_version": base, "form": shown, "errors": errors, "conflict": None}
    if form.get("action") == "add_message":
        shown["rows"] = [*shown["rows"], {"role": "user", "content": ""}]
        return render(request, "prompt_edit.html", scope=scope, **{**page, "errors": {}})
    if errors:
        return render(request, "prompt_edit.html", scope=scope, status=422, **page)
    content_args = ({"messages": messages_arg(shown["rows"])} if row["type"] == "chat"
                    else {"template": form.get("template")})
    try:
        result = container.app.revise_prompt(scope.principal, scope.org_id, pid, base_version=base, request_id=rid,
                                             **content_args, **args)
    except Conflict as exc:
        if exc.code != "PROMPT_VERSION_CONFLICT":
            return render(request, "prompt_edit.html", scope=scope, status=409, error=exc.message, **page)
        current = int(exc.details.get("current_version") or row["latest_version"])
        settle(container, container.app.head_position())
        old, new = (container.catalogue.version(org, str(pid), n) for n in (base, current))
        conflict = {"base": base, "current": current, "diff": diffing.versions(old, new) if old and new else None,
                    "authors": container.catalogue.versions(org, str(pid), after=base, limit=TIMELINE)}
        return render(request, "prompt_edit.html", scope=scope, status=409,
                      **{**page, "base_version": current, "conflict": conflict})
    except DomainError as exc:
        return render(request, "prompt_edit.html", scope=scope, status=status_for(exc), error=exc.message, **page)
    settle(container, result.position)
    return redirect(org_url(scope, "prompts", pid), done="revised")


# -- archive / restore -------------------------------------------------------------------------
@router.post("/{prompt_id}/archive")
def archive(request: Request, form: FormDep, scope: OrgPage, prompt_id: str, container: ContainerDep,
            rid: RequestId) -> Response:
    pid = prompt_id_of(prompt_id)
    restore = form.get("restore") == "1"
    command = container.app.restore_prompt if restore else container.app.archive_prompt
    result, error = attempt(command, scope.principal, scope.org_id, pid, rid)
    if error is not None:
        return refused_on_prompt_page(request, scope, container, prompt_id, error)
    settle(container, result.position)
    return redirect(org_url(scope, "prompts", pid), done="restored" if restore else "archived")
