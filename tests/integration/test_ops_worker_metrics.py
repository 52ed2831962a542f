"""The dramatiq worker serves Prometheus metrics on PROMPTFORGE_WORKER_METRICS_PORT, one port for
all of its `--processes` (multiprocess directory + one forked exporter)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import redis

from interfaces.bootstrap import build

pytestmark = pytest.mark.redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_metrics_two_processes_one_port(make_settings, redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    settings = make_settings(redis_url=redis_url)
    container = build(settings)  # creates the schema; its nudges feed the queue
    port = _free_port()
    env = dict(os.environ, PROMPTFORGE_EVENT_STORE_URL=settings.event_store_url,
               PROMPTFORGE_READ_MODEL_URL=settings.read_model_url, PROMPTFORGE_REDIS_URL=redis_url,
               PROMPTFORGE_DATA_DIR=str(settings.data_dir), PROMPTFORGE_ENV="test", PROMPTFORGE_DB_POOL_SIZE="3",
               PROMPTFORGE_VECTORS_ENABLED="false", PROMPTFORGE_WORKER_METRICS_PORT=str(port))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = subprocess.Popen([sys.executable, "-m", "dramatiq", "workers.dramatiq_app", "--processes", "2",
                               "--threads", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        container.app.register_user("metrics@example.com", "correct horse battery", "M", "r")
        body = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                # The histogram appears once a worker process has built its container (first tick).
                if all(m in body for m in ("promptforge_projection_lag_events{", "promptforge_worker_queue_depth{",
                                           "promptforge_embedding_batch_seconds")):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert 'promptforge_worker_queue_depth{queue="projections"}' in body, body[-2000:]
        assert 'promptforge_projection_lag_events{projection="catalogue"}' in body
        assert "# TYPE promptforge_embedding_batch_seconds histogram" in body
        assert worker.poll() is None, "the worker must keep running"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        container.close()
