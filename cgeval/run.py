"""The evaluation pipeline as plain functions: load -> label seen/unseen -> ask the model -> score -> report.

Predictions are appended per batch and flushed, so a crash loses at most the batch in flight. Re-running
into the same output folder reuses every finished item whose cache key (model identity and revision,
back end, prompt template, scoring mode, decoding settings, item content) still matches; other rows are
kept aside in ``predictions.stale-N.jsonl``, never reused and never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from .analysis.report import write_report
from .config import ConfigError, RunConfig
from .data.compositions import HeldOut
from .data.loader import LoadReport, items_hash, load_medmat
from .data.records import Item
from .judging import JudgeStage, judge_manifest, not_used, rule_output
from .manifest import environment, write_json_atomic, write_text_atomic
from .models.base import BackendUnavailable, FitsOnSeen, ItemFailure, ModelAdapter, UnsupportedScoring
from .models.pipeline import prefetched
from .scoring import aggregate_circular, base_item_id, expand_rotations, extract_choice_with_rule, letter_bias
from .store import (
    PREDICTIONS_SCHEMA,
    collect_cache,
    config_hash,
    in_shard,
    item_key,
    item_sort_key,
    keep_stale,
    locked_run_folder,
    manifest_name,
    predictions_name,
    run_key,
    shard_file,
)

DEFAULT_BATCH_SIZE = 8
log = logging.getLogger(__name__)

# Exit codes of `python -m cgeval` (README, "Exit codes").
EXIT_OK = 0  # every run complete
EXIT_ERROR = 1  # a run stopped on an error (its manifest says "failed", with the error)
EXIT_USAGE = 2  # the command line could not be parsed
EXIT_INCOMPLETE = 3  # every run finished, but some items failed at inference (status "incomplete")


def exit_code(statuses: Sequence[str | None]) -> int:
    """The exit code for runs that ended with these manifest statuses (one per run of a sweep)."""
    if any(s not in ("complete", "incomplete") for s in statuses):
        return EXIT_ERROR
    return EXIT_INCOMPLETE if "incomplete" in statuses else EXIT_OK


def batches(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def model_prompts(model: ModelAdapter, batch: Sequence[Item]) -> list[str | None]:
    """The exact text each item's prompt was given to the model as (after the chat template, image placeholder as
    the template writes it), from the adapter's ``prompt_text`` where it has one; None where no text reaches a
    model (baselines) or the server renders it out of sight (an OpenAI-compatible API)."""
    render = getattr(model, "prompt_text", None)
    if not callable(render):
        return [None] * len(batch)
    return [render(item) for item in batch]


def score_batch(model: ModelAdapter, batch: list[Item], mode: str, extract: str = "strict",
                prepared=None) -> list[dict]:
    """Ask the model about one batch; return the scoring part of each prediction row (``{"failure": exc}`` for
    an item the adapter returned as an `ItemFailure`). ``prepared``: the batch's inputs from ``model.prepare``
    (`cgeval.models.pipeline`), if prepared ahead."""
    out = _score(model, batch, mode, extract, {} if prepared is None else {"prepared": prepared})
    for scored, prompt in zip(out, model_prompts(model, batch)):
        if "failure" not in scored:
            scored["prompt"] = prompt
    return out


def _score(model: ModelAdapter, batch: list[Item], mode: str, extract: str, extra: dict) -> list[dict]:
    if mode == "generate":
        replies = model.generate(batch, **extra)
        if len(replies) != len(batch):
            raise RuntimeError(f"{model.name} returned {len(replies)} replies for {len(batch)} items")
        out = []
        for item, reply in zip(batch, replies):
            if isinstance(reply, ItemFailure):
                out.append({"failure": reply.error})
                continue
            pred, rule = extract_choice_with_rule(reply, item.options, mode=extract)
            out.append({"response": reply, "pred": pred, "parse_rule": rule, "option_scores": None})
        return out
    scores = model.option_logprobs(batch, **extra)
    if len(scores) != len(batch):
        raise RuntimeError(f"{model.name} returned {len(scores)} score sets for {len(batch)} items")
    out = []
    for item, s in zip(batch, scores):
        if isinstance(s, ItemFailure):
            out.append({"failure": s.error})
            continue
        own = {l: float(s[l]) for l in item.letters if l in s}
        if len(own) != item.n_options:
            raise RuntimeError(f"{model.name} gave no score for some of {item.item_id}'s options: {sorted(s)}")
        # A letter the back end could not score (-inf / NaN) is written as null and listed, never as a number.
        finite = {l: v for l, v in own.items() if math.isfinite(v)}
        pred = max(finite, key=lambda l: finite[l]) if finite else None
        out.append({"response": None, "pred": pred, "parse_rule": "likelihood" if finite else "no_finite_score",
                    "option_scores": {l: finite.get(l) for l in item.letters},
                    "unscored_options": sorted(set(own) - set(finite)) or None})
    return out


# What a prediction row holds from the model (the rest comes from the item and the experiment).
MODEL_OUTPUT_KEYS = ("response", "pred", "parse_rule", "option_scores", "unscored_options", "prompt")


def prediction_row(item: Item, split: str, shared: int, scored: dict, key: str) -> dict:
    row = {
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
        "unscored_options": scored.get("unscored_options"),
        "answer_text": item.answer_text,
        "question": item.question,  # the stem and options as the item had them, for reports of the replies
        "options": dict(item.options),
        "image": item.image,
        "prompt": scored.get("prompt"),
        "cache_key": key,
    }
    if "rotation" in item.meta:
        row["rotation"] = item.meta["rotation"]
    return row


def _aggregate(rows: list[dict], keys: dict[str, str], dropping: bool) -> list[dict]:
    """One row per original item from its rotations; its cache key is derived from theirs (for merging)."""
    agg = aggregate_circular(rows, on_incomplete="drop" if dropping else "error")
    by_base: dict[str, list[str]] = {}
    for iid, key in keys.items():
        by_base.setdefault(base_item_id(iid), []).append(key)
    for row in agg:
        row["cache_key"] = hashlib.sha256("".join(sorted(by_base[row["item_id"]])).encode()).hexdigest()[:24]
    return sorted(agg, key=lambda r: item_sort_key(r["item_id"]))


def stops_the_run(exc: BaseException) -> bool:
    """Whether an exception raised while a batch is scored ends the run instead of failing its items.

    `UnsupportedScoring` is a configuration problem, the same for every item; `BackendUnavailable` a back end
    that can answer no item now (a server gone for longer than its outage window, a refused key). An exception
    from submitit is job
    control, raised by its signal handler in whatever code runs when SLURM's time-out signal arrives (``Job not
    requeued because: timed-out too many times``): the job is over, it is no item's failure.
    """
    return (isinstance(exc, (UnsupportedScoring, BackendUnavailable))
            or type(exc).__module__.split(".")[0] == "submitit")


class _Errors:
    """Inference errors, by exception type, with a few examples. The items are retried on resume."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: list[dict] = []
        self.rows: list[dict] = []  # every failed item, for errors.jsonl

    def add(self, item: Item, exc: Exception) -> None:
        self.counts[type(exc).__name__] += 1
        self.rows.append({"item_id": item.item_id, "error_type": type(exc).__name__, "error": str(exc)[:500]})
        if len(self.examples) < 10:
            self.examples.append({"item_id": item.item_id, "error": f"{type(exc).__name__}: {exc}",
                                  "traceback": "".join(traceback.format_exception(exc, limit=5))})

    def to_dict(self) -> dict:
        return {"n": sum(self.counts.values()), "by_type": dict(self.counts), "examples": self.examples}


