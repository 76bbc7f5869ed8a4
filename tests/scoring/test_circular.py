"""Circular evaluation (rotations, aggregation) and the letter-bias diagnostic."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from cgeval.data.loader import load_medmat
from cgeval.data.records import Item, parse_question_choice
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.scoring import extract_choice, letter_bias
from cgeval.scoring.circular import (CircularError, IncompleteRotations, aggregate_circular, base_item_id,
                                     expand_rotations, rotations, split_rotated_id)


def make_item(options, gold="B", sep=": ", item_id="S03-1", stem="Is there a lesion in this kidney CT?",
              instruction="Answer with the option's letter from the given choices directly.") -> Item:
    lines = [f"{l}{sep}{t}" for l, t in options]
    prompt = "\n".join([stem, *lines, instruction])
    parsed_stem, parsed_options, _ = parse_question_choice(prompt)
    return Item(item_id=item_id, subset=3, dataset=3, modality="CT", area="Kidney", task="Disease",
                image="med-mat/x.png", image_path="/data/med-mat/x.png", prompt=prompt, question=parsed_stem,
                options=parsed_options, gold=gold, answer_text=dict(options)[gold], meta={"source": "test"})


KIDNEY = (("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Stone"))


@pytest.fixture(scope="module")
def sample_items():
    items, _ = load_medmat(SAMPLE_ROOT, verify_images=False)
    more, _ = load_medmat(SAMPLE_ROOT, source="datasets", verify_images=False)
    return items + more


# ------------------------------------------------------------------------------------------------ rotations
@pytest.mark.parametrize("sep", [": ", ". ", ") "])
def test_rotations_rotate_texts_and_gold_follows(sep):
    item = make_item(KIDNEY, gold="B", sep=sep)
    rots = rotations(item)
    assert len(rots) == 4
    assert [r.item_id for r in rots] == ["S03-1@r0", "S03-1@r1", "S03-1@r2", "S03-1@r3"]
    assert rots[0].options == item.options and rots[0].gold == "B" and rots[0].prompt == item.prompt
    assert rots[1].options == (("A", "Stone"), ("B", "Normal"), ("C", "Cyst"), ("D", "Tumor"))
    assert [r.gold for r in rots] == ["B", "C", "D", "A"]
    for r in rots:
        assert r.option_text(r.gold) == "Cyst" == r.answer_text
        stem, options, instruction = parse_question_choice(r.prompt)
        assert options == r.options
        assert stem == "Is there a lesion in this kidney CT?" and stem == r.question
        assert instruction == "Answer with the option's letter from the given choices directly."
        # the same style, line by line
        assert [line[:3] for line in r.prompt.splitlines()[1:5]] == [f"{l}{sep}" for l in "ABCD"]
        assert (r.modality, r.area, r.task, r.image, r.subset, r.dataset) == ("CT", "Kidney", "Disease",
                                                                             "med-mat/x.png", 3, 3)
        assert r.meta["base_item_id"] == "S03-1" and r.meta["base_gold"] == "B" and r.meta["n_rotations"] == 4
        assert r.meta["source"] == "test"
    assert [r.meta["rotation"] for r in rots] == [0, 1, 2, 3]
    # every text visits every letter exactly once
    for text in ("Normal", "Cyst", "Tumor", "Stone"):
        assert sorted(next(l for l, t in r.options if t == text) for r in rots) == list("ABCD")


def test_two_and_three_options():
    two = rotations(make_item((("A", "Non-COVID"), ("B", "COVID")), gold="A", sep=". "))
    assert [r.options for r in two] == [(("A", "Non-COVID"), ("B", "COVID")), (("A", "COVID"), ("B", "Non-COVID"))]
    assert [r.gold for r in two] == ["A", "B"]
    three = rotations(make_item((("A", "Benign"), ("B", "Malignant"), ("C", "Normal")), gold="C"))
    assert len(three) == 3 and [r.gold for r in three] == ["C", "A", "B"]


def test_prompt_keeps_everything_but_the_option_texts():
    prompt = "Look closely.\n\nWhat is shown?\n(A) Normal\n(B) Cyst\n\nAnswer with the letter.\nThanks."
    stem, options, _ = parse_question_choice(prompt)
    item = Item("X-1", None, 0, "CT", "Kidney", "Disease", "x.png", "/x.png", prompt, stem, options, "A", "Normal")
    r1 = rotations(item)[1]
    assert r1.prompt == "Look closely.\n\nWhat is shown?\n(A) Cyst\n(B) Normal\n\nAnswer with the letter.\nThanks."
    assert r1.gold == "B"


def test_crlf_prompt_is_kept():
    prompt = "Q?\r\nA. Normal\r\nB. Cyst\r\nAnswer."
    stem, options, _ = parse_question_choice(prompt)
    item = Item("X-2", None, 0, "CT", "Kidney", "Disease", "x.png", "/x.png", prompt, stem, options, "B", "Cyst")
    assert rotations(item)[1].prompt == "Q?\r\nA. Cyst\r\nB. Normal\r\nAnswer."


def test_prompt_that_disagrees_with_options_is_an_error():
    item = make_item(KIDNEY)
    bad = Item(**{**item.__dict__, "options": (("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Other"))})
    with pytest.raises(CircularError, match="S03-1"):
        rotations(bad)


def test_every_sample_item_rotates_and_parses_back(sample_items):
    assert len(sample_items) > 100
    rotated = expand_rotations(sample_items)
    assert len(rotated) == sum(it.n_options for it in sample_items)
    by_base = {}
    for r in rotated:
        by_base.setdefault(base_item_id(r.item_id), []).append(r)
        assert parse_question_choice(r.prompt)[1] == r.options
        assert r.option_text(r.gold) == r.answer_text
    for it in sample_items:
        rots = by_base[it.item_id]
        assert rots[0].prompt == it.prompt
        assert len({r.prompt for r in rots}) == it.n_options or len({t for _, t in it.options}) < it.n_options


def test_rotated_ids():
    assert split_rotated_id("S03-1@r2") == ("S03-1", 2)
    assert base_item_id("S03-1@r2") == "S03-1" and base_item_id("S03-1") == "S03-1"
    with pytest.raises(CircularError):
        split_rotated_id("S03-1")


# -------------------------------------------------------------------------------------------- aggregation
def rows_for(items, answer) -> list[dict]:
    """Prediction rows (as run.py writes them) of a model that replies ``answer(rotated_item)``."""
    rows = []
    for it in items:
        for r in rotations(it):
            pred = extract_choice(answer(r), r.options)
            rows.append({"item_id": r.item_id, "n_options": r.n_options, "gold": r.gold, "pred": pred,
                         "correct": pred == r.gold, "response": answer(r), "modality": r.modality,
                         "split": "seen", "cache_key": f"k-{r.item_id}"})
    return rows


def test_aggregate_correct_only_when_every_rotation_is():
    items = [make_item(KIDNEY, gold=g, item_id=f"S03-{i}") for i, g in enumerate("ABCD")]
    # A model that always says "A": right on every item's rotation whose gold is A, and never circularly right.
    rows = rows_for(items, lambda r: "A")
    assert sum(r["correct"] for r in rows) == len(items)  # one rotation of each item has gold A
    agg = aggregate_circular(rows)
    assert [a["item_id"] for a in agg] == ["S03-0", "S03-1", "S03-2", "S03-3"]
    assert all(a["correct"] is False for a in agg)
    assert all(a["n_rotations"] == 4 and a["n_rotations_correct"] == 1 for a in agg)
    assert all(a["consistency"] == 0.25 and a["consistent"] is False for a in agg)
    assert [a["gold"] for a in agg] == list("ABCD")
    assert [a["pred"] for a in agg] == ["A"] * 4  # rotation 0: the original question
    assert "cache_key" not in agg[0] and "rotation" not in agg[0]
    assert agg[0]["preds_original"] == ["A", "D", "C", "B"]

    # A model that names the right text every time: circularly correct and consistent.
    agg = aggregate_circular(rows_for(items, lambda r: f"The answer is {r.answer_text}."))
    assert all(a["correct"] and a["consistent"] and a["consistency"] == 1.0 for a in agg)
    assert [a["pred"] for a in agg] == list("ABCD")


def test_aggregate_one_wrong_rotation_makes_the_item_wrong():
    item = make_item(KIDNEY, gold="C")
    rows = rows_for([item], lambda r: r.gold if not r.item_id.endswith("@r2") else "Stone")
    agg = aggregate_circular(rows)[0]
    assert agg["correct"] is False and agg["n_rotations_correct"] == 3 and agg["consistency"] == 0.75
    rows = rows_for([item], lambda r: r.gold if not r.item_id.endswith("@r3") else "I cannot tell.")
    agg = aggregate_circular(rows)[0]
    assert agg["correct"] is False and agg["n_parse_failures"] == 1 and agg["preds_original"][3] is None


def test_aggregate_accepts_rows_in_any_order_and_a_dataframe():
    pd = pytest.importorskip("pandas")
    items = [make_item(KIDNEY, gold=g, item_id=f"S03-{i}") for i, g in enumerate("ABCD")]
    rows = rows_for(items, lambda r: r.gold)
    random.Random(0).shuffle(rows)
    agg = aggregate_circular(pd.DataFrame(rows))
    assert sorted(a["item_id"] for a in agg) == ["S03-0", "S03-1", "S03-2", "S03-3"]
    assert all(a["correct"] for a in agg)


def test_incomplete_rotations_error_or_drop():
    items = [make_item(KIDNEY, item_id="S03-1"), make_item(KIDNEY, item_id="S03-2")]
    rows = [r for r in rows_for(items, lambda r: r.gold) if r["item_id"] != "S03-2@r3"]
    with pytest.raises(IncompleteRotations, match="S03-2"):
        aggregate_circular(rows)
    kept = aggregate_circular(rows, on_incomplete="drop")
    assert [a["item_id"] for a in kept] == ["S03-1"]
    with pytest.raises(ValueError):
        aggregate_circular(rows, on_incomplete="ignore")


def test_bad_rows_are_named_errors():
    rows = rows_for([make_item(KIDNEY)], lambda r: r.gold)
    with pytest.raises(CircularError, match="twice"):
        aggregate_circular(rows + [rows[0]])
    with pytest.raises(CircularError, match="no rotation suffix"):
        aggregate_circular(rows + [{**rows[0], "item_id": "S03-1"}])
    wrong_gold = [dict(r) for r in rows]
    wrong_gold[2]["gold"] = "A"
    with pytest.raises(CircularError, match="gold"):
        aggregate_circular(wrong_gold)
    with pytest.raises(CircularError, match="rotation 4"):
        aggregate_circular(rows + [{**rows[0], "item_id": "S03-1@r4"}])


# ------------------------------------------------------------------------------------------ letter bias
def test_letter_bias_counts_and_chi_square_match_scipy():
    rows = ([{"gold": "A", "pred": "A", "correct": True}] * 30 + [{"gold": "B", "pred": "A", "correct": False}] * 20
            + [{"gold": "B", "pred": "B", "correct": True}] * 10 + [{"gold": "C", "pred": "C", "correct": True}] * 25
            + [{"gold": "C", "pred": None, "correct": False}] * 5)
    lb = letter_bias(rows)
    assert lb["n_rows"] == 90 and lb["n"] == 85 and lb["n_parse_failures"] == 5
    assert lb["pred_counts"] == {"A": 50, "B": 10, "C": 25}
    assert lb["gold_counts"] == {"A": 30, "B": 30, "C": 25}
    assert lb["pred_proportions"]["A"] == pytest.approx(50 / 85)
    assert lb["pred_minus_gold"]["A"] == pytest.approx(20 / 85)
    assert lb["accuracy_by_gold"] == {"A": 1.0, "B": pytest.approx(10 / 30), "C": pytest.approx(25 / 30)}
    ref = stats.chisquare([50, 10, 25], f_exp=[30, 30, 25])
    assert lb["chi2"] == pytest.approx(ref.statistic) and lb["p_value"] == pytest.approx(ref.pvalue)
    assert lb["dof"] == 2 and lb["p_value"] < 1e-4 and lb["test_note"] is None


def test_letter_bias_unbiased_model_is_not_flagged():
    rng = random.Random(1)
    rows = []
    for _ in range(400):
        gold = rng.choice("ABCD")
        pred = gold if rng.random() < 0.6 else rng.choice("ABCD")
        rows.append({"gold": gold, "pred": pred, "correct": pred == gold})
    assert letter_bias(rows)["p_value"] > 0.01


def test_letter_bias_of_a_position_biased_model_under_rotation():
    items = [make_item(KIDNEY, gold=g, item_id=f"S03-{i}") for i, g in enumerate("ABCD" * 5)]
    rows = rows_for(items, lambda r: "A")
    lb = letter_bias(rows)
    assert lb["gold_counts"] == {"A": 20, "B": 20, "C": 20, "D": 20}  # rotation balances the gold letters
    assert lb["pred_counts"] == {"A": 80, "B": 0, "C": 0, "D": 0}
    assert lb["p_value"] < 1e-10


def test_letter_bias_undefined_cases_say_why():
    lb = letter_bias([{"gold": "A", "pred": "B", "correct": False}, {"gold": "A", "pred": "A", "correct": True}])
    assert lb["p_value"] is None and "never gold" in lb["test_note"]
    lb = letter_bias([{"gold": "A", "pred": "A", "correct": True}])
    assert lb["p_value"] is None and "fewer than two" in lb["test_note"]
    lb = letter_bias([{"gold": "A", "pred": None, "correct": False}])
    assert lb["n"] == 0 and lb["p_value"] is None and lb["test_note"] == "no parsed predictions"
    lb = letter_bias([{"gold": "A", "pred": "A", "correct": True}, {"gold": "B", "pred": "A", "correct": False}])
    assert lb["p_value"] is not None and "below 5" in lb["test_note"]


def test_letter_bias_by_group():
    rows = ([{"gold": "A", "pred": "A", "correct": True, "n_options": 2}] * 10
            + [{"gold": "B", "pred": "A", "correct": False, "n_options": 2}] * 10
            + [{"gold": "C", "pred": "C", "correct": True, "n_options": 4}] * 10)
    lb = letter_bias(rows, by="n_options")
    assert set(lb["groups"]) == {2, 4}
    assert lb["groups"][2]["pred_counts"] == {"A": 20, "B": 0}
    assert lb["all"]["n"] == 30
