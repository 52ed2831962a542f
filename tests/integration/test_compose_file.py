"""The deployment files: docker-compose.yml, the Dockerfile, Prometheus and Grafana provisioning.

Static checks on the parsed files (no Docker engine needed), plus `config -q` through the compose
client when one is installed (`docker compose` v2 or `docker-compose` v1.27+), with no secrets
in the environment, the way CI validates it."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"

APP_SERVICES = ("api", "worker")
BACKING_SERVICES = ("postgres", "redis", "qdrant")
STATEFUL_SERVICES = ("postgres", "redis", "qdrant", "prometheus", "grafana")
ALL_SERVICES = APP_SERVICES + BACKING_SERVICES + ("prometheus", "grafana")

#: The metrics the code exposes: the contract the dashboard may use, and nothing else.
COUNTERS = {"promptforge_http_requests_total", "promptforge_commands_total"}
GAUGES = {"promptforge_projection_lag_events", "promptforge_projection_lag_seconds", "promptforge_worker_queue_depth"}
HISTOGRAMS = {"promptforge_http_request_duration_seconds", "promptforge_search_duration_seconds",
              "promptforge_embedding_batch_seconds"}
CONTRACT = COUNTERS | GAUGES | HISTOGRAMS

PG_URL = r"promptforge:\$\{POSTGRES_PASSWORD(?::?-[^}]*)?\}@postgres:5432/promptforge"
EXPECTED_ENV = {
    "PROMPTFORGE_ENV": r"production",
    "PROMPTFORGE_EVENT_STORE_URL": r"postgresql://" + PG_URL,
    "PROMPTFORGE_READ_MODEL_URL": r"postgresql\+psycopg://" + PG_URL,
    "PROMPTFORGE_REDIS_URL": r"redis://redis:6379/0",
    "PROMPTFORGE_QDRANT_URL": r"http://qdrant:6333",
    # Empty default, never `:?`: `config` must validate in CI without secrets (see the compose header).
    "PROMPTFORGE_JWT_SECRET": r"\$\{PROMPTFORGE_JWT_SECRET(:?-)?\}",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command")
    return cmd.split() if isinstance(cmd, str) else list(cmd or [])


# --- docker-compose.yml --------------------------------------------------------------------------

def test_compose_specification_format(compose: dict) -> None:
    assert "version" not in compose, "Compose Specification: no top-level `version:` key"
    assert set(ALL_SERVICES) <= set(compose["services"])


def test_no_required_variable_syntax() -> None:
    """`${VAR:?msg}` would make `docker compose config` fail in CI where no secrets are set."""
    text = COMPOSE.read_text()
    assert not re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?", text)


def test_app_services_wait_for_healthy_backing_services(services: dict) -> None:
    for name in APP_SERVICES:
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with conditions"
        for backing in BACKING_SERVICES:
            assert depends.get(backing, {}).get("condition") == "service_healthy", (name, backing)


def test_app_service_commands(services: dict) -> None:
    assert _command(services["api"]) == ["promptforge", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
    assert _command(services["worker"]) == ["promptforge", "worker", "--processes", "2", "--threads", "4"]
    for name in APP_SERVICES:
        assert services[name].get("build"), f"{name} builds the project image"
        assert services[name].get("restart") in ("unless-stopped", "always", "on-failure")
    assert services["api"]["image"] == services["worker"]["image"], "api and worker run the same image"


def test_api_publishes_8000_and_checks_readyz(services: dict) -> None:
    api = services["api"]
    assert any(str(p).split(":")[-2:] == ["8000", "8000"] for p in api["ports"])
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_worker_exposes_metrics_and_scales(services: dict) -> None:
    worker = services["worker"]
    assert "9100" in [str(p) for p in worker.get("expose", [])]
    assert not worker.get("ports"), "publishing a host port would stop `--scale worker=N`"
    assert "container_name" not in worker, "a fixed container name would stop `--scale worker=N`"
    assert isinstance(worker.get("deploy", {}).get("replicas"), int)
    assert "9100/metrics" in " ".join(worker["healthcheck"]["test"]), "the image's API healthcheck must be overridden"


def test_app_environment(services: dict) -> None:
    for name in APP_SERVICES:
        env = _environment(services[name])
        for key, pattern in EXPECTED_ENV.items():
            assert key in env, f"{name}: {key} missing"
            assert re.fullmatch(pattern, env[key]), f"{name}: {key}={env[key]!r}"
        assert env.get("HF_HUB_OFFLINE") == "1" and env.get("TRANSFORMERS_OFFLINE") == "1"
    assert _environment(services["api"]) == _environment(services["worker"]), "one shared env anchor"


def test_postgres_password_matches_urls(services: dict) -> None:
    password = _environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD"), "the password comes from the environment"
    url = _environment(services["api"])["PROMPTFORGE_EVENT_STORE_URL"]
    assert password in url, "the same default must be used by the server and by its clients"


def test_empty_jwt_secret_is_refused_in_production() -> None:
    """The compose file relies on this instead of `:?`: a missing secret stops the app, not CI."""
    from pydantic import ValidationError

    from interfaces.settings import Settings

    with pytest.raises(ValidationError, match="PROMPTFORGE_JWT_SECRET"):
        Settings(env="production", jwt_secret="")


def test_stateful_services_have_named_volumes_and_healthchecks(compose: dict, services: dict) -> None:
    named = set(compose.get("volumes") or {})
    for name in STATEFUL_SERVICES:
        service = services[name]
        sources = []
        for volume in service.get("volumes", []):
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            sources.append(source)
        assert any(s in named for s in sources), f"{name}: no named volume among {sources}"
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name}: no healthcheck"
        assert service.get("restart"), f"{name}: no restart policy"


def test_backing_service_details(services: dict) -> None:
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert services["redis"]["image"].startswith("redis:7")
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "--appendonly" in _command(services["redis"]) and "yes" in _command(services["redis"])
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert services["qdrant"]["image"].startswith("qdrant/qdrant")
    assert any(v.endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    qdrant_check = " ".join(services["qdrant"]["healthcheck"]["test"])
    assert "/dev/tcp/" in qdrant_check and "curl" not in qdrant_check, "the qdrant image has no curl"
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")


def test_bind_mounts_exist(services: dict) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith(("./", "../", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} missing"
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts


def test_env_example_lists_the_secrets() -> None:
    text = (ROOT / ".env.example").read_text()
    for key in ("POSTGRES_PASSWORD", "PROMPTFORGE_JWT_SECRET", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(rf"^{key}=", text, re.M), key
    # Nothing in the example is a usable production JWT secret.
    assert re.search(r"^PROMPTFORGE_JWT_SECRET=\s*$", text, re.M)


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates_without_secrets() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is on PATH")
    env = {k: v for k, v in os.environ.items()
           if k not in ("POSTGRES_PASSWORD", "PROMPTFORGE_JWT_SECRET", "GRAFANA_ADMIN_PASSWORD")}
    result = subprocess.run([*client, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or result.stdout


# --- Dockerfile and .dockerignore ------------------------------------------------------------------

def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"python:3\.11-slim", text)
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu$", text, re.M)
    torch = text.index('pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"')
    project = re.search(r"^RUN pip install \.(?:\s|$)", text, re.M).start()
    assert torch < project, "the CPU torch wheel must be installed before the project"
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", text, re.M)
    for package in ("domain/", "application/", "projections/", "interfaces/", "workers/"):
        assert re.search(rf"^COPY {package} ", text, re.M), package
    assert re.search(r"^COPY pyproject\.toml README\.md ", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), "runs as a non-root user"
    for var in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "PYTHONUNBUFFERED=1"):
        assert var in text
    assert re.search(r"^EXPOSE 8000$", text, re.M)
    assert "HEALTHCHECK" in text and "urllib" in text and "http://127.0.0.1:8000/healthz" in text
    cmd = re.findall(r"^CMD (.+)$", text, re.M)[-1]
    assert json.loads(cmd) == ["promptforge", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]


def test_dockerignore() -> None:
    entries = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for required in (".venv", "var", ".git", ".pytest_cache", "bench/results", ".env"):
        assert required in entries or any(e.rstrip("/") == required for e in entries), required
    for needed in ("pyproject.toml", "README.md", "domain", "interfaces", "workers"):
        assert needed not in entries, f"{needed} is needed by the build"


# --- Prometheus -------------------------------------------------------------------------------------

def _scrape_targets(config: dict) -> dict[str, set[str]]:
    """metrics path -> host:port targets, from static and DNS service discovery configs."""
    found: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            found.setdefault(path, set()).update(static.get("targets", []))
        for dns in job.get("dns_sd_configs", []):
            found.setdefault(path, set()).update(f"{n}:{dns['port']}" for n in dns.get("names", []))
    return found


def test_prometheus_scrapes_api_and_worker() -> None:
    targets = _scrape_targets(yaml.safe_load(PROMETHEUS.read_text()))
    assert {"api:8000", "worker:9100"} <= targets.get("/metrics", set()), targets


# --- Grafana ----------------------------------------------------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', " ", expr)   # strings
    text = re.sub(r"\$\{[^}]*\}|\$\w+", " ", text)                                  # Grafana variables
    text = re.sub(r"\{[^}]*\}", " ", text)                                          # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                                         # range / subquery
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:.])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?", " ", text)          # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("("):  # a function or an aggregation
            continue
        if match.group(0).lower() not in _KEYWORDS:
            names.add(match.group(0))
    return names


def _allowed(name: str) -> bool:
    if name in COUNTERS or name in GAUGES:
        return True
    return any(name == h + suffix for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count"))


def _base(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def test_promql_parser_sees_metric_names() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.95, sum by (le, route) (rate(promptforge_http_request_duration_seconds_bucket'
        '{route!~"/x"}[$__rate_interval])))') == {"promptforge_http_request_duration_seconds_bucket"}
    assert promql_metric_names("sum(rate(up[5m])) / clamp_min(sum(rate(other_total[1m])), 1e-9)") == {"up", "other_total"}
    assert promql_metric_names('max(promptforge_worker_queue_depth) by (queue) > bool 10') == {"promptforge_worker_queue_depth"}
    assert not _allowed("promptforge_http_requests_total_bucket") and not _allowed("up")


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside collapsed rows
    return out


def _dashboards() -> list[Path]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, "no dashboard JSON under deploy/grafana/dashboards"
    return files


def _provisioned_datasource_uids() -> set[str]:
    uids = set()
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.y*ml"):
        for ds in yaml.safe_load(path.read_text()).get("datasources", []):
            assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
            uids.add(ds["uid"])
    return uids


def test_grafana_provisioning_points_at_the_dashboards(services: dict) -> None:
    providers = [p for path in (GRAFANA / "provisioning" / "dashboards").glob("*.y*ml")
                 for p in yaml.safe_load(path.read_text()).get("providers", [])]
    assert providers
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"] if v.startswith("./")}
    for provider in providers:
        source = mounts.get(provider["options"]["path"])
        assert source and (ROOT / source).resolve() == DASHBOARDS.resolve(), provider
    assert mounts.get("/etc/grafana/provisioning") == "./deploy/grafana/provisioning"
    env = _environment(services["grafana"])
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer" or env.get("GF_SECURITY_ADMIN_PASSWORD", "").startswith("${")


def test_dashboard_uses_only_contract_metrics() -> None:
    uids = _provisioned_datasource_uids()
    assert uids
    used: set[str] = set()
    for path in _dashboards():
        dashboard = json.loads(path.read_text())
        assert dashboard.get("uid") and dashboard.get("title")
        graphs = [p for p in _panels(dashboard) if p.get("type") != "row"]
        assert graphs, f"{path.name}: no panels"
        for panel in graphs:
            targets = panel.get("targets") or []
            assert targets, f"{path.name}: panel {panel.get('title')!r} has no query"
            for target in targets:
                expr = target.get("expr", "")
                names = promql_metric_names(expr)
                assert names, f"{panel['title']!r}: no metric in {expr!r}"
                bad = sorted(n for n in names if not _allowed(n))
                assert not bad, f"{panel['title']!r}: {bad} are not in the metrics contract ({expr!r})"
                used |= {_base(n) for n in names}
                ds = target.get("datasource") or panel.get("datasource")
                assert ds and ds.get("uid") in uids, f"{panel['title']!r}: datasource {ds} is not provisioned"
    assert used == CONTRACT, f"contract metrics without a panel: {sorted(CONTRACT - used)}"
