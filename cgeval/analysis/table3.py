"""The paper's Table 3 from run folders: Related combination | Target | Baseline | Baseline+ | Trained | CG helps.

Each row names three runs (the untrained model, the model trained on unrelated data, the model trained on the
Related combination) and the target subset(s). Accuracy is computed on the target's items only, and the three
runs must hold exactly the same target items (a paired comparison; otherwise ItemSetMismatch).

"CG helps" needs Trained to beat both Baseline and Baseline+ *significantly*: each comparison is an exact
McNemar test on the target items; the row's p-value is the larger of the two (an intersection-union test:
"beats both" is significant at level a when both tests are), and those row p-values are Holm-adjusted across
the rows of the table. When a row does not qualify, the table says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..data.registry import SUBSETS
from .metrics import Run, load_run, paired_frame
from .stats import ItemSetMismatch, holm, mcnemar_exact
from .tables import NA, pct, pvalue

ARMS = ("baseline", "baseline_plus", "trained")
ARM_TITLES = {"baseline": "Baseline", "baseline_plus": "Baseline+", "trained": "Trained"}


class Table3ConfigError(ValueError):
    """The Table 3 config is malformed (missing keys, unknown subsets, no rows)."""


@dataclass(frozen=True)
class Table3Row:
    related: str
    target_subsets: tuple[int, ...]
    runs: dict[str, Path]
    target: str = ""
    block: str = ""

    @property
    def target_label(self) -> str:
        return self.target or " + ".join(str(SUBSETS[s].composition) for s in self.target_subsets)


def load_table3_config(path: str | Path) -> list[Table3Row]:
    """Read the YAML config; run paths are relative to the config file's folder."""
    path = Path(path)
    if not path.is_file():
        raise Table3ConfigError(f"{path}: no such Table 3 config")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = cfg.get("rows") if isinstance(cfg, dict) else None
    if not entries:
        raise Table3ConfigError(f"{path}: expected a top-level 'rows:' list with at least one row")
    rows = []
    for i, e in enumerate(entries, 1):
        missing = [k for k in ("related", "target_subsets", *ARMS) if k not in e]
        if missing:
            raise Table3ConfigError(f"{path}: row {i} lacks {missing}")
        targets = e["target_subsets"]
        targets = tuple(int(s) for s in (targets if isinstance(targets, (list, tuple)) else [targets]))
        bad = [s for s in targets if s not in SUBSETS]
        if bad or not targets:
            raise Table3ConfigError(f"{path}: row {i} names unknown target subsets {bad or targets}")
        runs = {arm: (path.parent / str(e[arm])).resolve() for arm in ARMS}
        rows.append(Table3Row(str(e["related"]), targets, runs, str(e.get("target", "")), str(e.get("block", ""))))
    return rows


