"""Behaviour of cgeval.analysis.metrics checked cell by cell on small hand-made runs: every number of the tables,
every message a user sees when a predictions file cannot be analysed, and the paired-run table's fields."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from cgeval.analysis.metrics import (MissingPredictions, PredictionsError, Run, TruncatedPredictions,
                                     bootstrap_summary, chance_per_row, cluster_ids, composition_key, cross_table,
                                     is_circular, load_run, metrics_dict, metrics_table, paired_by_composition,
                                     paired_frame, parse_failed, prepare, read_predictions, split_labels)
from cgeval.analysis.stats import ItemSetMismatch, ScoringMismatch
from cgeval.data.registry import SUBSETS

from cgeval.analysis.metrics import (DECISIONS, cohens_kappa, decided_by, decision_counts, judge_agreement,
                                     judge_disagreements)

from .conftest import make_predictions, write_run


def hand_rows(spec) -> pd.DataFrame:
    """Rows from (subset, split, correct, pred, n_options, shared_elements, image) tuples."""
    rows = []
    for i, (s, split, correct, pred, k, shared, image) in enumerate(spec):
        sub = SUBSETS[s]
        rows.append({"item_id": f"it{i}", "subset": s, "dataset": sub.datasets[0], "modality": sub.modality,
                     "area": sub.area, "task": sub.task, "split": split, "shared_elements": shared, "n_options": k,
                     "gold": "A", "answer_text": "x", "response": "r", "pred": pred, "parse_rule": "bare_letter",
                     "correct": correct, "image": image})
    return pd.DataFrame(rows)


FIVE = [(2, "seen", True, "A", 2, 1, "i1"), (2, "seen", False, None, 4, 1, "i1"),
        (3, "unseen", True, "A", 4, 3, "i2"), (3, "unseen", False, "C", 4, 3, "i3"),
        (28, "seen", True, "A", 2, 2, "i4")]


def cell(table, level, group):
    sel = table[(table["level"] == level) & (table["group"] == group)]
    assert len(sel) == 1, (level, group, table[table["level"] == level]["group"].tolist())
    return sel.iloc[0]


# --------------------------------------------------------------------------------------------------------------
# metrics_table, cell by cell


def test_metrics_table_every_cell_by_hand():
    t = metrics_table(hand_rows(FIVE))
    assert list(dict.fromkeys(t["level"])) == ["overall", "split", "composition", "modality", "area", "task",
                                               "shared_elements"]
    # (level, group): n, correct, parse failures, chance, split label, shared elements (compositions only)
    expected = {
        ("overall", "all"): (5, 3, 1, (0.5 + 0.25 * 3 + 0.5) / 5, "seen/unseen", None),
        ("split", "seen"): (3, 2, 1, (0.5 + 0.25 + 0.5) / 3, "seen", None),
        ("split", "unseen"): (2, 1, 0, 0.25, "unseen", None),
        ("composition", "02 CT-Kidney-Diseases"): (2, 1, 1, 0.375, "seen", 1),
        ("composition", "03 CT-Lung-COVID"): (2, 1, 0, 0.25, "unseen", 3),
        ("composition", "28 X-ray-Lung-COVID"): (1, 1, 0, 0.5, "seen", 2),
        ("modality", "CT"): (4, 2, 1, (0.5 + 0.25 * 3) / 4, "seen/unseen", None),
        ("modality", "X-ray"): (1, 1, 0, 0.5, "seen", None),
        ("area", "Kidney"): (2, 1, 1, 0.375, "seen", None),
        ("area", "Lung"): (3, 2, 0, (0.25 * 2 + 0.5) / 3, "seen/unseen", None),
        ("task", "COVID"): (3, 2, 0, (0.25 * 2 + 0.5) / 3, "seen/unseen", None),
        ("task", "Diseases"): (2, 1, 1, 0.375, "seen", None),
        ("shared_elements", "1"): (2, 1, 1, 0.375, "seen", None),
        ("shared_elements", "2"): (1, 1, 0, 0.5, "seen", None),
        ("shared_elements", "3"): (2, 1, 0, 0.25, "unseen", None),
    }
    assert len(t) == len(expected)
    for (level, group), (n, k, fail, chance, split, shared) in expected.items():
        row = cell(t, level, group)
        lo, hi = proportion_confint(k, n, method="wilson")
        acc = k / n
        assert (row["n"], row["n_correct"], row["n_parse_fail"]) == (n, k, fail), (level, group)
        assert row["accuracy"] == pytest.approx(acc)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
        assert row["parse_failure_rate"] == pytest.approx(fail / n)
        assert row["chance"] == pytest.approx(chance)
        assert row["chance_corrected"] == pytest.approx((acc - chance) / (1 - chance))
        assert row["cc_low"] == pytest.approx((lo - chance) / (1 - chance))
        assert row["cc_high"] == pytest.approx((hi - chance) / (1 - chance))
        assert row["split"] == split, (level, group)
        assert row["note"] == ""
        if shared is None:
            assert np.isnan(row["shared_elements"]), (level, group)
        else:
            assert row["shared_elements"] == shared
    assert t["group"].map(type).eq(str).all()


def test_one_option_items_say_why_chance_correction_is_na():
    rows = FIVE[:2] + [(30, "seen", True, "A", 1, 1, "i9"), (30, "seen", False, "A", 1, 1, "i9")]
    t = metrics_table(hand_rows(rows))
    one = cell(t, "composition", "30 X-ray-Lung-Tuberculosis")
    assert one["chance"] == 1.0 and np.isnan(one["chance_corrected"]) and np.isnan(one["cc_low"])
    assert one["note"] == "chance-corrected n/a: every item has one option"
    assert one["accuracy"] == 0.5  # the accuracy itself is still reported
    assert cell(t, "composition", "02 CT-Kidney-Diseases")["note"] == ""
    assert cell(t, "overall", "all")["note"] == ""  # mixed option counts: chance < 1


def test_expected_composition_without_rows_is_an_explicit_na_row():
    t = metrics_table(hand_rows(FIVE), {"04 CT-Lung-Cancer": "held out (unseen) in this run",
                                        "03 CT-Lung-COVID": "held out (unseen) in this run"})
    comp = t[t["level"] == "composition"]
    assert comp["group"].tolist() == ["02 CT-Kidney-Diseases", "03 CT-Lung-COVID", "04 CT-Lung-Cancer",
                                      "28 X-ray-Lung-COVID"]
    na = cell(t, "composition", "04 CT-Lung-Cancer")
    assert (na["n"], na["n_correct"], na["n_parse_fail"]) == (0, 0, 0)
    assert na["note"] == "n/a: no items in predictions (held out (unseen) in this run)"
    assert na["split"] == "" and np.isnan(na["chance"]) and np.isnan(na["shared_elements"])
    assert np.isnan(na["accuracy"]) and np.isnan(na["parse_failure_rate"]) and np.isnan(na["ci_high"])
    assert cell(t, "composition", "03 CT-Lung-COVID")["n"] == 2  # present: not replaced by an n/a row


def test_cross_table_cells_by_hand():
    t = cross_table(hand_rows(FIVE), "modality", "split")
    got = {(r["modality"], r["split"]): (r["n"], r["n_correct"], r["n_parse_fail"], r["note"])
           for r in t.to_dict("records")}
    assert got == {("CT", "seen"): (2, 1, 1, ""), ("CT", "unseen"): (2, 1, 0, ""), ("X-ray", "seen"): (1, 1, 0, ""),
                   ("X-ray", "unseen"): (0, 0, 0, "n/a: no items with this combination")}
    empty = t[(t["modality"] == "X-ray") & (t["split"] == "unseen")].iloc[0]
    assert np.isnan(empty["accuracy"]) and np.isnan(empty["ci_low"])
    ct_seen = t[(t["modality"] == "CT") & (t["split"] == "seen")].iloc[0]
    assert ct_seen["accuracy"] == 0.5 and ct_seen["parse_failure_rate"] == 0.5
    assert ct_seen["chance"] == pytest.approx(0.375)


def test_cross_table_without_full_grid_has_only_observed_cells():
    t = cross_table(hand_rows(FIVE), "modality", "split", full_grid=False)
    assert sorted(zip(t["modality"], t["split"])) == [("CT", "seen"), ("CT", "unseen"), ("X-ray", "seen")]
    assert (t["note"] == "").all()


def test_cross_table_grid_per_group():
    # within task COVID: modalities CT, X-ray x areas Lung; within Diseases: CT x Kidney
    t = cross_table(hand_rows(FIVE), "modality", "area", by=["task"])
    got = {(r["task"], r["modality"], r["area"]): (r["n"], r["split"]) for r in t.to_dict("records")}
    assert got == {("COVID", "CT", "Lung"): (2, "unseen"), ("COVID", "X-ray", "Lung"): (1, "seen"),
                   ("Diseases", "CT", "Kidney"): (2, "seen")}
    rows = FIVE + [(4, "seen", True, "A", 4, 1, "i7")]  # CT-Lung-Cancer: task Cancer
    t = cross_table(hand_rows(rows), "modality", "split", by=["area"])
    got = {(r["area"], r["modality"], r["split"]): r["n"] for r in t.to_dict("records")}
    assert got == {("Kidney", "CT", "seen"): 2, ("Lung", "CT", "seen"): 1, ("Lung", "CT", "unseen"): 2,
                   ("Lung", "X-ray", "seen"): 1, ("Lung", "X-ray", "unseen"): 0}
    empty = t[(t["area"] == "Lung") & (t["modality"] == "X-ray") & (t["split"] == "unseen")].iloc[0]
    assert empty["note"] == "n/a: no items with this combination"


# --------------------------------------------------------------------------------------------------------------
# Derived columns


def test_composition_key_labels():
    df = hand_rows(FIVE)
    assert composition_key(df).tolist() == ["02 CT-Kidney-Diseases"] * 2 + ["03 CT-Lung-COVID"] * 2 + [
        "28 X-ray-Lung-COVID"]
    df2 = df.astype({"subset": object})
    df2.loc[0, "subset"] = 2.0  # the same subset written as 2.0 on one row
    assert composition_key(df2).tolist()[:2] == ["02 CT-Kidney-Diseases"] * 2
    assert composition_key(df2).nunique() == 3
    df3 = df.astype({"subset": float})
    df3.loc[4, "subset"] = np.nan
    assert composition_key(df3).tolist()[4] == "-- X-ray-Lung-COVID"


def test_cluster_ids_missing_labels_are_their_own_clusters():
    df = pd.DataFrame({"image": ["a", None, "b", "a", None]})
    ids = cluster_ids(df, "image")
    assert ids.tolist() == [0, 2, 1, 0, 3]
    assert cluster_ids(pd.DataFrame({"dataset": [5, 5, 7]}), "dataset").tolist() == [0, 0, 1]


def test_cluster_ids_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"^cluster must be one of \('image', 'dataset', 'subset', 'item_id'\), "
                                         r"got 'modality'$"):
        cluster_ids(pd.DataFrame({"modality": ["CT"]}), "modality")
    with pytest.raises(PredictionsError, match=r"^predictions have no 'image' column to cluster on$"):
        cluster_ids(pd.DataFrame({"dataset": [1]}), "image")


def test_prepare_is_idempotent_and_adds_the_derived_columns():
    df = hand_rows(FIVE)
    p = prepare(df)
    assert prepare(p) is p
    assert p["_inv"].tolist() == [0.5, 0.25, 0.25, 0.25, 0.5]
    assert p["_fail"].tolist() == [False, True, False, False, False]
    assert p["overall"].astype(str).tolist() == ["all"] * 5
    assert p["_shared"].tolist() == [1, 1, 3, 3, 2]
    assert "_inv" not in df.columns  # the caller's frame is untouched


def test_circular_rows_chance_and_parse_failures():
    df = hand_rows(FIVE[:3]).assign(circular=[True, True, False], n_rotations=[2, 4, 4], n_parse_failures=[0, 1, 3])
    assert is_circular(df).tolist() == [True, True, False]
    # circular: (1/2)**2 and (1/4)**4; the plain row keeps 1/4
    assert chance_per_row(df).tolist() == pytest.approx([0.25, 0.25 ** 4, 0.25])
    # circular rows: failed when any rotation went unparsed, whatever pred (rotation 0) holds; plain rows: pred None
    df.loc[1, "pred"] = "A"
    df.loc[0, "pred"] = None
    assert parse_failed(df).tolist() == [False, True, False]
    # without the n_parse_failures column, pred decides
    assert parse_failed(df.drop(columns="n_parse_failures")).tolist() == [True, False, False]


def test_is_circular_needs_both_columns_and_a_rotation_count():
    df = hand_rows(FIVE[:3])
    assert is_circular(df).tolist() == [False] * 3
    assert is_circular(df.assign(circular=True)).tolist() == [False] * 3
    assert is_circular(df.assign(n_rotations=2)).tolist() == [False] * 3
    got = is_circular(df.assign(circular=[True, None, True], n_rotations=[2, 2, None]))
    assert got.tolist() == [True, False, False]
    assert chance_per_row(df.assign(circular=False, n_rotations=4)).tolist() == [0.5, 0.25, 0.25]


def test_split_labels_per_group():
    df = prepare(hand_rows(FIVE))
    got = split_labels(df, ["modality"])
    assert got.to_dict() == {"CT": "seen/unseen", "X-ray": "seen"}


# --------------------------------------------------------------------------------------------------------------
# metrics.json and the bootstrap block


def test_metrics_dict_types_and_gap():
    t = metrics_table(hand_rows(FIVE))
    m = metrics_dict(t)
    over = m["overall"]["all"]
    assert type(over["n"]) is int and over["n"] == 5
    assert type(over["accuracy"]) is float and over["accuracy"] == pytest.approx(0.6)
    assert over["shared_elements"] is None and over["note"] == "" and over["split"] == "seen/unseen"
    assert "level" not in over and "group" not in over
    assert m["gap_seen_minus_unseen"] == pytest.approx(2 / 3 - 1 / 2)
    assert set(m["split"]) == {"seen", "unseen"}
    assert m["composition"]["03 CT-Lung-COVID"]["shared_elements"] == 3
    assert "bootstrap" not in m
    assert metrics_dict(t, {"x": 1})["bootstrap"] == {"x": 1}
    json.dumps(m)  # plain Python values only


def test_metrics_dict_cleans_numpy_scalars():
    t = pd.DataFrame({"level": ["overall"], "group": ["all"], "a": [np.int64(3)], "b": [np.bool_(True)],
                      "c": [np.float32(0.5)], "d": [np.nan], "e": ["s"]}).astype({"a": object, "b": object,
                                                                              "c": object})
    m = metrics_dict(t)["overall"]["all"]
    assert m == {"a": 3, "b": True, "c": 0.5, "d": None, "e": "s"}
    assert type(m["a"]) is int and type(m["b"]) is bool and type(m["c"]) is float


def test_bootstrap_summary_fields():
    df = hand_rows(FIVE)
    b = bootstrap_summary(df, n_boot=200, seed=3)
    assert b["cluster"] == "image"
    assert set(b) == {"cluster", "overall", "seen", "unseen", "gap_seen_minus_unseen"}
    assert b["overall"]["estimate"] == pytest.approx(0.6) and b["overall"]["n_clusters"] == 4
    assert b["seen"]["estimate"] == pytest.approx(2 / 3) and b["seen"]["n_clusters"] == 2
    assert b["unseen"]["estimate"] == pytest.approx(0.5) and b["unseen"]["n_clusters"] == 2
    gap = b["gap_seen_minus_unseen"]
    assert gap["estimate"] == pytest.approx(2 / 3 - 1 / 2) and gap["n_clusters"] == 4
    for block in ("overall", "seen", "unseen", "gap_seen_minus_unseen"):
        assert (b[block]["n_boot"], b[block]["seed"]) == (200, 3)
    # clustering on datasets: subsets 2, 3, 28 are three datasets
    d = bootstrap_summary(df, n_boot=50, cluster="dataset")
    assert d["cluster"] == "dataset" and d["overall"]["n_clusters"] == 3


def test_bootstrap_summary_defaults():
    b = bootstrap_summary(hand_rows(FIVE))
    assert b["cluster"] == "image" and b["overall"]["n_boot"] == 1000 and b["overall"]["seed"] == 0


def test_bootstrap_summary_without_seen_items():
    df = hand_rows([r for r in FIVE if r[1] == "unseen"])
    b = bootstrap_summary(df, n_boot=20)
    assert b["seen"] == {"estimate": None, "note": "n/a: no seen items"}
    assert b["unseen"]["estimate"] == 0.5
    assert b["gap_seen_minus_unseen"] == {"estimate": None, "ci_low": None, "ci_high": None,
                                          "note": "n/a: no seen items, so there is no gap to estimate"}
    b = bootstrap_summary(hand_rows([r for r in FIVE if r[1] == "seen"]), n_boot=20)
    assert b["unseen"] == {"estimate": None, "note": "n/a: no unseen items"}
    assert b["gap_seen_minus_unseen"]["note"] == "n/a: no unseen items, so there is no gap to estimate"


# --------------------------------------------------------------------------------------------------------------
# Reading run folders


def test_read_predictions_messages(tmp_path):
    p = tmp_path / "predictions.jsonl"
    with pytest.raises(MissingPredictions, match=r"predictions.jsonl: no predictions file$"):
        read_predictions(p)
    p.write_text("")
    with pytest.raises(PredictionsError, match=r"predictions.jsonl: no prediction rows \(empty file\)$"):
        read_predictions(p)
    df = make_predictions(n_per_subset=2)
    write_run(tmp_path / "r", df.drop(columns=["gold", "pred"]))
    with pytest.raises(PredictionsError, match=r"missing columns \['gold', 'pred'\]$"):
        read_predictions(tmp_path / "r" / "predictions.jsonl")
    dup = df.copy()
    dup.loc[[1, 3], "item_id"] = dup.loc[0, "item_id"]
    write_run(tmp_path / "d", dup)
    with pytest.raises(PredictionsError, match=r"duplicated item ids, e\.g\. \['S02-0', 'S02-0'\]$"):
        read_predictions(tmp_path / "d" / "predictions.jsonl")
    bad = df.astype({"correct": object})
    bad.loc[[0, 2], "correct"] = ["yes", 2]
    write_run(tmp_path / "b", bad)
    with pytest.raises(PredictionsError, match=r": 2 rows have a non-boolean 'correct' \(e\.g\. \['yes', 2\]\)$"):
        read_predictions(tmp_path / "b" / "predictions.jsonl")


def test_read_predictions_keeps_text_ids_and_missing_answers(tmp_path):
    df = make_predictions(n_per_subset=2)
    df["item_id"] = [f"{i:03d}" for i in range(len(df))]  # ids that look like numbers stay text
    df["pred"] = df["pred"].astype(object)
    df.loc[0, "pred"] = None
    write_run(tmp_path / "r", df)
    got = read_predictions(tmp_path / "r" / "predictions.jsonl")
    assert got["item_id"].tolist()[:3] == ["000", "001", "002"]
    assert got.loc[0, "pred"] is None and got["pred"].iloc[1] == df["pred"].iloc[1]
    assert got["correct"].dtype == bool and got["correct"].tolist() == df["correct"].tolist()


def test_read_predictions_blank_file_has_no_rows(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text("\n")
    with pytest.raises(PredictionsError, match=r"predictions.jsonl: no prediction rows$"):
        read_predictions(p)


def test_read_predictions_names_the_bad_line(tmp_path):
    p = tmp_path / "predictions.jsonl"
    rows = [json.dumps(r) for r in make_predictions(n_per_subset=2).to_dict("records")]
    p.write_text("\n".join(rows[:2] + ['{"item_id": "x", '] + rows[2:]) + "\n")
    with pytest.raises(TruncatedPredictions,
                       match=r"predictions.jsonl:3: a middle line is not a JSON row \(.*\); the file is truncated "
                             r"or corrupt$") as e:
        read_predictions(p)
    assert isinstance(e.value.__cause__, json.JSONDecodeError)
    p.write_text("\n".join(rows[:2] + ["[1, 2]"] + rows[2:]) + "\n")
    with pytest.raises(TruncatedPredictions, match=r"predictions.jsonl:3: not a JSON object$") as e:
        read_predictions(p)
    assert e.value.__cause__ is None
    p.write_text("\n".join(rows + ['{"item_id": ']) + "\n")
    with pytest.raises(TruncatedPredictions, match=r":9: last line is not a JSON row"):
        read_predictions(p)


def test_load_run_label_manifest_and_row_count(tmp_path):
    df = make_predictions(n_per_subset=2)
    folder = write_run(tmp_path / "myrun", df)
    run = load_run(folder)
    assert run.label == "myrun" and run.path == folder and len(run.predictions) == 8
    assert run.manifest["data"]["n_items"] == 8
    assert load_run(folder, "other").label == "other"
    # n_predictions (rows written) takes precedence over the items loaded
    write_run(tmp_path / "err", df, {"n_predictions": 8, "data": {"n_items": 10}})
    assert len(load_run(tmp_path / "err").predictions) == 8
    write_run(tmp_path / "short", df, {"n_predictions": 9})
    with pytest.raises(TruncatedPredictions, match=r"predictions.jsonl: 8 rows but the manifest says the run "
                                                   r"evaluated 9 items; the file is truncated or from another run$"):
        load_run(tmp_path / "short")
    (tmp_path / "short" / "manifest.json").unlink()  # no manifest: nothing to compare with
    run = load_run(tmp_path / "short")
    assert run.manifest == {} and len(run.predictions) == 8
    with pytest.raises(MissingPredictions, match=r"nowhere: not a run folder \(no such directory\)$"):
        load_run(tmp_path / "nowhere")


def test_expected_compositions_reasons():
    run = Run(path=None, label="x", predictions=pd.DataFrame(),
              manifest={"heldout_subsets": [3, 999], "config": {"data": {"subsets": [2, 3, "28", 998]}}})
    assert run.expected_compositions() == {"03 CT-Lung-COVID": "held out (unseen) in this run",
                                           "02 CT-Kidney-Diseases": "requested in the run's data config",
                                           "28 X-ray-Lung-COVID": "requested in the run's data config"}
    assert Run(None, "x", pd.DataFrame()).expected_compositions() == {}
    assert Run(None, "x", pd.DataFrame(), {"heldout_subsets": None, "config": {"data": None}}
               ).expected_compositions() == {}


# --------------------------------------------------------------------------------------------------------------
# Paired runs


def test_paired_frame_columns_and_alignment():
    a = hand_rows(FIVE)
    b = a.assign(correct=[False, True, True, True, False], split=["seen", "seen", "seen", "unseen", "seen"])
    b = b.iloc[::-1]
    m = paired_frame(a, b)
    assert list(m.columns) == ["item_id", "gold", "n_options", "subset", "modality", "area", "task", "split",
                               "correct_a", "correct_b", "split_b"]
    assert m["correct_a"].tolist() == [True, False, True, False, True]
    assert m["correct_b"].tolist() == [False, True, True, True, False]
    assert m["split_b"].tolist() == ["seen", "seen", "seen", "unseen", "seen"]
    m = paired_frame(a, b.drop(columns="split"))
    assert "split_b" not in m.columns


def test_paired_frame_mismatch_messages_and_counts():
    a = hand_rows(FIVE)
    b = hand_rows(FIVE[1:] + [FIVE[0]])  # same content, ids shifted: it0..it4 but other rows
    b["item_id"] = ["it1", "it2", "it3", "it9", "it8"]
    with pytest.raises(ItemSetMismatch) as e:
        paired_frame(a, b, "base", "new")
    assert (e.value.only_a, e.value.only_b) == (2, 2)
    assert str(e.value) == ("runs 'base' and 'new' are not over the same items: 4 items differ (2 only in 'base', "
                            "2 only in 'new', 0 with a different gold answer or option count); a paired test needs "
                            "identical items")
    c = a.copy()
    c.loc[0, "n_options"] = 3
    c.loc[1, "gold"] = "B"
    with pytest.raises(ItemSetMismatch, match=r"items: 2 items differ \(0 only in 'A', 0 only in 'B', 2 with") as e:
        paired_frame(a, c)
    assert e.value.differing == 2


def test_paired_frame_same_ids_reordered_with_a_changed_gold():
    a = hand_rows(FIVE)
    b = a.iloc[[4, 3, 2, 1, 0]].copy()
    b.loc[2, "gold"] = "D"
    with pytest.raises(ItemSetMismatch) as e:
        paired_frame(a, b)
    assert (e.value.only_a, e.value.only_b, e.value.differing) == (0, 0, 1)


def test_paired_circular_mismatch_names_the_circular_run():
    a = hand_rows(FIVE)
    circ = a.assign(circular=True, n_rotations=a["n_options"])
    with pytest.raises(ScoringMismatch) as e:
        paired_frame(circ, a, "x", "y")
    assert str(e.value) == ("runs 'x' and 'y' are scored differently: only 'x' is circular (an item counts only "
                            "when every option rotation is right), so their accuracies are not comparable item by "
                            "item; compare circular runs with circular runs")
    with pytest.raises(ScoringMismatch, match=r"only 'y' is circular"):
        paired_frame(a, circ, "x", "y")


def test_paired_by_composition_table_by_hand():
    a = hand_rows(FIVE)  # correct: T F | T F | T
    b = a.assign(correct=[True, True, False, True, False])
    t = paired_by_composition(a, b, "base", "new")
    assert list(t.columns) == ["composition", "split", "n", "both", "only_base", "only_new", "neither", "acc_base",
                               "acc_new", "pvalue", "p_holm", "significant", "diff_b_minus_a"]
    rows = {r["composition"]: r for r in t.to_dict("records")}
    assert list(rows) == ["02 CT-Kidney-Diseases", "03 CT-Lung-COVID", "28 X-ray-Lung-COVID", "all"]
    k = rows["02 CT-Kidney-Diseases"]  # (T,T), (F,T)
    assert (k["n"], k["both"], k["only_base"], k["only_new"], k["neither"]) == (2, 1, 0, 1, 0)
    assert (k["acc_base"], k["acc_new"], k["diff_b_minus_a"], k["pvalue"]) == (0.5, 1.0, 0.5, 1.0)
    c = rows["03 CT-Lung-COVID"]  # (T,F), (F,T)
    assert (c["both"], c["only_base"], c["only_new"], c["neither"], c["pvalue"]) == (0, 1, 1, 0, 1.0)
    x = rows["28 X-ray-Lung-COVID"]  # (T,F)
    assert (x["only_base"], x["acc_new"], x["diff_b_minus_a"]) == (1, 0.0, -1.0)
    assert x["split"] == "seen" and c["split"] == "unseen"
    assert [rows[r]["p_holm"] for r in list(rows)[:3]] == [1.0, 1.0, 1.0]
    assert not any(rows[r]["significant"] for r in rows)
    al = rows["all"]
    assert (al["n"], al["both"], al["only_base"], al["only_new"], al["neither"]) == (5, 1, 2, 2, 0)
    assert al["split"] == "seen/unseen" and math.isnan(al["p_holm"]) and al["pvalue"] == 1.0
    assert al["diff_b_minus_a"] == pytest.approx(0.0)


def test_paired_by_composition_significance_by_hand():
    """20 items of one composition: B right on all, A on none -> exact p = 2 * 0.5**20 per composition; with two
    compositions Holm doubles the smaller; the overall row's p uses all 40 discordant pairs."""
    spec = [(2, "seen", False, "B", 4, 1, f"i{i}") for i in range(20)] + [
        (3, "unseen", False, "B", 4, 3, f"j{i}") for i in range(20)]
    a = hand_rows(spec)
    b = a.assign(correct=True)
    t = paired_by_composition(a, b).set_index("composition")
    p = 2 * 0.5 ** 20
    assert t.loc["02 CT-Kidney-Diseases", "pvalue"] == pytest.approx(p)
    assert t.loc["02 CT-Kidney-Diseases", "p_holm"] == pytest.approx(2 * p)
    assert bool(t.loc["02 CT-Kidney-Diseases", "significant"]) and bool(t.loc["all", "significant"])
    assert t.loc["all", "pvalue"] == pytest.approx(2 * 0.5 ** 40)
    assert t.loc["all", "only_B"] == 40 and t.loc["all", "acc_B"] == 1.0 and t.loc["all", "acc_A"] == 0.0
    # a stricter alpha than the Holm p: no longer significant
    t = paired_by_composition(a, b, alpha=p).set_index("composition")
    assert not t.loc["02 CT-Kidney-Diseases", "significant"] and bool(t.loc["all", "significant"])