def _score_isolating(model: ModelAdapter, batch: list[Item], scoring, errors: _Errors,
                     prepared=None) -> list[tuple[Item, dict]]:
    """Score a batch; if it fails, score its items one by one so one bad item cannot sink the others.
    ``prepared``: a future of the batch's prepared inputs (its failure fails the batch, like any other)."""
    mode, extract = scoring.mode, scoring.extract

    def recorded(pairs):  # items the adapter returned as failures are recorded, the others kept
        kept = []
        for item, scored in pairs:
            if "failure" in scored:
                errors.add(item, scored["failure"])
            else:
                kept.append((item, scored))
        return kept

    try:
        inputs = None if prepared is None else prepared.result()
        return recorded(zip(batch, score_batch(model, batch, mode, extract, inputs)))
    except Exception as exc:  # noqa: BLE001 - recorded per item, reported, retried on resume
        if stops_the_run(exc):
            raise
        if len(batch) == 1:
            errors.add(batch[0], exc)
            return []
    done = []
    for item in batch:
        try:
            done.extend(recorded(zip([item], score_batch(model, [item], mode, extract))))
        except Exception as exc:  # noqa: BLE001
            if stops_the_run(exc):
                raise
            errors.add(item, exc)
    return done


def run(cfg: RunConfig, model: ModelAdapter, resolved_config: dict | None = None,
        judge: ModelAdapter | None = None) -> dict | None:
    """Run one experiment (or one shard of it); every output lands in ``cfg.output_dir``.

    ``judge`` (built from ``cfg.scoring.judge``) reads the replies the rules leave unanswered, or every reply with
    ``scoring.judge_on=all`` (`cgeval.judging`); it is not used in likelihood mode, which has no replies.

    Returns the metrics, or None for a shard (merge the shards with `cgeval.merge`). The manifest's ``status``
    says how the run ended: ``complete``, ``incomplete`` (some items failed at inference; re-run to retry them),
    or ``failed`` (the run stopped on an error, which the manifest names); ``running`` is left only by a process
    that was killed. The run folder is locked for the whole run (`RunFolderLocked` if another process holds it).
    """
    out = Path(cfg.output_dir)
    if judge is None and cfg.scoring.judged:
        raise ConfigError("scoring.judge is set but no judge model was built from it (pass judge= to run())")
    with locked_run_folder(out, cfg.shard):
        return _run(cfg, model, resolved_config, out, judge)