def table3(rows: list[Table3Row], alpha: float = 0.05, cache: dict[Path, Run] | None = None) -> pd.DataFrame:
    """One row per config row with the three accuracies, both McNemar tests, the Holm-adjusted row p-value,
    ``cg_helps`` (True / False / None for n/a) and ``reason``."""
    cache = {} if cache is None else cache
    out = []
    for i, row in enumerate(rows, 1):
        rec = {"block": row.block, "related": row.related, "target": row.target_label,
               "target_subsets": ",".join(f"{s:02d}" for s in row.target_subsets), "n": 0}
        frames = {}
        for arm in ARMS:
            p = row.runs[arm]
            if p not in cache:
                cache[p] = load_run(p)
            df = cache[p].predictions
            frames[arm] = df[df["subset"].isin(row.target_subsets)]
        empty = [ARM_TITLES[a] for a in ARMS if frames[a].empty]
        seen_in_trained = (not frames["trained"].empty) and (frames["trained"]["split"] != "unseen").any()
        if seen_in_trained and not empty:
            # A target the Trained run's experiment did not hold out: its number says nothing about CG.
            rec.update({f"acc_{a}": np.nan for a in ARMS})
            rec.update(p_vs_baseline=np.nan, p_vs_baseline_plus=np.nan, p_row=np.nan, cg_helps=None,
                       reason=f"n/a: target subset(s) {rec['target_subsets']} are not held out (split 'seen') "
                              f"in the Trained run {row.runs['trained']}; evaluate it with an experiment that "
                              "holds the target out")
            out.append(rec)
            continue
        if empty:
            rec.update({f"acc_{a}": np.nan for a in ARMS})
            rec.update(p_vs_baseline=np.nan, p_vs_baseline_plus=np.nan, p_row=np.nan, cg_helps=None,
                       reason=f"n/a: no items of target subset(s) {rec['target_subsets']} in the "
                              f"{', '.join(empty)} run(s)")
            out.append(rec)
            continue
        try:
            vs_base = paired_frame(frames["baseline"], frames["trained"], "Baseline", "Trained")
            vs_plus = paired_frame(frames["baseline_plus"], frames["trained"], "Baseline+", "Trained")
        except ItemSetMismatch as e:
            raise ItemSetMismatch(f"Table 3 row {i} ({row.related} -> {row.target_label}): {e}",
                                  e.only_a, e.only_b, e.differing) from e
        t_base = mcnemar_exact(vs_base["correct_a"], vs_base["correct_b"])
        t_plus = mcnemar_exact(vs_plus["correct_a"], vs_plus["correct_b"])
        rec.update(n=t_base.n, acc_baseline=t_base.acc_a, acc_baseline_plus=t_plus.acc_a, acc_trained=t_base.acc_b,
                   p_vs_baseline=t_base.pvalue, p_vs_baseline_plus=t_plus.pvalue,
                   p_row=max(t_base.pvalue, t_plus.pvalue), cg_helps=None, reason="")
        out.append(rec)
    table = pd.DataFrame(out)
    _, table["p_row_holm"] = holm(table["p_row"].to_numpy(), alpha)
    verdicts = [_verdict(r, alpha) for r in table.to_dict("records")]
    table["cg_helps"] = [v[0] for v in verdicts]
    table["reason"] = [v[1] for v in verdicts]
    return table


def _verdict(r: dict, alpha: float) -> tuple[bool | None, str]:
    if r["reason"]:
        return None, r["reason"]
    t, b, p = r["acc_trained"], r["acc_baseline"], r["acc_baseline_plus"]
    if t <= b or t <= p:
        losers = [name for name, acc in (("Baseline", b), ("Baseline+", p)) if t <= acc]
        return False, (f"Trained ({pct(t)}%) does not beat {' or '.join(losers)} "
                       f"({', '.join(pct(x) + '%' for x in (b, p) if t <= x)})")
    if r["p_row_holm"] >= alpha:
        return False, (f"Trained is higher but not significantly: exact McNemar p = {pvalue(r['p_vs_baseline'])} "
                       f"vs Baseline, {pvalue(r['p_vs_baseline_plus'])} vs Baseline+; "
                       f"Holm-adjusted row p = {pvalue(r['p_row_holm'])} >= {alpha}")
    return True, f"Trained beats both (Holm-adjusted row p = {pvalue(r['p_row_holm'])})"


def table3_view(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout (accuracy %), plus the adjusted p-value and the reason."""
    mark = {True: "✓", False: "✗", None: NA}
    view = pd.DataFrame({
        "Related combination": table["related"],
        "Target": table["target"],
        "n": table["n"].astype(int),
        "Baseline": table["acc_baseline"].map(pct),
        "Baseline+": table["acc_baseline_plus"].map(pct),
        "Trained": table["acc_trained"].map(pct),
        "CG helps": [mark[v] for v in table["cg_helps"]],
        "p (Holm)": table["p_row_holm"].map(pvalue),
        "Why": table["reason"],
    })
    if table["block"].astype(bool).any():
        view.insert(0, "Block", table["block"])
    return view


def table3_latex_view(table: pd.DataFrame) -> pd.DataFrame:
    """LaTeX cannot take ✓/✗ in every engine; use words there."""
    view = table3_view(table)
    view["CG helps"] = view["CG helps"].replace({"✓": "yes", "✗": "no"})
    return view
