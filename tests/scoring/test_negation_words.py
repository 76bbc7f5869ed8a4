"""Negated option texts: a finding said to be absent is not the answer (through the public `extract_choice`)."""

import pytest

from cgeval.scoring import extract_choice

COVID = (("A", "Non-COVID"), ("B", "COVID"))
KIDNEY = (("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Stone"))


@pytest.mark.parametrize("mode", ["strict", "lenient"])
@pytest.mark.parametrize("reply,options", [
    ("Lungs without COVID.", COVID),
    ("The lungs are without COVID.", COVID),
    ("Without COVID.", COVID),
    ("Kidney without a stone.", KIDNEY),
    ("Kidney without tumor.", KIDNEY),
])
def test_an_option_named_after_without_is_not_the_answer(reply, options, mode):
    named = next(letter for letter, text in options if text.lower() in reply.lower().split("without")[1])
    assert extract_choice(reply, options, mode=mode) != named


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_without_negates_only_what_follows_it(mode):
    # The positive statement before it still answers.
    assert extract_choice("A cyst, without any stone.", KIDNEY, mode=mode) == "B"