def test_paired_by_composition_split_when_runs_hold_out_differently():
    a = hand_rows(FIVE)
    b = a.assign(split=["unseen", "unseen", "unseen", "unseen", "seen"])
    t = paired_by_composition(a, b, "A", "B").set_index("composition")
    assert t.loc["02 CT-Kidney-Diseases", "split"] == "seen in A, unseen in B"
    assert t.loc["03 CT-Lung-COVID", "split"] == "unseen"
    assert t.loc["all", "split"] == "seen/seen in A, unseen in B/unseen"


def test_cross_table_rows_come_sorted_and_counts_are_integers():
    df = hand_rows(FIVE)  # tasks appear as Diseases, COVID; modalities as CT, X-ray
    t = cross_table(df, "modality", "area", by=["task"])
    assert list(zip(t["task"], t["modality"], t["area"])) == [("COVID", "CT", "Lung"), ("COVID", "X-ray", "Lung"),
                                                             ("Diseases", "CT", "Kidney")]
    t = cross_table(df.iloc[::-1], "modality", "split")
    assert list(zip(t["modality"], t["split"])) == [("CT", "seen"), ("CT", "unseen"), ("X-ray", "seen"),
                                                   ("X-ray", "unseen")]
    for col in ("n", "n_correct", "n_parse_fail"):
        assert t[col].dtype.kind == "i", col
    assert list(t.index) == [0, 1, 2, 3]


