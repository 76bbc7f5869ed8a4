"""The judging stage of a generate run: who decided each answer, and a judge model for what the rules cannot read.

After every reply is in, each prediction row gets ``decided_by``: ``rule`` (the extraction rules read a letter),
``judge`` (they abstained and the judge read one) or ``unanswered``. With a judge (``scoring.judge``), the judge is
asked about the replies the rules leave unanswered (``scoring.judge_on=unanswered``) or about every reply
(``all``: an audit; the rules' letter still decides where they read one, the judge's is recorded beside it). Each
asked row records ``judge_response`` (the judge's raw reply), ``judge_pred`` and ``judge_parse_rule`` (its reply
read by the same rules, `cgeval.scoring.judge.read_judgement`) and ``judge_error`` (why the judge gave no reply);
a row the judge decided has ``parse_rule: judge`` and keeps the abstaining rule's name in ``rule_parse_rule``.

Judge replies are cached like predictions: ``judgements.jsonl`` in the run folder (one per shard), one row per
asked item, keyed by the judge's identity (its ``describe()``), the judge prompt's hash and the full question put to
it (item stem, options and the reply), appended and flushed per batch. A resumed run asks only what is not there.
A judge that fails on an item (an error, a refused request, a server gone) leaves that item unanswered, counted in
the manifest and retried on the next run; it never stops the run or costs a row.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .config import ShardConfig
from .data.records import Item
from .manifest import write_text_atomic
from .models.base import ItemFailure, ModelAdapter
from .scoring.judge import JUDGE_PROMPT, JUDGE_PROMPT_SHA256, judge_item, judge_prompt, read_judgement
from .store import collect_cache, item_sort_key, keep_stale, run_key, shard_file

DECISIONS = ("rule", "judge", "unanswered")
JUDGE_RULE = "judge"  # parse_rule of a row whose letter the judge gave
JUDGE_KEYS = ("judge_response", "judge_pred", "judge_parse_rule", "judge_error")


def judgements_name(shard: ShardConfig) -> str:
    return shard_file("judgements", ".jsonl", shard)


def rule_output(cached: dict) -> dict:
    """A reused prediction row's model output with the rules' own reading restored (the judge is applied anew on
    every run, from its cache, so that a changed or removed judge changes only what it decided)."""
    if cached.get("parse_rule") == JUDGE_RULE:
        return {**cached, "pred": None, "parse_rule": cached.get("rule_parse_rule")}
    return cached


def judge_identity(judge: ModelAdapter) -> str:
    """What the judge's answers depend on: its model identity and decoding (``describe()``) and the judge prompt."""
    return run_key(judge, f"judge/{JUDGE_PROMPT_SHA256}")


def judgement_key(identity: str, prompt: str) -> str:
    return hashlib.sha256(json.dumps([identity, prompt], ensure_ascii=False).encode()).hexdigest()[:24]


def judge_manifest(judge: ModelAdapter, judge_on: str) -> dict:
    """The judge's block of the run manifest, before it is asked anything."""
    return {"used": True, "name": judge.name, "model": judge.describe(), "judge_on": judge_on,
            "prompt": {"template": JUDGE_PROMPT, "sha256": JUDGE_PROMPT_SHA256},
            "identity": judge_identity(judge),
            "runtime": judge.runtime() if callable(getattr(judge, "runtime", None)) else {}}


def not_used(reason: str) -> dict:
    return {"used": False, "reason": reason}


