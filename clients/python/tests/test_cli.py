"""Prompts as code against a real server: export -> import round trip, a re-import writes nothing
(the change feed is unchanged), --dry-run changes nothing, protected labels become review requests,
and a retried import never duplicates versions or label moves."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pfc_support import Admin, Org
from promptforge_client import Client
from promptforge_client import cli
from promptforge_client.promptfiles import dumps, loads, read_dir

pytest.importorskip("yaml")
ADMIN: list[Admin] = []


@pytest.fixture(autouse=True)
def _admin(admin):
    ADMIN[:] = [admin]


def run(server, org: Org, *args: str, key: str | None = None, admin: Admin | None = None) -> tuple[int, str]:
    """The CLI in-process. It starts with a fresh client, so first wait for the catalogue to have
    applied every write made so far (a real CLI run comes long after the writes it reads)."""
    (admin or ADMIN[0]).caught_up(org)
    out = io.StringIO()
    code = cli.main(["--url", server.url, "--api-key", key or org.key, "--org", org.id, *args], out=out)
    return code, out.getvalue()


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}


def seed(admin: Admin, org: Org) -> dict[str, str]:
    ids = {}
    tone = admin.prompt(org, "shared/tone", "Be kind.\n", tags=["Style"])
    ids["shared/tone"] = tone["id"]
    admin.move(org, tone["id"], "production", 1)
    refund = admin.prompt(
        org, "support/billing/refund", "{{> shared/tone}}\nRefund {{order.id}} for {{customer}}.\n{{#items}}\n- {{sku}}\n{{/items}}",
        variables=[{"name": "order", "type": "object"}, {"name": "customer", "description": "full name"},
                   {"name": "items", "type": "list", "default": []}],
        model_config={"model": "gpt-4o-mini", "temperature": 0.2, "stop": ["\n\n"]}, tags=["support", "billing"])
    ids["support/billing/refund"] = refund["id"]
    admin.revise(org, refund["id"], 1, "{{> shared/tone}}\nRefund {{order.id}} for {{customer}} now.\n{{#items}}\n- {{sku}}\n{{/items}}")
    admin.move(org, refund["id"], "production", 2)
    admin.move(org, refund["id"], "staging", 2)
    chat = admin.prompt(org, "support/chat", type="chat", template_format="mustache", messages=[
        {"role": "system", "content": "You support {{product}}.\nBe precise: {{#vip}}VIP{{/vip}}"},
        {"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{question}}"}])
    ids["support/chat"] = chat["id"]
    admin.move(org, chat["id"], "staging", 1)
    plain = admin.prompt(org, "legacy", "Old {{ name }} with {{#each x}} literal", template_format="plain")
    ids["legacy"] = plain["id"]
    sections = admin.prompt(org, "sections", "{{#items}}{{sku}}{{/items}}", variables=["items", "sku"])
    ids["sections"] = sections["id"]
    return ids


def test_file_format_round_trips():
    from promptforge_client.promptfiles import PromptFile

    f = PromptFile(name="a/b", type="text", template="line\n\nends with newline\n", template_format="mustache",
                   labels=["production"], tags=["x"], model_config={"k": [1, {"a": None}]},
                   variables=[{"name": "x", "type": "number", "default": 1}])
    text = dumps(f)
    back = loads(text, "a/b.md")
    assert back.template == f.template and back.model_config == f.model_config and back.variables == f.variables
    assert dumps(back) == text
    chat = PromptFile(name="c", type="chat", messages=[{"role": "system", "content": "multi\nline  \n"},
                                                       {"type": "placeholder", "name": "h"}], labels=[])
    assert loads(dumps(chat)).messages == chat.messages


def test_export_import_round_trip_is_equal(server, admin, tmp_path):
    source, target = admin.org(), admin.org()
    seed(admin, source)
    admin.caught_up(source)
    first, second = tmp_path / "first", tmp_path / "second"
    code, out = run(server, source, "export", str(first))
    assert code == 0, out
    files = tree(first)
    assert set(files) == {"shared/tone.md", "support/billing/refund.md", "support/chat.md", "legacy.md", "sections.md"}
    refund = files["support/billing/refund.md"]
    assert refund.startswith("---\nname: support/billing/refund\ntype: text\ntemplate_format: mustache\n")
    assert "labels:\n- production\n- staging\n" in refund and "{{> shared/tone}}" in refund  # raw: includes kept
    assert "messages:" in files["support/chat.md"] and files["support/chat.md"].endswith("---\n")
    code, out = run(server, target, "import", str(first))
    assert code == 0, out
    assert "created: support/billing/refund" in out
    code, out = run(server, target, "export", str(second))
    assert code == 0, out
    assert tree(second) == files
    # the imported registry serves the same composed content
    with Client(server.url, api_key=source.read_key, org_id=source.id) as a, \
            Client(server.url, api_key=target.read_key, org_id=target.id) as b:
        for name, label in (("support/billing/refund", "production"), ("support/chat", "staging")):
            pa, pb = a.get_prompt(name, label), b.get_prompt(name, label)
            assert (pa.template, pa.messages, pa.variables, pa.variable_schema, pa.config, pa.tags) == \
                   (pb.template, pb.messages, pb.variables, pb.variable_schema, pb.config, pb.tags)


def test_reimport_is_a_no_op_and_dry_run_changes_nothing(server, admin, tmp_path):
    org = admin.org()
    seed(admin, org)
    admin.caught_up(org)
    root = tmp_path / "prompts"
    assert run(server, org, "export", str(root))[0] == 0
    before = admin.changes(org)
    code, out = run(server, org, "import", str(root))
    assert code == 0, out
    assert "nothing to do" in out or "unchanged" in out
    assert all(line.startswith("unchanged:") for line in out.splitlines()[:-1]), out
    assert admin.changes(org) == before  # not one new event
    # edit files: the dry run prints the plan and writes nothing
    refund = root / "support/billing/refund.md"
    refund.write_text(refund.read_text().replace("now.", "today."), encoding="utf-8")
    chat = root / "support/chat.md"
    chat.write_text(chat.read_text().replace("- staging", "- staging\n- qa"), encoding="utf-8")
    new = root / "new/prompt.md"
    new.parent.mkdir()
    new.write_text("---\nname: new/prompt\nlabels: [staging]\n---\nHello {{who}}\n", encoding="utf-8")
    code, out = run(server, org, "import", "--dry-run", str(root))
    assert code == 0, out
    assert "would revise: support/billing/refund (version 2 -> 3: template)" in out
    assert "would move label: support/billing/refund (production: v2 -> the new version)" in out
    assert "would move label: support/chat (qa: unset -> v1)" in out
    assert "would create: new/prompt" in out and "would move label: new/prompt (staging: unset -> the new version)" in out
    assert "dry run: nothing written" in out
    assert admin.changes(org) == before
    code, out = run(server, org, "import", str(root))
    assert code == 0, out
    after = admin.changes(org)
    kinds = sorted(c["type"] for c in after[len(before):])
    assert kinds == sorted(["prompt.revised", "prompt.label_moved", "prompt.label_moved", "prompt.label_moved",
                            "prompt.created", "prompt.label_moved"]), kinds
    with Client(server.url, api_key=org.read_key, org_id=org.id) as c:
        assert c.get_prompt("support/billing/refund").template.endswith("today.\n- {{sku}}\n") or "today." in \
            c.get_prompt("support/billing/refund").template
        assert c.get_prompt("new/prompt", "staging").render(who="x") == "Hello x"
        assert c.get_prompt("support/chat", "qa").version == 1
    # and again: nothing
    code, out = run(server, org, "import", str(root))
    assert code == 0 and admin.changes(org) == after, out


def test_protected_labels_become_review_requests_once(server, admin, tmp_path):
    org = admin.org(protected=True)
    root = tmp_path / "p"
    (root / "team").mkdir(parents=True)
    (root / "team/greet.md").write_text("---\nname: team/greet\nlabels: [production, staging]\n---\nHi {{n}}\n",
                                        encoding="utf-8")
    code, out = run(server, org, "import", "--dry-run", str(root))
    assert code == 0 and "would request review: team/greet (production: unset -> the new version)" in out, out
    code, out = run(server, org, "import", str(root))
    assert code == 0, out
    assert "requested review: team/greet (production -> v1" in out and "moved label: team/greet (staging -> v1)" in out
    with Client(server.url, api_key=org.key, org_id=org.id) as c:
        summary = c.list_prompts(name_prefix="team/greet").items[0]
        reviews = c.list_review_requests(prompt_id=summary.id)
        assert len(reviews) == 1 and reviews[0].raw["label"] == "production"
        assert "production" not in summary.labels
    before = admin.changes(org)
    code, out = run(server, org, "import", str(root))
    assert code == 0 and admin.changes(org) == before, out  # the open request is not repeated
    assert "unchanged: team/greet" in out


def test_a_retried_import_never_duplicates_versions_or_moves(server, admin, tmp_path):
    """The same plan executed twice (as when an import is retried after its answers were lost): the
    creations and revisions are replayed by their Idempotency-Keys, the label moves recognised."""
    org = admin.org()
    pid = admin.prompt(org, "existing", "v1 {{x}}")["id"]
    admin.move(org, pid, "staging", 1)
    root = tmp_path / "p"
    root.mkdir()
    (root / "existing.md").write_text("---\nname: existing\nlabels: [staging]\n---\nv2 {{x}}\n", encoding="utf-8")
    (root / "fresh.md").write_text("---\nname: fresh\nlabels: [staging]\n---\nnew\n", encoding="utf-8")
    admin.caught_up(org)
    with Client(server.url, api_key=org.key, org_id=org.id) as c:
        steps = cli.plan(c, list(read_dir(root)))
        assert [s.kind for s in steps] == ["revise", "move", "create", "move"]
        assert cli.execute(c, steps, io.StringIO()) == 0
        after_first = admin.changes(org)
        out = io.StringIO()
        assert cli.execute(c, steps, out) == 0, out.getvalue()
        assert "already there" in out.getvalue()
        assert admin.changes(org) == after_first
        info = c.get_prompt_info(pid)
        assert info["latest_version"] == 2 and info["labels"]["staging"] == 2


def test_console_script_and_configuration_errors(server, admin, tmp_path):
    org = admin.org()
    admin.prompt(org, "one", "1")
    admin.caught_up(org)
    exe = Path(sys.executable).with_name("promptforge-client")
    if not exe.exists():
        pytest.skip("promptforge-client is not installed in this environment")
    env = {**os.environ, "PROMPTFORGE_URL": server.url, "PROMPTFORGE_API_KEY": org.key, "PROMPTFORGE_ORG": org.id}
    done = subprocess.run([str(exe), "export", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x" / "one.md").exists()
    env.pop("PROMPTFORGE_ORG")
    done = subprocess.run([str(exe), "import", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--org" in done.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "b.md").write_text("no front matter", encoding="utf-8")
    code, out = run(server, org, "import", str(bad))
    assert code == 2 and "front matter" in out