def test_cross_table_empty_cell_has_no_split_label():
    t = cross_table(hand_rows(FIVE), "modality", "area")
    got = {(r["modality"], r["area"]): (r["n"], r["split"], r["note"]) for r in t.to_dict("records")}
    assert got == {("CT", "Kidney"): (2, "seen", ""), ("CT", "Lung"): (2, "unseen", ""),
                   ("X-ray", "Kidney"): (0, "", "n/a: no items with this combination"),
                   ("X-ray", "Lung"): (1, "seen", "")}


def test_paired_by_composition_mismatch_names_the_labels():
    a = hand_rows(FIVE)
    with pytest.raises(ItemSetMismatch, match=r"^runs 'base' and 'new' are not over the same items: 1 items differ "
                                              r"\(1 only in 'base', 0 only in 'new'"):
        paired_by_composition(a, a.iloc[1:], "base", "new")


def test_paired_by_composition_order_index_and_object_correct_column():
    a = hand_rows(FIVE).iloc[::-1]  # compositions appear as 28, 03, 02
    b = a.assign(correct=[True, True, False, True, False][::-1])
    t = paired_by_composition(a.astype({"correct": object}), b.astype({"correct": object}), "A", "B")
    assert t["composition"].tolist() == ["02 CT-Kidney-Diseases", "03 CT-Lung-COVID", "28 X-ray-Lung-COVID", "all"]
    assert list(t.index) == [0, 1, 2, 3]
    al = t.iloc[3]
    assert (al["both"], al["only_A"], al["only_B"], al["neither"]) == (1, 2, 2, 0)


