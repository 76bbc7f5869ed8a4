"""The pattern that finds an option's text in a reply: other names of a run of its words, numerals in their
three forms, plurals, spellings and the word boundaries at either end. Expected letters are hand-read."""

from __future__ import annotations

import pytest

from cgeval.scoring import extract_choice_with_rule

RETINA = (("A", "CNV"), ("B", "DME"), ("C", "Drusen"), ("D", "Normal"))
SPELLED = (("A", "Choroidal neovascularization"), ("B", "Drusen"), ("C", "Normal"))
SCANS = (("A", "CT scan"), ("B", "MRI scan"), ("C", "X-ray"))
MODALITY = (("A", "CT"), ("B", "MRI"), ("C", "Ultrasound"))
KIDNEY = (("A", "Normal"), ("B", "Cyst"), ("C", "Tumour"), ("D", "Stone"))
PLEURA = (("A", "Normal"), ("B", "Pleural effusion"), ("C", "Pneumothorax"))
STAGE = (("A", "Stage 1"), ("B", "Stage 2"), ("C", "Stage 3"), ("D", "Stage 4"))
ROMAN = (("A", "Grade I"), ("B", "Grade II"), ("C", "Grade III"), ("D", "Grade IV"))
SPELLED_NUMBERS = (("A", "Grade one"), ("B", "Grade two"), ("C", "Grade three"))
KL = (("A", "Grade 0"), ("B", "Grade 1"), ("C", "Grade 2"), ("D", "Grade 3"), ("E", "Grade 4"))
KL_LONG = (("A", "KL grade 0"), ("B", "KL grade 1"), ("C", "KL grade 2"), ("D", "KL grade 3"), ("E", "KL grade 4"))
LEVEL = (("A", "Level 1"), ("B", "Level 10"))
BEYOND_TEN = (("A", "Type 11"), ("B", "Type 12"))
SIZE = (("A", "<1 cm"), ("B", "1-3 cm"), ("C", ">3 cm"))
SCORE = (("A", "0"), ("B", "1+"), ("C", "2+"), ("D", "3+"))


def strict(reply, options):
    return extract_choice_with_rule(reply, options, "strict")


# ------------------------------------------------------------------------------- other names of a text
def test_an_abbreviated_option_is_named_by_its_spelled_out_name():
    assert strict("Choroidal neovascularization", RETINA) == ("A", "option_text_exact")


def test_the_options_own_abbreviation_matches_in_any_case():
    # "CNV" is the option's own text, so "cnv" names it as any text is matched regardless of case
    assert strict("cnv", RETINA) == ("A", "option_text_exact")


def test_an_abbreviation_that_is_not_the_options_own_text_matches_in_capitals_only():
    assert strict("The cnv here is small.", SPELLED) == (None, "no_answer")
    # a reply is lower-cased before it is compared whole with a text, so "CNV" is found, not matched exactly
    assert strict("CNV", SPELLED) == ("A", "option_text")


def test_a_group_name_followed_by_another_word_of_the_text():
    # "CT scan": "CT" is a run of one word inside a two-word text; its spelled-out name stands in for it
    assert strict("This is a computed tomography scan.", SCANS) == ("A", "commit_phrase")


def test_the_longest_name_of_a_group_is_read_first():
    # "magnetic resonance imaging" is read whole as B's text, so the "or C" after it makes the answer a hedge
    assert strict("The answer is B magnetic resonance imaging or C", MODALITY) == (None, "hedge")


def test_an_abbreviation_takes_a_plural():
    assert strict("Multiple CNVs are seen.", RETINA) == ("A", "option_text")


def test_a_word_of_the_text_takes_a_plural():
    assert strict("Bilateral pleural effusions.", PLEURA) == ("B", "option_text")


