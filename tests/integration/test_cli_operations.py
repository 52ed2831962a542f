"""Operations from the command line: rebuild honours the configured projections, status reports
failures, and an unreachable database at start-up is one clear line (adr/0010)."""
from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from application import Principal
from interfaces.bootstrap import build
from interfaces.cli import main
from interfaces.settings import Settings
from projections import tracking


def _env(tmp_path, **extra) -> dict[str, str]:
    return {"PROMPTFORGE_DATA_DIR": str(tmp_path), "PROMPTFORGE_EVENT_STORE_URL": f"sqlite:///{tmp_path}/events.db",
            "PROMPTFORGE_READ_MODEL_URL": f"sqlite:///{tmp_path}/rm.db", "PROMPTFORGE_ENV": "test", **extra}


def _seed(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, event_store_url=f"sqlite:///{tmp_path}/events.db",
                        read_model_url=f"sqlite:///{tmp_path}/rm.db", env="test", vectors_enabled=False,
                        inprocess_projections=False)
    c = build(settings)
    try:
        user_id, _ = c.app.register_user("cli@example.com", "correct horse battery", "C", "r")
        owner = Principal.user(user_id)
        org = c.app.create_organisation(owner, "CLI", "r").id
        c.app.create_prompt(owner, org, name="p", template="t", request_id="r")
    finally:
        c.close()


def test_rebuild_all_without_vectors_leaves_no_vector_state(tmp_path, monkeypatch):
    """`rebuild --all` with PROMPTFORGE_VECTORS_ENABLED=false built a local vector index, loaded the
    model and left a `vectors` tracking row nothing advanced: its lag grew forever in `status`."""
    _seed(tmp_path)
    for key, value in _env(tmp_path, PROMPTFORGE_VECTORS_ENABLED="false").items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["projections", "rebuild", "--all"])
    assert result.exit_code == 0, result.output
    assert "catalogue:" in result.output and "vectors" not in result.output
    assert not (tmp_path / "vectors").exists()
    status = CliRunner().invoke(main, ["projections", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert "vectors" not in status.output and '"lag_events": 0' in status.output
    c = build(Settings(vectors_enabled=False, inprocess_projections=False))
    try:
        assert "vectors" not in tracking.read_all(c.engine)
    finally:
        c.close()
    refused = CliRunner().invoke(main, ["projections", "rebuild", "vectors"])
    assert refused.exit_code == 2 and "name one of" in refused.output


def test_an_unreachable_read_model_database_is_one_line_not_a_traceback(tmp_path):
    """The API exited with a 155-line traceback and never answered /healthz. It now waits
    (PROMPTFORGE_STARTUP_TIMEOUT_SECONDS) and then stops with one line naming the setting."""
    env = {**os.environ, **_env(tmp_path, PROMPTFORGE_READ_MODEL_URL="postgresql://nobody:s3cret@127.0.0.1:1/rm",
                                PROMPTFORGE_STARTUP_TIMEOUT_SECONDS="1")}
    cli = [sys.executable, "-c", "from interfaces.cli import main; main()"]
    for command in (["serve", "--port", "0"], ["projections", "status"]):
        run = subprocess.run([*cli, *command], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
        errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "PROMPTFORGE_READ_MODEL_URL" in errors[0], run.stderr
        assert "Traceback" not in run.stderr and "s3cret" not in run.stderr
