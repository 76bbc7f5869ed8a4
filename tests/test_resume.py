"""Runs that survive: resume after SIGKILL, cache keys, sharding and merge, inference errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cgeval.config import DataConfig, ExperimentConfig, RunConfig, ShardConfig
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.merge import MergeError, merge_shards
from cgeval.models.baselines import RandomBaseline
from cgeval.models.mock import MockModel
from cgeval.run import run
from cgeval.store import read_rows

REPO = Path(__file__).resolve().parents[1]
EXP = ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}])


def _cfg(out, **kw):
    kw.setdefault("batch_size", 8)
    return RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)), experiment=EXP, output_dir=str(out), progress=False,
                     **kw)


def _manifest(out, name="manifest.json"):
    return json.loads((Path(out) / name).read_text())


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    ref = tmp_path / "ref"
    run(_cfg(ref, batch_size=4), MockModel(reply="first"))

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cgeval", "model=mock", "model.reply=first", "batch_size=4", "progress=false",
           f"hydra.run.dir={out}"]
    proc = subprocess.Popen(cmd + ["model.delay_s=0.25"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    pred = out / "predictions.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if pred.exists() and sum(1 for _ in pred.open()) >= 12:
            break
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill, _ = read_rows(pred)
    assert 12 <= len(done_at_kill) < 120
    assert _manifest(out)["status"] == "running"

    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = _manifest(out)
    assert m["status"] == "complete"
    # Every finished item was reused; only the items not yet written were computed.
    assert m["resume"]["reused"] == len(done_at_kill)
    assert m["resume"]["to_score"] == 120 - len(done_at_kill)
    assert pred.read_bytes() == (ref / "predictions.jsonl").read_bytes()


def test_rerun_reuses_everything_and_is_byte_identical(tmp_path):
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    first = (tmp_path / "predictions.jsonl").read_bytes()
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    assert _manifest(tmp_path)["resume"] == {"reused": 120, "stale_rows": 0, "unreadable_lines": 0,
                                             "stale_file": None, "to_score": 0}
    assert (tmp_path / "predictions.jsonl").read_bytes() == first


def test_changed_settings_do_not_reuse_stale_rows(tmp_path):
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    run(_cfg(tmp_path), RandomBaseline(seed=2))  # a different seed answers differently
    m = _manifest(tmp_path)
    assert m["resume"]["reused"] == 0 and m["resume"]["stale_rows"] == 120
    assert (tmp_path / m["resume"]["stale_file"]).is_file()  # kept, not deleted
    fresh = tmp_path / "fresh"
    run(_cfg(fresh), RandomBaseline(seed=2))
    assert (tmp_path / "predictions.jsonl").read_bytes() == (fresh / "predictions.jsonl").read_bytes()
    # Scoring mode is part of the key too.
    from cgeval.config import ScoringConfig

    run(_cfg(tmp_path, scoring=ScoringConfig(mode="likelihood")), RandomBaseline(seed=2))
    assert _manifest(tmp_path)["resume"]["reused"] == 0


def test_reused_rows_take_split_and_gold_from_this_run(tmp_path):
    """A re-run into the same folder with another held-out set reuses the model's answers (the key is the model
    and the item, not the experiment), but every row's split, shared elements and correctness are this run's."""
    import dataclasses

    run(_cfg(tmp_path), RandomBaseline(seed=1))
    other = dataclasses.replace(_cfg(tmp_path), experiment=ExperimentConfig(name="h3", heldout=[{"subsets": [3]}]))
    run(other, RandomBaseline(seed=1))
    assert _manifest(tmp_path)["resume"]["reused"] == 120
    fresh = tmp_path / "fresh"
    run(dataclasses.replace(other, output_dir=str(fresh)), RandomBaseline(seed=1))
    assert (tmp_path / "predictions.jsonl").read_bytes() == (fresh / "predictions.jsonl").read_bytes()
    rows = read_rows(tmp_path / "predictions.jsonl")[0]
    assert {r["split"] for r in rows if r["subset"] == 4} == {"seen"}
    assert sum(r["split"] == "unseen" for r in rows) == _manifest(tmp_path)["data"]["n_unseen"] == 10


def test_resume_disabled_recomputes(tmp_path):
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    run(_cfg(tmp_path, resume=False), RandomBaseline(seed=1))
    assert _manifest(tmp_path)["resume"]["reused"] == 0


def test_truncated_last_line_is_recomputed(tmp_path):
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    full = (tmp_path / "predictions.jsonl").read_bytes()
    lines = full.splitlines(keepends=True)
    (tmp_path / "predictions.jsonl").write_bytes(b"".join(lines[:50]) + lines[50][:20])
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    m = _manifest(tmp_path)
    assert m["resume"]["reused"] == 50 and m["resume"]["unreadable_lines"] == 1
    assert (tmp_path / "predictions.jsonl").read_bytes() == full


def test_shards_merge_to_the_unsharded_run(tmp_path):
    ref = tmp_path / "ref"
    run(_cfg(ref), RandomBaseline(seed=5))
    out = tmp_path / "sharded"
    counts = []
    for i in range(3):
        assert run(_cfg(out, shard=ShardConfig(i, 3)), RandomBaseline(seed=5)) is None
        counts.append(_manifest(out, f"manifest.shard-{i:03d}-of-003.json")["data"]["n_items_this_shard"])
    assert sum(counts) == 120 and all(c > 0 for c in counts)
    metrics = merge_shards(out)
    assert (out / "predictions.jsonl").read_bytes() == (ref / "predictions.jsonl").read_bytes()
    assert metrics["overall"]["all"]["n"] == 120
    assert _manifest(out)["merged_from"]


def test_resume_with_a_different_shard_count_reuses_finished_items(tmp_path):
    out = tmp_path / "run"
    run(_cfg(out, shard=ShardConfig(0, 2)), RandomBaseline(seed=5))
    n_done = _manifest(out, "manifest.shard-000-of-002.json")["data"]["n_items_this_shard"]
    run(_cfg(out), RandomBaseline(seed=5))  # unsharded, same folder
    assert _manifest(out)["resume"]["reused"] == n_done


def test_merge_refuses_missing_shards_and_mixed_settings(tmp_path):
    out = tmp_path / "run"
    run(_cfg(out, shard=ShardConfig(0, 2)), RandomBaseline(seed=5))
    with pytest.raises(MergeError, match="missing"):
        merge_shards(out)
    run(_cfg(out, shard=ShardConfig(1, 2)), RandomBaseline(seed=6))
    with pytest.raises(MergeError, match="different settings"):
        merge_shards(out)
    with pytest.raises(MergeError, match="no shard manifests"):
        merge_shards(tmp_path)


def test_merge_cli_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cgeval.merge", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "MergeError" in proc.stderr


def test_inference_errors_are_isolated_counted_and_retried(tmp_path, capsys):
    bad = ["S03-2", "S22-7"]
    run(_cfg(tmp_path), MockModel(fail_on=bad))
    m = _manifest(tmp_path)
    assert m["status"] == "incomplete"
    assert m["inference_errors"]["n"] == 2 and m["inference_errors"]["by_type"] == {"RuntimeError": 2}
    assert m["n_predictions"] == 118
    assert "2 items failed at inference" in capsys.readouterr().out
    failed = [json.loads(l) for l in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert sorted(r["item_id"] for r in failed) == bad and failed[0]["error_type"] == "RuntimeError"
    run(_cfg(tmp_path), MockModel())  # the model recovered: only the two failed items are asked again
    m = _manifest(tmp_path)
    assert m["status"] == "complete" and m["resume"]["reused"] == 118 and m["n_predictions"] == 120
    assert not (tmp_path / "errors.jsonl").exists()


def test_an_item_returned_as_a_failure_costs_only_that_item(tmp_path):
    """An adapter that hands back an ItemFailure for one item (the OpenAI adapter does, for a refused request):
    recorded as that item's error with its traceback; the batch's other answers are kept, nothing asked twice."""
    from cgeval.models.base import ItemFailure

    class OneRefused(MockModel):
        asked: list = []

        def generate(self, batch):
            self.asked.extend(it.item_id for it in batch)
            replies = super().generate(batch)
            try:
                raise RuntimeError("refused by the server")
            except RuntimeError as e:
                failure = ItemFailure(e)
            return [failure if it.item_id == "S03-2" else r for it, r in zip(batch, replies)]

    model = OneRefused(reply="gold")
    run(_cfg(tmp_path), model)
    m = _manifest(tmp_path)
    assert m["status"] == "incomplete" and m["n_predictions"] == 119
    assert m["inference_errors"]["by_type"] == {"RuntimeError": 1}
    assert "refused by the server" in m["inference_errors"]["examples"][0]["traceback"]
    assert len(model.asked) == len(set(model.asked)) == 120


def test_every_item_failing_is_an_error(tmp_path):
    class Broken(MockModel):
        def generate(self, batch):
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="every item failed"):
        run(_cfg(tmp_path), Broken())


def test_unsupported_scoring_stops_the_run(tmp_path):
    from cgeval.config import ScoringConfig
    from cgeval.models.base import UnsupportedScoring

    class NoLogprobs(MockModel):
        def option_logprobs(self, batch):
            raise UnsupportedScoring("this server returns no logprobs")

    with pytest.raises(UnsupportedScoring):
        run(_cfg(tmp_path, scoring=ScoringConfig(mode="likelihood")), NoLogprobs())


def test_unscorable_letters_are_null_not_infinity(tmp_path):
    import math

    from cgeval.config import ScoringConfig

    class PartlyScored(MockModel):
        def option_logprobs(self, batch):
            return [{l: (-math.inf if l == "A" else -1.0 - i) for i, l in enumerate(it.letters)} for it in batch]

    run(_cfg(tmp_path, scoring=ScoringConfig(mode="likelihood")), PartlyScored())
    text = (tmp_path / "predictions.jsonl").read_text()
    assert "Infinity" not in text
    row = json.loads(text.splitlines()[0])
    assert row["option_scores"]["A"] is None and row["unscored_options"] == ["A"] and row["pred"] == "B"


def test_circular_run_counts_an_item_only_when_every_rotation_is_right(tmp_path):
    from cgeval.config import ScoringConfig

    circ = ScoringConfig(circular=True)
    metrics = run(_cfg(tmp_path / "first", scoring=circ), MockModel(reply="first"))
    rows = [json.loads(l) for l in (tmp_path / "first/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and all(r["n_rotations"] == r["n_options"] for r in rows)
    # Always answering "A" is right in exactly one rotation of each item: never circular-correct.
    assert metrics["overall"]["all"]["accuracy"] == 0
    assert sum(1 for _ in open(tmp_path / "first/predictions.rotations.jsonl")) == sum(r["n_options"] for r in rows)
    m = _manifest(tmp_path / "first")
    assert m["circular"]["n_items"] == 120 and m["letter_bias"]
    metrics = run(_cfg(tmp_path / "gold", scoring=circ), MockModel(reply="gold"))
    assert metrics["overall"]["all"]["accuracy"] == 1
    # Resuming a circular run reuses every rotation, and rewrites its own predictions.jsonl in place.
    before = (tmp_path / "gold/predictions.jsonl").read_bytes()
    run(_cfg(tmp_path / "gold", scoring=circ), MockModel(reply="gold"))
    m = _manifest(tmp_path / "gold")
    assert m["resume"]["to_score"] == 0 and m["circular"]["stale_file"] is None
    assert (tmp_path / "gold/predictions.jsonl").read_bytes() == before


def test_a_circular_run_sets_aside_an_earlier_plain_runs_predictions(tmp_path):
    from cgeval.config import ScoringConfig

    run(_cfg(tmp_path), MockModel(reply="gold"))
    plain = (tmp_path / "predictions.jsonl").read_bytes()
    run(_cfg(tmp_path, scoring=ScoringConfig(circular=True)), MockModel(reply="gold"))
    aside = _manifest(tmp_path)["circular"]["stale_file"]
    assert aside and (tmp_path / aside).read_bytes() == plain


def test_circular_shards_merge(tmp_path):
    from cgeval.config import ScoringConfig

    circ = ScoringConfig(circular=True)
    run(_cfg(tmp_path / "ref", scoring=circ), RandomBaseline(seed=2))
    for i in range(2):
        run(_cfg(tmp_path / "sh", scoring=circ, shard=ShardConfig(i, 2)), RandomBaseline(seed=2))
    merge_shards(tmp_path / "sh")
    assert (tmp_path / "sh/predictions.jsonl").read_bytes() == (tmp_path / "ref/predictions.jsonl").read_bytes()


def test_results_folder_from_an_older_version_is_set_aside_not_reused(tmp_path):
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    pred = tmp_path / "predictions.jsonl"
    old_rows = [{k: v for k, v in json.loads(l).items() if k != "cache_key"} for l in pred.read_text().splitlines()]
    pred.write_text("".join(json.dumps(r) + "\n" for r in old_rows))  # rows as an older cgeval wrote them
    run(_cfg(tmp_path), RandomBaseline(seed=1))
    m = _manifest(tmp_path)
    assert m["resume"]["reused"] == 0 and m["resume"]["stale_rows"] == 120
    assert len((tmp_path / m["resume"]["stale_file"]).read_text().splitlines()) == 120
    assert m["trust_remote_code"] is False and "device" in m["environment"]


def test_report_on_a_folder_missing_columns_is_a_named_error(tmp_path):
    from cgeval.analysis.metrics import PredictionsError

    (tmp_path / "predictions.jsonl").write_text(json.dumps({"item_id": "S03-1", "pred": "A"}) + "\n")
    from cgeval.analysis.report import write_report

    with pytest.raises(PredictionsError, match="missing columns"):
        write_report(tmp_path)
