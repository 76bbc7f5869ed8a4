"""Table 3 unit by unit, fast: the config reader's messages, each row's numbers against exact binomial p-values
worked out here, the verdict texts, and the two views. Runs are handed to table3 through its cache (no disk)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cgeval.analysis.metrics import Run
from cgeval.analysis.stats import ItemSetMismatch
from cgeval.analysis.table3 import (Table3ConfigError, Table3Row, _verdict, load_table3_config, table3,
                                    table3_latex_view, table3_view)

from .conftest import make_predictions, write_run


def with_correct(df: pd.DataFrame, subset: int, pattern) -> pd.DataFrame:
    df = df.copy()
    idx = df.index[df["subset"] == subset]
    df.loc[idx, "correct"] = list(pattern) + [False] * (len(idx) - len(pattern))
    return df


BASE = make_predictions(subsets=(3, 4, 28), heldout=(3, 4, 28), n_per_subset=10)


def runs_cache(**frames) -> tuple[dict[str, Path], dict[Path, Run]]:
    paths = {arm: Path(f"/nonexistent/{arm}_{id(df)}") for arm, df in frames.items()}
    return paths, {paths[arm]: Run(paths[arm], arm, df, {}) for arm, df in frames.items()}


def one_row(runs: dict[str, Path], targets=(3,), related="rel", target="", block="") -> Table3Row:
    return Table3Row(related, tuple(targets), runs, target, block)


# --------------------------------------------------------------------------------------------------------------
# Config


def write_yaml(tmp_path, obj) -> Path:
    p = tmp_path / "t3.yaml"
    p.write_text(yaml.safe_dump(obj) if not isinstance(obj, str) else obj)
    return p


def test_config_rows_and_relative_run_paths(tmp_path):
    p = write_yaml(tmp_path, {"rows": [
        {"related": 12, "target_subsets": 3, "baseline": "runs/b", "baseline_plus": "runs/bp", "trained": "/abs/t"},
        {"related": "r2", "target_subsets": [3, 28], "baseline": "b", "baseline_plus": "bp", "trained": "t",
         "target": "COVID", "block": "fixed task"}]})
    rows = load_table3_config(p)
    assert len(rows) == 2
    r1, r2 = rows
    assert r1.related == "12" and r1.target_subsets == (3,) and r1.target == "" and r1.block == ""
    assert r1.runs == {"baseline": (tmp_path / "runs/b").resolve(), "baseline_plus": (tmp_path / "runs/bp").resolve(),
                       "trained": Path("/abs/t")}
    assert r2.target_subsets == (3, 28) and r2.target == "COVID" and r2.block == "fixed task"
    assert r1.target_label == "CT-Lung-COVID"
    assert r2.target_label == "COVID"
    assert Table3Row("x", (3, 28), {}).target_label == "CT-Lung-COVID + X-ray-Lung-COVID"


def test_config_errors_say_what_is_wrong(tmp_path):
    missing = tmp_path / "none.yaml"
    with pytest.raises(Table3ConfigError, match=r"none.yaml: no such Table 3 config$"):
        load_table3_config(missing)
    for text in ("", "rows: []\n", "- a\n- b\n", "other: 1\n"):
        p = write_yaml(tmp_path, text)
        with pytest.raises(Table3ConfigError, match=r"t3.yaml: expected a top-level 'rows:' list with at least one "
                                                    r"row$"):
            load_table3_config(p)
    ok = {"related": "x", "target_subsets": [3], "baseline": "a", "baseline_plus": "b", "trained": "c"}
    p = write_yaml(tmp_path, {"rows": [ok, {"related": "y", "target_subsets": [3], "baseline": "a"}]})
    with pytest.raises(Table3ConfigError, match=r"t3.yaml: row 2 lacks \['baseline_plus', 'trained'\]$"):
        load_table3_config(p)
    p = write_yaml(tmp_path, {"rows": [{**ok, "target_subsets": [3, 99, 98]}]})
    with pytest.raises(Table3ConfigError, match=r"t3.yaml: row 1 names unknown target subsets \[99, 98\]$"):
        load_table3_config(p)
    p = write_yaml(tmp_path, {"rows": [{**ok, "target_subsets": []}]})
    with pytest.raises(Table3ConfigError, match=r"t3.yaml: row 1 names unknown target subsets \(\)$"):
        load_table3_config(p)


# --------------------------------------------------------------------------------------------------------------
# Rows


def test_a_row_by_hand():
    """Target 03, 10 items. Baseline right on items 0-2, Baseline+ on 0-3, Trained on 0-9.
    vs Baseline: 7 discordant pairs all won -> p = 2 * 0.5**7; vs Baseline+: 6 -> p = 2 * 0.5**6."""
    runs, cache = runs_cache(baseline=with_correct(BASE, 3, [True] * 3),
                             baseline_plus=with_correct(BASE, 3, [True] * 4),
                             trained=with_correct(BASE, 3, [True] * 10))
    t = table3([one_row(runs, related="CT-Cancer", block="blk")], cache=cache)
    r = t.iloc[0]
    assert (r["block"], r["related"], r["target"], r["target_subsets"], r["n"]) == (
        "blk", "CT-Cancer", "CT-Lung-COVID", "03", 10)
    assert (r["acc_baseline"], r["acc_baseline_plus"], r["acc_trained"]) == (0.3, 0.4, 1.0)
    assert r["p_vs_baseline"] == pytest.approx(2 * 0.5 ** 7)
    assert r["p_vs_baseline_plus"] == pytest.approx(2 * 0.5 ** 6)
    assert r["p_row"] == pytest.approx(2 * 0.5 ** 6) and r["p_row_holm"] == pytest.approx(2 * 0.5 ** 6)
    assert r["cg_helps"] == True  # noqa: E712
    assert r["reason"] == "Trained beats both (Holm-adjusted row p = 0.031)"
    assert list(t.columns) == ["block", "related", "target", "target_subsets", "n", "acc_baseline",
                               "acc_baseline_plus", "acc_trained", "p_vs_baseline", "p_vs_baseline_plus", "p_row",
                               "cg_helps", "reason", "p_row_holm"]


def test_alpha_decides_the_verdict():
    runs, cache = runs_cache(baseline=with_correct(BASE, 3, [True] * 3),
                             baseline_plus=with_correct(BASE, 3, [True] * 4),
                             trained=with_correct(BASE, 3, [True] * 10))
    t = table3([one_row(runs)], alpha=0.01, cache=cache)
    assert t.loc[0, "cg_helps"] == False  # noqa: E712
    assert t.loc[0, "reason"] == ("Trained is higher but not significantly: exact McNemar p = 0.016 vs Baseline, "
                                  "0.031 vs Baseline+; Holm-adjusted row p = 0.031 >= 0.01")


def test_two_targets_pool_their_items_and_list_them():
    runs, cache = runs_cache(baseline=BASE, baseline_plus=BASE, trained=with_correct(BASE, 28, [True] * 2))
    t = table3([one_row(runs, targets=(28, 3))], cache=cache)
    r = t.iloc[0]
    assert r["target_subsets"] == "28,03" and r["n"] == 20 and r["target"] == "X-ray-Lung-COVID + CT-Lung-COVID"
    base_acc = BASE.loc[BASE["subset"].isin([3, 28]), "correct"].mean()
    assert r["acc_baseline"] == pytest.approx(base_acc)


def test_holm_across_rows_and_not_across_na_rows():
    """Rows A (p_row = 2 * 0.5**6) and B (p_row = 2 * 0.5**10) and an n/a row: Holm over the two tests only."""
    runs_a, cache = runs_cache(baseline=with_correct(BASE, 3, []), baseline_plus=with_correct(BASE, 3, []),
                               trained=with_correct(BASE, 3, [True] * 6))
    runs_b, cache_b = runs_cache(baseline=with_correct(BASE, 4, []), baseline_plus=with_correct(BASE, 4, []),
                                 trained=with_correct(BASE, 4, [True] * 10))
    cache.update(cache_b)
    t = table3([one_row(runs_a, targets=(3,)), one_row(runs_b, targets=(4,)), one_row(runs_a, targets=(7,))],
               cache=cache)
    pa, pb = 2 * 0.5 ** 6, 2 * 0.5 ** 10
    assert t["p_row"].tolist()[:2] == pytest.approx([pa, pb]) and np.isnan(t.loc[2, "p_row"])
    assert t["p_row_holm"].tolist()[:2] == pytest.approx([pa, 2 * pb]) and np.isnan(t.loc[2, "p_row_holm"])
    assert t["cg_helps"].tolist() == [True, True, None]


def test_missing_target_items_name_the_empty_runs():
    no3 = BASE[BASE["subset"] != 3]
    runs, cache = runs_cache(baseline=BASE, baseline_plus=no3, trained=no3)
    t = table3([one_row(runs)], cache=cache)
    r = t.iloc[0]
    assert r["reason"] == "n/a: no items of target subset(s) 03 in the Baseline+, Trained run(s)"
    assert r["cg_helps"] is None and r["n"] == 0
    assert np.isnan(r["acc_baseline"]) and np.isnan(r["acc_trained"]) and np.isnan(r["p_row"])
    assert np.isnan(r["p_vs_baseline"]) and np.isnan(r["p_vs_baseline_plus"]) and np.isnan(r["p_row_holm"])
    runs, cache = runs_cache(baseline=no3, baseline_plus=BASE, trained=BASE)
    assert table3([one_row(runs)], cache=cache).loc[0, "reason"] == (
        "n/a: no items of target subset(s) 03 in the Baseline run(s)")


def test_target_seen_in_the_trained_run_is_na_with_the_path():
    seen = BASE.assign(split=np.where(BASE["subset"] == 3, "seen", BASE["split"]))
    runs, cache = runs_cache(baseline=BASE, baseline_plus=BASE, trained=seen)
    r = table3([one_row(runs)], cache=cache).iloc[0]
    assert r["reason"] == (f"n/a: target subset(s) 03 are not held out (split 'seen') in the Trained run "
                           f"{runs['trained']}; evaluate it with an experiment that holds the target out")
    assert r["cg_helps"] is None and r["n"] == 0
    assert np.isnan(r["acc_baseline"]) and np.isnan(r["acc_baseline_plus"]) and np.isnan(r["acc_trained"])
    assert np.isnan(r["p_vs_baseline"]) and np.isnan(r["p_vs_baseline_plus"]) and np.isnan(r["p_row"])
    # one seen item is enough
    one_seen = BASE.copy()
    one_seen.loc[one_seen.index[one_seen["subset"] == 3][0], "split"] = "seen"
    runs, cache = runs_cache(baseline=BASE, baseline_plus=BASE, trained=one_seen)
    assert table3([one_row(runs)], cache=cache).loc[0, "reason"].startswith("n/a: target subset(s) 03 are not held")
    # seen in Baseline only: fine (only the Trained run's split says whether the target was held out)
    runs, cache = runs_cache(baseline=seen, baseline_plus=BASE, trained=BASE)
    assert table3([one_row(runs)], cache=cache).loc[0, "reason"] != ""


def test_seen_and_empty_reports_the_empty_runs():
    seen = BASE.assign(split="seen")
    runs, cache = runs_cache(baseline=BASE[BASE["subset"] != 3], baseline_plus=BASE, trained=seen)
    assert table3([one_row(runs)], cache=cache).loc[0, "reason"] == (
        "n/a: no items of target subset(s) 03 in the Baseline run(s)")


def test_mismatched_items_name_the_row_and_keep_the_counts():
    fewer = BASE.drop(index=BASE.index[BASE["subset"] == 3][:2])
    runs, cache = runs_cache(baseline=BASE, baseline_plus=BASE, trained=fewer)
    rows = [one_row(runs, targets=(4,)), one_row(runs, targets=(3,), related="CT-Cancer")]
    with pytest.raises(ItemSetMismatch, match=r"^Table 3 row 2 \(CT-Cancer -> CT-Lung-COVID\): runs 'Baseline' and "
                                              r"'Trained' are not over the same items: 2 items differ") as e:
        table3(rows, cache=cache)
    assert (e.value.only_a, e.value.only_b, e.value.differing) == (2, 0, 0)
    runs, cache = runs_cache(baseline=fewer, baseline_plus=BASE, trained=fewer)
    with pytest.raises(ItemSetMismatch, match=r"runs 'Baseline\+' and 'Trained'"):
        table3([one_row(runs)], cache=cache)


def test_runs_are_read_once_from_disk_and_cached(tmp_path):
    folder = write_run(tmp_path / "same", with_correct(BASE, 3, [True] * 5))
    rows = [one_row({"baseline": folder, "baseline_plus": folder, "trained": folder})] * 2
    cache = {}
    t = table3(rows, cache=cache)
    assert list(cache) == [folder] and cache[folder].label == "same"
    assert t["acc_trained"].tolist() == [0.5, 0.5] and t["p_row"].tolist() == [1.0, 1.0]
    assert t["reason"].tolist() == ["Trained (50.0%) does not beat Baseline or Baseline+ (50.0%, 50.0%)"] * 2
    assert table3(rows)["n"].tolist() == [10, 10]  # without a cache: read from disk


# --------------------------------------------------------------------------------------------------------------
# Verdicts


def verdict_row(t, b, p, p_holm=0.01, reason=""):
    return {"reason": reason, "acc_trained": t, "acc_baseline": b, "acc_baseline_plus": p, "p_vs_baseline": 0.004,
            "p_vs_baseline_plus": 0.0004, "p_row_holm": p_holm}


def test_verdict_texts():
    assert _verdict(verdict_row(0.5, 0.4, 0.3, reason="n/a: why"), 0.05) == (None, "n/a: why")
    assert _verdict(verdict_row(0.5, 0.6, 0.3), 0.05) == (
        False, "Trained (50.0%) does not beat Baseline (60.0%)")
    assert _verdict(verdict_row(0.5, 0.3, 0.5), 0.05) == (
        False, "Trained (50.0%) does not beat Baseline+ (50.0%)")  # a tie does not beat
    assert _verdict(verdict_row(0.5, 0.5, 0.7), 0.05) == (
        False, "Trained (50.0%) does not beat Baseline or Baseline+ (50.0%, 70.0%)")
    assert _verdict(verdict_row(0.5, 0.4, 0.3, p_holm=0.05), 0.05) == (
        False, "Trained is higher but not significantly: exact McNemar p = 0.004 vs Baseline, <0.001 vs Baseline+; "
               "Holm-adjusted row p = 0.050 >= 0.05")
    assert _verdict(verdict_row(0.5, 0.4, 0.3, p_holm=0.0499), 0.05) == (
        True, "Trained beats both (Holm-adjusted row p = 0.050)")
    assert _verdict(verdict_row(0.5, 0.4, 0.3, p_holm=0.0004), 0.001) == (
        True, "Trained beats both (Holm-adjusted row p = <0.001)")


# --------------------------------------------------------------------------------------------------------------
# Views


def table_for_views(block=("", "", "")):
    return pd.DataFrame({
        "block": list(block), "related": ["r1", "r2", "r3"], "target": ["T1", "T2", "T3"], "n": [10, 20, 0],
        "acc_baseline": [0.3, 0.5, np.nan], "acc_baseline_plus": [0.4, 0.55, np.nan],
        "acc_trained": [1.0, 0.5, np.nan], "cg_helps": [True, False, None],
        "p_row_holm": [0.0312, 1.0, np.nan], "reason": ["ok", "no", "n/a: x"]})


def test_table3_view_layout():
    v = table3_view(table_for_views())
    assert list(v.columns) == ["Related combination", "Target", "n", "Baseline", "Baseline+", "Trained", "CG helps",
                               "p (Holm)", "Why"]
    assert v.to_dict("records")[0] == {"Related combination": "r1", "Target": "T1", "n": 10, "Baseline": "30.0",
                                       "Baseline+": "40.0", "Trained": "100.0", "CG helps": "✓",
                                       "p (Holm)": "0.031", "Why": "ok"}
    assert v["CG helps"].tolist() == ["✓", "✗", "n/a"]
    assert v["Trained"].tolist() == ["100.0", "50.0", "n/a"] and v["p (Holm)"].tolist()[2] == "n/a"
    assert v["n"].dtype == np.int64 or v["n"].dtype == int


def test_table3_view_block_column_only_when_some_row_has_one():
    v = table3_view(table_for_views(("", "fixed area", "")))
    assert list(v.columns)[:2] == ["Block", "Related combination"]
    assert v["Block"].tolist() == ["", "fixed area", ""]


def test_table3_latex_view_words():
    v = table3_latex_view(table_for_views())
    assert v["CG helps"].tolist() == ["yes", "no", "n/a"]
    assert list(v.columns) == list(table3_view(table_for_views()).columns)