def _run(cfg: RunConfig, model: ModelAdapter, resolved_config: dict | None, out: Path,
         judge: ModelAdapter | None) -> dict | None:
    started = time.time()

    # Everything that can stop the run does so here, before any inference starts.
    heldout = HeldOut.from_config(cfg.experiment.heldout)
    d = cfg.data
    items, report = load_medmat(d.root, source=d.source, subsets=d.subsets, datasets=d.datasets,
                                max_items_per_file=d.max_items_per_file, items_file=d.items_file,
                                verify_images=d.verify_images, max_image_pixels=d.max_image_pixels,
                                image_roots=d.image_roots, io_workers=d.io_workers, seed=cfg.seed)
    labels = {it.item_id: heldout.label(it) for it in items}
    seen = [it for it in items if labels[it.item_id][0] == "seen"]
    if isinstance(model, FitsOnSeen):
        model.fit(seen)
    mine = [it for it in items if in_shard(it.item_id, cfg.shard)] if cfg.shard.enabled else list(items)
    # Circular evaluation asks every rotation of the options; rotation ids are "<item_id>@r<k>".
    circular = cfg.scoring.circular
    asked = expand_rotations(mine) if circular else mine

    batch_size = cfg.batch_size or int(getattr(model, "preferred_batch_size", DEFAULT_BATCH_SIZE))
    rkey = run_key(model, f"{cfg.scoring.mode}/{cfg.scoring.extract}")
    keys = {it.item_id: item_key(rkey, it) for it in asked}
    cache, cache_stats = collect_cache(out, keys) if cfg.resume else ({}, Counter())
    pred_path = out / predictions_name(cfg.shard, rotations=circular)
    stale_file = keep_stale(pred_path, set(cache), keys)
    todo = [it for it in asked if it.item_id not in cache]
    # Batches of similar length pad less: by the adapter's own key where it has one (image size, for the hf back
    # end), then the prompt's length. The rows are written in canonical order at the end whatever the order here.
    order = getattr(model, "order_keys", None)
    first = (order(todo) if callable(order) else None) or [()] * len(todo)
    rank = {it.item_id: k for it, k in zip(todo, first)}
    todo.sort(key=lambda it: (rank[it.item_id], len(it.prompt), item_sort_key(it.item_id)))

    described = model.describe()
    manifest = {
        "status": "running",
        "predictions_schema": PREDICTIONS_SCHEMA,
        "experiment": asdict(cfg.experiment),
        "heldout_subsets": list(heldout.subsets),
        "heldout_compositions": [str(c) for c in heldout.compositions],
        "model": {"name": model.name, **described},
        "trust_remote_code": bool(described.get("trust_remote_code", False)),
        # Settings that change speed, not answers (concurrency, timeouts, GPU memory): recorded, not in the key.
        "model_runtime": _runtime(model),
        "scoring": asdict(cfg.scoring),
        "judge": _judge_block(cfg, judge),
        "seed": cfg.seed,
        "batch_size": batch_size,
        "shard": asdict(cfg.shard),
        "run_key": rkey,
        "config_hash": config_hash(resolved_config),
        "data": {"root": report.root, "source": d.source, "items_hash": items_hash(items),
                 "n_items": len(items), "n_seen": len(seen), "n_unseen": len(items) - len(seen),
                 "n_items_this_shard": len(mine), "n_asked": len(asked)},
        "resume": {"reused": len(cache), "stale_rows": cache_stats["stale"],
                   "unreadable_lines": cache_stats["unreadable_lines"], "stale_file": stale_file,
                   "to_score": len(todo)},
        "load_report": report.to_dict(),
        "environment": environment(),
        "config": resolved_config,
    }
    manifest_path = out / manifest_name(cfg.shard)
    write_json_atomic(manifest_path, manifest)
    # One line per start, so the log of a resumed (or requeued) job shows where each attempt took up the work.
    log.info("%d of %d answers reused from %s (%d stale rows not reused), %d to score",
             len(cache), len(asked), pred_path, cache_stats["stale"], len(todo))
    errors = _Errors()
    judge_errors = _Errors()
    errors_path = out / shard_file("errors", ".jsonl", cfg.shard)
    with _failure_recorded(model, manifest, manifest_path, errors, errors_path, started):
        # One request before the fan-out (a server: reachable, the model served, the key accepted, logprobs
        # returned), so that a configuration problem stops the run in one request, not one per item.
        if todo and callable(getattr(model, "preflight", None)):
            model.preflight(cfg.scoring.mode)
            manifest["model_runtime"] = _runtime(model)

        # Start the file with the reused rows, then append each scored batch and flush it to disk.
        # Every row of this run, in memory as (row, line), so the final canonical file needs no re-parsing.
        # A reused row keeps only what the model produced; everything else (split, shared elements, gold, whether it
        # is correct) is rebuilt from this run's item and experiment, which may have changed since.
        done: dict[str, tuple[dict, str]] = {}
        for it in asked:
            if it.item_id in cache:
                split, shared = labels[base_item_id(it.item_id) if circular else it.item_id]
                reused = rule_output(cache[it.item_id])  # the rules' reading; the judge is applied below
                row = prediction_row(it, split, shared, {k: reused.get(k) for k in MODEL_OUTPUT_KEYS},
                                     keys[it.item_id])
                done[it.item_id] = (row, json.dumps(row, ensure_ascii=False) + "\n")
        write_text_atomic(pred_path, "".join(line for _, line in done.values()))
        with pred_path.open("a", encoding="utf-8") as f:
            bar = tqdm(total=len(mine), initial=len(cache), desc=f"{model.name} [{cfg.scoring.mode}]", unit="q",
                       disable=not cfg.progress, dynamic_ncols=True)
            for batch, prepared in prefetched(model, batches(todo, batch_size)):
                for item, scored in _score_isolating(model, batch, cfg.scoring, errors, prepared):
                    split, shared = labels[base_item_id(item.item_id) if circular else item.item_id]
                    row = prediction_row(item, split, shared, scored, keys[item.item_id])
                    line = json.dumps(row, ensure_ascii=False) + "\n"
                    f.write(line)
                    done[item.item_id] = (row, line)
                f.flush()
                os.fsync(f.fileno())
                bar.update(len(batch))
            bar.close()

        if cfg.scoring.mode == "generate":  # who decided each answer; the judge reads what the rules could not
            stage = JudgeStage(judge, cfg.scoring.judge_on, cfg.scoring.extract, out, cfg.shard,
                               cfg.batch_size or int(getattr(judge, "preferred_batch_size", DEFAULT_BATCH_SIZE)),
                               cfg.progress, judge_errors)
            stage.apply({iid: row for iid, (row, _) in done.items()}, {it.item_id: it for it in asked})
            done = {iid: (row, json.dumps(row, ensure_ascii=False) + "\n") for iid, (row, _) in done.items()}
            if judge is not None:
                manifest["judge"].update(stage.summary, errors=judge_errors.to_dict(), runtime=_runtime(judge))

        # Canonical order, so that a resumed or merged run is byte-identical to an uninterrupted one.
        order = sorted(done, key=item_sort_key)
        rows = [done[iid][0] for iid in order]
        write_text_atomic(pred_path, "".join(done[iid][1] for iid in order))
        manifest["letter_bias"] = letter_bias(rows)
        if cfg.scoring.mode == "likelihood":
            manifest["unscored"] = unscored_counts(rows)
        if circular:
            n_rot = len(rows)
            rows = _aggregate(rows, keys, dropping=bool(errors.counts))
            combined = out / predictions_name(cfg.shard)
            # A predictions file from another run (a non-circular one, say) is set aside, never overwritten.
            aside = keep_stale(combined, {r["item_id"] for r in rows}, {r["item_id"]: r["cache_key"] for r in rows})
            write_text_atomic(combined, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            manifest["circular"] = {"n_rotations_scored": n_rot, "n_items": len(rows),
                                    "n_items_dropped_incomplete": len(mine) - len(rows), "stale_file": aside}

        if errors.rows:
            write_text_atomic(errors_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in errors.rows))
        elif errors_path.exists():
            errors_path.unlink()  # a resumed run that retried every failed item successfully
        if errors.counts and not rows:
            raise RuntimeError(f"every item failed; first error:\n{errors.examples[0]['traceback']}")
        # A judge's failures leave their items unanswered: counted, and retried by the same command, as inference errors.
        final = "complete" if not errors.counts and not judge_errors.counts else "incomplete"
        manifest.update(inference_errors=errors.to_dict(), n_predictions=len(rows), model_runtime=_runtime(model))
        if cfg.shard.enabled:
            manifest.update(status=final, elapsed_s=round(time.time() - started, 3))
            write_json_atomic(manifest_path, manifest)
            failed = f"; {errors.to_dict()['n']} inference errors (re-run to retry)" if errors.counts else ""
            text = (f"cgeval: shard {cfg.shard.index} of {cfg.shard.count} {final}: {len(rows)} predictions in "
                    f"{pred_path}{failed}."
                    + "".join(f"\n{line}" for line in _unscored_lines(manifest))
                    + f"\nWhen every shard is done: python -m cgeval.merge {out}")
            _emit(text)
            return None
        # The status stays "running" until every output is written: a run killed while writing its report says so.
        manifest["elapsed_s"] = round(time.time() - started, 3)
        write_json_atomic(manifest_path, manifest)
        metrics = write_report(out, title=f"{cfg.experiment.name} / {model.name} / {cfg.scoring.mode}")
        manifest.update(status=final, elapsed_s=round(time.time() - started, 3))
        write_json_atomic(manifest_path, manifest)
        _emit(format_summary(out, metrics, report, model.name, cfg, manifest))
        return metrics


