"""`promptforge-client`: prompts as code.

    promptforge-client export --org ORG DIR           # every prompt -> DIR/<folders>/<name>.md
    promptforge-client import --org ORG DIR [--dry-run]

`import` makes the registry match the files, idempotently: a file whose content equals the prompt's
latest version writes nothing; a changed one adds one version (base_version = the latest, so a
concurrent edit is refused rather than overwritten); the file's `labels` are then moved to that
version (compare-and-set on the version they point at now). A protected label (production, by
default) is not moved: a review request is opened instead (once: an open request for the same move
is not repeated). Creations and revisions carry an Idempotency-Key derived from their content, so a
retried import never creates a version twice; a retried label move that already happened is
recognised and skipped. `--dry-run` prints the plan and changes nothing. Prompts that have no file
are left alone.

Configuration: --url / PROMPTFORGE_URL, --api-key / PROMPTFORGE_API_KEY (or --token), --org /
PROMPTFORGE_ORG. Exit status: 0 done (or nothing to do), 1 some step failed, 2 bad usage or files.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from promptforge_client._core import content_key
from promptforge_client.client import Client
from promptforge_client.errors import ApiError, PromptForgeError, TransportError
from promptforge_client.promptfiles import PromptFile, PromptFileError, differences, dumps, from_registry, \
    path_for, read_dir


T = TypeVar("T")


@dataclass
class Step:
    kind: str  # create | revise | move | review | unchanged | skip | error
    name: str
    detail: str = ""
    file: PromptFile | None = None
    prompt_id: str | None = None
    base_version: int | None = None
    label: str | None = None
    expected_version: int | None = None
    #: label steps: the version to point at (None: the version the create/revise step before it made)
    version: int | None = None
    changed: list[str] = field(default_factory=list)

    def line(self, dry_run: bool) -> str:
        verb = {"create": "create", "revise": "revise", "move": "move label", "review": "request review",
                "unchanged": "unchanged", "skip": "skip", "error": "error"}[self.kind]
        prefix = "would " if dry_run and self.kind in ("create", "revise", "move", "review") else ""
        return f"{prefix}{verb}: {self.name}" + (f" ({self.detail})" if self.detail else "")


# -- export -------------------------------------------------------------------------------------------


def export(client: Client, root: Path, out: TextIO = sys.stdout) -> int:
    root.mkdir(parents=True, exist_ok=True)
    count = 0
    for summary in client.iter_prompts(archived=False, sort="name"):
        info = client.get_prompt_info(summary.id)
        prompt = from_registry(info)
        path = path_for(root, prompt.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(prompt), encoding="utf-8")
        count += 1
        print(f"wrote {path.relative_to(root)}", file=out)
    print(f"exported {count} prompt(s) to {root}", file=out)
    return 0


# -- import -------------------------------------------------------------------------------------------


def _protected(client: Client) -> set[str] | None:
    try:
        return set(client.get_org().get("protected_labels") or [])
    except PromptForgeError:
        return None  # unknown: a move answered LABEL_PROTECTED becomes a review request anyway


def _open_review(client: Client, prompt_id: str, label: str, version: int) -> bool:
    for review in client.list_review_requests(status="open", prompt_id=prompt_id):
        if review.raw.get("label") != label:
            continue
        for move in review.raw.get("moves") or []:
            if move.get("prompt_id") == prompt_id and move.get("version") == version:
                return True
    return False


def plan(client: Client, files: list[PromptFile]) -> list[Step]:
    existing = {s.name.lower(): s for s in client.iter_prompts(archived=None)}
    protected = _protected(client)
    steps: list[Step] = []
    seen: set[str] = set()
    for f in files:
        key = f.name.lower()
        if key in seen:
            steps.append(Step("error", f.name, f"two files name this prompt ({f.path})"))
            continue
        seen.add(key)
        labels = f.clean_labels()
        if "latest" in labels:
            steps.append(Step("error", f.name, "`latest` is automatic: it cannot be listed in labels"))
            continue
        summary = existing.get(key)
        if summary is None:
            steps.append(Step("create", f.name, f"{f.type}, version 1", file=f))
            for label in labels:
                steps.append(_label_step(f, None, label, 0, None, protected))
            continue
        if summary.archived:
            steps.append(Step("skip", f.name, "archived in the registry: restore it to import into it"))
            continue
        info = client.get_prompt_info(summary.id)
        if info.get("type", "text") != f.type:
            steps.append(Step("error", f.name, f"the registry's prompt is {info.get('type')}, the file says {f.type} "
                                               "(a prompt's type is fixed)"))
            continue
        latest = info["latest_version"]
        changed = differences(f, info)
        target: int | None = latest
        if changed:
            steps.append(Step("revise", f.name, f"version {latest} -> {latest + 1}: {', '.join(changed)}", file=f,
                              prompt_id=summary.id, base_version=latest, changed=changed))
            target = None
        label_steps = []
        for label in labels:
            current = (info.get("labels") or {}).get(label, 0)
            is_split = label in (info.get("splits") or {})
            if target is not None and current == target and not is_split:
                continue
            step = _label_step(f, summary.id, label, current, target, protected)
            if step.kind == "review" and target is not None and _open_review(client, summary.id, label, target):
                continue  # already requested
            label_steps.append(step)
        if not changed and not label_steps:
            steps.append(Step("unchanged", f.name, f"version {latest}"))
        steps += label_steps
    return steps


def _label_step(f: PromptFile, prompt_id: str | None, label: str, current: int, target: int | None,
                protected: set[str] | None) -> Step:
    kind = "review" if protected is not None and label in protected else "move"
    to = f"v{target}" if target is not None else "the new version"
    return Step(kind, f.name, f"{label}: {'v' + str(current) if current else 'unset'} -> {to}", file=f,
                prompt_id=prompt_id, label=label, expected_version=current, version=target)


def _retrying(call: Callable[[], T], attempts: int = 3) -> T:
    """Retry a request that failed for the network only (its Idempotency-Key makes that safe)."""
    for attempt in range(attempts):
        try:
            return call()
        except TransportError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def execute(client: Client, steps: list[Step], out: TextIO) -> int:
    failed = 0
    made: dict[str, tuple[str, int]] = {}  # prompt name -> (id, version) written by this run
    broken: set[str] = set()
    for step in steps:
        if step.kind in ("unchanged", "skip"):
            print(step.line(False), file=out)
            continue
        if step.kind == "error":
            failed += 1
            print(step.line(False), file=out)
            continue
        if step.name in broken:
            print(f"skipped: {step.name} ({step.label}: its version could not be written)", file=out)
            continue
        try:
            if step.kind == "create":
                made[step.name] = _create(client, step)
                print(f"created: {step.name} (version 1)", file=out)
            elif step.kind == "revise":
                made[step.name] = _revise(client, step)
                print(f"revised: {step.name} (version {made[step.name][1]}: {', '.join(step.changed)})", file=out)
            else:
                prompt_id, version = made.get(step.name, (step.prompt_id, step.version))
                print(_label(client, step, prompt_id, version), file=out)
        except PromptForgeError as exc:
            failed += 1
            if step.kind in ("create", "revise"):
                broken.add(step.name)
            print(f"failed: {step.line(False)}: {exc.code}: {exc.message}", file=out)
    return failed


def _body(f: PromptFile) -> dict[str, Any]:
    c = f.content()
    return {"template": c.get("template"), "messages": c.get("messages"), "template_format": c.get("template_format"),
            "variables": f.variables, "config": c.get("model_config"), "tags": c.get("tags")}


def _create(client: Client, step: Step) -> tuple[str, int]:
    f = step.file
    assert f is not None
    key = content_key("create", client.org_id, f.name, f.content())
    result = _retrying(lambda: client.create_prompt(f.name, message=f"imported from {f.path}", idempotency_key=key,
                                                    **_body(f)))
    return result.id, result.version


def _revise(client: Client, step: Step) -> tuple[str, int]:
    f = step.file
    assert f is not None and step.prompt_id is not None and step.base_version is not None
    prompt_id, base = step.prompt_id, step.base_version
    key = content_key("revise", client.org_id, prompt_id, base, f.content())
    result = _retrying(lambda: client.revise_prompt(prompt_id, base, message=f"imported from {f.path}",
                                                    idempotency_key=key, **_body(f)))
    return prompt_id, result.version


def _label(client: Client, step: Step, prompt_id: str | None, version: int | None) -> str:
    assert prompt_id is not None and version is not None and step.label is not None
    label, expected = step.label, step.expected_version or 0
    if step.kind == "move":
        try:
            _retrying(lambda: client.move_label(prompt_id, label, version, expected_version=expected))
            return f"moved label: {step.name} ({label} -> v{version})"
        except ApiError as exc:
            if exc.code == "LABEL_CONFLICT" and _label_at(client, prompt_id, label) == version:
                return f"moved label: {step.name} ({label} -> v{version}, already there)"  # a retried move
            if exc.code != "LABEL_PROTECTED":
                raise
    if _open_review(client, prompt_id, label, version):
        return f"review already open: {step.name} ({label} -> v{version})"
    review = client.request_review(prompt_id, label, version, expected_version=expected,
                                   reason=f"prompts as code: {step.file.path if step.file else step.name}")
    return f"requested review: {step.name} ({label} -> v{version}, review {review.id}, {review.status})"


def _label_at(client: Client, prompt_id: str, label: str) -> int | None:
    return (client.get_prompt_info(prompt_id).get("labels") or {}).get(label)


def import_dir(client: Client, root: Path, *, dry_run: bool = False, out: TextIO = sys.stdout) -> int:
    try:
        files = list(read_dir(root))
    except PromptFileError as exc:
        print(f"error: {exc}", file=out)
        return 2
    steps = plan(client, files)
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.kind] = counts.get(step.kind, 0) + 1
    summary = ", ".join(f"{counts[k]} {k}" for k in ("create", "revise", "move", "review", "unchanged", "skip", "error")
                        if counts.get(k))
    if dry_run:
        for step in steps:
            print(step.line(True), file=out)
        print(f"plan for {len(files)} file(s): {summary or 'nothing'} (dry run: nothing written)", file=out)
        return 1 if counts.get("error") else 0
    failed = execute(client, steps, out)
    print(f"imported {len(files)} file(s): {summary or 'nothing to do'}" + (f"; {failed} failed" if failed else ""),
          file=out)
    return 1 if failed else 0


# -- command line -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="registry base URL (env PROMPTFORGE_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (env PROMPTFORGE_API_KEY)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="a user's access token instead of an API key")
    common.add_argument("--org", default=argparse.SUPPRESS, help="organisation id (env PROMPTFORGE_ORG)")
    parser = argparse.ArgumentParser(prog="promptforge-client", parents=[common],
                                     description="PromptForge prompts as code: export and import prompt files.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", parents=[common], help="write every prompt of the organisation as a file")
    ex.add_argument("dir", type=Path)
    im = sub.add_parser("import", parents=[common], help="make the registry match the files (idempotent)")
    im.add_argument("dir", type=Path)
    im.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    url = getattr(args, "url", None) or os.environ.get("PROMPTFORGE_URL")
    api_key = getattr(args, "api_key", None)
    token = getattr(args, "token", None)
    org = getattr(args, "org", None) or os.environ.get("PROMPTFORGE_ORG")
    if not url:
        print("error: give --url or set PROMPTFORGE_URL", file=sys.stderr)
        return 2
    if not (api_key or token or os.environ.get("PROMPTFORGE_API_KEY")):
        print("error: give --api-key (or --token) or set PROMPTFORGE_API_KEY", file=sys.stderr)
        return 2
    if not org:
        print("error: give --org or set PROMPTFORGE_ORG", file=sys.stderr)
        return 2
    try:
        with Client(url, api_key=api_key if not token else None, token=token, org_id=org, timeout=30.0) as client:
            if args.command == "export":
                return export(client, args.dir, out)
            if not args.dir.is_dir():
                print(f"error: {args.dir} is not a directory", file=sys.stderr)
                return 2
            return import_dir(client, args.dir, dry_run=args.dry_run, out=out)
    except PromptForgeError as exc:
        print(f"error: {exc.code}: {exc.message}" + (f" (request {exc.request_id})" if exc.request_id else ""),
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
