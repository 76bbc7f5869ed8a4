import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cgeval.config import DataConfig, ExperimentConfig, RunConfig, ScoringConfig
from cgeval.data.compositions import UnknownMATValue
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models.baselines import PriorBaseline, RandomBaseline
from cgeval.run import run

REPO = Path(__file__).resolve().parents[1]

HOLDOUT_CT_LUNG = ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}])
COLUMNS = ["item_id", "subset", "dataset", "modality", "area", "task", "split", "shared_elements",
           "n_options", "gold", "response", "pred", "correct"]


def _cfg(tmp_path, root=SAMPLE_ROOT, **kw):
    return RunConfig(data=DataConfig(root=str(root)), experiment=HOLDOUT_CT_LUNG,
                     output_dir=str(tmp_path / "run"), progress=False, **kw)


def test_prior_run_writes_every_output(tmp_path, capsys):
    metrics = run(_cfg(tmp_path), PriorBaseline(seed=0))
    out = tmp_path / "run"
    for name in ["predictions.jsonl", "metrics.json", "table.csv", "table.md", "manifest.json",
                 "accuracy_by_composition.png", "accuracy_by_composition.pdf"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    preds = pd.read_json(out / "predictions.jsonl", lines=True)
    assert list(preds.columns[: len(COLUMNS)]) == COLUMNS
    assert len(preds) == 120 and preds["item_id"].is_unique
    assert set(preds["split"]) == {"seen", "unseen"}
    assert set(preds.loc[preds["split"] == "unseen", "subset"]) == {3, 4}
    assert (preds["correct"] == (preds["pred"] == preds["gold"])).all()
    assert metrics["split"]["unseen"]["n"] == 20 and metrics["split"]["seen"]["n"] == 100
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 0
    assert manifest["data"]["n_unseen"] == 20 and len(manifest["data"]["items_hash"]) == 64
    assert manifest["environment"]["packages"]["pandas"]
    table = pd.read_csv(out / "table.csv")
    assert {"overall", "split", "composition", "modality", "area", "task"} <= set(table["level"])
    assert "seen - unseen gap" in capsys.readouterr().out


def test_prior_uses_only_seen_answers(tmp_path):
    model = PriorBaseline(seed=0)
    run(_cfg(tmp_path), model)
    # "COVID" is an answer only in held-out subset 03, so the prior has never seen it.
    assert model.counts["covid"] == 0 and model.counts["covid-19"] > 0


def test_prior_baselines_fitted_on_different_seen_answers_have_different_keys():
    from collections import Counter

    a, b = PriorBaseline(seed=0), PriorBaseline(seed=0)
    a.counts = Counter({"cyst": 3, "normal": 1})
    b.counts = Counter({"cyst": 1, "normal": 3})  # as many seen answers, different ones
    assert a.describe()["n_seen_answers"] == b.describe()["n_seen_answers"]
    assert a.describe() != b.describe()


def test_runs_are_reproducible(tmp_path):
    run(_cfg(tmp_path / "a"), RandomBaseline(seed=3))
    run(_cfg(tmp_path / "b"), RandomBaseline(seed=3))
    a = (tmp_path / "a/run/predictions.jsonl").read_bytes()
    assert a == (tmp_path / "b/run/predictions.jsonl").read_bytes()
    run(_cfg(tmp_path / "c"), RandomBaseline(seed=4))
    assert a != (tmp_path / "c/run/predictions.jsonl").read_bytes()


def test_random_is_independent_of_batch_size(tmp_path):
    run(_cfg(tmp_path / "a", batch_size=1), RandomBaseline(seed=1))
    run(_cfg(tmp_path / "b", batch_size=64), RandomBaseline(seed=1))
    assert (tmp_path / "a/run/predictions.jsonl").read_bytes() == (tmp_path / "b/run/predictions.jsonl").read_bytes()


def test_likelihood_mode_records_option_scores(tmp_path):
    run(RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)), experiment=HOLDOUT_CT_LUNG,
                  scoring=ScoringConfig(mode="likelihood"), output_dir=str(tmp_path / "run"), progress=False),
        PriorBaseline())
    rows = [json.loads(l) for l in (tmp_path / "run/predictions.jsonl").read_text().splitlines()]
    for r in rows:
        assert sorted(r["option_scores"]) == list("ABCD"[: r["n_options"]])
        assert r["pred"] == max(r["option_scores"], key=r["option_scores"].get)


