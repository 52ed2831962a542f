"""dramatiq workers on real Redis: nudges, Redis outage, and two worker processes exactly once."""
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from sqlalchemy import func, select

from application import Principal
from interfaces.bootstrap import build
from projections.audit import audit_log
from projections.catalogue import prompt_versions

pytestmark = pytest.mark.redis


def _activity(app, n_prompts: int, tag: str):
    user_id, _ = app.register_user(f"{tag}@ex.com", "correct horse battery", tag, "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, tag, "r").id
    for i in range(n_prompts):
        prompt = app.create_prompt(owner, org, name=f"{tag}-{i}", template="t {{x}}", request_id="r").id
        app.revise_prompt(owner, org, prompt, base_version=1, template="u {{x}}", request_id="r")
    return org


def test_redis_down_never_fails_a_command(make_settings):
    container = build(make_settings(redis_url="redis://127.0.0.1:1/0"))  # nothing listens there
    try:
        started = time.perf_counter()
        _activity(container.app, 5, "down")
        elapsed = time.perf_counter() - started
        nudger = container.nudger
        assert nudger.failed > 0 and nudger.sent == 0
        assert elapsed < 5, "a dead Redis must not stall commands"
        # Events are durable: once anything catches up, nothing is missing.
        container.supervisor.catch_up()
        assert all(s.lag_events == 0 for s in container.supervisor.status())
    finally:
        container.close()


def _worker_env(settings, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PROMPTFORGE_EVENT_STORE_URL": settings.event_store_url,
        "PROMPTFORGE_READ_MODEL_URL": settings.read_model_url,
        "PROMPTFORGE_REDIS_URL": redis_url,
        "PROMPTFORGE_DATA_DIR": str(settings.data_dir),
        "PROMPTFORGE_PROJECTION_POLL_SECONDS": "0.5",
        "PROMPTFORGE_PROJECTION_BATCH_SIZE": "7",  # many small batches: many chances to race
        "PROMPTFORGE_ENV": "test",
        "PROMPTFORGE_DB_POOL_SIZE": "3",
    })
    return env


def test_two_worker_processes_catch_up_exactly_once(make_settings, redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    settings = make_settings(redis_url=redis_url)
    container = build(settings)
    workers = []
    try:
        # First the outage: commands succeed while the broker is unreachable...
        down = build(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
        _activity(down.app, 10, "outage")
        down.close()
        # ...then two worker processes come up against the real Redis and catch up.
        env = _worker_env(settings, redis_url)
        for _ in range(2):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "workers.dramatiq_app", "--processes", "1", "--threads", "2"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            ))
        _activity(container.app, 25, "live")  # nudged through the real Redis
        assert container.nudger.sent > 0
        head = container.supervisor.source.head()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(s.position >= head for s in container.supervisor.status()):
            time.sleep(0.2)
        assert all(s.position == head for s in container.supervisor.status()), [s.__dict__ for s in container.supervisor.status()]
        events = container.supervisor.source.read(0, 100_000)
        with container.engine.connect() as conn:
            versions = conn.execute(select(func.count()).select_from(prompt_versions)).scalar()
            audited = conn.execute(select(func.count()).select_from(audit_log)).scalar()
        assert versions == 2 * (10 + 25)
        skipped = sum(1 for e in events if type(e.event).__qualname__.split(".")[0] in ("EmailIndex", "PromptNameIndex", "PromptQuota"))
        assert audited == len(events) - skipped
    finally:
        for proc in workers:  # the whole process group: dramatiq forks its worker processes
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        container.close()
    for proc in workers:
        err = proc.stderr.read().decode(errors="replace")
        assert "Traceback" not in err or "KeyboardInterrupt" in err, err[-3000:]


def test_a_worker_keeps_what_start_up_made_out_of_the_collectors_full_passes(make_settings, redis_url):
    """Like the API (interfaces.startup.freeze_startup_objects): once a worker process has built its
    container, what start-up made is frozen, so a full collection walks only what came after (they
    paused a worker for 116–129 ms each under prompt creations)."""
    settings = make_settings(redis_url=redis_url)
    build(settings).close()  # the schema, as a deployment's first start makes it
    script = ("import gc, workers.dramatiq_app as w\n"
              "before = gc.get_freeze_count()\n"
              "w.container()\n"
              "print(before, gc.get_freeze_count())\n")
    out = subprocess.run([sys.executable, "-c", script], env=_worker_env(settings, redis_url), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split()[-2:])
    assert before == 0 and after > 10_000
