"""The rebuild's shortcuts in decoding and folding give what the general code gives."""
from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from projections.events import Envelope, _text
from projections.source import _uuid_of_hex


def test_uuids_of_hex_digits_are_the_constructors():
    for _ in range(200):
        u = uuid4()
        v = _uuid_of_hex(u.hex)
        assert type(v) is UUID and v == u and str(v) == str(u) and hash(v) == hash(u)
        assert v.is_safe == UUID(u.hex).is_safe


@pytest.mark.parametrize("text", ["-" * 32, "z" * 32, "a" * 31, "_" + "a" * 31, "0x" + "a" * 30, " " + "a" * 31])
def test_odd_texts_are_decoded_or_refused_as_the_constructor_does(text):
    try:
        expected = UUID(text)
    except ValueError:
        with pytest.raises(ValueError):
            _uuid_of_hex(text)
    else:
        assert _uuid_of_hex(text) == expected


def test_envelope_ids_are_the_uuids_text():
    class E:
        def __init__(self, org_id, originator_id):
            self.org_id, self.originator_id = org_id, originator_id

    org, target = uuid4(), uuid4()
    for _ in range(2):  # the second time from the cache
        env = Envelope(1, E(org, target))
        assert (env.org_id, env.target_id) == (str(org), str(target))
    assert _text("already text") == "already text"
