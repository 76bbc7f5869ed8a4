"""What a run keeps on disk and what it may reuse: every finished batch is durable before the next one starts,
a re-run with another extraction mode never reuses the first mode's answers, and merging refuses shards that
disagree about an item."""

import json
import os
from pathlib import Path

import pytest

from cgeval.config import ScoringConfig, ShardConfig
from cgeval.merge import MergeError, merge_shards
from cgeval.models.baselines import RandomBaseline
from cgeval.models.mock import MockModel
from cgeval.run import run
from cgeval.store import read_rows

from .test_resume import EXP, _cfg, _manifest

N_ITEMS = 120  # the embedded sample


# ------------------------------------------------------------------ every finished batch is on disk


class _Watcher(MockModel):
    """Before answering each batch, records what another reader of predictions.jsonl would see at that moment,
    and how many times the run has fsynced that file so far."""

    def __init__(self, pred_path: Path, fsyncs: list):
        super().__init__(reply="gold")
        self.pred_path = pred_path
        self.fsyncs = fsyncs
        self.seen: list[tuple[int, int]] = []  # (complete lines on disk, fsyncs of the predictions file)

    def generate(self, batch):
        text = self.pred_path.read_text() if self.pred_path.exists() else ""
        complete = text.count("\n")
        assert text.endswith("\n") or not text, "a partial line is on disk between batches"
        self.seen.append((complete, len(self.fsyncs)))
        return super().generate(batch)


def test_every_finished_batch_is_flushed_and_fsynced_before_the_next_starts(tmp_path, monkeypatch):
    pred = tmp_path / "predictions.jsonl"
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        st = os.fstat(fd)
        if pred.exists() and (st.st_dev, st.st_ino) == (pred.stat().st_dev, pred.stat().st_ino):
            fsyncs.append(fd)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    model = _Watcher(pred, fsyncs)
    batch_size = 8
    run(_cfg(tmp_path, batch_size=batch_size), model)
    n_batches = -(-N_ITEMS // batch_size)
    assert len(model.seen) == n_batches
    # Before batch k (0-based), the k finished batches are readable and were fsynced once each.
    assert model.seen == [(k * batch_size, k) for k in range(n_batches)]
    assert len(read_rows(pred)[0]) == N_ITEMS


# ------------------------------------------------------------------ the extraction mode is part of the key


class _Thinking(MockModel):
    """Answers inside a reasoning block it never closes: strict extraction abstains, lenient reads the letter."""

    def generate(self, batch):
        return [f"<think>the answer is {it.gold}" for it in batch]


def test_a_lenient_rerun_does_not_reuse_strict_predictions(tmp_path):
    run(_cfg(tmp_path, scoring=ScoringConfig(extract="strict")), _Thinking())
    strict_rows, _ = read_rows(tmp_path / "predictions.jsonl")
    assert len(strict_rows) == N_ITEMS and all(r["pred"] is None for r in strict_rows)

    run(_cfg(tmp_path, scoring=ScoringConfig(extract="lenient")), _Thinking())
    m = _manifest(tmp_path)
    assert m["resume"]["reused"] == 0 and m["resume"]["stale_rows"] == N_ITEMS
    rows, _ = read_rows(tmp_path / "predictions.jsonl")
    assert all(r["pred"] == r["gold"] and r["correct"] for r in rows)
    assert {r["parse_rule"] for r in rows} == {"think_only"}

    # And back: a strict re-run reuses nothing of the lenient run either.
    run(_cfg(tmp_path, scoring=ScoringConfig(extract="strict")), _Thinking())
    assert _manifest(tmp_path)["resume"]["reused"] == 0
    assert all(r["pred"] is None for r in read_rows(tmp_path / "predictions.jsonl")[0])


# ------------------------------------------------------------------ merge refuses conflicting rows


def _two_shards(out):
    for i in range(2):
        run(_cfg(out, shard=ShardConfig(i, 2)), RandomBaseline(seed=5))
    return [out / f"predictions.shard-{i:03d}-of-002.jsonl" for i in range(2)]


def _lines(path):
    return path.read_text().splitlines(keepends=True)


def test_merge_refuses_two_different_rows_for_one_item_across_shards(tmp_path):
    out = tmp_path / "run"
    first, second = _two_shards(out)
    row = json.loads(_lines(first)[0])
    other = next(l for l in "ABCD"[: row["n_options"]] if l != row["pred"])
    conflicting = {**row, "pred": other, "response": other, "correct": other == row["gold"]}
    with second.open("a") as f:
        f.write(json.dumps(conflicting) + "\n")
    with pytest.raises(MergeError, match=f"item {row['item_id']} has two different predictions across shards"):
        merge_shards(out)
    assert not (out / "predictions.jsonl").exists()  # nothing written


def test_merge_accepts_the_same_row_in_two_shards_once(tmp_path):
    """A shard re-run with another shard count may hold a row another shard holds too: identical rows merge."""
    out = tmp_path / "run"
    first, second = _two_shards(out)
    with second.open("a") as f:
        f.write(_lines(first)[0])
    merge_shards(out)
    rows, _ = read_rows(out / "predictions.jsonl")
    assert len(rows) == N_ITEMS == len({r["item_id"] for r in rows})
