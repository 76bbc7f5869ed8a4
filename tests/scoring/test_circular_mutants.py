"""Circular evaluation and letter bias: the edges the main tests leave open (rotation fields, errors and their
messages, items of 3 and 26 options, unparsed rotations, letters never gold or never predicted, grouping)."""

from __future__ import annotations

import string
from dataclasses import replace

import pytest
from scipy import stats

from cgeval.scoring import letter_bias
from cgeval.scoring.circular import (CircularError, IncompleteRotations, aggregate_circular, rotate_prompt,
                                     rotations)

from .test_circular import KIDNEY, make_item, rows_for

ABC = string.ascii_uppercase


def with_rotation_field(rows: list[dict]) -> list[dict]:
    """The rows as a run writes them with the rotation number as its own field too (r from "...@r<r>")."""
    return [{**row, "rotation": int(row["item_id"].rsplit("@r", 1)[1])} for row in rows]


# ------------------------------------------------------------------------------------------ rotations
def test_option_text_ending_in_capital_x_rotates():
    # the line break, and only it, is taken off each line before it is read: "Grade X" keeps its X
    options = (("A", "Grade IX"), ("B", "Grade X"), ("C", "Type XX"))
    rots = rotations(make_item(options, gold="B"))
    assert [r.options for r in rots] == [options,
                                         (("A", "Type XX"), ("B", "Grade IX"), ("C", "Grade X")),
                                         (("A", "Grade X"), ("B", "Type XX"), ("C", "Grade IX"))]
    assert [r.gold for r in rots] == ["B", "C", "A"]
    assert rots[2].prompt.splitlines()[1:4] == ["A: Grade X", "B: Type XX", "C: Grade IX"]


def test_rotate_prompt_with_all_26_letters():
    texts = [f"finding {i}" for i in range(26)]
    options = tuple(zip(ABC, texts))
    prompt = "Which finding?\n" + "".join(f"{l}. {t}\n" for l, t in options) + "Answer with the letter."
    rotated, new_options = rotate_prompt(prompt, options, 1)
    assert new_options[0] == ("A", "finding 25") and new_options[25] == ("Z", "finding 24")
    lines = rotated.splitlines()
    assert lines[0] == "Which finding?" and lines[-1] == "Answer with the letter."
    assert lines[1] == "A. finding 25" and lines[2] == "B. finding 0" and lines[26] == "Z. finding 24"
    assert len(lines) == 28


def test_rotate_prompt_that_disagrees_with_options_says_so():
    prompt = "Q?\nA: Normal\nB: Cyst\nAnswer."
    with pytest.raises(CircularError) as e:
        rotate_prompt(prompt, (("A", "Normal"), ("B", "Tumor")), 1)
    assert str(e.value) == ("the prompt's option lines (('A', 'Normal'), ('B', 'Cyst')) are not the item's options "
                            "(('A', 'Normal'), ('B', 'Tumor'))")
    item = make_item(KIDNEY)
    bad = replace(item, options=(("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Other")))
    with pytest.raises(CircularError, match=r"^S03-1: the prompt's option lines .* are not the item's options"):
        rotations(bad)
    assert len(rotations(item)) == 4


def test_items_that_cannot_rotate_are_named():
    two = make_item((("A", "Normal"), ("B", "Cyst")), gold="A")
    one = replace(two, options=(("A", "Normal"),))
    with pytest.raises(CircularError) as e:
        rotations(one)
    assert str(e.value) == "S03-1: options must be lettered A, B, ... in order, got ('A',)"
    skipped = replace(two, options=(("A", "Normal"), ("C", "Cyst")))
    with pytest.raises(CircularError, match=r"^S03-1: options must be lettered A, B, \.\.\. in order, "
                                            r"got \('A', 'C'\)$"):
        rotations(skipped)


# ---------------------------------------------------------------------------------------- aggregation
def test_three_options_map_back_to_the_original_letters():
    item = make_item((("A", "Benign"), ("B", "Malignant"), ("C", "Normal")), gold="C")
    # rotation r puts "Normal" at C, A, B: a model that names the text is right every time
    agg = aggregate_circular(rows_for([item], lambda r: f"It is {r.answer_text}."))[0]
    assert agg["gold"] == "C" and agg["correct"] is True and agg["preds_original"] == ["C", "C", "C"]
    # a model that always says "B" chose Malignant, Benign, Normal
    agg = aggregate_circular(rows_for([item], lambda r: "B"))[0]
    assert agg["gold"] == "C" and agg["preds_original"] == ["B", "A", "C"]
    assert agg["n_rotations_correct"] == 1 and agg["consistency"] == pytest.approx(1 / 3)


def test_all_26_letters_map_back():
    # gold C; rotation r moves the option at letter i to (i + r) mod 26; a model that always answers "Z"
    rows = [{"item_id": f"X-1@r{r}", "n_options": 26, "gold": ABC[(2 + r) % 26], "pred": "Z",
             "correct": ABC[(2 + r) % 26] == "Z"} for r in range(26)]
    agg = aggregate_circular(rows)[0]
    assert agg["gold"] == "C"
    assert agg["preds_original"] == list("ZYXWVUTSRQPONMLKJIHGFEDCBA")
    assert agg["n_rotations_correct"] == 1 and agg["n_parse_failures"] == 0
    assert agg["consistency"] == pytest.approx(1 / 26)