def _judge_block(cfg: RunConfig, judge: ModelAdapter | None) -> dict | None:
    """The manifest's ``judge``: the judge model and prompt, or why none reads the replies (None: no judge set)."""
    if judge is None and cfg.scoring.judge is None:
        return None
    if cfg.scoring.mode != "generate":
        return not_used(f"scoring.mode={cfg.scoring.mode} has no replies to read; the judge is not used")
    return judge_manifest(judge, cfg.scoring.judge_on)


def _runtime(model: ModelAdapter) -> dict:
    return model.runtime() if callable(getattr(model, "runtime", None)) else {}


@contextmanager
def _failure_recorded(model: ModelAdapter, manifest: dict, manifest_path: Path, errors: _Errors, errors_path: Path,
                      started: float) -> Iterator[None]:
    """Whatever ends the run with an exception (a stopped server, a crash, Ctrl-C), the manifest says so:
    status "failed", the error, and the items that had failed until then."""
    try:
        yield
    except BaseException as exc:
        manifest.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:4000],
                        elapsed_s=round(time.time() - started, 3), model_runtime=_runtime(model),
                        inference_errors=errors.to_dict())
        try:
            if errors.rows:
                write_text_atomic(errors_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in errors.rows))
            write_json_atomic(manifest_path, manifest)
        except Exception:  # noqa: BLE001 - never hide the error that stopped the run
            log.exception("could not record the failed run's status in %s", manifest_path)
        raise


