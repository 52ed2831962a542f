"""The ceiling of bench/http_paths.py: a bare FastAPI app doing the least a real endpoint does.

- `GET /item/{name}`: validates an HS256 JWT (pyjwt: signature, exp, iss, aud) from
  `Authorization: Bearer ...` and answers ~1 KB of JSON shaped like a by-name fetch (built per
  request from a dict, serialised by FastAPI's JSONResponse).
- `POST /items`: the same JWT check, a pydantic body (`name`, `template`, `message`), then one
  1-row INSERT ... RETURNING id through psycopg (an async connection pool per worker process, each
  INSERT its own autocommitted transaction), answering 201 `{id, name, version}`.
- `POST /saves`: the eventsourcing `save` ceiling over HTTP. The same JWT check and body, then
  `app.save(Item(name, template, message))`: a trivial one-event aggregate saved through an
  eventsourcing `Application` on the same Postgres database (its own events table, the library's
  default insert path: `LOCK TABLE ... IN EXCLUSIVE MODE` per save, as PromptForge's commands).
  A sync endpoint (the library has no asyncio API; FastAPI runs it in its thread pool, as it runs
  PromptForge's command endpoints), a psycopg pool of `CEILING_POOL_SIZE` per worker, answering
  201 `{id, name, version, position}`. What a command costs beyond this is PromptForge's own.

No middleware, no logging per request, no rate limiting, no policy: what FastAPI + uvicorn + one
JWT check + one round trip to Postgres cost on this machine. Served by uvicorn (uvloop + httptools,
as `promptforge serve`), `--workers 2`, with the environment:

    CEILING_DB_URL       postgresql://... (the benchmark's database; the table is created if missing)
    CEILING_JWT_SECRET   the HS256 secret the tokens are signed with
    CEILING_POOL_SIZE    connections per worker process (default 4)

    cd bench && CEILING_DB_URL=... CEILING_JWT_SECRET=... ../.venv/bin/uvicorn ceiling_app:app --workers 2
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit

import jwt
from fastapi import FastAPI, Header, HTTPException
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

SECRET = os.environ.get("CEILING_JWT_SECRET", "ceiling-secret-0123456789abcdef0123456789")
ISSUER = "ceiling"
AUDIENCE = "ceiling-api"
DB_URL = os.environ.get("CEILING_DB_URL", "")
POOL_SIZE = int(os.environ.get("CEILING_POOL_SIZE", "4"))
TABLE = "ceiling_rows"
CREATE_TABLE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, name text NOT NULL, "
                "template text NOT NULL, message text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
INSERT = f"INSERT INTO {TABLE} (name, template, message) VALUES (%s, %s, %s) RETURNING id"

TEMPLATE = ("You are a meticulous assistant for {{product}}. Answer the customer's question politely and "
            "precisely, cite the relevant part of the documentation, and say so plainly when you do not know. ") * 4
pool: AsyncConnectionPool | None = None
saves = None  # the eventsourcing Application of `POST /saves` (per worker process)


def _saves_app():
    """An eventsourcing Application on the benchmark's Postgres database (tables `ceilingsaves_*`,
    created by the first worker; the library's default insert path, never anything else)."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Item(Aggregate):
        @event("Created")
        def __init__(self, name: str, template: str, message: str):
            self.name, self.template, self.message = name, template, message

    class CeilingSaves(Application):
        pass

    parts = urlsplit(DB_URL)
    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": parts.path.lstrip("/"),
           "POSTGRES_HOST": parts.hostname or "127.0.0.1", "POSTGRES_PORT": str(parts.port or 5432),
           "POSTGRES_USER": unquote(parts.username or "postgres"), "POSTGRES_PASSWORD": unquote(parts.password or ""),
           "POSTGRES_POOL_SIZE": str(POOL_SIZE), "POSTGRES_MAX_OVERFLOW": "0", "POSTGRES_PRE_PING": "y"}
    return CeilingSaves(env=env), Item


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global pool
    if DB_URL:
        pool = AsyncConnectionPool(DB_URL, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False,
                                   kwargs={"autocommit": True})
        await pool.open(wait=True)
        async with pool.connection() as conn, conn.transaction():
            # Both workers start at once: concurrent CREATE TABLE IF NOT EXISTS can still collide
            # on the table's row type (UniqueViolation), so they take turns.
            await conn.execute("SELECT pg_advisory_xact_lock(7205)")
            await conn.execute(CREATE_TABLE)
            global saves
            saves = _saves_app()  # creates its tables if missing, while this worker holds the lock
    yield
    if saves is not None:
        saves[0].close()
    if pool is not None:
        await pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def claims_of(authorization: str | None) -> dict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token")
    try:
        return jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                          options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        raise HTTPException(401, "invalid token") from None


@app.get("/item/{name}")
async def get_item(name: str, authorization: str | None = Header(None)) -> dict:
    claims = claims_of(authorization)
    return {
        "id": "0b6f1d2e-6c1a-4c59-9d59-5c3a7f0d1e42", "name": name, "version": 1, "label": "production",
        "type": "text", "template": TEMPLATE, "template_format": "mustache", "variables": ["product"],
        "model_config": {"model": "gpt-4o-mini", "temperature": 0.2}, "tags": ["support", "bench"],
        "dependencies": [], "resolved": True, "caller": claims["sub"],
    }


class ItemIn(BaseModel):
    name: str = Field(max_length=200)
    template: str = Field(max_length=262_144)
    message: str = Field("", max_length=1000)


@app.post("/items", status_code=201)
async def create_item(body: ItemIn, authorization: str | None = Header(None)) -> dict:
    claims_of(authorization)
    if pool is None:
        raise HTTPException(503, "no database configured (CEILING_DB_URL)")
    async with pool.connection() as conn:
        row = await (await conn.execute(INSERT, (body.name, body.template, body.message))).fetchone()
    return {"id": row[0], "name": body.name, "version": 1}


@app.post("/saves", status_code=201)
def save_item(body: ItemIn, authorization: str | None = Header(None)) -> dict:
    claims_of(authorization)
    if saves is None:
        raise HTTPException(503, "no database configured (CEILING_DB_URL)")
    application, item_class = saves
    item = item_class(body.name, body.template, body.message)
    recordings = application.save(item)
    return {"id": str(item.id), "name": body.name, "version": 1, "position": recordings[-1].notification.id}


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
