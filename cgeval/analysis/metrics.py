"""Accuracy tables from prediction rows: per composition, per split, per MAT axis value; run folders.

Every cell carries n, accuracy with a 95% Wilson interval, chance level (from the items' option counts),
chance-corrected accuracy and the parse-failure count. A cell with no items is kept as an explicit row with
``note`` saying why it is empty, never silently dropped or filled with a number.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.registry import SUBSETS
from ..jsonl import JsonlLineError, ends_with_line_end, iter_jsonl
from .stats import (
    ItemSetMismatch,
    ScoringMismatch,
    chance_corrected,
    cluster_bootstrap_accuracy,
    cluster_bootstrap_gap,
    holm,
    mcnemar_exact,
    mcnemar_table,
    wilson_interval,
)

REQUIRED_COLUMNS = ("item_id", "subset", "dataset", "modality", "area", "task", "split", "shared_elements",
                    "n_options", "gold", "response", "pred", "correct")
LEVELS = ("overall", "split", "composition", "modality", "area", "task", "shared_elements")
AXES = ("modality", "area", "task")
CLUSTER_COLUMNS = ("image", "dataset", "subset", "item_id")


class PredictionsError(ValueError):
    """A predictions file that cannot be analysed (missing, truncated, wrong columns)."""


class MissingPredictions(PredictionsError):
    """The run folder has no predictions file (the run never started writing, or the path is wrong)."""


class TruncatedPredictions(PredictionsError):
    """The predictions file ends mid-row or holds fewer rows than the run's manifest says it evaluated."""


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read ``predictions.jsonl``; a truncated or corrupt line is a named error, not a guess."""
    path = Path(path)
    if not path.is_file():
        raise MissingPredictions(f"{path}: no predictions file")
    if path.stat().st_size == 0:
        raise PredictionsError(f"{path}: no prediction rows (empty file)")
    try:
        df = pd.read_json(path, lines=True, dtype=False)
    except (ValueError, TypeError):  # TypeError: a line that is JSON but not an object, e.g. [1, 2]
        _raise_bad_line(path)
        raise
    if not ends_with_line_end(path):
        # run.py ends every row with a newline; a last row without one was cut off mid-write.
        raise TruncatedPredictions(f"{path}: the last row has no line end; the file was cut off mid-write")
    if df.empty:
        raise PredictionsError(f"{path}: no prediction rows")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise PredictionsError(f"{path}: missing columns {missing}")
    if df["item_id"].duplicated().any():
        dups = df.loc[df["item_id"].duplicated(), "item_id"].head(5).tolist()
        raise PredictionsError(f"{path}: duplicated item ids, e.g. {dups}")
    bad = ~df["correct"].isin([True, False])
    if bad.any():
        raise PredictionsError(f"{path}: {int(bad.sum())} rows have a non-boolean 'correct' "
                               f"(e.g. {df.loc[bad, 'correct'].head(3).tolist()})")
    df["correct"] = df["correct"].astype(bool)
    df["pred"] = df["pred"].astype(object).where(df["pred"].notna(), None)
    return df


def _raise_bad_line(path: Path) -> None:
    """Find the first line that is not a JSON object and raise a TruncatedPredictions naming it (the strict
    mode of the shared JSON Lines reader; pandas parses the file, this only says where it broke)."""
    try:
        for _ in iter_jsonl(path):
            pass
    except JsonlLineError as e:
        if e.cause is not None:
            where = "last" if e.is_last else "a middle"
            raise TruncatedPredictions(f"{path}:{e.lineno}: {where} line is not a JSON row ({e.cause}); "
                                       "the file is truncated or corrupt") from e.cause
        raise TruncatedPredictions(f"{path}:{e.lineno}: not a JSON object") from None


@dataclass
class Run:
    """One run folder: its predictions and (when present) its manifest."""

    path: Path
    label: str
    predictions: pd.DataFrame
    manifest: dict = field(default_factory=dict)

    def expected_compositions(self) -> dict[str, str]:
        """Compositions the run set out to evaluate: label -> why it was expected (for n/a reasons)."""
        expected: dict[str, str] = {}
        for s in self.manifest.get("heldout_subsets") or []:
            if int(s) in SUBSETS:
                expected[SUBSETS[int(s)].label] = "held out (unseen) in this run"
        requested = ((self.manifest.get("config") or {}).get("data") or {}).get("subsets") or []
        for s in requested:
            if int(s) in SUBSETS:
                expected.setdefault(SUBSETS[int(s)].label, "requested in the run's data config")
        return expected


def load_run(run_dir: str | Path, label: str | None = None) -> Run:
    """Read a run folder; a missing, truncated or unfinished predictions file is a named error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingPredictions(f"{run_dir}: not a run folder (no such directory)")
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    df = read_predictions(run_dir / "predictions.jsonl")
    # A run with inference errors scored fewer items than it loaded; the manifest says how many rows it wrote.
    expected_n = manifest.get("n_predictions", (manifest.get("data") or {}).get("n_items"))
    if expected_n is not None and len(df) != int(expected_n):
        raise TruncatedPredictions(f"{run_dir / 'predictions.jsonl'}: {len(df)} rows but the manifest says the run "
                                   f"evaluated {expected_n} items; the file is truncated or from another run")
    # status 'running' alone is not an error: run.py writes the report before it marks the run complete, and
    # the row count above already catches a run that stopped during inference.
    return Run(run_dir, label or run_dir.name, df, manifest)


