"""A fixture recording every statement sent through a psycopg cursor (`Connection.execute` included)."""
from __future__ import annotations

import psycopg
import pytest


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every statement sent through a psycopg cursor, in order, as text."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def recorded(self, query, *args, **kwargs):
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recorded)
    return sent