def test_paired_by_composition_leaves_out_compositions_without_rows():
    """A prepared frame cut down to two compositions keeps the third as an unused category: no row for it."""
    a = prepare(hand_rows(FIVE))
    a = a[a["subset"] != 28]
    t = paired_by_composition(a, a.drop(columns=[c for c in a.columns if c.startswith("_")]))
    assert t["composition"].tolist() == ["02 CT-Kidney-Diseases", "03 CT-Lung-COVID", "all"]


def test_overall_significance_needs_p_below_alpha():
    # 6 discordant pairs, all won by B: exact p = 2 * 0.5**6 = 0.03125 exactly
    spec = [(2, "seen", False, "B", 4, 1, f"i{i}") for i in range(6)]
    a = hand_rows(spec)
    b = a.assign(correct=True)
    over = paired_by_composition(a, b, alpha=0.03125).set_index("composition").loc["all"]
    assert over["pvalue"] == 0.03125 and not over["significant"]
    assert bool(paired_by_composition(a, b, alpha=0.0313).set_index("composition").loc["all", "significant"])


def test_read_predictions_examples_are_capped(tmp_path):
    df = make_predictions(n_per_subset=4)
    dup = df.copy()
    dup.loc[1:7, "item_id"] = [f"d{i}" for i in range(7)]
    dup.loc[8:14, "item_id"] = [f"d{i}" for i in range(7)]  # seven ids written twice
    write_run(tmp_path / "d", dup)
    with pytest.raises(PredictionsError, match=r"e\.g\. \['d0', 'd1', 'd2', 'd3', 'd4'\]$"):
        read_predictions(tmp_path / "d" / "predictions.jsonl")
    bad = df.astype({"correct": object})
    bad.loc[0:4, "correct"] = ["a", "b", "c", "d", "e"]
    write_run(tmp_path / "b", bad)
    with pytest.raises(PredictionsError, match=r": 5 rows have a non-boolean 'correct' \(e\.g\. \['a', 'b', 'c'\]\)$"):
        read_predictions(tmp_path / "b" / "predictions.jsonl")


