"""The error codes clients program against: the source, the registry, the OpenAPI document and the
README's "Errors" table must agree.

The source is read with `ast` (domain/, application/, projections/, interfaces/), collecting
(status, code) for every site that makes an error:

- domain errors: `NotFound(..., code="X")` and the other kinds, or the kind's `default_code`
  when no code is given; `code=NAME` resolves module constants; the status comes from
  interfaces.http.errors.status_of, as it does for a real request;
- `ApiError(status, "X", ...)`, the middleware's `reply(status, "X", ...)`, the handlers'
  `error_response(request, status, "X", ...)`, `parse_id(value, "X", what)` (a 404);
- `HTTP_CODES[status]` for the statuses an `HTTPException` can carry: raised in the source, or
  by the framework (FastAPI: a body it cannot read; Starlette: no route, another method).

A code found is registered in interfaces.http.error_codes (or listed in its NOT_RETURNED with the
reason no client receives it); a code registered is found, under the same status.
"""
from __future__ import annotations

import ast
import base64
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.errors import DomainError
from interfaces.http import error_codes, errors
from interfaces.http.openapi import customise_openapi
from tests.e2e.support import assert_error

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("domain", "application", "projections", "interfaces")
#: Statuses for which the framework itself raises HTTPException (mapped through HTTP_CODES).
FRAMEWORK_HTTP_STATUSES = {
    400: "FastAPI: 'There was an error parsing the body' (e.g. a JSON body that is not UTF-8)",
    404: "Starlette: no route matches",
    405: "Starlette: the path matches with another method",
}
#: Call sites whose code is not a literal by design, each covered by another rule.
PASS_THROUGH = {
    ("interfaces/http/deps.py", "NotFound"): "parse_id raises the code its callers pass (scanned as parse_id calls)",
    ("interfaces/http/errors.py", "error_response"): "the handlers re-send a raised error's code or HTTP_CODES",
    ("interfaces/http/middleware.py", "reply"): "re-sends the rate limiter's ApiError (RATE_LIMITED)",
}


def _files() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob("*.py"))


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def _error_kinds(trees: dict[Path, ast.Module]) -> dict[str, type[DomainError]]:
    """Every DomainError subclass defined in the scanned source, by class name (found by name
    in the source first, so that only the modules defining them are imported)."""
    names, where = {"DomainError"}, {}
    changed = True
    while changed:
        changed = False
        for path, tree in trees.items():
            for node in ast.walk(tree):
                if (isinstance(node, ast.ClassDef) and node.name not in names
                        and any(_name(base) in names for base in node.bases)):
                    names.add(node.name)
                    where[node.name] = path
                    changed = True
    kinds: dict[str, type[DomainError]] = {"DomainError": DomainError}
    for name, path in where.items():
        cls = getattr(importlib.import_module(_module(path)), name)
        assert issubclass(cls, DomainError), cls
        kinds[name] = cls
    return kinds