def test_skipped_records_are_reported_in_outputs_and_summary(tmp_path, sample_copy, capsys):
    shutil.rmtree(sample_copy / "med-mat" / "Kvasir")
    (sample_copy / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png").write_bytes(b"")
    run(_cfg(tmp_path, root=sample_copy), PriorBaseline())
    text = capsys.readouterr().out
    assert "image_folder_missing" in text and "med-mat/Kvasir" in text and "image_unreadable" in text
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    assert manifest["load_report"]["skipped"] == {"image_folder_missing": 10, "image_unreadable": 1}
    assert manifest["data"]["n_items"] == 109
    assert sum(1 for _ in open(tmp_path / "run/predictions.jsonl")) == 109


def test_bad_experiment_stops_before_inference(tmp_path):
    class Exploding(RandomBaseline):
        def generate(self, batch):
            raise AssertionError("inference must not start")

    cfg = RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)),
                    experiment=ExperimentConfig(name="bad", heldout=[{"modality": "PET"}]),
                    output_dir=str(tmp_path / "run"), progress=False)
    with pytest.raises(UnknownMATValue, match="valid modalities"):
        run(cfg, Exploding())
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_cli_default_run_end_to_end(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "cgeval", "experiment=holdout_ct_lung", "model=prior", f"hydra.run.dir={out}",
         "progress=false"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "split=unseen" in proc.stdout
    for name in ["predictions.jsonl", "metrics.json", "table.md", "accuracy_by_composition.png",
                 ".hydra/config.yaml", "manifest.json"]:
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["_target_"].endswith("PriorBaseline")


def test_cli_bad_pattern_exits_nonzero_with_named_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cgeval", "experiment.heldout.0.area=Lungs", f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "UnknownMATValue" in proc.stderr and "valid areas" in proc.stderr


def test_readme_demo_command_runs_a_tiny_model_end_to_end(tmp_path):
    """The README's demo: a tiny random-weight Qwen2-VL built locally, real batched inference, full outputs."""
    import os

    out = tmp_path / "demo"
    env = {**os.environ, "CGEVAL_TINY_CACHE": str(tmp_path / "tiny"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "cgeval", "experiment=holdout_ct_lung", "model=tiny_qwen2_vl", "scoring=likelihood",
         f"hydra.run.dir={out}", "progress=false"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    preds = pd.read_json(out / "predictions.jsonl", lines=True)
    assert len(preds) == 120 and preds["pred"].notna().all()
    assert all(sorted(s) == list("ABCD"[:n]) for s, n in zip(preds["option_scores"], preds["n_options"]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["chat_template_sha256"] and manifest["status"] == "complete"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_cli_counts_an_image_bomb_and_a_symlink_out_of_the_root(tmp_path, sample_copy):
    """The evaluation entry, on a root holding a 144 Mpx PNG and a dataset folder symlinked in from elsewhere:
    both are counted skips in the manifest; ``data.image_roots`` lets the linked folder back in."""
    from PIL import Image

    Image.new("1", (12_000, 12_000)).save(sample_copy / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(sample_copy / "med-mat" / "COVID-CT", elsewhere / "COVID-CT")
    (sample_copy / "med-mat" / "COVID-CT").symlink_to(elsewhere / "COVID-CT", target_is_directory=True)

    def cli(out, *extra):
        proc = subprocess.run(
            [sys.executable, "-m", "cgeval", "experiment=holdout_ct_lung", "model=prior", f"data.root={sample_copy}",
             f"hydra.run.dir={out}", "progress=false", *extra],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((out / "manifest.json").read_text())["load_report"]

    report = cli(tmp_path / "a")
    assert report["skipped"] == {"image_too_large": 1, "symlink_outside_roots": 5} and report["n_items"] == 114
    report = cli(tmp_path / "b", f"data.image_roots=[{elsewhere}]", "data.max_image_pixels=150000000")
    assert report["n_skipped"] == 0 and report["n_items"] == 120
