"""Validation of the values commands carry (names, tags, templates, labels).

Bounds live here so every entry point (HTTP, CLI, seed) enforces the same rules.
"""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from domain.errors import Invalid

MAX_NAME = 200
MAX_TEMPLATE = 262_144  # the corpus holds real prompts of 110k and 144k characters
MAX_MESSAGE = 2_000
MAX_TAGS = 32
MAX_TAG = 64
MAX_VARIABLES = 64
MAX_MODEL_CONFIG_BYTES = 16_384
MAX_LABEL = 64
MAX_RENDERED = 1_000_000

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9._:-]*$")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
AUTOMATIC_LABELS = frozenset({"latest"})


def _encodable(text: str) -> bool:
    """False for unpaired surrogates, which no database can store as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_control(text: str, allowed: str = "\t\n\r") -> bool:
    """Control, format or surrogate characters, or line/paragraph separators (U+2028, U+2029), other
    than those `allowed`."""
    return any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"} and c not in allowed for c in text)


def clean_name(name: str, *, what: str = "name", max_len: int = MAX_NAME) -> str:
    """Trimmed, NFC-normalised, non-empty, bounded, no control characters or slashes."""
    if not isinstance(name, str):
        raise Invalid(f"{what} must be a string", code="INVALID_NAME")
    value = unicodedata.normalize("NFC", name).strip()
    if not value or len(value) > max_len:
        raise Invalid(f"{what} must be 1..{max_len} characters", code="INVALID_NAME", details={"max": max_len})
    if _has_control(value, allowed="") or "/" in value:  # a name is one line: no tab or newline either
        raise Invalid(f"{what} may not contain control characters or '/'", code="INVALID_NAME")
    return value


#: Characters an include reference gives a meaning to (`{{> name@label}}`, `{{> name#3}}`): a new name
#: may not contain them, so every name can be included unambiguously.
INCLUDE_SYNTAX = "@#{}"


def clean_new_prompt_name(name: str) -> str:
    """A name for a new prompt (or a rename): `clean_prompt_name`'s rules, and none of `@ # { }`."""
    value = clean_prompt_name(name)
    bad = sorted({c for c in value if c in INCLUDE_SYNTAX})
    if bad:
        raise Invalid(f"names may not contain {' '.join(bad)} (they would be read as include syntax)",
                      code="INVALID_NAME", details={"characters": bad})
    return value


def clean_prompt_name(name: str) -> str:
    """A prompt name is a path: folder segments and a final name separated by '/'
    (`support/billing/refund-reply`). Each segment is trimmed and non-empty, `.` and `..` are not
    segments, no control characters anywhere, at most MAX_NAME characters in all. (Lookups use this;
    new names also go through `clean_new_prompt_name`, names stored by older versions stay findable.)"""
    if not isinstance(name, str):
        raise Invalid("name must be a string", code="INVALID_NAME")
    value = unicodedata.normalize("NFC", name).strip()
    if _has_control(value, allowed=""):
        raise Invalid("name may not contain control characters", code="INVALID_NAME")
    segments = [segment.strip() for segment in value.split("/")]
    if any(not segment for segment in segments):
        raise Invalid("folder segments must be non-empty: no leading, trailing or doubled '/'", code="INVALID_NAME")
    if any(segment in (".", "..") for segment in segments):
        raise Invalid("'.' and '..' are not folder names", code="INVALID_NAME")
    value = "/".join(segments)
    if len(value) > MAX_NAME:
        raise Invalid(f"name must be 1..{MAX_NAME} characters", code="INVALID_NAME", details={"max": MAX_NAME})
    return value


def folder_of(name: str) -> str:
    """The folder path of a prompt name ('' at the top level)."""
    return name.rpartition("/")[0]


def clean_tags(tags: list[str]) -> list[str]:
    """Lower-cased, de-duplicated, sorted; each matches [a-z0-9][a-z0-9._:-]*."""
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags", code="INVALID_TAGS")
    out = set()
    for tag in tags:
        value = str(tag).strip().lower()
        if not value or len(value) > MAX_TAG or not _TAG.match(value):
            raise Invalid(f"invalid tag {tag!r}", code="INVALID_TAGS", details={"tag": tag})
        out.add(value)
    return sorted(out)


