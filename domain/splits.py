"""Traffic splits: a label may point at several versions with weights (an A/B test).

`[{"version": 7, "weight": 90}, {"version": 8, "weight": 10}]`: integer weights from 1 to 100 that
sum to 100, each version once. The label's *primary* version (what `labels` shows, what a
compare-and-set compares) is the heaviest one (the lowest version on a tie).

Picking is deterministic for a caller-supplied key, so a user or session keeps the same version
while the split is unchanged, and clients can compute it offline:

    bucket = int.from_bytes(sha256(f"{org_id}:{prompt_id}:{label}:{key}".encode()).digest()[:8], "big") % 100
    walk the entries in the order given, summing weights: pick the first whose running sum > bucket
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from domain.errors import Invalid

MAX_ENTRIES = 10


def clean_split(split: Any) -> list[dict[str, int]]:
    if not isinstance(split, list) or not 2 <= len(split) <= MAX_ENTRIES:
        raise Invalid(f"a split has 2..{MAX_ENTRIES} entries", code="INVALID_SPLIT")
    out, seen = [], set()
    for index, entry in enumerate(split):
        if not isinstance(entry, dict) or set(entry) != {"version", "weight"}:
            raise Invalid("each split entry is {version, weight}", code="INVALID_SPLIT", details={"index": index})
        version, weight = entry["version"], entry["weight"]
        if not _int(version) or version < 1 or not _int(weight) or not 1 <= weight <= 100:
            raise Invalid("versions are positive integers, weights integers from 1 to 100", code="INVALID_SPLIT",
                          details={"index": index})
        if version in seen:
            raise Invalid(f"version {version} appears twice", code="INVALID_SPLIT", details={"index": index})
        seen.add(version)
        out.append({"version": version, "weight": weight})
    total = sum(e["weight"] for e in out)
    if total != 100:
        raise Invalid(f"weights must sum to 100, not {total}", code="INVALID_SPLIT", details={"sum": total})
    return out


def primary(split: list[dict[str, int]]) -> int:
    return min(split, key=lambda e: (-e["weight"], e["version"]))["version"]


def bucket(org_id: Any, prompt_id: Any, label: str, key: str) -> int:
    digest = hashlib.sha256(f"{org_id}:{prompt_id}:{label}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def pick(split: list[dict[str, int]], org_id: Any, prompt_id: Any, label: str, key: str | None) -> int:
    """The version a caller gets: by its key (stable), or at random without one."""
    point = bucket(org_id, prompt_id, label, key) if key is not None else secrets.randbelow(100)
    running = 0
    for entry in split:
        running += entry["weight"]
        if point < running:
            return entry["version"]
    return split[-1]["version"]  # unreachable: weights sum to 100


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
