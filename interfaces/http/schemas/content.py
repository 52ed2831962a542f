"""The content of a prompt version: chat messages, placeholders, typed variables, dependencies."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StringConstraints
from typing_extensions import Annotated

from domain.values import MAX_TEMPLATE
from interfaces.http.schemas.common import RequestModel, ResponseModel

Variable = Annotated[str, StringConstraints(max_length=64)]

Content = Annotated[str, StringConstraints(max_length=MAX_TEMPLATE)]
Format = Literal["mustache", "plain"]
FORMAT_DOC = ("`mustache` (default for new prompts): `{{var}}`, sections `{{#items}}…{{/items}}`, inverted "
              "`{{^x}}…{{/x}}`, includes `{{> name}}` / `{{> name@label}}` / `{{> name#3}}`. `plain`: only "
              "`{{ var }}` placeholders, everything else literal (the format of prompts created before v2). "
              "Left out on a revision: the latest version's.")


class ChatMessage(RequestModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: Content


class Placeholder(RequestModel):
    """A slot the caller fills with a list of messages at render time (`placeholders` in render)."""

    type: Literal["placeholder"]
    name: Variable


class VariableSpec(RequestModel):
    name: Variable
    type: Literal["string", "number", "boolean", "list", "object"] = "string"
    required: StrictBool = True
    default: Any = Field(None, description="Used when the variable is left out (only when not required).")
    description: Annotated[str, StringConstraints(max_length=500)] = ""


Variables = list[Variable] | list[VariableSpec]
VARIABLES_DOC = ("Names (as before) or a typed schema `[{name, type, required, default, description}]`; either "
                 "way they must match the placeholders the content uses. Left out: derived from the content.")


class MessageOut(ResponseModel):
    role: str | None = None
    content: str | None = None
    type: str | None = Field(None, description="`placeholder` for a placeholder entry.")
    name: str | None = None


class VariableOut(ResponseModel):
    name: str
    type: str
    required: bool
    default: Any = None
    description: str = ""


class Dependency(ResponseModel):
    """One prompt a composed read included: exactly the version used, and the label it went through."""

    name: str
    prompt_id: str
    version: int
    label: str | None
