"""Numbers a reader takes from the report, checked against values computed here by hand: Table 3's "CG helps"
when Holm's adjustment decides it, and the chance-corrected accuracy interval."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from cgeval.analysis.metrics import metrics_table
from cgeval.analysis.table3 import load_table3_config, table3

from .conftest import make_predictions, write_run


def _correct_first(df: pd.DataFrame, subset: int, k: int) -> pd.DataFrame:
    """Exactly the first k items of ``subset`` correct."""
    df = df.copy()
    idx = df.index[df["subset"] == subset]
    df.loc[idx, "correct"] = [True] * k + [False] * (len(idx) - k)
    df.loc[idx, "pred"] = np.where(df.loc[idx, "correct"], df.loc[idx, "gold"], None)
    return df


def test_holm_decides_cg_helps(tmp_path):
    """Three rows: Trained wins 6, 6 and 20 discordant pairs (none lost) against both Baseline and Baseline+.
    Exact McNemar p = 2 * 0.5**6 = 0.03125 for the first two: significant unadjusted, not after Holm over three
    rows (sorted p: 3 * 2 * 0.5**20, then max(., 2 * 0.03125) = 0.0625 twice)."""
    base = make_predictions(subsets=(3, 4, 28), heldout=(3, 4, 28), n_per_subset=60)
    untrained = base
    for s in (3, 4, 28):
        untrained = _correct_first(untrained, s, 30)
    trained = _correct_first(_correct_first(_correct_first(base, 3, 36), 4, 36), 28, 50)
    runs = {"baseline": write_run(tmp_path / "baseline", untrained),
            "baseline_plus": write_run(tmp_path / "baseline_plus", untrained),
            "trained": write_run(tmp_path / "trained", trained)}
    rows = [{"related": f"r{s}", "target_subsets": [s], **{k: str(v) for k, v in runs.items()}} for s in (3, 4, 28)]
    path = tmp_path / "table3.yaml"
    path.write_text(yaml.safe_dump({"rows": rows}))

    t = table3(load_table3_config(path)).set_index("target_subsets")
    p_small, p_big = 2 * 0.5 ** 20, 2 * 0.5 ** 6
    assert t["p_row"].to_dict() == pytest.approx({"03": p_big, "04": p_big, "28": p_small})
    assert t["p_row_holm"].to_dict() == pytest.approx({"03": 2 * p_big, "04": 2 * p_big, "28": 3 * p_small})
    assert t.loc["28", "cg_helps"] == True  # noqa: E712
    for s in ("03", "04"):
        assert t.loc[s, "p_row"] < 0.05  # unadjusted, Trained would "help"
        assert t.loc[s, "cg_helps"] == False, t.loc[s, "reason"]  # noqa: E712
        assert "not significantly" in t.loc[s, "reason"] and "Holm-adjusted row p = 0.062 " in t.loc[s, "reason"]


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_chance_corrected_interval_bounds():
    """25 of 40 right; 30 items with 4 options and 10 with 2: chance = (30/4 + 10/2) / 40 = 0.3125."""
    n_options = [4] * 30 + [2] * 10
    df = make_predictions(subsets=(3,), heldout=(3,), n_per_subset=40, n_options=n_options)
    df = _correct_first(df, 3, 25)
    overall = metrics_table(df).set_index(["level", "group"]).loc[("overall", "all")]
    chance = 0.3125
    lo, hi = _wilson(25, 40)
    assert overall["chance"] == pytest.approx(chance)
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert overall["chance_corrected"] == pytest.approx((25 / 40 - chance) / (1 - chance))
    assert overall["cc_low"] == pytest.approx((lo - chance) / (1 - chance), abs=1e-12)
    assert overall["cc_high"] == pytest.approx((hi - chance) / (1 - chance), abs=1e-12)
    assert overall["cc_low"] < overall["chance_corrected"] < overall["cc_high"]
