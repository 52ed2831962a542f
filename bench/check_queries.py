"""Validate bench/search_queries.jsonl against the prompt corpus.

A labelled query is only useful for measuring *semantic* search if it cannot be solved
by matching the target's title, and it measures understanding only if it is not a copy
of the prompt text. This script checks, for every record:

* the JSON has ``query``, ``target_act``, ``target_row``; the row exists and its ``act``
  is exactly ``target_act``;
* no query word shares a distinctive word with the title: every title word of 4+
  characters is compared with every query word of 3+ characters, and they conflict if
  equal, equal after stripping a common suffix (-ing, -er, -s, ...), one stem is a
  prefix of the other, they share a 5+ character prefix, or the title word (5+ chars)
  occurs inside the query word;
* no run of 4 consecutive query words appears in the prompt text;
* queries are unique, and there are at least ``--min`` of them.

Usage: python bench/check_queries.py [--queries PATH] [--corpus PATH] [--min N]
Exit status 1 and one line per problem if anything fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUERIES = ROOT / "bench" / "search_queries.jsonl"
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv"

_SUFFIXES = ("ations", "ation", "ings", "ing", "ions", "ion", "ers", "er", "ors", "or",
             "ists", "ist", "ies", "es", "ed", "al", "ly", "s", "e")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Function words: only an exact match with a title word counts for these, so "for"
#: does not clash with "Formatter".
_STOPWORDS = frozenset(
    "the and for with from into that this you your are not but any all its our who how "
    "what one can has had was may off out own per via".split()
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """Crude suffix stripping: enough to catch translate/translator, game/gaming."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def conflicts(query_word: str, title_word: str) -> bool:
    if query_word == title_word:
        return True
    if query_word in _STOPWORDS:
        return False
    q, t = stem(query_word), stem(title_word)
    if q == t:
        return True
    short, long_ = sorted((q, t), key=len)
    if len(short) >= 3 and long_.startswith(short):
        return True
    if common_prefix(query_word, title_word) >= 5:
        return True
    return len(title_word) >= 5 and title_word in query_word


def load_corpus(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(10**9)
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def check_record(record: dict, rows: list[dict[str, str]]) -> list[str]:
    problems: list[str] = []
    missing = {"query", "target_act", "target_row"} - record.keys()
    if missing:
        return [f"missing keys {sorted(missing)}"]
    row, act, query = record["target_row"], record["target_act"], record["query"]
    if not isinstance(row, int) or not 0 <= row < len(rows):
        return [f"target_row {row!r} out of range"]
    if rows[row]["act"] != act:
        return [f"row {row} is {rows[row]['act']!r}, not {act!r}"]
    title_words = [w for w in words(act) if len(w) >= 4]
    query_words = words(query)
    for qw in (w for w in query_words if len(w) >= 3):
        for tw in title_words:
            if conflicts(qw, tw):
                problems.append(f"query word {qw!r} matches title word {tw!r}")
    prompt = " " + " ".join(words(rows[row]["prompt"])) + " "
    for i in range(len(query_words) - 3):
        gram = " ".join(query_words[i : i + 4])
        if f" {gram} " in prompt:
            problems.append(f"copies prompt text: {gram!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--min", type=int, default=120)
    args = parser.parse_args(argv)

    rows = load_corpus(args.corpus)
    failures: list[str] = []
    seen: Counter[str] = Counter()
    targets: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    lines = [ln for ln in args.queries.read_text(encoding="utf-8").splitlines() if ln.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            failures.append(f"line {number}: invalid JSON ({exc})")
            continue
        for problem in check_record(record, rows):
            failures.append(f"line {number} ({record.get('target_act')!r}): {problem}")
        seen[record.get("query", "").strip().lower()] += 1
        if isinstance(record.get("target_row"), int) and 0 <= record["target_row"] < len(rows):
            targets[record["target_row"]] += 1
            kinds[rows[record["target_row"]]["type"]] += 1
    failures += [f"duplicate query: {q!r}" for q, n in seen.items() if n > 1]
    if len(lines) < args.min:
        failures.append(f"only {len(lines)} queries, need at least {args.min}")

    for failure in failures:
        print(failure)
    print(
        f"{len(lines)} queries, {len(targets)} distinct targets, "
        f"types {dict(kinds)}, {len(failures)} problems"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
