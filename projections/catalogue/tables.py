"""The catalogue's tables: prompts (current state), their tags and labels, and every version."""
from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table, Text

from projections.db import metadata

prompts = Table(
    "rm_prompts", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("name_key", String(200), nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("type", String(8), nullable=False),
    #: The latest version's template, or the text of its messages (chat): what keyword search indexes.
    Column("template", Text, nullable=False),
    Column("messages", JSON, nullable=True),
    Column("template_format", String(16), nullable=False),
    Column("variables", JSON, nullable=False),
    Column("variable_schema", JSON, nullable=True),
    Column("model_config", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    #: Labels pointing at a traffic split: label -> [{version, weight}] (`labels` holds the primary).
    Column("splits", JSON, nullable=False),
    #: The folder path of the name ('' at the top level).
    Column("folder", String(200), nullable=False),
    Column("archived", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(80), nullable=False),
    #: Position of the last event folded into this row: changes with every change of the prompt.
    Column("position", BigInteger, nullable=False),
    Index("ix_rm_prompts_org_name", "org_id", "name_key", unique=True),
    Index("ix_rm_prompts_org_updated", "org_id", "updated_at"),
    Index("ix_rm_prompts_org_folder", "org_id", "folder"),
)
prompt_tags = Table(
    "rm_prompt_tags", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    # Re-tagging deletes by prompt: without this the delete scans the org's tags (rebuild 943 -> 1,908 ev/s).
    Index("ix_rm_prompt_tags_prompt", "org_id", "prompt_id"),
)
prompt_labels = Table(
    "rm_prompt_labels", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("split", JSON, nullable=True),
    Index("ix_rm_prompt_labels_org_label", "org_id", "label"),
)
#: Every immutable version: the by-name fetch, version history and diffs read it, in the same
#: read model (and at the same position) as the prompt rows and labels that point into it.
prompt_versions = Table(
    "rm_prompt_versions", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("type", String(8), nullable=False),
    Column("template", Text, nullable=False),
    Column("messages", JSON, nullable=True),
    Column("template_format", String(16), nullable=False),
    Column("variables", JSON, nullable=False),
    Column("variable_schema", JSON, nullable=True),
    Column("model_config", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("message", Text, nullable=False),
    Column("author", String(80), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
)
#: Every name a prompt has had (its current name, and the old ones it keeps as aliases after a
#: rename): the by-name fetch and includes look names up here.
prompt_aliases = Table(
    "rm_prompt_aliases", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("name_key", String(200), primary_key=True),
    Column("prompt_id", String(36), nullable=False),
    Column("name", String(200), nullable=False),
)
#: The includes of every version, resolved to the prompt they name: "where is this prompt used?".
prompt_dependencies = Table(
    "rm_prompt_dependencies", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("ordinal", Integer, primary_key=True),
    Column("dependency_id", String(36), nullable=True),
    Column("dependency_name", String(200), nullable=False),
    Column("label", String(64), nullable=True),
    Column("dependency_version", Integer, nullable=True),
    Index("ix_rm_prompt_dependencies_target", "org_id", "dependency_id"),
)
