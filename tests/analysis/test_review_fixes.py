"""Regressions found by reviewing real run folders: circular runs, paired labels, figure layout, table labels."""

import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cgeval.analysis.figures import (
    FigureLayoutWarning,
    clipped_texts,
    plot_forest,
    plot_gap_forest,
)
from cgeval.analysis.metrics import (
    bootstrap_summary,
    load_run,
    metrics_table,
    paired_by_composition,
    paired_frame,
)
from cgeval.analysis.report import letter_bias_rows, write_run_outputs
from cgeval.analysis.stats import ScoringMismatch
from cgeval.analysis.tables import seen_unseen_view

from .conftest import make_predictions, write_run


def circular(df: pd.DataFrame) -> pd.DataFrame:
    """The aggregated rows of a circular run: one per item, n_rotations = n_options."""
    return df.assign(circular=True, n_rotations=df["n_options"], n_rotations_correct=0, n_parse_failures=0,
                     parse_rule="circular")


def test_circular_chance_is_all_rotations_by_guessing():
    df = circular(make_predictions(subsets=(2,), heldout=(), n_options=[2, 4]))
    over = metrics_table(df).set_index("level").loc["overall"]
    # half the items have 2 options (guessing passes both rotations with 1/4), half 4 (1/4**4)
    assert over["chance"] == pytest.approx((0.25 + 0.25 ** 4) / 2)
    plain = metrics_table(make_predictions(subsets=(2,), heldout=(), n_options=[2, 4])).set_index("level")
    assert plain.loc["overall", "chance"] == pytest.approx((0.5 + 0.25) / 2)


def test_circular_parse_failure_counts_any_unparsed_rotation():
    df = circular(make_predictions(subsets=(2,), heldout=(), n_per_subset=10))
    df["pred"] = df["gold"]  # rotation 0 parsed everywhere
    df.loc[df.index[:3], "n_parse_failures"] = [1, 2, 4]
    over = metrics_table(df).set_index("level").loc["overall"]
    assert over["n_parse_fail"] == 3 and over["parse_failure_rate"] == pytest.approx(0.3)


def test_paired_circular_against_plain_run_is_a_named_error():
    plain = make_predictions()
    with pytest.raises(ScoringMismatch, match="only 'circ' is circular"):
        paired_frame(plain, circular(plain), "plain", "circ")
    paired_frame(circular(plain), circular(plain), "a", "b")  # circular vs circular is fine


def test_paired_split_column_says_when_runs_hold_out_different_compositions():
    a = make_predictions(subsets=(2, 3, 4), heldout=(3, 4))
    b = make_predictions(subsets=(2, 3, 4), heldout=(3,))
    t = paired_by_composition(a, b, "A", "B").set_index("composition")
    assert t.loc["03 CT-Lung-COVID", "split"] == "unseen"
    assert t.loc["04 CT-Lung-Cancer", "split"] == "unseen in A, seen in B"


def test_letter_bias_of_a_circular_run_reads_every_rotation(tmp_path):
    items = circular(make_predictions(subsets=(2,), heldout=(), n_per_subset=6))
    folder = write_run(tmp_path / "circ", items)
    rows = []
    for r in items.to_dict("records"):
        for k in range(int(r["n_options"])):
            rows.append({**{c: r[c] for c in ("subset", "dataset", "modality", "area", "task", "split",
                                               "shared_elements", "n_options", "response", "image")},
                         "item_id": f"{r['item_id']}@r{k}", "gold": "ABCD"[k], "pred": "A", "correct": k == 0,
                         "rotation": k})
    (folder / "predictions.rotations.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    got, what = letter_bias_rows(load_run(folder))
    assert len(got) == 6 * 4 and "24 rotations of 6 items" in what
    plain, _ = letter_bias_rows(load_run(write_run(tmp_path / "plain", make_predictions())))
    assert len(plain) == len(make_predictions())


def test_seen_unseen_table_shows_each_split_chance():
    df = make_predictions(subsets=(2, 3), heldout=(3,), n_options=4)
    df.loc[df["subset"] == 3, "n_options"] = 2
    df.loc[df["subset"] == 3, "gold"] = "A"
    table = metrics_table(df)
    raw, view = seen_unseen_view(table, bootstrap_summary(df, n_boot=50))
    assert list(view["chance %"]) == ["25.0", "50.0", "n/a"]
    assert raw.loc[raw["quantity"] == "unseen accuracy", "chance"].item() == pytest.approx(0.5)


def test_table_md_names_the_interval_and_the_shared_count(tmp_path, run_dir):
    write_run_outputs(load_run(run_dir), tmp_path / "out", all_figures=False)
    md = (tmp_path / "out" / "table.md").read_text()
    assert "Wilson 95% low %" in md and "ci_low" not in md
    assert "## By number of MAT elements shared with a held-out composition" in md
    comp = (tmp_path / "out" / "compositions.md").read_text()
    assert "MAT elements shared with held-out" in comp and "| shared " not in comp


def test_clipped_texts_detects_a_label_past_the_edge():
    fig, ax = plt.subplots(figsize=(3.3, 2), layout="constrained")
    ax.set_xlabel("a label much longer than a single paper column can hold, so it runs off both edges x" * 2)
    assert clipped_texts(fig)
    ax.set_xlabel("short")
    assert clipped_texts(fig) == []
    plt.close(fig)


def test_forest_and_gap_forest_fit_one_column(tmp_path):
    df = make_predictions(subsets=(2, 3, 4, 28, 30), heldout=(3,))
    boot = bootstrap_summary(df, n_boot=50)
    gaps = pd.DataFrame({"run": ["tiny_llava-likelihood", "random"], "estimate": [-0.07, 0.01],
                         "ci_low": [-0.32, -0.24], "ci_high": [0.17, 0.21]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", FigureLayoutWarning)
        plot_gap_forest(gaps, tmp_path / "gap")
        plot_forest(metrics_table(df), boot, tmp_path / "forest", title="tiny_llava-likelihood")
        seen_only = make_predictions(subsets=(2, 28), heldout=())
        plot_forest(metrics_table(seen_only), bootstrap_summary(seen_only, n_boot=20), tmp_path / "forest_na",
                    title="random")
    assert np.all([(tmp_path / f).exists() for f in ("gap.png", "forest.pdf")])