def test_read_predictions_turns_zero_one_correct_into_booleans(tmp_path):
    df = make_predictions(n_per_subset=2)
    df["correct"] = df["correct"].astype(int)
    write_run(tmp_path / "r", df)
    got = read_predictions(tmp_path / "r" / "predictions.jsonl")
    assert got["correct"].dtype == bool and got["correct"].tolist() == [bool(x) for x in df["correct"]]
    assert list(got.columns) == list(df.columns)


def test_metrics_dict_keeps_the_table_order_of_levels():
    m = metrics_dict(metrics_table(hand_rows(FIVE)), {"cluster": "image"})
    assert list(m) == ["overall", "split", "composition", "modality", "area", "task", "shared_elements",
                       "gap_seen_minus_unseen", "bootstrap"]


def test_bootstrap_summary_with_an_object_correct_column():
    df = hand_rows(FIVE).astype({"correct": object})
    b = bootstrap_summary(df, n_boot=50)
    assert b["overall"]["estimate"] == pytest.approx(0.6)
    assert b["gap_seen_minus_unseen"]["estimate"] == pytest.approx(2 / 3 - 1 / 2)


# ------------------------------------------------------------------ the judge's figures (scoring.judge), by hand


def judge_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# six rows: two seen, four unseen. The rules read rows 0-3 (letters), the judge decided row 4, row 5 is unanswered.
ROWS = [
    {"item_id": "i0", "split": "seen", "modality": "CT", "area": "Lung", "task": "COVID", "gold": "A",
     "response": "A", "pred": "A", "parse_rule": "bare_letter", "decided_by": "rule",
     "judge_pred": "A", "judge_parse_rule": "bare_letter", "judge_response": "A", "options": "A. x\nB. y"},
    {"item_id": "i1", "split": "seen", "modality": "CT", "area": "Lung", "task": "COVID", "gold": "B",
     "response": "it is B", "pred": "B", "parse_rule": "commit_phrase", "decided_by": "rule",
     "judge_pred": "A", "judge_parse_rule": "bare_letter", "judge_response": "A", "options": "A. x\nB. y"},
    {"item_id": "i2", "split": "unseen", "modality": "MR", "area": "Brain", "task": "Tumor", "gold": "B",
     "response": "B", "pred": "B", "parse_rule": "bare_letter", "decided_by": "rule",
     "judge_pred": "B", "judge_parse_rule": "bare_letter", "judge_response": "B", "options": "A. x\nB. y"},
    {"item_id": "i3", "split": "unseen", "modality": "MR", "area": "Brain", "task": "Tumor", "gold": "A",
     "response": "A", "pred": "A", "parse_rule": "bare_letter", "decided_by": "rule",
     "judge_pred": None, "judge_parse_rule": "no_answer", "judge_response": "none", "options": "A. x\nB. y"},
    {"item_id": "i4", "split": "unseen", "modality": "MR", "area": "Brain", "task": "Tumor", "gold": "A",
     "response": "hmm", "pred": "A", "parse_rule": "judge", "decided_by": "judge",
     "judge_pred": "A", "judge_parse_rule": "bare_letter", "judge_response": "A", "options": "A. x\nB. y"},
    {"item_id": "i5", "split": "unseen", "modality": "MR", "area": "Brain", "task": "Tumor", "gold": "B",
     "response": "unsure", "pred": None, "parse_rule": "refusal", "decided_by": "unanswered",
     "judge_pred": None, "judge_parse_rule": None, "judge_response": None, "options": "A. x\nB. y"},
]