def test_more_options_than_letters_is_a_named_error():
    rows = [{"item_id": f"X-1@r{r}", "n_options": 27, "gold": "A", "pred": "A", "correct": True}
            for r in range(27)]
    with pytest.raises(CircularError, match=r"^X-1: 27 options, more than the letters A to Z$"):
        aggregate_circular(rows)


def test_a_letter_beyond_the_options_is_no_answer():
    item = make_item((("A", "Non-COVID"), ("B", "COVID")), gold="A", sep=". ")
    rows = rows_for([item], lambda r: r.gold)
    rows[1] = {**rows[1], "pred": "C", "correct": False}  # "C" is no option of a 2-option item
    agg = aggregate_circular(rows)[0]
    assert agg["preds_original"] == ["A", None]
    assert agg["n_parse_failures"] == 1 and agg["consistency"] == 0.5 and agg["correct"] is False


def test_no_rotation_parsed():
    rows = rows_for([make_item(KIDNEY, gold="B")], lambda r: "I cannot tell from this image.")
    agg = aggregate_circular(rows)[0]
    assert agg["preds_original"] == [None] * 4 and agg["n_parse_failures"] == 4
    assert agg["consistency"] == 0.0 and agg["consistent"] is False
    assert agg["correct"] is False and agg["n_rotations_correct"] == 0


def test_aggregated_row_says_it_is_circular():
    rows = [{**row, "parse_rule": "option_text"}
            for row in rows_for([make_item(KIDNEY, gold="D")], lambda r: r.answer_text)]
    agg = aggregate_circular(with_rotation_field(rows))[0]
    assert agg["parse_rule"] == "circular" and agg["circular"] is True
    assert "rotation" not in agg and "cache_key" not in agg
    assert agg["gold"] == "D" and agg["correct"] is True
    rows = rows_for([make_item(KIDNEY, gold="D")], lambda r: r.answer_text)
    assert aggregate_circular(rows)[0]["circular"] is True


def test_rotation_field_that_agrees_or_is_empty_is_accepted():
    rows = with_rotation_field(rows_for([make_item(KIDNEY, gold="A")], lambda r: r.gold))
    agg = aggregate_circular(rows)[0]
    assert agg["correct"] is True and agg["n_rotations"] == 4
    rows = [{**row, "rotation": None} for row in rows]
    assert aggregate_circular(rows)[0]["correct"] is True


def test_rotation_field_that_disagrees_with_the_id():
    rows = with_rotation_field(rows_for([make_item(KIDNEY, gold="A")], lambda r: r.gold))
    rows[2] = {**rows[2], "rotation": 1}
    with pytest.raises(CircularError) as e:
        aggregate_circular(rows)
    assert str(e.value) == "S03-1@r2: rotation field 1 disagrees with the id"
    rows[2] = {**rows[2], "rotation": "3"}  # as read back from a CSV
    with pytest.raises(CircularError, match=r"^S03-1@r2: rotation field 3 disagrees with the id$"):
        aggregate_circular(rows)


def test_rotations_that_disagree_on_the_number_of_options():
    rows = rows_for([make_item(KIDNEY)], lambda r: r.gold)
    rows[3] = {**rows[3], "n_options": 5}
    with pytest.raises(CircularError) as e:
        aggregate_circular(rows)
    assert str(e.value) == "S03-1: rotations disagree on the number of options"


def test_unknown_on_incomplete_is_named():
    rows = rows_for([make_item(KIDNEY)], lambda r: r.gold)
    with pytest.raises(ValueError) as e:
        aggregate_circular(rows, on_incomplete="ignore")
    assert str(e.value) == "on_incomplete must be one of ('error', 'drop'), got 'ignore'"


def test_incomplete_items_anywhere_are_dropped_and_counted():
    items = [make_item(KIDNEY, gold=g, item_id=f"S03-{i}") for i, g in enumerate("ABCDABCD")]
    rows = rows_for(items, lambda r: r.gold)
    missing = {"S03-0@r1", "S03-2@r0", "S03-3@r3", "S03-4@r2", "S03-5@r1", "S03-6@r3"}
    rows = [r for r in rows if r["item_id"] not in missing]
    kept = aggregate_circular(rows, on_incomplete="drop")
    assert [a["item_id"] for a in kept] == ["S03-1", "S03-7"]
    with pytest.raises(IncompleteRotations) as e:
        aggregate_circular(rows)
    msg = str(e.value)
    assert msg.startswith("6 items lack rotation rows, e.g. ['S03-0 (has rotations [0, 2, 3] of 4)', ")
    assert "'S03-5 (has rotations [0, 2, 3] of 4)'" in msg and "S03-6" not in msg  # five examples at most
    assert msg.endswith("]; re-run to fill them, or aggregate with on_incomplete='drop' to leave these items out")


