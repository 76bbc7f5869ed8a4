"""Option texts in a reply: other names of a text, options named after an answer marker, and the lenient
fuzzy match (its window of words, its thresholds, negation around the matched run). Expected letters are
hand-read; where a threshold decides, the difflib ratio it rests on is checked against difflib itself."""

from __future__ import annotations

import difflib

import pytest

from cgeval.scoring import extract_choice_with_rule

KIDNEY = (("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Stone"))
LUNG = (("A", "Normal"), ("B", "Pneumonia"), ("C", "Tuberculosis"))
PLEURA = (("A", "Normal"), ("B", "Pleural effusion"), ("C", "Pneumothorax"))
RETINA = (("A", "CNV"), ("B", "DME"), ("C", "Drusen"), ("D", "Normal"))


def strict(reply, options):
    return extract_choice_with_rule(reply, options, "strict")


def lenient(reply, options):
    return extract_choice_with_rule(reply, options, "lenient")


def ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


# ------------------------------------------------------------------------- other names of an option's text
@pytest.mark.parametrize("reply, rule", [
    ("Choroidal neovascularization", "option_text_exact"),
    ("CHOROIDAL NEOVASCULARIZATION", "option_text_exact"),
    ("The scan shows choroidal\nneovascularization.", "option_text"),
    ("There is a choroidal  neovascular membrane here.", "option_text"),
])
def test_spelled_out_name_of_an_abbreviated_option(reply, rule):
    # the option says "CNV"; its spelled-out names match in any case, across any run of spaces
    assert strict(reply, RETINA) == ("A", rule)


def test_abbreviation_matches_in_capitals_only():
    options = (("A", "Choroidal neovascularization"), ("B", "Drusen"), ("C", "Normal"))
    assert strict("CNV", options)[0] == "A"
    assert strict("The cnv here is small.", options) == (None, "no_answer")


# ------------------------------------------------------------------- options named after an answer marker
@pytest.mark.parametrize("reply", ["The answer is either B or C.", "The answer is either b or c.",
                                   "It is one of a or d."])
def test_either_of_two_letters_is_a_hedge(reply):
    assert strict(reply, KIDNEY) == (None, "hedge")


def test_the_same_letter_named_again_as_possible_is_no_alternative():
    assert strict("The answer is B. B is still a possibility.", KIDNEY) == ("B", "answer_phrase")
    assert strict("The answer is B. C is still a possibility.", KIDNEY) == (None, "hedge")


@pytest.mark.parametrize("reply", ["The answer is b. c is still a possibility.",
                                   "The answer is B, but c is also possible.",
                                   "The answer is B; d is still plausible."])
def test_another_letter_in_lower_case_offered_as_possible_is_a_hedge(reply):
    assert strict(reply, KIDNEY) == (None, "hedge")


# ---------------------------------------------------------------------------------------- fuzzy matching
def test_fuzzy_reads_capitals():
    assert lenient("PNEUMONAI", LUNG) == ("B", "fuzzy_text")
    assert strict("PNEUMONAI", LUNG) == (None, "no_answer")


def test_fuzzy_reads_the_last_400_words():
    filler = " seen" * 399
    assert lenient("Pneumonai" + filler, LUNG) == ("B", "fuzzy_text")  # 400 words
    assert lenient("Pneumonai seen" + filler, LUNG) == (None, "no_answer")  # 401: the misspelling is dropped


def test_fuzzy_matches_a_four_letter_text():
    assert ratio("cysst", "cyst") == pytest.approx(8 / 9)
    assert lenient("cysst", KIDNEY) == ("B", "fuzzy_text")
    # a text of fewer than 4 characters ("N / A" reads "n a") is skipped; the texts after it still count
    assert lenient("cysst", (("A", "N / A"), ("B", "Cyst"))) == ("B", "fuzzy_text")


def test_fuzzy_ratio_of_exactly_0_8_counts():
    assert ratio("cystic", "cyst") == 0.8
    assert lenient("A cystic lesion.", KIDNEY) == ("B", "fuzzy_text")


def test_fuzzy_compares_one_word_with_a_two_word_text():
    # n - 1 words: "pleuraleffusion" is one word; the two-word runs around it carry long neighbours
    assert lenient("The image demonstrates pleuraleffusion bilaterally.", PLEURA) == ("B", "fuzzy_text")