def unscored_counts(rows: list[dict]) -> dict:
    """How many items (rotations, for a circular run) have option letters the model could not score."""
    partly = [r for r in rows if r.get("unscored_options")]
    return {"n_items_with_unscored_options": len(partly),
            "n_items_without_any_score": sum(r.get("parse_rule") == "no_finite_score" for r in rows),
            "n_unscored_options": sum(len(r["unscored_options"]) for r in partly),
            "examples": [r["item_id"] for r in partly[:10]]}


def _unscored_lines(manifest: dict) -> list[str]:
    u = manifest.get("unscored") or {}
    if not u.get("n_items_with_unscored_options"):
        return []
    return [f"warning {u['n_items_with_unscored_options']} items have option letters the model could not score "
            f"({u['n_unscored_options']} letters; {u['n_items_without_any_score']} items without any score, counted "
            "as wrong); see unscored_options in the predictions"]


def _emit(text: str) -> None:
    """The summary on stdout, and in every log file the root logger writes (under Hydra, the run's
    ``<job>.log``), without a second copy on the console."""
    print(text)
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, text.strip("\n"), None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}"


def format_summary(out: Path, metrics: dict, report: LoadReport | dict, model_name: str, cfg: RunConfig,
                   manifest: dict) -> str:
    rep = report.to_dict() if isinstance(report, LoadReport) else report
    lines = [
        "",
        f"cgeval: {cfg.experiment.name} | model {model_name} | scoring {cfg.scoring.mode} | seed {cfg.seed}",
        f"data    {rep['root']} ({rep['source']}): {rep['n_records']} records in {len(rep['files'])} files, "
        f"{rep['n_items']} evaluated, {rep['n_skipped']} skipped",
    ]
    for reason, n in sorted(rep["skipped"].items()):
        lines.append(f"  skipped {n:6d}  {reason}")
    for folder, n in sorted(rep["missing_image_folders"].items())[:5]:
        lines.append(f"  missing image folder {folder} ({n} items)")
    if rep.get("items_file"):
        lines.append(f"  restricted to the {rep['n_items']} items listed in {rep['items_file']}"
                     f" ({rep['not_selected']} usable records not listed, {rep['n_selected_missing']} listed ids"
                     " without a usable record)")
    if rep["missing_requested"]:
        lines.append(f"  requested but absent: {rep['missing_requested']}")
    for reason, n in sorted(rep["warnings"].items()):
        lines.append(f"  warning {n:6d}  {reason}")
    res = manifest.get("resume", {})
    if res.get("reused") or res.get("stale_rows"):
        lines.append(f"resume  reused {res['reused']} finished predictions; {res.get('stale_rows', 0)} stale rows not reused"
                     + (f" (kept in {res['stale_file']})" if res.get("stale_file") else ""))
    errs = manifest.get("inference_errors", {})
    if errs.get("n"):
        lines.append(f"errors  {errs['n']} items failed at inference {errs['by_type']}: not scored, "
                     "retried when the same command is run again")
    lines += _unscored_lines(manifest)
    lines += _judge_lines(manifest, metrics)
    lines.append(f"{'':28s} {'n':>6s} {'acc %':>6s} {'95% CI':>13s} {'parse fail %':>13s}")
    rows = [("overall", metrics["overall"]["all"])]
    rows += [(f"split={k}", v) for k, v in metrics.get("split", {}).items()]
    rows += [(f"  {k}", v) for k, v in metrics.get("composition", {}).items()]
    for name, m in rows:
        if not m.get("n"):
            lines.append(f"{name[:28]:28s} {0:6d}   n/a")
            continue
        ci = f"[{_pct(m['ci_low'])},{_pct(m['ci_high'])}]"
        lines.append(f"{name[:28]:28s} {m['n']:6d} {_pct(m['accuracy'])} {ci:>13s} {_pct(m['parse_failure_rate']):>13s}")
    gap = metrics.get("gap_seen_minus_unseen")
    if isinstance(gap, dict):
        gap = gap.get("estimate")
    if isinstance(gap, (int, float)):
        lines.append(f"seen - unseen gap: {100 * gap:+.1f} points")
    lines.append(f"outputs in {out}/: {describe_outputs(out)}")
    return "\n".join(lines)


