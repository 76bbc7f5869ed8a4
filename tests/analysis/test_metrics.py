import json

import numpy as np
import pytest

from cgeval.analysis.metrics import (MissingPredictions, PredictionsError, TruncatedPredictions, bootstrap_summary,
                                     cross_table, load_run, metrics_dict, metrics_table, paired_by_composition,
                                     paired_frame, read_predictions)
from cgeval.analysis.stats import ItemSetMismatch, mcnemar_exact

from .conftest import make_predictions, write_run


def test_missing_predictions_file(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(MissingPredictions):
        load_run(tmp_path / "run")
    with pytest.raises(MissingPredictions):
        load_run(tmp_path / "nowhere")


def test_truncated_last_line(run_dir):
    p = run_dir / "predictions.jsonl"
    text = p.read_text()
    p.write_text(text[: len(text) - 40])  # cut inside the last row
    with pytest.raises(TruncatedPredictions, match="last line"):
        read_predictions(p)


def test_last_row_without_line_end_is_truncated(run_dir):
    p = run_dir / "predictions.jsonl"
    p.write_text(p.read_text().rstrip("\n"))
    with pytest.raises(TruncatedPredictions, match="line end"):
        read_predictions(p)


def test_corrupt_middle_line(run_dir):
    p = run_dir / "predictions.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    lines[5] = lines[5][:20] + "\n"
    p.write_text("".join(lines))
    with pytest.raises(TruncatedPredictions, match=":6:"):
        read_predictions(p)


def test_fewer_rows_than_manifest(run_dir):
    p = run_dir / "predictions.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:-3]))  # whole rows missing: still valid JSON lines
    with pytest.raises(TruncatedPredictions, match="manifest says"):
        load_run(run_dir)


def test_duplicate_ids_and_missing_columns(tmp_path):
    df = make_predictions(n_per_subset=3)
    df.loc[1, "item_id"] = df.loc[0, "item_id"]
    with pytest.raises(PredictionsError, match="duplicated"):
        load_run(write_run(tmp_path / "dup", df))
    with pytest.raises(PredictionsError, match="missing columns"):
        load_run(write_run(tmp_path / "nocol", make_predictions(n_per_subset=3).drop(columns="gold")))


def brute_force_cells(df, col):
    out = {}
    for key in sorted(set(df[col])):
        rows = [r for r in df.to_dict("records") if r[col] == key]
        n = len(rows)
        k = sum(r["correct"] for r in rows)
        chance = sum(1 / r["n_options"] for r in rows) / n
        out[str(key)] = (n, k / n, chance, (k / n - chance) / (1 - chance))
    return out


@pytest.mark.parametrize("level", ["split", "modality", "area", "task", "shared_elements"])
def test_metrics_table_matches_brute_force(level):
    df = make_predictions(subsets=(2, 3, 4, 5, 28, 30), heldout=(3, 4), n_per_subset=17, seed=4, n_options=(2, 3, 4))
    t = metrics_table(df)
    got = t[t["level"] == level].set_index("group")
    for key, (n, acc, chance, cc) in brute_force_cells(df, level).items():
        row = got.loc[key]
        assert row["n"] == n
        assert row["accuracy"] == pytest.approx(acc)
        assert row["chance"] == pytest.approx(chance)
        assert row["chance_corrected"] == pytest.approx(cc)


def test_composition_rows_and_parse_failures():
    df = make_predictions(n_per_subset=10)
    df.loc[df.index[:3], ["pred", "correct"]] = [None, False]
    t = metrics_table(df)
    comp = t[t["level"] == "composition"].set_index("group")
    assert list(comp.index) == ["02 CT-Kidney-Diseases", "03 CT-Lung-COVID", "04 CT-Lung-Cancer",
                                "28 X-ray-Lung-COVID"]
    assert comp.loc["02 CT-Kidney-Diseases", "n_parse_fail"] == 3
    assert comp.loc["03 CT-Lung-COVID", "split"] == "unseen"
    assert t.loc[t["level"] == "overall", "split"].item() == "seen/unseen"


def test_expected_but_empty_composition_is_na_with_reason():
    df = make_predictions(subsets=(2, 28), heldout=())
    t = metrics_table(df, {"03 CT-Lung-COVID": "held out (unseen) in this run"})
    row = t[(t["level"] == "composition") & (t["group"] == "03 CT-Lung-COVID")].iloc[0]
    assert row["n"] == 0
    assert np.isnan(row["accuracy"]) and np.isnan(row["ci_low"]) and np.isnan(row["chance_corrected"])
    assert row["note"].startswith("n/a: no items") and "held out" in row["note"]
    m = metrics_dict(t)
    assert m["composition"]["03 CT-Lung-COVID"]["accuracy"] is None


def test_no_unseen_items_gives_na_gap_not_a_number():
    df = make_predictions(subsets=(2, 28), heldout=())
    boot = bootstrap_summary(df, n_boot=50)
    assert boot["gap_seen_minus_unseen"]["estimate"] is None
    assert "no unseen items" in boot["gap_seen_minus_unseen"]["note"]
    assert boot["unseen"]["estimate"] is None
    m = metrics_dict(metrics_table(df), boot)
    assert "gap_seen_minus_unseen" not in m  # run.py prints this key as a number when present


def test_metrics_json_keys(run_dir):
    from cgeval.analysis.report import write_report

    m = write_report(run_dir, "t", n_boot=100)
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    for level in ("overall", "split", "composition", "modality", "area", "task", "shared_elements"):
        assert level in on_disk
        for cell in on_disk[level].values():
            for key in ("n", "accuracy", "ci_low", "ci_high", "n_parse_fail", "parse_failure_rate", "chance",
                        "chance_corrected", "note"):
                assert key in cell
    gap = on_disk["bootstrap"]["gap_seen_minus_unseen"]
    assert gap["ci_low"] <= gap["estimate"] <= gap["ci_high"]
    assert on_disk["gap_seen_minus_unseen"] == pytest.approx(gap["estimate"])
    assert m["bootstrap"]["cluster"] == "image" and gap["n_boot"] == 100


def test_cross_table_marks_empty_combinations():
    df = make_predictions(subsets=(2, 3, 28), heldout=(3,))
    cells = cross_table(df, "modality", "split")
    empty = cells[(cells["modality"] == "X-ray") & (cells["split"] == "unseen")].iloc[0]
    assert empty["n"] == 0 and np.isnan(empty["accuracy"]) and empty["note"].startswith("n/a")
    full = cells[(cells["modality"] == "CT") & (cells["split"] == "unseen")].iloc[0]
    assert full["n"] == 20 and full["note"] == ""
    heat = cross_table(df, "modality", "area", by=["task"])
    assert set(heat["task"]) == {"Diseases", "COVID"}
    assert heat["n"].sum() == len(df)


def test_paired_frame_aligns_reordered_items_and_tests_match_brute_force():
    a = make_predictions(seed=1)
    b = make_predictions(seed=2).sample(frac=1.0, random_state=0)  # same items, other order and answers
    m = paired_frame(a, b)
    truth = dict(zip(b["item_id"], b["correct"]))
    assert m["correct_b"].tolist() == [truth[i] for i in a["item_id"]]
    t = paired_by_composition(a, b, "A", "B").set_index("composition")
    g = a.assign(cb=[truth[i] for i in a["item_id"]])
    for comp_subset, label in [(3, "03 CT-Lung-COVID"), (28, "28 X-ray-Lung-COVID")]:
        rows = g[g["subset"] == comp_subset]
        ref = mcnemar_exact(rows["correct"].to_numpy(), rows["cb"].to_numpy())
        assert t.loc[label, "pvalue"] == pytest.approx(ref.pvalue)
        assert t.loc[label, "acc_B"] == pytest.approx(rows["cb"].mean())
    from statsmodels.stats.multitest import multipletests
    per = t.drop(index="all")
    assert per["p_holm"].to_numpy() == pytest.approx(multipletests(per["pvalue"], method="holm")[1])


def test_paired_runs_over_different_items_is_a_named_error_with_counts():
    a = make_predictions()
    b = make_predictions().iloc[:-3]
    with pytest.raises(ItemSetMismatch, match="3 items differ") as e:
        paired_frame(a, b, "base", "trained")
    assert e.value.only_a == 3 and e.value.only_b == 0
    c = make_predictions()
    c.loc[c.index[:2], "gold"] = "Z"
    with pytest.raises(ItemSetMismatch, match="2 items differ"):
        paired_frame(a, c)