def scan() -> tuple[set[tuple[int, str]], list[str]]:
    """((status, code) pairs made by the source, call sites whose code could not be resolved)."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in _files()}
    kinds = _error_kinds(trees)
    found: set[tuple[int, str]] = set()
    unresolved: list[str] = []
    http_statuses = set(FRAMEWORK_HTTP_STATUSES)
    for path, tree in trees.items():
        rel = str(path.relative_to(ROOT))
        consts = _constants(tree)

        def literal(node: ast.expr | None) -> Any:
            if isinstance(node, ast.Constant):
                return node.value
            if isinstance(node, ast.Name) and node.id in consts:
                return consts[node.id]
            return None

        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            pos = list(node.args)
            status: Any = None
            code: Any = None
            if name in kinds:
                kind = kinds[name]
                if "code" in kw:
                    code = literal(kw["code"])
                    status = errors.status_of(kind("probe", code=code)) if isinstance(code, str) else None
                else:
                    code = kind.default_code
                    status = errors.status_of(kind("probe"))
            elif name in ("ApiError", "reply"):
                status = literal(pos[0] if pos else kw.get("status"))
                code = literal(pos[1] if len(pos) > 1 else kw.get("code"))
            elif name == "error_response":
                status = literal(pos[1] if len(pos) > 1 else kw.get("status"))
                code = literal(pos[2] if len(pos) > 2 else kw.get("code"))
            elif name == "parse_id" and len(pos) > 1:
                status, code = 404, literal(pos[1])
            elif name in ("HTTPException", "StarletteHTTPException"):
                raised = literal(pos[0] if pos else kw.get("status_code"))
                if isinstance(raised, int):
                    http_statuses.add(raised)
                continue
            else:
                continue
            if isinstance(status, int) and isinstance(code, str):
                found.add((status, code))
            elif (rel, name) not in PASS_THROUGH:
                unresolved.append(f"{rel}:{node.lineno} {name}(...)")
    for status in http_statuses:
        found.add((status, errors.HTTP_CODES.get(status, f"HTTP_{status}")))
    return found, unresolved


@pytest.fixture(scope="module")
def scanned() -> tuple[set[tuple[int, str]], list[str]]:
    return scan()


REGISTERED = {(e.status, e.code) for e in error_codes.ERROR_CODES}


def test_the_scanner_sees_every_kind_of_site(scanned):
    """Guards the scanner itself: one known code per rule."""
    found, unresolved = scanned
    assert not unresolved, ("codes the scanner cannot resolve: use a literal or a module constant, "
                            f"or teach tests/e2e/test_error_codes_contract.py: {unresolved}")
    assert {
        (422, "BASE_VERSION_REQUIRED"),  # Invalid(code=...) in a router
        (409, "PROMPT_NAME_TAKEN"),  # Conflict(code=...) in the application
        (400, "INVALID_CURSOR"),  # Invalid in a projection, 400 by BAD_REQUEST_CODES
        (404, "PROMPT_NOT_FOUND"),  # code=PROMPT_NOT_FOUND, a module constant
        (409, "PLAN_LIMIT_EXCEEDED"),  # LimitExceeded's default_code
        (400, "BAD_REQUEST"),  # the middleware's reply()
        (422, "EMPTY_PATCH"),  # ApiError
        (400, "MALFORMED_JSON"),  # error_response() in the handlers
        (404, "MEMBER_NOT_FOUND"),  # parse_id
        (413, "PAYLOAD_TOO_LARGE"),  # HTTPException(413) in the middleware, through HTTP_CODES
        (405, "METHOD_NOT_ALLOWED"),  # the framework, through HTTP_CODES
    } <= found


def test_every_code_the_source_raises_is_registered_under_its_status(scanned):
    found, _ = scanned
    internal = set(error_codes.NOT_RETURNED)
    missing = sorted((s, c) for s, c in found if (s, c) not in REGISTERED and c not in internal)
    assert not missing, (
        "raised but not in interfaces/http/error_codes.py (add them there, to README.md's Errors table, "
        f"and they reach the OpenAPI document): {missing}")


def test_every_registered_code_is_raised_under_its_status(scanned):
    found, _ = scanned
    stale = sorted(REGISTERED - found)
    assert not stale, f"registered but never raised with that status (remove or fix): {stale}"
    codes = {c for _, c in found}
    stale_internal = sorted(set(error_codes.NOT_RETURNED) - codes)
    assert not stale_internal, f"NOT_RETURNED lists codes the source no longer raises: {stale_internal}"
    assert not set(error_codes.NOT_RETURNED) & error_codes.CODES


def test_registry_is_well_formed():
    assert len(REGISTERED) == len(error_codes.ERROR_CODES), "a (status, code) pair is listed twice"
    for e in error_codes.ERROR_CODES:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", e.code) and e.meaning and e.status in error_codes.STATUS_TITLES, e
    assert set(error_codes.STATUS_TITLES) == set(error_codes.STATUSES)


def test_every_registered_code_is_in_the_openapi_document(api):
    customise_openapi(api.app)
    spec = api.get("/openapi.json").json()
    assert {(e["status"], e["code"]) for e in spec["x-error-codes"]} == REGISTERED
    documented: set[tuple[int, str]] = set()
    for item in spec["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                for code in response.get("x-error-codes", []):
                    assert f"`{code}`" in response["description"], (status, code)
                    documented.add((int(status), code))
    assert documented == REGISTERED
    for status in error_codes.STATUSES:
        assert all(f"`{e.code}`" in spec["info"]["description"] for e in error_codes.codes_for(status))


def _readme_errors_table() -> dict[int, set[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### Errors\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    table: dict[int, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].isdigit():
            table[int(cells[0])] = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]))
    return table


def test_readme_errors_table_matches_the_registry():
    table = _readme_errors_table()
    expected = {status: {e.code for e in error_codes.codes_for(status)} for status in error_codes.STATUSES}
    assert table == expected


def test_bad_request_is_returned_for_an_unreadable_request(api):
    """BAD_REQUEST: a Content-Length that is not a number (middleware), a JSON body that is not
    UTF-8 (FastAPI cannot read it)."""
    assert_error(api.client.post("/v1/auth/login", content=b"{}",
                                 headers={"Content-Type": "application/json", "Content-Length": "x"}),
                 400, "BAD_REQUEST")
    assert_error(api.client.post("/v1/auth/login", content=b'{"email": "\xff"}',
                                 headers={"Content-Type": "application/json"}), 400, "BAD_REQUEST")


def test_refresh_tokens_a_client_can_make_are_invalid_token(api):
    """A refresh token the server never issued is INVALID_TOKEN like any other invalid token: a client
    changing the generation of its token breaks the signature; a used token is REFRESH_TOKEN_REUSED."""
    user = api.user()
    head, payload, signature = user.refresh.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "gen": claims["gen"] + 5}).encode()).rstrip(b"=")
    for token in ("garbage", user.access, f"{head}.{forged.decode()}.{signature}", f"{head}.{payload}."):
        assert_error(api.post("/v1/auth/refresh", json={"refresh_token": token}), 401, "INVALID_TOKEN")
    assert api.post("/v1/auth/refresh", json={"refresh_token": user.refresh}).status_code == 200
    assert_error(api.post("/v1/auth/refresh", json={"refresh_token": user.refresh}), 401, "REFRESH_TOKEN_REUSED")
