"""The evaluation pipeline as plain functions: load -> label seen/unseen -> ask the model -> score -> report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from .analysis.report import write_report
from .config import RunConfig
from .data.compositions import HeldOut
from .data.loader import LoadReport, items_hash, load_medmat
from .data.records import Item
from .manifest import environment, write_json_atomic
from .models.base import FitsOnSeen, ModelAdapter
from .scoring import extract_choice_with_rule


def batches(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def score_batch(model: ModelAdapter, batch: list[Item], mode: str) -> list[dict]:
    """Ask the model about one batch; return the scoring part of each prediction row."""
    if mode == "generate":
        replies = model.generate(batch)
        if len(replies) != len(batch):
            raise RuntimeError(f"{model.name} returned {len(replies)} replies for {len(batch)} items")
        out = []
        for item, reply in zip(batch, replies):
            pred, rule = extract_choice_with_rule(reply, item.options)
            out.append({"response": reply, "pred": pred, "parse_rule": rule, "option_scores": None})
        return out
    scores = model.option_logprobs(batch)
    if len(scores) != len(batch):
        raise RuntimeError(f"{model.name} returned {len(scores)} score sets for {len(batch)} items")
    out = []
    for item, s in zip(batch, scores):
        own = {l: float(s[l]) for l in item.letters if l in s}
        if len(own) != item.n_options:
            raise RuntimeError(f"{model.name} gave no score for some of {item.item_id}'s options: {sorted(s)}")
        pred = max(item.letters, key=lambda l: own[l])
        out.append({"response": None, "pred": pred, "parse_rule": "likelihood", "option_scores": own})
    return out


def prediction_row(item: Item, split: str, shared: int, scored: dict) -> dict:
    return {
        "item_id": item.item_id,
        "subset": item.subset,
        "dataset": item.dataset,
        "modality": item.modality,
        "area": item.area,
        "task": item.task,
        "split": split,
        "shared_elements": shared,
        "n_options": item.n_options,
        "gold": item.gold,
        "response": scored["response"],
        "pred": scored["pred"],
        "correct": scored["pred"] == item.gold,
        "parse_rule": scored["parse_rule"],
        "option_scores": scored["option_scores"],
        "answer_text": item.answer_text,
        "image": item.image,
    }


def run(cfg: RunConfig, model: ModelAdapter, resolved_config: dict | None = None) -> dict:
    """Run one experiment end to end; every output lands in ``cfg.output_dir``. Returns metrics."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    # Everything that can stop the run does so here, before any inference starts.
    heldout = HeldOut.from_config(cfg.experiment.heldout)
    d = cfg.data
    items, report = load_medmat(d.root, d.source, d.subsets, d.datasets, d.max_items_per_file,
                                d.verify_images, d.io_workers, cfg.seed)
    labels = {it.item_id: heldout.label(it) for it in items}
    seen = [it for it in items if labels[it.item_id][0] == "seen"]
    if isinstance(model, FitsOnSeen):
        model.fit(seen)

    manifest = {
        "status": "running",
        "experiment": asdict(cfg.experiment),
        "heldout_subsets": list(heldout.subsets),
        "heldout_compositions": [str(c) for c in heldout.compositions],
        "model": {"name": model.name, **model.describe()},
        "scoring": asdict(cfg.scoring),
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "data": {"root": report.root, "source": d.source, "items_hash": items_hash(items),
                 "n_items": len(items), "n_seen": len(seen), "n_unseen": len(items) - len(seen)},
        "load_report": report.to_dict(),
        "environment": environment(),
        "config": resolved_config,
    }
    write_json_atomic(out / "manifest.json", manifest)

    pred_path = out / "predictions.jsonl"
    with pred_path.open("w", encoding="utf-8") as f:
        bar = tqdm(total=len(items), desc=f"{model.name} [{cfg.scoring.mode}]", unit="q",
                   disable=not cfg.progress, dynamic_ncols=True)
        for batch in batches(items, cfg.batch_size):
            for item, scored in zip(batch, score_batch(model, batch, cfg.scoring.mode)):
                split, shared = labels[item.item_id]
                f.write(json.dumps(prediction_row(item, split, shared, scored), ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(batch))
        bar.close()

    metrics = write_report(out, title=f"{cfg.experiment.name} / {model.name} / {cfg.scoring.mode}")
    manifest.update(status="complete", elapsed_s=round(time.time() - started, 3))
    write_json_atomic(out / "manifest.json", manifest)
    print(format_summary(out, metrics, report, model.name, cfg))
    return metrics


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}"


def format_summary(out: Path, metrics: dict, report: LoadReport, model_name: str, cfg: RunConfig) -> str:
    lines = [
        "",
        f"cgeval: {cfg.experiment.name} | model {model_name} | scoring {cfg.scoring.mode} | seed {cfg.seed}",
        f"data    {report.root} ({report.source}): {report.n_records} records in {len(report.files)} files, "
        f"{report.n_items} evaluated, {report.n_skipped} skipped",
    ]
    for reason, n in sorted(report.skipped.items()):
        lines.append(f"  skipped {n:6d}  {reason}")
    for folder, n in sorted(report.missing_image_folders.items())[:5]:
        lines.append(f"  missing image folder {folder} ({n} items)")
    if report.missing_requested:
        lines.append(f"  requested but absent: {report.missing_requested}")
    for reason, n in sorted(report.warnings.items()):
        lines.append(f"  warning {n:6d}  {reason}")
    lines.append(f"{'':28s} {'n':>6s} {'acc %':>6s} {'95% CI':>13s} {'parse fail %':>13s}")
    rows = [("overall", metrics["overall"]["all"])]
    rows += [(f"split={k}", v) for k, v in metrics.get("split", {}).items()]
    rows += [(f"  {k}", v) for k, v in metrics.get("composition", {}).items()]
    for name, m in rows:
        ci = f"[{_pct(m['ci_low'])},{_pct(m['ci_high'])}]"
        lines.append(f"{name[:28]:28s} {m['n']:6d} {_pct(m['accuracy'])} {ci:>13s} {_pct(m['parse_failure_rate']):>13s}")
    if "gap_seen_minus_unseen" in metrics:
        lines.append(f"seen - unseen gap: {100 * metrics['gap_seen_minus_unseen']:+.1f} points")
    lines.append(f"outputs in {out}: predictions.jsonl metrics.json table.csv table.md "
                 "accuracy_by_composition.png/.pdf manifest.json")
    return "\n".join(lines)