def clean_label(label: str) -> str:
    value = str(label).strip().lower()
    if not value or len(value) > MAX_LABEL or not _LABEL.match(value):
        raise Invalid(f"invalid label {label!r}", code="INVALID_LABEL", details={"label": label})
    if value in AUTOMATIC_LABELS:
        raise Invalid(f"label {value!r} is automatic and cannot be set", code="LABEL_RESERVED")
    return value


def clean_message(message: str) -> str:
    value = (message or "").strip()
    if len(value) > MAX_MESSAGE or _has_control(value):
        raise Invalid(f"commit message must be at most {MAX_MESSAGE} printable characters", code="INVALID_MESSAGE")
    return value


def placeholders(template: str) -> list[str]:
    """Variable names used by `{{ name }}` placeholders, in first-use order."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(template):
        seen.setdefault(match.group(1), None)
    return list(seen)


def clean_template(template: str, variables: list[str] | None) -> tuple[str, list[str]]:
    """Validate a template and its declared variables.

    Variables default to the template's placeholders. Declared variables must match the
    placeholders exactly, so a render can always name what is missing or unknown.
    """
    if not isinstance(template, str) or not template.strip():
        raise Invalid("template must be a non-empty string", code="INVALID_TEMPLATE")
    if len(template) > MAX_TEMPLATE:
        raise Invalid(f"template exceeds {MAX_TEMPLATE} characters", code="INVALID_TEMPLATE")
    if "\x00" in template or not _encodable(template):
        raise Invalid("template may not contain NUL characters or unpaired surrogates", code="INVALID_TEMPLATE")
    used = placeholders(template)
    if variables is None:
        return template, used
    if len(variables) > MAX_VARIABLES:
        raise Invalid(f"at most {MAX_VARIABLES} variables", code="INVALID_VARIABLES")
    bad = [v for v in variables if not isinstance(v, str) or not _IDENTIFIER.match(v)]
    if bad:
        raise Invalid("variable names must be identifiers", code="INVALID_VARIABLES", details={"invalid": bad})
    declared = list(dict.fromkeys(variables))
    missing = [v for v in used if v not in declared]
    unused = [v for v in declared if v not in used]
    if missing or unused:
        raise Invalid(
            "declared variables must match the template's {{placeholders}}",
            code="VARIABLES_MISMATCH",
            details={"undeclared": missing, "unused": unused},
        )
    return template, declared


def clean_model_config(config: dict[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise Invalid("model_config must be an object", code="INVALID_MODEL_CONFIG")
    try:
        encoded = json.dumps(config, allow_nan=False, ensure_ascii=False)
        size = len(encoded)
        if "\\u0000" in encoded or not _encodable(encoded):
            raise ValueError("NUL or unpaired surrogate")
    except (TypeError, ValueError):
        raise Invalid("model_config must be plain JSON", code="INVALID_MODEL_CONFIG") from None
    if size > MAX_MODEL_CONFIG_BYTES:
        raise Invalid(f"model_config exceeds {MAX_MODEL_CONFIG_BYTES} bytes", code="INVALID_MODEL_CONFIG")
    return config


def render(template: str, variables: list[str], values: dict[str, Any]) -> str:
    """Substitute every placeholder; missing or unknown variables are named in the error."""
    missing = [v for v in variables if v not in values]
    unknown = [k for k in values if k not in variables]
    if missing or unknown:
        raise Invalid(
            "variables do not match the template",
            code="RENDER_VARIABLES_MISMATCH",
            details={"missing": missing, "unknown": unknown},
        )
    texts = {k: str(v) for k, v in values.items()}
    size = len(template) + sum(len(texts[m.group(1)]) for m in PLACEHOLDER.finditer(template))
    if size > MAX_RENDERED:  # repeated placeholders could otherwise multiply a value without bound
        raise Invalid(f"rendered text would exceed {MAX_RENDERED} characters", code="RENDER_TOO_LARGE",
                      details={"max": MAX_RENDERED})
    return PLACEHOLDER.sub(lambda m: texts[m.group(1)], template)