def test_fuzzy_compares_two_words_with_a_one_word_text():
    # n + 1 words: "pneumo thorax" read joined is "pneumothorax"
    assert lenient("Findings demonstrate pneumo thorax bilaterally.", PLEURA) == ("C", "fuzzy_text")
    assert lenient("pneumo thorax", PLEURA) == ("C", "fuzzy_text")


def test_fuzzy_reads_a_word_split_by_a_stray_space_joined():
    assert ratio("cy stic", "cyst") < 0.8 and ratio("cystic", "cyst") == 0.8
    assert lenient("A cy stic lesion.", KIDNEY) == ("B", "fuzzy_text")


def test_fuzzy_compares_two_words_with_a_three_word_text():
    options = (("A", "Normal"), ("B", "Left ventricular hypertrophy"), ("C", "Cardiomegaly"))
    reply = "Echocardiography demonstrates leftventricular hypertrophy predominantly."
    # no run of 1 or 3 words comes close; the two words "leftventricular hypertrophy" do
    for run in ("leftventricular", "hypertrophy", "demonstrates leftventricular hypertrophy",
                "leftventricular hypertrophy predominantly"):
        assert ratio(run, "left ventricular hypertrophy") < 0.8
        assert ratio(run.replace(" ", ""), "left ventricular hypertrophy") < 0.8
    assert lenient(reply, options) == ("B", "fuzzy_text")


def test_fuzzy_two_misspelt_words():
    assert ratio("plueral efusion", "pleural effusion") >= 0.8
    assert lenient("plueral efusion", PLEURA) == ("B", "fuzzy_text")


def test_fuzzy_long_option_text_is_compared_without_junk_heuristics():
    text = ("Diffuse bilateral ground glass opacities with interlobular septal thickening and a crazy paving "
            "pattern predominantly in the lower lobes with a peripheral distribution consistent with an "
            "organizing pneumonia pattern of lung injury")
    # difflib's autojunk would treat the common letters of a text of 200+ characters as junk
    assert len(text) >= 200
    options = (("A", "Normal"), ("B", text))
    # the same findings, two clauses in another order
    reply = ("Diffuse bilateral ground glass opacities with interlobular septal thickening with a peripheral "
             "distribution predominantly in the lower lobes and a crazy paving pattern consistent with an "
             "organizing pneumonia pattern of lung injury")
    assert difflib.SequenceMatcher(None, reply.lower(), text.lower(), autojunk=False).ratio() >= 0.8
    assert difflib.SequenceMatcher(None, reply.lower(), text.lower(), autojunk=True).ratio() < 0.8
    assert strict(reply, options) == (None, "no_answer")
    assert lenient(reply, options) == ("B", "fuzzy_text")


def test_fuzzy_negation_after_the_matched_run():
    assert lenient("Pneumonai is unlikely.", LUNG) == (None, "no_answer")
    assert lenient("Pneumonai is likely.", LUNG) == ("B", "fuzzy_text")


def test_fuzzy_negation_reaches_four_words_back():
    assert lenient("No sign of pneumonai.", LUNG) == (None, "no_answer")
    # "Nothing" is the fifth word back: it negates what follows it, not the finding
    assert lenient("Nothing else seen apart from pneumonai.", LUNG) == ("B", "fuzzy_text")


def test_fuzzy_only_scored_text_wins_alone():
    # "No" is too short to score: "Pneumonia" has no runner-up
    assert lenient("pneumonai", (("A", "Pneumonia"), ("B", "No"))) == ("A", "fuzzy_text")


def test_fuzzy_two_close_texts_abstain():
    options = (("A", "Hyperthyroidism"), ("B", "Hypothyroidism"))
    top, runner = ratio("hypethyroidism", "hyperthyroidism"), ratio("hypethyroidism", "hypothyroidism")
    assert top >= 0.8 and runner >= 0.8 and top - runner < 0.1
    assert lenient("hypethyroidism", options) == (None, "no_answer")
    three = (*options, ("C", "Normal"))
    assert lenient("hypethyroidism", three) == (None, "no_answer")
