"""The content of the HTML report as plain data: one function per section, from a run's analysis.

Numbers come from the analysis package (`metrics`, `stats`, `tables`); this module only arranges them for
the template and the page's script. Text from the data or from model replies is passed on as it is: the
template escapes it (Jinja autoescape) and the script writes it as text, never as markup.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps

from ..data.registry import SUBSETS
from ..scoring import letter_bias
from .metrics import Run, prepare
from .tables import interval, pct, pvalue, signed_pct
from .thumbnails import Thumbnails, pick_round_robin

OUTCOMES = ("correct", "wrong", "unanswered")
UNANSWERED = "(unanswered)"
MAX_CONFUSION_LABELS = 24  # more gold / predicted labels than this in one subset: the rest become "(other)"
COLLAPSE_SHARE = 0.8  # one predicted label for at least this share of a subset's answers is flagged
MAX_REPLY_CHARS = 2000  # a longer reply is cut in the page (the full text stays in predictions.jsonl)

_CIVIDIS = colormaps["cividis"]


def clean(v):
    """A value for JSON and the template: NaN and numpy scalars become None and plain Python numbers."""
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [clean(x) for x in v]
    return v


def _num(v) -> float | None:
    v = clean(v)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def heat_colour(acc: float | None) -> tuple[str, str]:
    """Background (cividis, as the PNG heatmaps) and a readable text colour for an accuracy in 0-1."""
    if acc is None:
        return "#ffffff", "#666666"
    r, g, b, _ = _CIVIDIS(float(acc))
    text = "#ffffff" if acc < 0.55 else "#000000"
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}", text


# --------------------------------------------------------------------------------------------------------------
# Headline


def headline(a: dict, run: Run) -> dict:
    """Seen and unseen accuracy with both intervals, the gap with its bootstrap interval, overall figures."""
    table, boot = a["table"], a["bootstrap"]
    split = table[table["level"] == "split"].set_index("group")
    cards = []
    for name in ("seen", "unseen"):
        b = boot.get(name) or {}
        if name in split.index and int(split.loc[name, "n"]) > 0:
            r = split.loc[name]
            cards.append({"name": name, "n": int(r["n"]), "acc": pct(r["accuracy"]),
                          "wilson": interval(r["ci_low"], r["ci_high"]),
                          "boot": interval(b.get("ci_low"), b.get("ci_high")), "chance": pct(r["chance"]),
                          "parse_fail": pct(r["parse_failure_rate"]), "note": ""})
        else:
            cards.append({"name": name, "n": 0, "acc": "n/a", "wilson": "n/a", "boot": "n/a", "chance": "n/a",
                          "parse_fail": "n/a", "note": f"no {name} items in this run"})
    gap = boot.get("gap_seen_minus_unseen") or {}
    over = table[(table["level"] == "overall")].iloc[0]
    errors = (run.manifest.get("inference_errors") or {})
    return {
        "cards": cards,
        "gap": {"estimate": signed_pct(gap.get("estimate")), "ci": interval(gap.get("ci_low"), gap.get("ci_high"),
                                                                            signed=True),
                "note": gap.get("note", ""), "method": gap.get("method", ""), "n_boot": gap.get("n_boot"),
                "cluster": boot.get("cluster", ""), "seed": gap.get("seed"),
                "excludes_zero": bool(gap.get("ci_low") is not None and gap.get("ci_high") is not None
                                      and (gap["ci_low"] > 0 or gap["ci_high"] < 0))},
        "overall": {"n": int(over["n"]), "acc": pct(over["accuracy"]), "wilson": interval(over["ci_low"], over["ci_high"]),
                    "chance": pct(over["chance"]), "parse_fail": pct(over["parse_failure_rate"]),
                    "n_parse_fail": int(over["n_parse_fail"])},
        "failed_items": int(errors.get("n") or 0),
        "failed_by_type": errors.get("by_type") or {},
    }


def run_facts(run: Run) -> list[tuple[str, str]]:
    """What the run was: model, experiment, scoring, data, status, when (from the manifest; absent keys left out)."""
    m = run.manifest
    model = m.get("model") or {}
    scoring = m.get("scoring") or {}
    data = m.get("data") or {}
    env = m.get("environment") or {}
    facts = [
        ("experiment", (m.get("experiment") or {}).get("name")),
        ("held out", ", ".join(m.get("heldout_compositions") or []) or None),
        ("model", " ".join(str(x) for x in (model.get("name"), model.get("model_id")) if x) or None),
        ("revision", model.get("resolved_commit") or model.get("revision")),
        ("scoring", " ".join(str(x) for x in (scoring.get("mode"), "circular" if scoring.get("circular") else "",
                                               f"extract={scoring['extract']}" if scoring.get("extract") else "")
                             if x) or None),
        ("data", data.get("root")),
        ("seed", m.get("seed")),
        ("status", m.get("status")),
        ("cgeval", (((env.get("git") or {}).get("commit") or "")[:12] + (" (dirty)" if (env.get("git") or {}).get("dirty")
                                                                       else "")) or None),
        ("started (UTC)", env.get("time_utc")),
    ]
    return [(k, str(v)) for k, v in facts if v not in (None, "")]


# --------------------------------------------------------------------------------------------------------------
# MAT heatmap and the composition table


def heatmaps(cells: pd.DataFrame) -> list[dict]:
    """One modality x area grid per task (from ``cross_table(df, 'modality', 'area', ['task'])``)."""
    out = []
    for task in sorted(cells["task"].astype(str).unique()):
        sub = cells[cells["task"].astype(str) == task]
        mods = sorted(sub["modality"].astype(str).unique())
        areas = sorted(sub["area"].astype(str).unique())
        look = {(str(r.modality), str(r.area)): r for r in sub.itertuples(index=False)}
        rows = []
        for m in mods:
            row = []
            for ar in areas:
                r = look.get((m, ar))
                if r is None or int(r.n) == 0:
                    row.append({"na": True, "title": f"{m}-{ar}-{task}: no items"})
                    continue
                acc = _num(r.accuracy)
                bg, fg = heat_colour(acc)
                row.append({"na": False, "acc": pct(acc, 0), "n": int(r.n), "bg": bg, "fg": fg,
                            "unseen": "unseen" in str(r.split),
                            "title": f"{m}-{ar}-{task}: {pct(acc)}% of {int(r.n)} "
                                     f"(95% Wilson {interval(r.ci_low, r.ci_high)}), {r.split}"})
            rows.append({"modality": m, "cells": row})
        out.append({"task": task, "areas": areas, "rows": rows})
    return out


def composition_axes(df: pd.DataFrame) -> dict[str, dict]:
    """Composition label -> subset, modality, area, task (from the rows; the registry for n/a rows)."""
    first = df.groupby("composition", observed=True)[["subset", "modality", "area", "task"]].first()
    return {str(k): {c: clean(v) for c, v in r.items()} for k, r in first.iterrows()}


def _axes_from_label(label: str) -> dict:
    head = label.split(" ", 1)[0]
    if head.isdigit() and int(head) in SUBSETS:
        s = SUBSETS[int(head)]
        return {"subset": int(head), "modality": s.modality, "area": s.area, "task": s.task}
    return {"subset": None, "modality": "", "area": "", "task": ""}


def composition_rows(table: pd.DataFrame, axes: dict[str, dict]) -> list[dict]:
    comp = table[table["level"] == "composition"].sort_values(["split", "group"], ascending=[False, True])
    rows = []
    for r in comp.to_dict("records"):
        label = str(r["group"])
        ax = axes.get(label) or _axes_from_label(label)
        acc = _num(r["accuracy"])
        rows.append({
            "composition": label, "subset": ax["subset"], "modality": str(ax["modality"]), "area": str(ax["area"]),
            "task": str(ax["task"]), "split": str(r["split"]) or "n/a",
            "shared": "" if pd.isna(r["shared_elements"]) else int(r["shared_elements"]),
            "n": int(r["n"]), "acc": acc, "acc_text": pct(acc), "ci": interval(r["ci_low"], r["ci_high"]),
            "lo": _num(r["ci_low"]), "hi": _num(r["ci_high"]), "chance": _num(r["chance"]),
            "chance_text": pct(r["chance"]), "cc": _num(r["chance_corrected"]), "cc_text": pct(r["chance_corrected"]),
            "fail": _num(r["parse_failure_rate"]), "fail_text": pct(r["parse_failure_rate"]),
            "note": str(r.get("note") or ""),
        })
    return rows


def filter_values(rows: list[dict], keys: tuple[str, ...] = ("split", "modality", "area", "task")) -> dict:
    return {k: sorted({str(r[k]) for r in rows if str(r[k])}) for k in keys}


# --------------------------------------------------------------------------------------------------------------
# Labels: the option text of the gold and the predicted letter


def _options(v) -> dict[str, str] | None:
    if isinstance(v, dict) and v:
        return {str(k): str(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) and v and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in v):
        return {str(k): str(x) for k, x in v}
    return None


def has_options(df: pd.DataFrame) -> bool:
    return "options" in df.columns and bool(df["options"].map(lambda v: _options(v) is not None).any())


def label_columns(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, str]:
    """Gold and predicted label per row, and a note on what a label is.

    With the items' options recorded a label is the option text (the predicted letter's text); rows written
    before predictions recorded options can only be read by letter."""
    unanswered = df["pred"].isna()
    if has_options(df):
        opts = df["options"].map(_options)
        gold = [str(o.get(g, t if isinstance(t, str) else g)).strip() if o else str(t).strip()
                for o, g, t in zip(opts, df["gold"], df.get("answer_text", df["gold"]))]
        pred = [UNANSWERED if u else (str(o[p]).strip() if o and p in o else f"letter {p}")
                for o, p, u in zip(opts, df["pred"], unanswered)]
        return pd.Series(gold, index=df.index), pd.Series(pred, index=df.index), \
            "Labels are option texts (the gold option's and the predicted letter's)"
    gold = df["gold"].astype(str)
    pred = df["pred"].astype(object).where(~unanswered, UNANSWERED).astype(str)
    return gold, pred, ("Labels are letters: these predictions do not record the items' options (written by an "
                        "older cgeval), so a predicted letter cannot be read as its option text")


def confusion_matrices(df: pd.DataFrame, gold: pd.Series, pred: pd.Series) -> list[dict]:
    """Gold label x predicted label per composition: counts, row shares, and a flag where one label dominates."""
    out = []
    for comp, idx in df.groupby("composition", observed=True, sort=True).groups.items():
        g = gold.loc[idx]
        p = pred.loc[idx]
        split = "/".join(sorted(map(str, df.loc[idx, "split"].astype(str).unique())))
        gold_order = [lab for lab, _ in Counter(g).most_common()]
        extra = [lab for lab, _ in Counter(p).most_common() if lab not in gold_order and lab != UNANSWERED]
        cols = gold_order + extra
        other = None
        if len(cols) > MAX_CONFUSION_LABELS:
            keep = set(cols[:MAX_CONFUSION_LABELS - 1])
            other = "(other labels)"
            g = g.where(g.isin(keep), other)
            p = p.where(p.isin(keep) | (p == UNANSWERED), other)
            cols = cols[:MAX_CONFUSION_LABELS - 1] + [other]
        rows_order = [c for c in cols if c in set(g)]
        if (p == UNANSWERED).any():
            cols = cols + [UNANSWERED]
        counts = Counter(zip(g, p))
        matrix = []
        for lab in rows_order:
            total = sum(counts[(lab, c)] for c in cols)
            cells = []
            for c in cols:
                k = counts[(lab, c)]
                share = k / total if total else 0.0
                cells.append({"k": k, "share": pct(share, 0), "alpha": round(share, 3), "diag": c == lab})
            matrix.append({"label": lab, "n": total, "cells": cells})
        answered = p[p != UNANSWERED]
        top_label, top_n = (Counter(answered).most_common(1)[0] if len(answered) else (None, 0))
        collapse = None
        if top_label is not None and len(gold_order) >= 2 and top_n / len(answered) >= COLLAPSE_SHARE:
            collapse = {"label": top_label, "share": pct(top_n / len(answered), 0), "n": int(top_n),
                        "of": int(len(answered))}
        acc = float(df.loc[idx, "correct"].mean()) if len(idx) else None
        out.append({"composition": str(comp), "split": split, "n": int(len(idx)), "acc": pct(acc),
                    "cols": cols, "rows": matrix, "collapse": collapse,
                    "n_unanswered": int((p == UNANSWERED).sum())})
    return out


# --------------------------------------------------------------------------------------------------------------
# Letter bias and parse rules


def letter_bias_section(rows: pd.DataFrame, what: str) -> dict:
    """Gold vs predicted letter shares, accuracy by gold letter and the chi-square test (cgeval.scoring)."""
    lb = letter_bias(rows)
    letters = []
    for lt in lb["letters"]:
        gp, pp = lb["gold_proportions"].get(lt), lb["pred_proportions"].get(lt)
        letters.append({"letter": lt, "gold_n": lb["gold_counts"][lt], "pred_n": lb["pred_counts"][lt],
                        "gold": pct(gp), "pred": pct(pp), "gold_w": round(100 * (gp or 0), 1),
                        "pred_w": round(100 * (pp or 0), 1), "diff": signed_pct(lb["pred_minus_gold"].get(lt)),
                        "acc": pct(lb["accuracy_by_gold"].get(lt))})
    return {"what": what, "n": lb["n"], "n_rows": lb["n_rows"], "n_unanswered": lb["n_parse_failures"],
            "letters": letters, "chi2": None if lb["chi2"] is None else f"{lb['chi2']:.2f}", "dof": lb["dof"],
            "p": pvalue(lb["p_value"]) if lb["p_value"] is not None else None, "note": lb["test_note"] or ""}


def rule_rows(df: pd.DataFrame) -> list[dict]:
    """Parse outcome by extraction rule: how many replies each rule decided, and how often it was right."""
    rule = df["parse_rule"].astype(object).where(df["parse_rule"].notna(), "(none recorded)") \
        if "parse_rule" in df.columns else pd.Series("(none recorded)", index=df.index)
    rule = rule.astype(str)
    out = []
    n_all = len(df)
    for name, idx in sorted(df.groupby(rule, sort=False).groups.items(), key=lambda kv: -len(kv[1])):
        sub = df.loc[idx]
        answered = sub["pred"].notna()
        example = next((str(r) for r in sub["response"] if isinstance(r, str) and r.strip()), "") \
            if "response" in sub.columns else ""
        out.append({"rule": str(name), "n": int(len(sub)), "share": pct(len(sub) / n_all),
                    "answered": int(answered.sum()), "unanswered": int((~answered).sum()),
                    "acc": pct(sub["correct"].mean()),
                    "example": example[:160] + ("\u2026" if len(example) > 160 else "")})
    return out


# --------------------------------------------------------------------------------------------------------------
# Item browser


def outcomes(df: pd.DataFrame) -> np.ndarray:
    """0 correct, 1 wrong (answered, not right), 2 unanswered (no option extracted; for a circular item, some
    rotation unanswered)."""
    d = prepare(df)
    return np.where(d["correct"].to_numpy(dtype=bool), 0, np.where(d["_fail"].to_numpy(dtype=bool), 2, 1))


def _detail(row: dict) -> str:
    """What else the row says about the answer: circular rotations, or the option log-probabilities."""
    if row.get("circular") and row.get("n_rotations"):
        answers = " ".join("-" if a is None else str(a) for a in (row.get("preds_original") or []))
        return (f"circular: {row.get('n_rotations_correct')}/{row.get('n_rotations')} rotations right; "
                f"answers per rotation (original letters): {answers}")
    scores = row.get("option_scores")
    if isinstance(scores, dict) and scores:
        return "log-probabilities: " + ", ".join(
            f"{k} {v:.2f}" if isinstance(v, (int, float)) and math.isfinite(v) else f"{k} n/a"
            for k, v in scores.items())
    return ""


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def reply_cap(lengths: list[int], budget: int, most: int = MAX_REPLY_CHARS) -> int:
    """The largest per-reply length (at most ``most``) at which all replies together fit ``budget`` characters,
    so that a run of long replies keeps the page within its size (every reply keeps at least 200)."""
    lengths = sorted(min(n, most) for n in lengths)
    total = sum(lengths)
    if total <= budget:
        return most
    lo, hi = 200, most
    while lo < hi:  # binary search on the cap: sum(min(n, cap)) grows with it
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


THUMB = 12  # position of the thumbnail index in an item row (see report.js)


def browser_data(df: pd.DataFrame, max_thumbs: int, reply_budget: int) -> tuple[dict, list[str], dict]:
    """The item browser's rows (compact lists, decoded by the page's script), without thumbnails yet; the image
    paths in the order they should get one; counts for the page's note.

    Thumbnails go first to the wrong and unanswered items (what the browser shows when it opens), taking one
    composition after another so that a cap leaves every composition some; correct items are asked for only when
    every image of the run fits in ``max_thumbs``. Replies longer than the cap that fits ``reply_budget``
    characters (at most ``MAX_REPLY_CHARS``) are cut, with the number of characters left out."""
    d = prepare(df)
    comp = d["composition"].astype(str).to_numpy()
    outcome = outcomes(d)
    comps = sorted(set(comp))
    splits = sorted(set(d["split"].astype(str)))
    rules = sorted(set(d["parse_rule"].astype(object).where(d["parse_rule"].notna(), "(none recorded)").astype(str))) \
        if "parse_rule" in d.columns else ["(none recorded)"]
    images = d["image"].astype(object).where(d["image"].notna(), None).tolist() if "image" in d.columns \
        else [None] * len(d)
    n_images = len({p for p in images if p})
    not_right = [i for i in range(len(d)) if outcome[i] != 0]
    order = pick_round_robin(comp, not_right)
    everything = n_images <= max_thumbs
    if everything:
        order += pick_round_robin(comp, [i for i in range(len(d)) if outcome[i] == 0])
    wanted = [images[i] for i in order if images[i]]

    comp_i = {c: i for i, c in enumerate(comps)}
    split_i = {s: i for i, s in enumerate(splits)}
    rule_i = {r: i for i, r in enumerate(rules)}
    gold_l, pred_l, _ = label_columns(d)
    with_opts = has_options(d)
    records = d.drop(columns=[c for c in ("prompt", "cache_key") if c in d.columns]).to_dict("records")
    cap = reply_cap([len(r["response"]) for r in records if isinstance(r.get("response"), str)], reply_budget)
    items = []
    for i, r in enumerate(records):
        question = _text(r.get("question"))
        if question is None:  # older predictions: the prompt the model got is the best record of the question
            question = _text(r.get("prompt")) or ""
        opts = _options(r.get("options")) if with_opts else None
        reply = _text(r.get("response"))
        cut = 0
        if reply is not None and len(reply) > cap:
            cut = len(reply) - cap
            reply = reply[:cap]
        rule = r.get("parse_rule")
        items.append([
            str(r["item_id"]), comp_i[comp[i]], split_i[str(r["split"])], int(outcome[i]), str(r["gold"]),
            None if r.get("pred") is None else str(r["pred"]),
            rule_i["(none recorded)" if rule is None or (isinstance(rule, float) and math.isnan(rule)) else str(rule)],
            question, [[k, v] for k, v in opts.items()] if opts else None, reply, cut, images[i] or "",
            -1, gold_l.iloc[i], pred_l.iloc[i], _detail(r),
        ])
    data = {"compositions": comps, "splits": splits, "rules": rules, "outcomes": list(OUTCOMES),
            "items": items, "thumbs": []}
    counts = {"n_items": len(d), "n_images": n_images, "n_not_right": len(not_right), "every_image": everything,
              "reply_cap": cap if cap < MAX_REPLY_CHARS else None}
    return clean(data), wanted, counts


def attach_thumbnails(data: dict, thumbs: Thumbnails) -> None:
    """Point each item row at its image's thumbnail (-1: none) and put the thumbnails in the data."""
    for it in data["items"]:
        it[THUMB] = thumbs.index.get(it[THUMB - 1], -1) if it[THUMB - 1] else -1
    data["thumbs"] = thumbs.uris