def test_decided_by_reads_the_column_and_falls_back_on_older_rows():
    df = judge_frame(ROWS)
    assert list(decided_by(df)) == ["rule", "rule", "rule", "rule", "judge", "unanswered"]
    # rows written before decided_by existed: from parse_rule ("judge") and pred (None: unanswered)
    old = df.drop(columns=["decided_by"])
    assert list(decided_by(old)) == ["rule", "rule", "rule", "rule", "judge", "unanswered"]
    # a value that is not a decision is replaced by the derived one, row by row
    odd = df.assign(decided_by=["rule", "bogus", None, "rule", "judge", "unanswered"])
    assert list(decided_by(odd)) == ["rule", "rule", "rule", "rule", "judge", "unanswered"]
    # without parse_rule, a letter is the rules' and no letter is unanswered
    bare = df.drop(columns=["decided_by", "parse_rule"])
    assert list(decided_by(bare)) == ["rule", "rule", "rule", "rule", "rule", "unanswered"]
    assert DECISIONS == ("rule", "judge", "unanswered")


def test_no_replies_means_no_decisions():
    assert decided_by(judge_frame([{"pred": "A", "split": "seen"}])) is None  # likelihood scoring: no response column
    assert decided_by(judge_frame([{"response": None, "pred": "A", "split": "seen"}])) is None
    assert decision_counts(judge_frame([{"pred": "A", "split": "seen"}])) is None