@dataclass
class JudgeStage:
    """Judge the rows of one run (or shard) in place; `summary` is the manifest's account of it."""

    judge: ModelAdapter | None
    judge_on: str
    extract: str
    out: Path
    shard: ShardConfig
    batch_size: int
    progress: bool = False
    errors: object = None  # a cgeval.run._Errors for the judge's failures
    summary: dict = field(default_factory=dict)

    def apply(self, rows: dict[str, dict], items: dict[str, Item]) -> None:
        """Set ``decided_by`` (and the judge's fields, when there is a judge) on every row of ``rows``."""
        if self.judge is None:
            for row in rows.values():
                row["decided_by"] = "rule" if row.get("pred") else "unanswered"
            return
        wanted = {iid: row for iid, row in rows.items()
                  if isinstance(row.get("response"), str) and (self.judge_on == "all" or not row.get("pred"))}
        identity = judge_identity(self.judge)
        prompts = {iid: judge_prompt(items[iid], row["response"]) for iid, row in wanted.items()}
        keys = {iid: judgement_key(identity, prompt) for iid, prompt in prompts.items()}
        cache, stats = collect_cache(self.out, keys, stem="judgements")
        path = self.out / judgements_name(self.shard)
        stale = keep_stale(path, set(cache), keys)
        answered: dict[str, dict] = {iid: cache[iid] for iid in cache}
        todo = sorted((iid for iid in wanted if iid not in cache), key=lambda i: (len(prompts[i]), item_sort_key(i)))
        failed: dict[str, BaseException] = {}
        if todo:  # the file starts with the reused judgements; each batch of new ones is appended and flushed
            write_text_atomic(path, "".join(_line(answered[iid]) for iid in sorted(answered, key=item_sort_key)))
            self._ask(todo, items, wanted, keys, path, answered, failed)
        if answered or path.exists():  # canonical order, as an uninterrupted run writes it
            write_text_atomic(path, "".join(_line(answered[iid]) for iid in sorted(answered, key=item_sort_key)))
        for iid, row in rows.items():
            _decide(row, answered.get(iid), failed.get(iid), items[iid], self.extract)
        self.summary.update(n_rows_to_judge=len(wanted), reused=len(cache), asked=len(todo),
                            failed=len(failed), stale_rows=stats["stale"], unreadable_lines=stats["unreadable_lines"],
                            stale_file=stale, judgements_file=path.name)

    def _ask(self, todo: list[str], items: dict[str, Item], wanted: dict[str, dict], keys: dict[str, str],
             path: Path, answered: dict[str, dict], failed: dict[str, BaseException]) -> None:
        from .run import stops_the_run  # the run module imports this one

        judge = self.judge
        asks = {iid: judge_item(items[iid], wanted[iid]["response"]) for iid in todo}
        preflight = getattr(judge, "preflight", None)
        stopped: BaseException | None = None
        if callable(preflight):
            try:
                preflight("generate", text_only=True)
            except Exception as exc:  # noqa: BLE001 - the judge's failure leaves items unanswered, counted
                if _job_control(exc):
                    raise
                stopped = exc
        with path.open("a", encoding="utf-8") as f:
            bar = tqdm(total=len(todo), desc=f"judge {judge.name}", unit="q", disable=not self.progress,
                       dynamic_ncols=True)
            for start in range(0, len(todo), self.batch_size):
                batch = [asks[iid] for iid in todo[start: start + self.batch_size]]
                if stopped is None:
                    try:
                        results = _isolated(judge, batch, stops_the_run)
                    except Exception as exc:  # noqa: BLE001 - a back end that can answer nothing now
                        if _job_control(exc):
                            raise
                        stopped = exc
                if stopped is not None:
                    results = [ItemFailure(stopped)] * len(batch)
                for item, result in zip(batch, results):
                    if isinstance(result, ItemFailure):
                        failed[item.item_id] = result.error
                        self.errors.add(item, result.error)
                        continue
                    entry = {"item_id": item.item_id, "judge_response": result, "cache_key": keys[item.item_id]}
                    answered[item.item_id] = entry
                    f.write(_line(entry))
                f.flush()
                os.fsync(f.fileno())
                bar.update(len(batch))
            bar.close()


def _job_control(exc: BaseException) -> bool:
    """An exception from submitit is SLURM job control (see `cgeval.run.stops_the_run`): it ends the job."""
    return type(exc).__module__.split(".")[0] == "submitit"


def _isolated(judge: ModelAdapter, batch: list[Item], stops) -> list:
    """The judge's replies to a batch (an `ItemFailure` for each item it failed on); a failing batch is asked again
    item by item, so one bad item cannot sink the others. An error that stops a run (`stops`) is raised."""

    def ask(part: list[Item]) -> list:
        replies = judge.generate(part)
        if len(replies) != len(part):
            raise RuntimeError(f"judge {judge.name} returned {len(replies)} replies for {len(part)} questions")
        return [r if isinstance(r, (str, ItemFailure)) else
                ItemFailure(TypeError(f"judge reply is {type(r).__name__}, not text")) for r in replies]

    try:
        return ask(batch)
    except Exception as exc:  # noqa: BLE001
        if stops(exc):
            raise
        if len(batch) == 1:
            return [ItemFailure(exc)]
    out = []
    for item in batch:
        try:
            out.extend(ask([item]))
        except Exception as exc:  # noqa: BLE001
            if stops(exc):
                raise
            out.append(ItemFailure(exc))
    return out


def _decide(row: dict, judgement: dict | None, error: BaseException | None, item: Item, extract: str) -> None:
    """Fill one row's decision fields from the rules' reading (already in ``pred``/``parse_rule``) and the judge's
    (every row gets the judge's fields, None where it was not asked)."""
    row.update({k: None for k in JUDGE_KEYS})
    if judgement is not None:
        reply = judgement["judge_response"]
        letter, rule = read_judgement(reply, item.options, extract)
        row.update(judge_response=reply, judge_pred=letter, judge_parse_rule=rule)
    elif error is not None:
        row["judge_error"] = f"{type(error).__name__}: {error}"[:500]
    if row.get("pred"):
        row["decided_by"] = "rule"
    elif row["judge_pred"]:
        row.update(rule_parse_rule=row["parse_rule"], pred=row["judge_pred"], parse_rule=JUDGE_RULE,
                   correct=row["judge_pred"] == row["gold"], decided_by="judge")
    else:
        row["decided_by"] = "unanswered"


def _line(entry: dict) -> str:
    return json.dumps(entry, ensure_ascii=False) + "\n"
