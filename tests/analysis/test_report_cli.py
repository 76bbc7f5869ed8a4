import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.multitest import multipletests

from cgeval.analysis.cli import main
from cgeval.analysis.stats import ItemSetMismatch
from cgeval.analysis.table3 import Table3ConfigError, load_table3_config, table3

from .conftest import make_predictions, write_run


def with_accuracy(df: pd.DataFrame, subset: int, acc: float) -> pd.DataFrame:
    """Set exactly round(acc * n) items of ``subset`` correct (the first ones)."""
    df = df.copy()
    idx = df.index[df["subset"] == subset]
    k = int(round(acc * len(idx)))
    df.loc[idx, "correct"] = [True] * k + [False] * (len(idx) - k)
    df.loc[idx, "pred"] = np.where(df.loc[idx, "correct"], df.loc[idx, "gold"], None)
    return df


@pytest.fixture
def three_runs(tmp_path):
    base = make_predictions(subsets=(3, 4, 28), heldout=(3, 4), n_per_subset=60)
    runs = {
        "baseline": with_accuracy(with_accuracy(base, 3, 0.45), 4, 0.40),
        "baseline_plus": with_accuracy(with_accuracy(base, 3, 0.47), 4, 0.42),
        "trained": with_accuracy(with_accuracy(base, 3, 0.85), 4, 0.45),
    }
    return {name: write_run(tmp_path / name, df) for name, df in runs.items()}


def write_config(tmp_path, three_runs, extra_rows=()):
    rows = [
        {"related": "CT-Cancer + X-ray-COVID", "target_subsets": [3], **{k: str(v) for k, v in three_runs.items()}},
        {"related": "CT-Brain + X-ray-Lung", "target_subsets": 4, "block": "fixed area",
         **{k: str(v) for k, v in three_runs.items()}},
        {"related": "absent", "target_subsets": [7], **{k: str(v) for k, v in three_runs.items()}},
        *extra_rows,
    ]
    path = tmp_path / "table3.yaml"
    path.write_text(yaml.safe_dump({"rows": rows}))
    return path


def test_table3_verdicts_and_holm(tmp_path, three_runs):
    t = table3(load_table3_config(write_config(tmp_path, three_runs)))
    helps = t.set_index("target")
    covid = helps.loc["CT-Lung-COVID"]
    assert covid["cg_helps"] is True or covid["cg_helps"] == True  # noqa: E712
    assert covid["acc_trained"] == pytest.approx(0.85) and covid["acc_baseline"] == pytest.approx(0.45)
    cancer = helps.loc["CT-Lung-Cancer"]
    assert cancer["cg_helps"] == False and "not significantly" in cancer["reason"]  # noqa: E712
    absent = helps.loc["Der-Skin-Cancer"]
    assert absent["cg_helps"] is None and absent["reason"].startswith("n/a: no items of target subset(s) 07")
    assert np.isnan(absent["acc_trained"])
    ok = t["p_row"].notna()
    assert t.loc[ok, "p_row_holm"].to_numpy() == pytest.approx(multipletests(t.loc[ok, "p_row"], method="holm")[1])
    assert (t.loc[ok, "p_row"] == t.loc[ok, ["p_vs_baseline", "p_vs_baseline_plus"]].max(axis=1)).all()


def test_table3_trained_not_better_says_so(tmp_path, three_runs):
    df = pd.read_json(three_runs["trained"] / "predictions.jsonl", lines=True, dtype=False)
    worse = write_run(tmp_path / "worse", with_accuracy(df, 3, 0.30))
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"related": "x", "target_subsets": [3], "baseline":
                                              str(three_runs["baseline"]), "baseline_plus":
                                              str(three_runs["baseline_plus"]), "trained": str(worse)}]}))
    t = table3(load_table3_config(path))
    assert t["cg_helps"].item() == False and "does not beat Baseline or Baseline+" in t["reason"].item()  # noqa: E712


def test_table3_mismatched_items_is_named_error(tmp_path, three_runs):
    df = pd.read_json(three_runs["trained"] / "predictions.jsonl", lines=True, dtype=False)
    fewer = write_run(tmp_path / "fewer", df.drop(index=df.index[df["subset"] == 3][:5]))
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"related": "x", "target_subsets": [3], "baseline":
                                              str(three_runs["baseline"]), "baseline_plus":
                                              str(three_runs["baseline_plus"]), "trained": str(fewer)}]}))
    with pytest.raises(ItemSetMismatch, match="row 1 .*5 items differ"):
        table3(load_table3_config(path))


def test_table3_config_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("rows: []\n")
    with pytest.raises(Table3ConfigError):
        load_table3_config(p)
    p.write_text(yaml.safe_dump({"rows": [{"related": "x", "target_subsets": [99], "baseline": "a",
                                           "baseline_plus": "b", "trained": "c"}]}))
    with pytest.raises(Table3ConfigError, match="unknown target subsets"):
        load_table3_config(p)


def png_width_inches(path, dpi=300):
    return mpimg.imread(path).shape[1] / dpi


