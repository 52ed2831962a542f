"""Composition: a template may include another prompt of the same organisation.

`{{> name}}` includes the prompt's `production` version, `{{> name@label}}` the version a label
points at, `{{> name#3}}` version 3. Names may be folder paths. The included prompt's text is inlined
where the tag stands (recursively), and the composed template is rendered with the including
prompt's template format. Includes resolve at read time, through a lookup the caller provides
(the catalogue's rows now, or the event stream as of a moment): this module decides, it reads nothing.

Refused, at write time and again at read time (a later label move can create what a write check
could not see): a missing dependency (`DEPENDENCY_NOT_FOUND`), a cycle (`COMPOSITION_CYCLE`, with
the path), more than `MAX_DEPTH` levels (`COMPOSITION_TOO_DEEP`), including a chat prompt into text
(`COMPOSITION_TYPE_MISMATCH`), a `plain` prompt whose literal text would read as includes once
inlined (`COMPOSITION_FORMAT_MISMATCH`), and a composed text that is not a valid template
(`INVALID_TEMPLATE`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain.errors import Invalid
from domain.template import Include, check_text, includes_of, names_of, variables_of

MAX_DEPTH = 5


@dataclass(frozen=True)
class Target:
    """The version a reference resolves to."""

    prompt_id: str
    name: str
    version: int
    #: The label the reference went through (None when it named a version).
    label: str | None
    type: str
    template: str | None
    messages: list[dict[str, Any]] | None
    template_format: str
    variables: list[str]
    variable_schema: list[dict[str, Any]] | None


#: Resolves one include to the version it names, or None when there is no such prompt, label or version.
Lookup = Callable[[Include], Target | None]


@dataclass
class Resolution:
    template: str | None
    messages: list[dict[str, Any]] | None
    #: Exactly what was used, transitively, in first-use order: {name, prompt_id, version, label}.
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    variable_schema: list[dict[str, Any]] | None = None


def has_includes(template: str | None, messages: list[dict[str, Any]] | None, template_format: str) -> bool:
    """Whether a version's content includes anything (chat versions: their messages; their
    `template` is empty)."""
    if messages is not None:
        return any(includes_of(m["content"], template_format) for m in messages if "content" in m)
    return bool(includes_of(template or "", template_format))


def resolve(root: Target, lookup: Lookup, *, max_depth: int = MAX_DEPTH) -> Resolution:
    """The root version with every include inlined, what was used, and the composed variables."""
    resolver = _Resolver(lookup, max_depth, root.template_format)
    stack = (root,)
    if root.type == "chat":
        messages = [dict(m, content=resolver.expand(m["content"], stack)) if "content" in m else dict(m)
                    for m in root.messages or []]
        template = None
        texts = [m["content"] for m in messages if "content" in m]
    else:
        template = resolver.expand(root.template or "", stack)
        messages = None
        texts = [template]
    for text in texts:
        if resolver.used:  # only composed text can be new: the root's own text was checked at write time
            check_text(text, root.template_format)
    # The versions' own variables (names declared inside sections included) and the composed text's
    # top-level names, in first-use order in the composed text.
    versions = [root, *resolver.targets]
    allowed = {n for v in versions for n in v.variables} | {
        n for text in texts for n in variables_of(text, root.template_format)}
    mentioned = [n for text in texts for n in names_of(text, root.template_format)]
    names = list(dict.fromkeys([*(n for n in mentioned if n in allowed), *sorted(allowed - set(mentioned))]))
    return Resolution(template, messages, resolver.dependencies(), names, _merged_schema(names, versions))


class _Resolver:
    def __init__(self, lookup: Lookup, max_depth: int, template_format: str):
        self.lookup = lookup
        self.max_depth = max_depth
        self.template_format = template_format
        self.used: list[tuple[Include, Target]] = []
        self.targets: list[Target] = []

    def expand(self, text: str, stack: tuple[Target, ...]) -> str:
        """`text` with each include tag replaced, by position, by the included (expanded) text."""
        parts, done = [], 0
        for include in includes_of(text, stack[-1].template_format):
            target = self._target(include, stack)
            if target.template_format != self.template_format and _reads_as_includes(target.template or "",
                                                                                      self.template_format):
                # a `plain` prompt's literal `{{> x}}` would become a live include once inlined
                raise Invalid(f"{include.tag} is a {target.template_format} prompt whose text reads as includes in "
                              f"{self.template_format}", code="COMPOSITION_FORMAT_MISMATCH",
                              details={"include": include.tag, "format": target.template_format})
            parts += [text[done:include.offset], self.expand(target.template or "", (*stack, target))]
            done = include.offset + len(include.tag)
        return "".join(parts) + text[done:]

    def _target(self, include: Include, stack: tuple[Target, ...]) -> Target:
        path = [t.name for t in stack]
        target = self.lookup(include)
        if target is None:
            raise Invalid(f"included prompt {include.tag} does not exist", code="DEPENDENCY_NOT_FOUND",
                          details={"include": include.tag, "name": include.name, "label": include.selector_label,
                                   "version": include.version, "path": path})
        if any(t.prompt_id == target.prompt_id for t in stack):
            raise Invalid(f"{include.tag} makes a cycle: {' -> '.join([*path, target.name])}",
                          code="COMPOSITION_CYCLE", details={"path": [*path, target.name]})
        if len(stack) > self.max_depth:
            raise Invalid(f"includes nest deeper than {self.max_depth} levels", code="COMPOSITION_TOO_DEEP",
                          details={"path": [*path, target.name], "max_depth": self.max_depth})
        if target.type != "text":
            raise Invalid(f"{include.tag} is a chat prompt: only text prompts can be included",
                          code="COMPOSITION_TYPE_MISMATCH", details={"include": include.tag, "type": target.type})
        self.used.append((include, target))
        self.targets.append(target)
        return target

    def dependencies(self) -> list[dict[str, Any]]:
        seen: dict[tuple[str, int, str | None], dict[str, Any]] = {}
        for include, target in self.used:
            key = (target.prompt_id, target.version, target.label)
            seen.setdefault(key, {"name": target.name, "prompt_id": target.prompt_id, "version": target.version,
                                  "label": target.label})
        return list(seen.values())


def _merged_schema(names: list[str], versions: list[Target]) -> list[dict[str, Any]] | None:
    """The including version's declarations first, then its dependencies'; None when nobody in the
    composition declared a schema (names only, as before schemas existed)."""
    if all(v.variable_schema is None for v in versions):
        return None
    declared: dict[str, dict[str, Any]] = {}
    for version in versions:
        for spec in version.variable_schema or ():
            declared.setdefault(spec["name"], spec)
    return [declared.get(n, {"name": n, "type": "string", "required": True, "default": None, "description": ""})
            for n in names]


def _reads_as_includes(text: str, template_format: str) -> bool:
    try:
        return bool(includes_of(text, template_format))
    except Invalid:  # not a valid template there at all: the composed text's own check says where
        return False
