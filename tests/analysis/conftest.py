"""Synthetic run folders for the analysis tests: same row schema as cgeval.run.prediction_row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cgeval.data.registry import SUBSETS


def make_predictions(subsets=(2, 3, 4, 28), heldout=(3,), n_per_subset=20, p_correct=0.5, seed=0,
                     items_per_image=2, n_options=4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # answers
    items = np.random.default_rng(1234)  # the items themselves: the same for every seed
    rows = []
    for s in subsets:
        sub = SUBSETS[s]
        for i in range(n_per_subset):
            k = n_options if isinstance(n_options, int) else n_options[i % len(n_options)]
            gold = "ABCD"[items.integers(0, k)]
            correct = bool(rng.random() < p_correct)
            pred = gold if correct else ("A" if gold != "A" else "B")
            rows.append({
                "item_id": f"S{s:02d}-{i}", "subset": s, "dataset": sub.datasets[0], "modality": sub.modality,
                "area": sub.area, "task": sub.task, "split": "unseen" if s in heldout else "seen",
                "shared_elements": 3 if s in heldout else 1, "n_options": k, "gold": gold, "answer_text": "x",
                "response": pred, "pred": pred, "parse_rule": "bare_letter", "option_scores": None,
                "correct": correct, "image": f"med-mat/{s}/img{i // items_per_image}.png",
            })
    return pd.DataFrame(rows)


def write_run(folder: Path, df: pd.DataFrame, manifest: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for row in df.to_dict("records"):
            f.write(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}) + "\n")
    m = {"status": "complete", "data": {"n_items": len(df)},
         "heldout_subsets": sorted({int(s) for s in df.loc[df["split"] == "unseen", "subset"]})}
    m.update(manifest or {})
    (folder / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    return folder


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run_a", make_predictions())


LABEL_POOL = ("Normal", "Pneumonia", "COVID-19", "Tumor", "Cyst", "Stone")


def with_items_text(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Give synthetic prediction rows what cgeval.run records about each item's text: the question, the options
    (the gold letter's text is ``answer_text``) and a reply that says the predicted letter."""
    rng = np.random.default_rng(seed)
    df = df.copy()
    questions, options, answers, replies = [], [], [], []
    for r in df.itertuples(index=False):
        k = int(r.n_options)
        labels = list(rng.choice(LABEL_POOL, size=k, replace=False))
        letters = "ABCD"[:k]
        options.append(dict(zip(letters, labels)))
        answers.append(labels[letters.index(r.gold)])
        questions.append(f"What does this {r.modality} image of the {r.area.lower()} show?")
        replies.append(f"The answer is {r.pred}." if r.pred is not None else "I am not sure.")
    return df.assign(question=questions, options=options, answer_text=answers, response=replies)


def write_images(root: Path, df: pd.DataFrame, size: tuple[int, int] = (320, 240)) -> None:
    """A small distinct PNG for every image path of the rows, under ``root``."""
    for i, rel in enumerate(sorted(set(df["image"]))):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.full((size[1], size[0]), (i * 37) % 200 + 30, dtype=np.uint8)
        arr[: size[1] // 2, : size[0] // 3] = 250
        from PIL import Image

        Image.fromarray(arr, mode="L").save(path)


def write_html_run(folder: Path, df: pd.DataFrame, data_root: Path | None, manifest: dict | None = None) -> Path:
    """A run folder whose manifest points at ``data_root`` for the images (None: no data root recorded)."""
    m = {"data": {"n_items": len(df), **({"root": str(data_root)} if data_root is not None else {})}}
    m.update(manifest or {})
    return write_run(folder, df, m)