def test_cli_end_to_end(tmp_path, three_runs, capsys):
    out = tmp_path / "report"
    cfg = write_config(tmp_path, three_runs)
    args = [str(three_runs["baseline"]), str(three_runs["trained"]), "--out", str(out), "--bootstrap", "200",
            "--seed", "3", "--paired", "--table3", str(cfg), "--labels", "base", "trained"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Table 3: 1 of 3 rows: CG helps (1 n/a)" in printed
    for stem in ("summary", "table3", "paired_trained_vs_base", "base/compositions", "base/marginals",
                 "trained/seen_unseen"):
        for ext in ("csv", "md", "tex"):
            assert (out / f"{stem}.{ext}").is_file(), f"{stem}.{ext}"
    for fig in ("gap_forest", "grouped_bars", "base/figures/forest_seen_unseen", "base/figures/letter_bias",
                "trained/figures/heatmap_task-covid", "trained/accuracy_by_composition"):
        for ext in ("png", "pdf"):
            assert (out / f"{fig}.{ext}").is_file(), f"{fig}.{ext}"
    assert png_width_inches(out / "base/figures/forest_seen_unseen.png") == pytest.approx(3.3, abs=0.02)
    assert png_width_inches(out / "base/figures/letter_bias.png") == pytest.approx(3.3, abs=0.02)
    t3 = (out / "table3.md").read_text()
    assert "✓" in t3 and "✗" in t3 and "n/a" in t3
    assert "\\begin{tabular}" in (out / "table3.tex").read_text()
    m = json.loads((out / "base" / "metrics.json").read_text())
    assert m["bootstrap"]["gap_seen_minus_unseen"]["n_boot"] == 200
    assert m["bootstrap"]["gap_seen_minus_unseen"]["seed"] == 3
    paired = pd.read_csv(out / "paired_trained_vs_base.csv").set_index("composition")
    assert paired.loc["03 CT-Lung-COVID", "acc_trained"] == pytest.approx(0.85)


def test_cli_seed_reproducible(tmp_path, three_runs):
    outs = []
    for name in ("r1", "r2"):
        assert main([str(three_runs["trained"]), "--out", str(tmp_path / name), "--bootstrap", "100"]) == 0
        outs.append(json.loads((tmp_path / name / "metrics.json").read_text())["bootstrap"])
    assert outs[0] == outs[1]


def test_cli_truncated_run_is_named_error(tmp_path, three_runs, capsys):
    p = three_runs["trained"] / "predictions.jsonl"
    p.write_text(p.read_text()[:-25])
    assert main([str(three_runs["trained"]), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "TruncatedPredictions" in err
    assert not (tmp_path / "o").exists()  # nothing written from a bad run


def test_cli_missing_run_is_named_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "MissingPredictions" in capsys.readouterr().err


def test_cli_paired_over_different_items_names_count(tmp_path, three_runs, capsys):
    other = write_run(tmp_path / "other", make_predictions(subsets=(3, 4), heldout=(3, 4), n_per_subset=60))
    code = main([str(three_runs["baseline"]), str(other), "--out", str(tmp_path / "o"), "--paired",
                 "--bootstrap", "50"])
    assert code == 2
    err = capsys.readouterr().err
    assert "ItemSetMismatch" in err and "60 items differ" in err
    assert not (tmp_path / "o").exists()  # failed before writing anything


def test_table3_target_seen_in_the_trained_run_is_na(tmp_path, three_runs):
    seen = make_predictions(subsets=(3, 4, 28), heldout=(4,), n_per_subset=60)  # 03 not held out
    trained = write_run(tmp_path / "trained_seen", with_accuracy(seen, 3, 0.9))
    cfg = tmp_path / "t3.yaml"
    cfg.write_text(yaml.safe_dump({"rows": [{"related": "x", "target_subsets": [3],
                                             "baseline": str(three_runs["baseline"]),
                                             "baseline_plus": str(three_runs["baseline_plus"]),
                                             "trained": str(trained)}]}))
    t = table3(load_table3_config(cfg))
    assert t.loc[0, "cg_helps"] is None and "not held out" in t.loc[0, "reason"]


def test_cli_empty_unseen_split_reports_na(tmp_path, capsys):
    run = write_run(tmp_path / "allseen", make_predictions(subsets=(2, 28), heldout=()),
                    {"heldout_subsets": [3]})
    assert main([str(run), "--bootstrap", "50"]) == 0
    comps = (run / "report" / "compositions.md").read_text()
    assert "03 CT-Lung-COVID" in comps and "n/a: no items in predictions (held out (unseen) in this run)" in comps
    su = (run / "report" / "seen_unseen.md").read_text()
    assert "n/a: no unseen items" in su
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert summary["gap"].isna().all() and "no unseen items" in summary["gap_note"].item()


def test_a_run_with_failed_items_is_flagged_in_the_summary(tmp_path, capsys):
    df = make_predictions(subsets=(3, 4), heldout=(3,), n_per_subset=20)
    ok = write_run(tmp_path / "ok", df)
    partial = write_run(tmp_path / "partial", df.iloc[3:], manifest={
        "status": "incomplete", "n_predictions": len(df) - 3,
        "inference_errors": {"n": 3, "by_type": {"APIRequestError": 3}, "examples": []}})
    assert main([str(ok), str(partial), "--out", str(tmp_path / "rep"), "--bootstrap", "50"]) == 0
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv").set_index("run")
    assert summary.loc["partial", "failed_items"] == 3 and summary.loc["ok", "failed_items"] == 0
    assert "failed items" in (tmp_path / "rep" / "summary.md").read_text()
    err = capsys.readouterr().err
    assert "partial: 3 items failed at inference" in err and "ok:" not in err