# ------------------------------------------------------------------------------------------------ numerals
@pytest.mark.parametrize("reply, options, expected", [
    ("Stage II disease.", STAGE, ("B", "option_text")),
    ("stage 2", STAGE, ("B", "option_text_exact")),
    ("stage two", STAGE, ("B", "option_text_exact")),
    ("grade 2", ROMAN, ("B", "option_text_exact")),
    ("Grade II", ROMAN, ("B", "option_text_exact")),
    ("Grade 2", SPELLED_NUMBERS, ("B", "option_text_exact")),
    ("grade II", SPELLED_NUMBERS, ("B", "option_text_exact")),
    ("grade 2", KL, ("C", "option_text_exact")),
    ("KL grade II", KL_LONG, ("C", "option_text_exact")),
    ("level ten", LEVEL, ("B", "option_text_exact")),
    ("Level X.", LEVEL, ("B", "option_text_exact")),
])
def test_a_numeral_after_the_first_word_in_any_of_its_forms(reply, options, expected):
    assert strict(reply, options) == expected


def test_numbers_above_ten_are_matched_as_written():
    assert strict("type 11", BEYOND_TEN) == ("A", "option_text_exact")
    assert strict("Type XI", BEYOND_TEN) == (None, "no_answer")


@pytest.mark.parametrize("reply", ["Grade 2.5", "Grade 2-3"])
def test_a_text_ending_in_a_numeral_is_not_read_inside_a_larger_number(reply):
    assert strict(reply, KL) == (None, "no_answer")


def test_stage_two_and_a_half_names_no_stage():
    assert strict("Stage 2.5 is not a stage.", STAGE) == (None, "no_answer")


@pytest.mark.parametrize("reply, options", [("Grade 1 or 2.", KL), ("KL grade 1 or 2.", KL_LONG)])
def test_a_range_of_numbered_options_names_none(reply, options):
    # "1 or 2" after a text ending in a numeral, two words long or three
    assert strict(reply, options) == (None, "hedged_mention")


# ----------------------------------------------------------------------------------------------- boundaries
def test_a_text_is_not_read_inside_a_longer_word():
    assert strict("Abnormal kidney.", KIDNEY) == (None, "no_answer")
    assert strict("Cystic lesion.", KIDNEY) == (None, "no_answer")


def test_a_text_starting_with_a_sign_has_no_word_boundary_before_it():
    assert strict("<1 cm", SIZE) == ("A", "option_text")
    assert strict("Nodule size<1 cm.", SIZE) == ("A", "option_text")


def test_a_text_ending_in_a_sign_has_no_word_boundary_after_it():
    assert strict("Score 3+", SCORE) == ("D", "option_text")
    assert strict("HER2 3+ve staining", SCORE) == ("D", "option_text")


def test_texts_starting_or_ending_in_an_underscore_keep_their_word_boundary():
    raw = (("A", "_cyst"), ("B", "cyst_"), ("C", "Normal"))
    assert strict("a_cyst", raw) == (None, "no_answer")
    assert strict("cyst_s", raw) == (None, "no_answer")


@pytest.mark.parametrize("reply, options", [("type 12s", BEYOND_TEN),
                                            ("covid-19s", (("A", "COVID-19"), ("B", "Normal")))])
def test_no_plural_after_a_text_ending_in_a_digit(reply, options):
    assert strict(reply, options) == (None, "no_answer")


def test_a_text_ending_in_a_digit_is_matched():
    assert strict("COVID-19", (("A", "COVID-19"), ("B", "Normal"))) == ("A", "option_text_exact")


# ------------------------------------------------------------------------------------------------ spellings
@pytest.mark.parametrize("reply, options, expected", [
    ("tumor", KIDNEY, ("C", "option_text_exact")),
    ("hem", (("A", "Haem"), ("B", "Bile")), ("A", "option_text_exact")),  # a four-letter word
    ("ischemic-hemorrhagic", (("A", "Ischaemic-haemorrhagic"), ("B", "Normal")), ("A", "option_text_exact")),
])
def test_either_spelling_of_each_part_of_a_word(reply, options, expected):
    assert strict(reply, options) == expected


@pytest.mark.parametrize("reply, expected", [("Grade ²", ("A", "option_text_exact")),
                                             ("grade 2", (None, "no_answer"))])
def test_a_superscript_digit_is_no_numeral(reply, expected):
    # "²" counts as a digit to str.isdigit but is no number int() reads: the text is matched as written
    assert strict(reply, (("A", "Grade ²"), ("B", "Grade 3"))) == expected