# ---------------------------------------------------------------------------------------- letter bias
def test_letter_bias_letters_never_gold_or_never_predicted():
    # gold A x4, B x4; predictions A x5, C x2, B x1; an empty and a missing prediction are parse failures
    rows = ([{"gold": "A", "pred": "A", "correct": True}] * 4
            + [{"gold": "B", "pred": "A", "correct": False}]
            + [{"gold": "B", "pred": "C", "correct": False}] * 2
            + [{"gold": "B", "pred": "B", "correct": True}]
            + [{"gold": "D", "pred": "", "correct": False}, {"gold": "D", "pred": None, "correct": False}])
    lb = letter_bias(rows)
    assert lb["n_rows"] == 10 and lb["n"] == 8 and lb["n_parse_failures"] == 2
    assert lb["letters"] == ["A", "B", "C"]  # D is gold only on unparsed rows
    assert lb["pred_counts"] == {"A": 5, "B": 1, "C": 2}
    assert lb["gold_counts"] == {"A": 4, "B": 4, "C": 0}
    assert lb["pred_proportions"] == {"A": 5 / 8, "B": 1 / 8, "C": 2 / 8}
    assert lb["gold_proportions"] == {"A": 4 / 8, "B": 4 / 8, "C": 0.0}
    assert lb["pred_minus_gold"] == {"A": 1 / 8, "B": -3 / 8, "C": 2 / 8}
    assert lb["accuracy_by_gold"] == {"A": 1.0, "B": 0.25, "C": None}
    assert (lb["chi2"], lb["dof"], lb["p_value"], lb["min_expected"]) == (None, None, None, None)
    assert lb["test_note"] == "predicted letters ['C'] are never gold: the goodness-of-fit test is undefined"


def test_letter_bias_gold_letter_never_predicted():
    rows = [{"gold": "A", "pred": "A", "correct": True}] * 6 + [{"gold": "B", "pred": "A", "correct": False}] * 2
    lb = letter_bias(rows)
    assert lb["pred_counts"] == {"A": 8, "B": 0} and lb["gold_counts"] == {"A": 6, "B": 2}
    assert lb["pred_proportions"] == {"A": 1.0, "B": 0.0}
    assert lb["gold_proportions"] == {"A": 0.75, "B": 0.25}
    assert lb["pred_minus_gold"] == {"A": 0.25, "B": -0.25}
    ref = stats.chisquare([8, 0], f_exp=[6, 2])
    assert lb["chi2"] == pytest.approx(ref.statistic) and lb["p_value"] == pytest.approx(ref.pvalue)
    assert lb["dof"] == 1 and lb["min_expected"] == 2.0
    assert lb["test_note"] == "some expected counts are below 5: the chi-square approximation is rough"


def test_letter_bias_expected_count_of_five_is_not_rough():
    rows = ([{"gold": "A", "pred": "A", "correct": True}] * 5 + [{"gold": "B", "pred": "B", "correct": True}] * 3
            + [{"gold": "B", "pred": "A", "correct": False}] * 3)
    lb = letter_bias(rows)
    ref = stats.chisquare([8, 3], f_exp=[5, 6])
    assert lb["chi2"] == pytest.approx(ref.statistic) and lb["p_value"] == pytest.approx(ref.pvalue)
    assert lb["min_expected"] == 5.0 and isinstance(lb["min_expected"], float)
    assert lb["test_note"] is None


def test_letter_bias_undefined_tests_keep_their_fields():
    lb = letter_bias([{"gold": "C", "pred": "C", "correct": True}] * 3)
    assert lb["test_note"] == "fewer than two gold letters: nothing to test"
    assert (lb["chi2"], lb["dof"], lb["p_value"], lb["min_expected"]) == (None, None, None, None)
    assert lb["gold_proportions"] == {"C": 1.0} and lb["pred_minus_gold"] == {"C": 0.0}
    lb = letter_bias([])
    assert lb["n"] == 0 and lb["letters"] == [] and lb["test_note"] == "no parsed predictions"
    assert (lb["chi2"], lb["dof"], lb["p_value"], lb["min_expected"]) == (None, None, None, None)


def test_letter_bias_groups_in_order_with_missing_values_last():
    rows = ([{"gold": "A", "pred": "A", "correct": True, "dataset": 9}] * 2
            + [{"gold": "B", "pred": "A", "correct": False, "dataset": 3}] * 3
            + [{"gold": "B", "pred": "B", "correct": True}])
    lb = letter_bias(rows, by="dataset")
    assert lb["by"] == "dataset"
    assert list(lb["groups"]) == [3, 9, None]
    assert lb["groups"][3]["pred_counts"] == {"A": 3, "B": 0}
    assert lb["groups"][9]["gold_counts"] == {"A": 2}
    assert lb["groups"][None]["n"] == 1 and lb["groups"][None]["accuracy_by_gold"] == {"B": 1.0}
    assert lb["all"]["n"] == 6 and lb["all"]["gold_counts"] == {"A": 2, "B": 4}
