"""The transfer hints' prefilter (int_transfer_hints runs a strong hint's regex only on text holding
one of its words) can never change a result: every text a pattern matches, in any letter case,
contains one of the words the pattern lists (dbt_project.yml `transfer_hints`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titans_assets.lib import transfers

STRONG = transfers.hint_vocabulary()["strong"]


@st.composite
def matching_text(draw, pattern: str) -> str:
    """Text holding a match of `pattern` (with other text around it), its ASCII letters in random case."""
    text = draw(st.from_regex(transfers.python_regex(pattern), fullmatch=False))
    upper = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if u and c.isascii() else c for c, u in zip(text, upper, strict=True))


@pytest.mark.parametrize("hint", STRONG, ids=[h["pattern"] for h in STRONG])
def test_every_match_of_a_strong_hint_holds_one_of_its_words(hint):
    assert hint["words"] and all(w == w.lower() and "%" not in w and "_" not in w for w in hint["words"])

    @settings(max_examples=300, deadline=None, database=None)
    @given(matching_text(hint["pattern"]))
    def check(text):
        assert re.search(transfers.python_regex(hint["pattern"]), text, re.IGNORECASE)
        assert any(w in text.lower() for w in hint["words"]), text

    check()


def test_the_python_rule_reads_the_same_hints():
    assert transfers.STRONG.search("Payment - Thank You") and transfers.STRONG.search(
        "ONLINE TRANSFER TO SAV ...1234"
    )
    assert not transfers.STRONG.search("TOSAVINGS") and transfers.WEAK.search("wire XFER")
    assert not transfers.WEAK.search("GROCERY OUTLET")
