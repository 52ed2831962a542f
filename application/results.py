"""What a command hands back: the affected id and the log position of its last event."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class CommandResult:
    id: UUID | None
    #: Log position of the command's last event (None when the command changed nothing).
    position: int | None
    version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
