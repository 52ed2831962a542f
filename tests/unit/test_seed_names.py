"""`seed-demo` names every corpus prompt after its title: each name must be one a new prompt may
take (the corpus has '#1' and '# RULES' titles, and '#' / '@' are include syntax), and unique."""
from __future__ import annotations

from domain.values import clean_new_prompt_name
from interfaces.seed import prompt_names
from tests.support.corpus import load_corpus


def test_every_corpus_title_becomes_a_valid_unique_name():
    names = prompt_names(load_corpus())
    assert len(names) == 1495
    assert [clean_new_prompt_name(n) for n in names] == names
    assert len({n.casefold() for n in names}) == len(names)


def test_include_syntax_and_slashes_leave_titles_readable():
    rows = [{"act": "Social media swipe post content #1"}, {"act": "# ANTIGRAVITY GLOBAL RULES"},
            {"act": "Email @ {work}"}, {"act": "CI/CD helper"}, {"act": "###"}]
    assert prompt_names(rows) == ["Social media swipe post content 1", "ANTIGRAVITY GLOBAL RULES", "Email work",
                                  "CI-CD helper", "Untitled"]