def test_decision_counts_overall_and_per_split():
    assert decision_counts(judge_frame(ROWS)) == {
        "all": {"rule": 4, "judge": 1, "unanswered": 1, "n": 6},
        "seen": {"rule": 2, "judge": 0, "unanswered": 0, "n": 2},
        "unseen": {"rule": 2, "judge": 1, "unanswered": 1, "n": 4},
    }


def test_cohens_kappa_by_hand():
    # rater a: A A B B A B; rater b: A B B B A A. Agreement 4/6; both use A and B three times each, so chance
    # agreement is (3*3 + 3*3) / 36 = 1/2 and kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3.
    a, b = list("AABBAB"), list("ABBBAA")
    k = cohens_kappa(a, b)
    assert k["kappa"] == pytest.approx(1 / 3)
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    std = sm_kappa([[2, 1], [1, 2]]).std_kappa  # the interval is kappa -/+ 1.96 standard errors
    assert k["kappa_low"] == pytest.approx(1 / 3 - 1.959964 * std, abs=1e-5)
    assert k["kappa_high"] == pytest.approx(1 / 3 + 1.959964 * std, abs=1e-5)
    assert set(k) == {"kappa", "kappa_low", "kappa_high"}
    assert all(isinstance(v, float) for v in k.values())
    # perfect agreement over two labels: 1; systematic swap: -1
    assert cohens_kappa(list("ABAB"), list("ABAB"))["kappa"] == pytest.approx(1.0)
    assert cohens_kappa(list("ABAB"), list("BABA"))["kappa"] == pytest.approx(-1.0)
    # a label only one rater used still counts in the table: a = A A B, b = A C B
    # agreement 2/3; chance = (2*1 + 1*1 + 0*1) / 9 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 1/2
    assert cohens_kappa(list("AAB"), list("ACB"))["kappa"] == pytest.approx(0.5)


