"""cgeval.merge on a small two-shard run (36 sample questions, 18 a shard): what the merged manifest and predictions
hold, and each refusal with its message. Every test edits its own copy of tests/fixtures/merge_two_shards: the
shard files `cgeval.run.run` wrote for shards 0 and 1 of 2 (RandomBaseline(seed=5), the sample with
data.max_items_per_file=3, held-out CT-Lung), kept as files so that a mutant's test run does not pay for two
pipeline runs."""

import json
import shutil
from pathlib import Path

import pytest

from cgeval.merge import MergeError, main, merge_shards

SHARDS = ("000-of-002", "001-of-002")


TEMPLATE = Path(__file__).parent / "fixtures" / "merge_two_shards"


@pytest.fixture
def template() -> Path:
    return TEMPLATE


@pytest.fixture
def shards(template, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(template, out)
    return out


def _manifest(out: Path, shard: str) -> dict:
    return json.loads((out / f"manifest.shard-{shard}.json").read_text())


def _edit_manifest(out: Path, shard: str, **changes) -> None:
    m = _manifest(out, shard)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(m.get(key), dict):
            m[key] = {**m[key], **value}
        else:
            m[key] = value
    (out / f"manifest.shard-{shard}.json").write_text(json.dumps(m))


def _pred_lines(out: Path, shard: str) -> list[str]:
    return (out / f"predictions.shard-{shard}.jsonl").read_text().splitlines(keepends=True)


def _refused(out: Path, message: str) -> None:
    with pytest.raises(MergeError) as e:
        merge_shards(out)
    assert str(e.value) == message
    assert not (out / "predictions.jsonl").exists() and not (out / "manifest.json").exists()


def test_merged_manifest_and_predictions(shards):
    _edit_manifest(shards, SHARDS[0], elapsed_s=1.25, inference_errors={"n": 2}, error="an old error")
    _edit_manifest(shards, SHARDS[1], elapsed_s=2.0004, inference_errors={"n": 1})
    first = _manifest(shards, SHARDS[0])
    rows = [json.loads(l) for s in SHARDS for l in _pred_lines(shards, s)]
    metrics = merge_shards(shards)
    merged = json.loads((shards / "manifest.json").read_text())
    assert merged["status"] == "complete" and merged["shard"] is None and "error" not in merged
    assert set(merged) == (set(first) - {"error"}) | {"n_predictions", "merged_from"}  # no other key written
    assert merged["run_key"] == first["run_key"] and merged["config_hash"] == first["config_hash"]
    assert merged["n_predictions"] == 36
    assert merged["merged_from"] == ["manifest.shard-000-of-002.json", "manifest.shard-001-of-002.json"]
    assert merged["inference_errors"] == {"n": 3}
    assert merged["elapsed_s"] == 3.25
    assert merged["data"] == {**first["data"], "n_items_this_shard": 36}
    assert merged["experiment"] == first["experiment"] and merged["model"] == first["model"]
    # every row once, in natural id order (S02-2 before S02-10 would be; here S02-1 .. S28-3)
    written = [json.loads(l) for l in (shards / "predictions.jsonl").read_text().splitlines()]
    ids = [r["item_id"] for r in written]
    assert len(ids) == 36 == len(set(ids))
    assert ids == sorted(ids, key=lambda i: (int(i[1:3]), int(i.split("-")[1])))
    assert sorted(written, key=lambda r: r["item_id"]) == sorted(rows, key=lambda r: r["item_id"])
    assert metrics["overall"]["all"]["n"] == 36
    assert "holdout_ct_lung / random / generate" in (shards / "report.html").read_text()


def test_merged_predictions_keep_non_ascii_text(shards):
    lines = _pred_lines(shards, SHARDS[0])
    row = json.loads(lines[0])
    row["response"] = "Réponse: A"
    (shards / f"predictions.shard-{SHARDS[0]}.jsonl").write_text(json.dumps(row) + "\n" + "".join(lines[1:]))
    merge_shards(shards)
    assert '"response": "Réponse: A"' in (shards / "predictions.jsonl").read_text(encoding="utf-8")


def test_no_folder_and_no_manifests(tmp_path):
    with pytest.raises(MergeError) as e:
        merge_shards(tmp_path / "nowhere")
    assert str(e.value) == f"{tmp_path / 'nowhere'}: no such folder"
    with pytest.raises(MergeError) as e:
        merge_shards(tmp_path)
    assert str(e.value) == f"{tmp_path}: no shard manifests (manifest.shard-*-of-*.json)"


@pytest.mark.parametrize("field", ["config_hash", "run_key"])
def test_refuses_shards_with_other_settings(shards, field):
    _edit_manifest(shards, SHARDS[1], **{field: "other"})
    _refused(shards, f"shards ran with different settings ({field} differs: 2 values); refusing to merge")


def test_refuses_other_question_sets(shards):
    _edit_manifest(shards, SHARDS[1], data={"items_hash": "other"})
    _refused(shards, "shards evaluated different question sets (items_hash differs); refusing to merge")


def test_refuses_unfinished_shards(shards):
    _edit_manifest(shards, SHARDS[1], status="running")
    _refused(shards, "shards not complete (re-run them to finish): ['manifest.shard-001-of-002.json']")
    _edit_manifest(shards, SHARDS[0], status=None)
    _refused(shards, "shards not complete (re-run them to finish): ['manifest.shard-000-of-002.json', "
                     "'manifest.shard-001-of-002.json']")


def test_refuses_unreadable_lines(shards):
    lines = _pred_lines(shards, SHARDS[1])
    (shards / f"predictions.shard-{SHARDS[1]}.jsonl").write_text("".join(lines) + lines[0][:30])
    _refused(shards, "predictions.shard-001-of-002.jsonl: 1 unreadable lines; re-run that shard to repair it")


def test_refuses_rows_without_a_cache_key(shards):
    lines = _pred_lines(shards, SHARDS[0])
    row = {k: v for k, v in json.loads(lines[0]).items() if k != "cache_key"}
    (shards / f"predictions.shard-{SHARDS[0]}.jsonl").write_text(json.dumps(row) + "\n" + "".join(lines[1:]))
    _refused(shards, "predictions.shard-000-of-002.jsonl: rows without a cache key (an older cgeval?)")


def test_refuses_conflicting_rows_and_accepts_identical_ones(shards):
    first = json.loads(_pred_lines(shards, SHARDS[0])[0])
    with (shards / f"predictions.shard-{SHARDS[1]}.jsonl").open("a") as f:
        f.write(json.dumps(first) + "\n")
    merge_shards(shards)  # the same row twice merges to one
    assert len((shards / "predictions.jsonl").read_text().splitlines()) == 36
    (shards / "predictions.jsonl").unlink()
    (shards / "manifest.json").unlink()
    with (shards / f"predictions.shard-{SHARDS[1]}.jsonl").open("a") as f:
        f.write(json.dumps({**first, "response": "something else"}) + "\n")
    _refused(shards, f"item {first['item_id']} has two different predictions across shards")


def test_refuses_missing_questions(shards):
    lines = _pred_lines(shards, SHARDS[1])
    (shards / f"predictions.shard-{SHARDS[1]}.jsonl").write_text("".join(lines[:-3]))
    _refused(shards, "33 of 36 questions have predictions; 3 missing: run the remaining shards")


def test_main_prints_the_merge_and_returns_its_status(shards, tmp_path, capsys):
    assert main([str(shards)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((shards / "metrics.json").read_text())
    split = metrics["split"]
    expected = ", ".join(f"{k} {100 * v['accuracy']:.1f}% (n={v['n']})" for k, v in split.items() if v.get("n"))
    assert out == f"merged {shards}: {expected}\n"
    assert "seen" in out and "(n=30)" in out and "(n=6)" in out
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "MergeError" in capsys.readouterr().err


def test_missing_counts_in_a_shard_manifest_count_as_zero(shards):
    for shard, elapsed in zip(SHARDS, (None, 0.5)):
        m = _manifest(shards, shard)
        m.pop("inference_errors", None)
        m.pop("elapsed_s", None)
        if elapsed is not None:
            m["elapsed_s"] = elapsed
        (shards / f"manifest.shard-{shard}.json").write_text(json.dumps(m))
    merge_shards(shards)
    merged = json.loads((shards / "manifest.json").read_text())
    assert merged["inference_errors"] == {"n": 0} and merged["elapsed_s"] == 0.5


def test_the_merged_manifest_says_running_until_the_report_is_written(shards, monkeypatch):
    import cgeval.merge as merge_module

    def no_report(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(merge_module, "write_report", no_report)
    with pytest.raises(OSError):
        merge_shards(shards)
    merged = json.loads((shards / "manifest.json").read_text())
    assert merged["status"] == "running" and merged["n_predictions"] == 36


def test_main_help_and_error_line(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "argv", ["pytest"])
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m cgeval.merge [-h] run_dir\n\n"
                          "Merge the shards of a run: ``python -m cgeval.merge RUN_DIR``.\n")
    assert main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("cgeval.merge: MergeError: ")


def test_the_judges_counts_are_summed_over_the_shards(shards):
    """A run judged in shards: the merged manifest holds each count summed, the judge's own settings from the
    first shard, and no judgements file (each shard has its own); a count a shard lacks or leaves null adds 0."""
    judge = {"used": True, "model": {"name": "mock"}, "prompt_sha256": "abc", "judge_on": "unanswered",
             "judgements_file": "judgements.shard-000-of-002.jsonl"}
    _edit_manifest(shards, SHARDS[0], judge={**judge, "n_rows_to_judge": 5, "asked": 3, "reused": 2, "failed": 1,
                                             "stale_rows": 4, "unreadable_lines": 0})
    _edit_manifest(shards, SHARDS[1], judge={**judge, "judgements_file": "judgements.shard-001-of-002.jsonl",
                                             "n_rows_to_judge": 7, "asked": 6, "reused": None, "failed": 0,
                                             "unreadable_lines": 2})
    merge_shards(shards)
    merged = json.loads((shards / "manifest.json").read_text())["judge"]
    assert merged == {"used": True, "model": {"name": "mock"}, "prompt_sha256": "abc", "judge_on": "unanswered",
                      "judgements_file": None, "n_rows_to_judge": 12, "asked": 9, "reused": 2, "failed": 1,
                      "stale_rows": 4, "unreadable_lines": 2}


def test_a_run_without_a_judge_merges_without_judge_counts(shards):
    _edit_manifest(shards, SHARDS[0], judge={"used": False, "asked": 3})
    merge_shards(shards)
    assert json.loads((shards / "manifest.json").read_text())["judge"] == {"used": False, "asked": 3}