_LABEL_COLUMNS = ("modality", "area", "task", "split")


def composition_key(df: pd.DataFrame) -> pd.Series:
    """'03 CT-Lung-COVID' style labels as a categorical (labels built per distinct composition, not per row)."""
    cols = ["subset", "modality", "area", "task"]
    g = df.groupby(cols, sort=True, observed=True, dropna=False)
    codes = g.ngroup().to_numpy()
    keys = g.size().index
    labels = [(f"{int(s):02d}" if pd.notna(s) else "--") + f" {m}-{a}-{t}" for s, m, a, t in keys]
    if len(set(labels)) == len(labels):
        cat = pd.Categorical.from_codes(codes, categories=labels)
    else:  # two keys spell the same label (e.g. subset 3 and 3.0): let pandas merge them
        cat = pd.Categorical(np.asarray(labels, dtype=object)[codes])
    return pd.Series(cat, index=df.index)


def cluster_ids(df: pd.DataFrame, cluster: str) -> np.ndarray:
    """Integer cluster code per row; a row without a cluster label (e.g. no image path) is its own cluster."""
    if cluster not in CLUSTER_COLUMNS:
        raise ValueError(f"cluster must be one of {CLUSTER_COLUMNS}, got {cluster!r}")
    if cluster not in df.columns:
        raise PredictionsError(f"predictions have no {cluster!r} column to cluster on")
    codes, uniques = pd.factorize(df[cluster])
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        codes[missing] = len(uniques) + np.arange(int(missing.sum()))
    return codes


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the tables group on, once: categorical labels, composition, parse failure,
    1/n_options. Idempotent, so callers may pass a prepared frame to several functions."""
    if "_inv" in df.columns and "composition" in df.columns:
        return df
    df = df.assign(**{c: df[c].astype("category") for c in _LABEL_COLUMNS if c in df.columns})
    return df.assign(composition=composition_key(df), overall=pd.Categorical.from_codes(np.zeros(len(df), dtype=np.int8), ["all"]),
                     _fail=parse_failed(df), _inv=chance_per_row(df), _shared=df["shared_elements"].to_numpy())


def is_circular(df: pd.DataFrame) -> np.ndarray:
    """Per row: was the item scored circularly (``correct`` only when every option rotation is correct)?"""
    if "circular" not in df.columns or "n_rotations" not in df.columns:
        return np.zeros(len(df), dtype=bool)
    return (df["circular"].fillna(False).astype(bool) & df["n_rotations"].notna()).to_numpy()


def chance_per_row(df: pd.DataFrame) -> np.ndarray:
    """Probability that uniform guessing scores the row correct.

    A plain item: 1 / n_options. A circular item counts only when all of its rotations are right, and the
    rotations are asked independently, so uniform guessing passes with probability (1 / n_options) ** n_rotations
    (1/256 for four options), not 1 / n_options.
    """
    inv = 1.0 / df["n_options"].astype(float).to_numpy()
    circ = is_circular(df)
    if circ.any():
        k = pd.to_numeric(df["n_rotations"], errors="coerce").to_numpy(dtype=float)
        inv = np.where(circ, inv ** np.where(circ, k, 1.0), inv)
    return inv


def parse_failed(df: pd.DataFrame) -> np.ndarray:
    """Per row: did answer extraction fail? For a circular item, whether *any* rotation went unparsed (its
    ``pred`` is only the rotation-0 answer, so ``pred`` being set says nothing about the other rotations)."""
    fail = df["pred"].isna().to_numpy()
    circ = is_circular(df)
    if circ.any() and "n_parse_failures" in df.columns:
        n_fail = pd.to_numeric(df["n_parse_failures"], errors="coerce").fillna(0).to_numpy()
        fail = np.where(circ, n_fail > 0, fail)
    return fail


def split_labels(df: pd.DataFrame, by: list[str]) -> pd.Series:
    """Which splits each group spans ('seen', 'unseen', 'seen/unseen'), from the small group x split counts."""
    per = df.groupby(by + ["split"], sort=True, observed=True, dropna=False).size()
    per = per[per > 0].reset_index()
    return per.groupby(by, sort=True, dropna=False)["split"].agg(lambda v: "/".join(sorted(map(str, v))))


def _cells(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Vectorised per-group summary: n, n_correct, parse failures, chance, split labels."""
    g = df.groupby(by, sort=True, observed=True, dropna=False)
    out = g.agg(n=("correct", "size"), n_correct=("correct", "sum"), n_parse_fail=("_fail", "sum"),
                chance=("_inv", "mean"), _shared_max=("_shared", "max"))
    if "split" not in by:
        out["_splits"] = split_labels(df, by).reindex(out.index).to_numpy()
    out = out.reset_index()
    # when grouping by split or shared_elements, the key column already holds the value
    shared = out.pop("_shared_max")
    if "shared_elements" not in out:
        out["shared_elements"] = shared
    if "split" not in out:
        out["split"] = out.pop("_splits")
    for c in by:  # categorical keys back to plain values
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    n = table["n"].to_numpy(dtype=float)
    k = table["n_correct"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(n > 0, k / n, np.nan)
        fail = np.where(n > 0, table["n_parse_fail"].to_numpy(dtype=float) / n, np.nan)
    lo, hi = wilson_interval(k, n)
    chance = table["chance"].to_numpy(dtype=float)
    table = table.assign(accuracy=acc, ci_low=lo, ci_high=hi, parse_failure_rate=fail,
                         chance_corrected=chance_corrected(acc, chance), cc_low=chance_corrected(lo, chance),
                         cc_high=chance_corrected(hi, chance))
    note = table["note"] if "note" in table else pd.Series("", index=table.index)
    note = note.fillna("").astype(str)
    note = note.mask((n > 0) & (chance >= 1) & (note == ""), "chance-corrected n/a: every item has one option")
    return table.assign(note=note)


def metrics_table(df: pd.DataFrame, expected: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (level, group): overall, each split, each composition, each axis value, each relation.

    ``expected`` (composition label -> reason) adds an explicit n/a row for a composition the run meant to
    evaluate but that has no prediction rows.
    """
    df = prepare(df)
    parts = []
    for level in LEVELS:
        cells = _cells(df, [level])
        if level in ("split", "shared_elements"):
            cells["group"] = cells[level]
            if level == "shared_elements":
                cells = cells.drop(columns="shared_elements")
        else:
            cells = cells.rename(columns={level: "group"})
        cells.insert(0, "level", level)
        cells["group"] = cells["group"].astype(str)
        if level != "composition":
            cells["shared_elements"] = np.nan
        else:
            missing = sorted(set(expected or {}) - set(cells["group"]))
            if missing:
                empty = pd.DataFrame({"level": level, "group": missing, "n": 0, "n_correct": 0, "n_parse_fail": 0,
                                      "chance": np.nan, "shared_elements": np.nan, "split": "",
                                      "note": [f"n/a: no items in predictions ({expected[m]})" for m in missing]})
                cells = pd.concat([cells, empty], ignore_index=True).sort_values("group", ignore_index=True)
        parts.append(cells)
    table = pd.concat(parts, ignore_index=True)
    table["note"] = table["note"].fillna("") if "note" in table else ""
    return _finish(table)


def cross_table(df: pd.DataFrame, rows: str, cols: str, by: list[str] | None = None,
                full_grid: bool = True) -> pd.DataFrame:
    """Cells of ``rows`` x ``cols`` (e.g. modality x split, or modality x area within each task).

    With ``full_grid`` every combination of the observed values is present; empty ones have n = 0 and a note.
    """
    df = prepare(df)
    keys = (by or []) + [rows, cols]
    cells = _cells(df, keys)
    if full_grid:
        if by:
            # the grid is per ``by`` group: rows/cols values observed within that group
            frames = []
            for key, sub in df.groupby(by, sort=True, observed=True):
                key = key if isinstance(key, tuple) else (key,)
                idx = pd.MultiIndex.from_product([[k] for k in key] + [sorted(sub[rows].unique()),
                                                                       sorted(sub[cols].unique())], names=keys)
                frames.append(idx.to_frame(index=False))
            grid = pd.concat(frames, ignore_index=True)
        else:
            grid = pd.MultiIndex.from_product([sorted(df[rows].unique()), sorted(df[cols].unique())],
                                              names=keys).to_frame(index=False)
        cells = grid.merge(cells, on=keys, how="left")
        empty = cells["n"].isna()
        cells[["n", "n_correct", "n_parse_fail"]] = cells[["n", "n_correct", "n_parse_fail"]].fillna(0).astype(int)
        cells["split"] = cells["split"].fillna("")
        cells["note"] = np.where(empty, "n/a: no items with this combination", "")
    return _finish(cells)


def bootstrap_summary(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, cluster: str = "image") -> dict:
    """Cluster-bootstrap intervals for overall, seen and unseen accuracy and for the seen - unseen gap."""
    ids = cluster_ids(df, cluster)
    correct = df["correct"].to_numpy(dtype=bool)
    seen = (df["split"] == "seen").to_numpy()
    unseen = (df["split"] == "unseen").to_numpy()
    out: dict = {"cluster": cluster}
    out["overall"] = cluster_bootstrap_accuracy(correct, ids, n_boot, seed).to_dict()
    for name, mask in (("seen", seen), ("unseen", unseen)):
        out[name] = (cluster_bootstrap_accuracy(correct[mask], ids[mask], n_boot, seed).to_dict() if mask.any()
                     else {"estimate": None, "note": f"n/a: no {name} items"})
    if seen.any() and unseen.any():
        both = seen | unseen
        out["gap_seen_minus_unseen"] = cluster_bootstrap_gap(correct[both], seen[both], ids[both], n_boot,
                                                             seed).to_dict()
    else:
        which = "seen" if not seen.any() else "unseen"
        out["gap_seen_minus_unseen"] = {"estimate": None, "ci_low": None, "ci_high": None,
                                        "note": f"n/a: no {which} items, so there is no gap to estimate"}
    return out


def _clean(v):
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def metrics_dict(table: pd.DataFrame, bootstrap: dict | None = None) -> dict:
    """Nested dict for metrics.json: level -> group -> numbers; plus the bootstrap block when given."""
    out: dict[str, dict] = {}
    for level, g in table.groupby("level", sort=False):
        out[level] = {row["group"]: {k: _clean(v) for k, v in row.items() if k not in ("level", "group")}
                      for row in g.to_dict("records")}
    split = out.get("split", {})
    if "seen" in split and "unseen" in split:
        out["gap_seen_minus_unseen"] = split["seen"]["accuracy"] - split["unseen"]["accuracy"]
    if bootstrap is not None:
        out["bootstrap"] = bootstrap
    return out


# --------------------------------------------------------------------------------------------------------------
# Paired runs


def paired_frame(a: pd.DataFrame, b: pd.DataFrame, label_a: str = "A", label_b: str = "B") -> pd.DataFrame:
    """Align two runs item by item; raise ItemSetMismatch unless they cover exactly the same items.

    Items must match on id, gold letter and option count, and both runs must score them the same way (a
    circular run's ``correct`` needs every rotation right; ScoringMismatch otherwise). The result has
    ``correct_a`` / ``correct_b``, and ``split_b`` (the item's split in run B, which may hold out other
    compositions than run A).
    """
    circ_a, circ_b = bool(is_circular(a).any()), bool(is_circular(b).any())
    if circ_a != circ_b:
        which = label_a if circ_a else label_b
        raise ScoringMismatch(f"runs {label_a!r} and {label_b!r} are scored differently: only {which!r} is circular "
                              "(an item counts only when every option rotation is right), so their accuracies are "
                              "not comparable item by item; compare circular runs with circular runs")
    a_ids = a["item_id"].to_numpy()
    b_ids = b["item_id"].to_numpy()
    if len(a_ids) == len(b_ids) and np.array_equal(a_ids, b_ids):  # the usual case: same items, same order
        pos_b = np.arange(len(b_ids))
        only_a = only_b = 0
    else:
        codes, _ = pd.factorize(np.concatenate([a_ids.astype(object), b_ids.astype(object)]))
        code_a, code_b = codes[: len(a_ids)], codes[len(a_ids):]
        where_b = np.full(codes.max() + 1 if len(codes) else 0, -1)
        where_b[code_b] = np.arange(len(code_b))
        pos_b = where_b[code_a]
        in_a = np.zeros_like(where_b, dtype=bool)
        in_a[code_a] = True
        only_a = int((pos_b < 0).sum())
        only_b = int((~in_a[code_b]).sum())
    matched = pos_b >= 0
    pb = pos_b[matched]
    differing = int(((a["gold"].to_numpy()[matched] != b["gold"].to_numpy()[pb])
                     | (a["n_options"].to_numpy()[matched] != b["n_options"].to_numpy()[pb])).sum())
    if only_a or only_b or differing:
        n = only_a + only_b + differing
        raise ItemSetMismatch(
            f"runs {label_a!r} and {label_b!r} are not over the same items: {n} items differ "
            f"({only_a} only in {label_a!r}, {only_b} only in {label_b!r}, {differing} with a different gold "
            f"answer or option count); a paired test needs identical items", only_a, only_b, differing)
    cols = [c for c in ("item_id", "gold", "n_options", "subset", "modality", "area", "task", "split",
                        "composition") if c in a.columns]
    out = a[cols].copy()
    out["correct_a"] = a["correct"].to_numpy(dtype=bool)
    out["correct_b"] = b["correct"].to_numpy(dtype=bool)[pos_b]
    if "split" in b.columns:
        out["split_b"] = b["split"].astype(object).to_numpy()[pos_b]
    return out


def paired_by_composition(a: pd.DataFrame, b: pd.DataFrame, label_a: str = "A", label_b: str = "B",
                          alpha: float = 0.05) -> pd.DataFrame:
    """Exact McNemar per composition (B vs A) with Holm adjustment across compositions, plus an overall row."""
    m = paired_frame(prepare(a), b, label_a, label_b)
    ca, cb = m["correct_a"].to_numpy(), m["correct_b"].to_numpy()
    m = m.assign(both=ca & cb, a_only=ca & ~cb, b_only=~ca & cb, neither=~ca & ~cb)
    counts = m.groupby("composition", sort=True, observed=True)[["both", "a_only", "b_only", "neither"]].sum()
    if "split_b" in m.columns:  # runs that hold out different compositions: say so instead of showing A's split
        sa, sb = m["split"].astype(str), m["split_b"].astype(str)
        m["split"] = sa.where(sa == sb, sa + f" in {label_a}, " + sb + f" in {label_b}")
    splits = split_labels(m, ["composition"])
    rows = []
    for comp, c in counts.iterrows():  # one McNemar per composition (tens of rows), on the 2x2 counts
        r = mcnemar_table(int(c["both"]), int(c["a_only"]), int(c["b_only"]), int(c["neither"]))
        rows.append({"composition": str(comp), "split": splits.get(comp, ""), **r.to_dict()})
    table = pd.DataFrame(rows)
    reject, adj = holm(table["pvalue"].to_numpy(), alpha)
    table["p_holm"] = adj
    table["significant"] = reject
    overall = mcnemar_exact(m["correct_a"].to_numpy(), m["correct_b"].to_numpy())
    over = pd.DataFrame([{"composition": "all", "split": "/".join(sorted(map(str, m["split"].unique()))),
                          **overall.to_dict(), "p_holm": np.nan, "significant": overall.pvalue < alpha}])
    table = pd.concat([table, over], ignore_index=True)
    table["diff_b_minus_a"] = table["acc_b"] - table["acc_a"]
    return table.rename(columns={"a_only": f"only_{label_a}", "b_only": f"only_{label_b}",
                                 "acc_a": f"acc_{label_a}", "acc_b": f"acc_{label_b}"})


# --------------------------------------------------------------------------------------------------------------
# Who decided the answers: rules, a judge model, nobody (cgeval.judging)

DECISIONS = ("rule", "judge", "unanswered")


def decided_by(df: pd.DataFrame) -> pd.Series | None:
    """Per row, who decided its answer: ``rule``, ``judge`` or ``unanswered``; None for a run without replies
    (likelihood scoring). Rows written before ``decided_by`` existed are read from ``parse_rule`` and ``pred``."""
    if "response" not in df.columns or not df["response"].notna().any():
        return None
    derived = pd.Series(np.where(df["pred"].notna(), "rule", "unanswered"), index=df.index, dtype=object)
    if "parse_rule" in df.columns:
        derived = derived.mask(df["parse_rule"].astype(object) == "judge", "judge")
    if "decided_by" in df.columns:
        return df["decided_by"].astype(object).where(df["decided_by"].isin(DECISIONS), derived)
    return derived


def decision_counts(df: pd.DataFrame) -> dict | None:
    """How many rows each way was decided, over all rows and per split: ``{group: {rule, judge, unanswered, n}}``."""
    by = decided_by(df)
    if by is None:
        return None
    out = {}
    groups = [("all", np.ones(len(df), dtype=bool))]
    groups += [(str(s), (df["split"].astype(object) == s).to_numpy()) for s in sorted(df["split"].dropna().unique())]
    for name, mask in groups:
        counts = by[mask].value_counts()
        out[name] = {d: int(counts.get(d, 0)) for d in DECISIONS} | {"n": int(mask.sum())}
    return out


def cohens_kappa(a, b) -> dict:
    """Cohen's kappa of two raters' nominal labels (equal-length sequences, no missing values), with its 95%
    interval (`statsmodels.stats.inter_rater.cohens_kappa`). Undefined (None, with a note) when there is nothing
    to compare or chance agreement is certain (both raters used one and the same label throughout)."""
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    a, b = pd.Series(list(a), dtype=object), pd.Series(list(b), dtype=object)
    if len(a) != len(b):
        raise ValueError(f"cohens_kappa: {len(a)} labels against {len(b)}")
    empty = {"kappa": None, "kappa_low": None, "kappa_high": None}
    if not len(a):
        return {**empty, "note": "n/a: no items both read"}
    labels = sorted(set(a) | set(b))
    table = pd.crosstab(a, b).reindex(index=labels, columns=labels, fill_value=0).to_numpy(dtype=float)
    n = table.sum()
    chance = float((table.sum(axis=0) * table.sum(axis=1)).sum() / n ** 2)
    if chance >= 1.0:
        return {**empty, "note": "n/a: both used a single, identical label, so chance agreement is certain"}
    with warnings.catch_warnings():  # its z statistic divides by zero at perfect agreement; we do not report it
        warnings.simplefilter("ignore", RuntimeWarning)
        r = sm_kappa(table)
    return {"kappa": float(r.kappa), "kappa_low": float(r.kappa_low), "kappa_high": float(r.kappa_upp)}


def judge_agreement(df: pd.DataFrame) -> dict | None:
    """How the rules and a judge agree on the rows both read a letter from (a run with
    ``scoring.judge_on=all``), over all rows and per split: counts, raw agreement and Cohen's kappa. None for a run
    without a judge."""
    if "judge_pred" not in df.columns:
        return None
    by = decided_by(df)
    rule = df["pred"].astype(object).where(by == "rule")
    judge = df["judge_pred"].astype(object).where(df["judge_pred"].notna())
    asked = df["judge_response"].notna() if "judge_response" in df.columns else judge.notna()
    out = {}
    groups = [("all", np.ones(len(df), dtype=bool))]
    groups += [(str(s), (df["split"].astype(object) == s).to_numpy()) for s in sorted(df["split"].dropna().unique())]
    for name, mask in groups:
        r, j = rule[mask], judge[mask]
        both = r.notna() & j.notna()
        cell = {"n_judge_asked": int(asked[mask].sum()), "n_both": int(both.sum()),
                "n_agree": int((r[both] == j[both]).sum()), "n_rule_only": int((r.notna() & j.isna()).sum()),
                "n_judge_only": int((r.isna() & j.notna()).sum())}
        cell["n_disagree"] = cell["n_both"] - cell["n_agree"]
        cell["agreement"] = cell["n_agree"] / cell["n_both"] if cell["n_both"] else None
        cell.update(cohens_kappa(r[both], j[both]))
        if not cell["n_both"]:
            cell["note"] = ("n/a: no reply was read by both; the judge is asked about replies the rules read only "
                            "with scoring.judge_on=all")
        out[name] = cell
    return out


DISAGREEMENT_COLUMNS = ("item_id", "split", "composition", "gold", "rule_pred", "parse_rule", "judge_pred",
                        "judge_parse_rule", "judge_response", "response", "options")


def judge_disagreements(df: pd.DataFrame) -> list[dict]:
    """The rows where the rules and the judge read different letters, for judge_disagreements.jsonl."""
    if "judge_pred" not in df.columns:
        return []
    by = decided_by(df)
    mask = ((by == "rule") & df["judge_pred"].notna() & (df["pred"].astype(object) != df["judge_pred"].astype(object)))
    rows = df.loc[mask].assign(rule_pred=df.loc[mask, "pred"])
    if "composition" not in rows.columns:
        rows = rows.assign(composition=[f"{m}-{a}-{t}" for m, a, t in zip(rows["modality"], rows["area"], rows["task"])])
    cols = [c for c in DISAGREEMENT_COLUMNS if c in rows.columns]
    return [{k: _clean(v) for k, v in r.items()} for r in rows[cols].astype(object).to_dict("records")]