def test_cohens_kappa_when_undefined():
    none = {"kappa": None, "kappa_low": None, "kappa_high": None}
    assert cohens_kappa([], []) == {**none, "note": "n/a: no items both read"}
    assert cohens_kappa(list("AAA"), list("AAA")) == {
        **none, "note": "n/a: both used a single, identical label, so chance agreement is certain"}
    with pytest.raises(ValueError, match=r"^cohens_kappa: 2 labels against 3$"):
        cohens_kappa(list("AB"), list("ABA"))


def test_judge_agreement_counts_by_hand():
    out = judge_agreement(judge_frame(ROWS))
    assert set(out) == {"all", "seen", "unseen"}
    # all: the rules read i0-i3; the judge read a letter on i0, i1, i2 (and i4, which the rules did not read).
    # both: i0 (A/A), i1 (B/A), i2 (B/B) -> 3, agree 2, disagree 1; rule only: i3; judge only: i4.
    # asked: every row with a judge_response (i0-i4) = 5.
    assert {k: v for k, v in out["all"].items() if not k.startswith("kappa")} == {
        "n_judge_asked": 5, "n_both": 3, "n_agree": 2, "n_rule_only": 1, "n_judge_only": 1, "n_disagree": 1,
        "agreement": pytest.approx(2 / 3)}
    # kappa over (A,A) (B,A) (B,B): agreement 2/3; a = A B B, b = A A B: chance = (1*2 + 2*1)/9 = 4/9;
    # kappa = (6/9 - 4/9) / (5/9) = 2/5
    assert out["all"]["kappa"] == pytest.approx(0.4)
    seen = out["seen"]  # i0 agree, i1 disagree
    assert (seen["n_judge_asked"], seen["n_both"], seen["n_agree"], seen["n_disagree"]) == (2, 2, 1, 1)
    assert (seen["n_rule_only"], seen["n_judge_only"], seen["agreement"]) == (0, 0, 0.5)
    # a = A B, b = A A: agreement 1/2, chance (1*2 + 1*0)/4 = 1/2 -> kappa 0
    assert seen["kappa"] == pytest.approx(0.0)
    unseen = out["unseen"]  # i2 agree; i3 rule only; i4 judge only; i5 not asked
    assert (unseen["n_judge_asked"], unseen["n_both"], unseen["n_agree"], unseen["n_disagree"]) == (3, 1, 1, 0)
    assert (unseen["n_rule_only"], unseen["n_judge_only"], unseen["agreement"]) == (1, 1, 1.0)
    assert unseen["kappa"] is None and "chance agreement is certain" in unseen["note"]
    assert "note" not in out["all"]


def test_judge_agreement_without_a_judge_or_without_overlap():
    assert judge_agreement(judge_frame([{k: v for k, v in r.items() if not k.startswith("judge")} for r in ROWS])) is None
    # judge_on=unanswered: the judge is asked only where the rules read nothing, so nothing is read by both
    rows = [dict(r, judge_pred=None, judge_response=None) if r["decided_by"] == "rule" else r for r in ROWS]
    out = judge_agreement(judge_frame(rows))
    assert out["all"]["n_both"] == 0 and out["all"]["agreement"] is None and out["all"]["kappa"] is None
    assert out["all"]["note"].startswith("n/a: no reply was read by both") and "judge_on=all" in out["all"]["note"]
    # without judge_response, "asked" counts the judge's letters
    no_resp = judge_frame(ROWS).drop(columns=["judge_response"])
    assert judge_agreement(no_resp)["all"]["n_judge_asked"] == 4


def test_judge_disagreements_are_the_rule_rows_the_judge_read_otherwise():
    rows = judge_disagreements(judge_frame(ROWS))
    assert rows == [{"item_id": "i1", "split": "seen", "composition": "CT-Lung-COVID", "gold": "B",
                     "rule_pred": "B", "parse_rule": "commit_phrase", "judge_pred": "A",
                     "judge_parse_rule": "bare_letter", "judge_response": "A", "response": "it is B",
                     "options": "A. x\nB. y"}]
    # a composition column, when there is one, is taken as it is; NaN is written as null
    df = judge_frame(ROWS).assign(composition="X-Y-Z", gold=[None, math.nan, "B", "A", "A", "B"])
    (row,) = judge_disagreements(df)
    assert row["composition"] == "X-Y-Z" and row["gold"] is None
    assert judge_disagreements(judge_frame([{"item_id": "i", "pred": "A", "response": "A"}])) == []
    # a judge-decided row (i4) is never a disagreement, whatever the letters
    flipped = judge_frame([dict(r, judge_pred="B") if r["item_id"] == "i4" else r for r in ROWS])
    assert [r["item_id"] for r in judge_disagreements(flipped)] == ["i1"]
