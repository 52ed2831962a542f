"""Application layer: one method per command, authorised against aggregate state."""
from application.app import PromptForge
from application.principal import Principal
from application.results import CommandResult

__all__ = ["PromptForge", "Principal", "CommandResult"]
