"""Interfaces: the composition root, the HTTP API and the CLI. No business rules here."""