def _judge_lines(manifest: dict, metrics: dict) -> list[str]:
    """Who decided the answers (rules, judge, nobody) per split, the judge's work and, with judge_on=all, how well
    rules and judge agree."""
    lines = []
    j = manifest.get("judge") or {}
    if j.get("used"):
        lines.append(f"judge   {j['name']} (judge_on={j['judge_on']}): {j.get('asked', 0)} replies asked, "
                     f"{j.get('reused', 0)} judgements reused from {j.get('judgements_file')}")
        if j.get("failed"):
            lines.append(f"errors  the judge failed on {j['failed']} replies {j['errors']['by_type']}: left "
                         "unanswered, asked again when the same command is run again")
    elif j:
        lines.append(f"judge   not used: {j.get('reason')}")
    decided = metrics.get("decided") or {}
    for group in ("all", "seen", "unseen"):
        c = (decided.get("by_split") or {}).get(group)
        if c:
            lines.append(f"decided {group:7s} rule {c['rule']}, judge {c['judge']}, unanswered {c['unanswered']}"
                         f" (of {c['n']} {decided.get('counted_over', 'items')})")
    agree = (metrics.get("judge_agreement") or {}).get("all") or {}
    if agree.get("n_both"):
        kappa = "n/a" if agree.get("kappa") is None else f"{agree['kappa']:.3f}"
        lines.append(f"judge   agrees with the rules on {agree['n_agree']} of {agree['n_both']} replies both read "
                     f"({100 * agree['agreement']:.1f}%, Cohen's kappa {kappa}); disagreements in "
                     "judge_disagreements.jsonl")
    return lines


def describe_outputs(out: Path) -> str:
    """Every file in a run folder, the variants of one name together ("table.csv/.md"), folders as "name/",
    the hidden lock file left out: ``predictions.jsonl manifest.json ... figures/forest_seen_unseen.png/.pdf``."""
    out = Path(out)
    stems: dict[str, list[str]] = {}
    folders = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if rel.parts[0] == ".hydra":
            if path == out / ".hydra":
                folders.append(".hydra/")
            continue
        if path.is_dir() or rel.name.startswith("."):
            continue
        stem, dot, ext = rel.as_posix().rpartition(".")
        stems.setdefault(stem if dot else rel.as_posix(), []).append(f".{ext}" if dot else "")
    first = ("predictions", "manifest", "errors", "metrics")
    order = sorted(stems, key=lambda k: (first.index(k) if k in first else len(first), "/" in k, k))
    names = [k + "/".join(stems[k]) for k in order]
    return " ".join(names + folders)
