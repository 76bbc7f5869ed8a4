"""Preprocessing overlapped with inference (cgeval.models.pipeline), fast image processors and length grouping:
none of them may change an answer, the order of the outputs or a resume key."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cgeval.config import DataConfig, ExperimentConfig, RunConfig, ScoringConfig
from cgeval.data.loader import load_medmat
from cgeval.models.factory import build_adapter
from cgeval.models.hf import PreparedBatch
from cgeval.models.pipeline import LookAhead, prefetched
from cgeval.models.tiny import tiny_model_dir
from cgeval.run import run

EXP = ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}])


# --- the look-ahead iterator -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ahead,workers", [(1, 1), (2, 2), (2, 1)])
def test_lookahead_keeps_input_order_and_a_bounded_queue(ahead, workers):
    started: list[int] = []
    lock = threading.Lock()

    def fn(x):
        with lock:
            started.append(x)
        time.sleep(0.002 * (x % 3))  # finish out of order
        return x * x

    seen = []
    for x, future in LookAhead(range(12), fn, ahead=ahead, workers=workers):
        with lock:
            assert max(started) <= x + ahead  # never more than `ahead` beyond the one handed out
        assert future.result() == x * x
        seen.append(x)
        time.sleep(0.005)
    assert seen == list(range(12)) and sorted(started) == list(range(12))


def test_lookahead_prepares_the_next_element_while_the_current_one_is_used():
    ready = threading.Event()

    def fn(x):
        if x == 1:
            ready.set()
        return x

    it = iter(LookAhead(range(3), fn, ahead=1))
    first, _ = next(it)
    assert first == 0 and ready.wait(5)  # element 1 is prepared while the consumer still holds element 0
    assert [x for x, _ in it] == [1, 2]


def test_lookahead_failure_stays_with_its_element():
    def fn(x):
        if x == 2:
            raise ValueError("bad element 2")
        return x

    results = []
    for x, future in LookAhead(range(5), fn, ahead=2, workers=2):
        try:
            results.append(future.result())
        except ValueError as e:
            results.append(str(e))
    assert results == [0, 1, "bad element 2", 3, 4]


def test_leaving_the_loop_early_starts_nothing_more():
    started = []
    gen = iter(LookAhead(range(100), started.append, ahead=1))
    next(gen)
    gen.close()
    assert len(started) <= 2


def test_lookahead_rejects_no_lookahead():
    with pytest.raises(ValueError, match="ahead"):
        LookAhead([], str, ahead=0)


def test_a_model_without_prepare_or_prefetch_gets_no_futures():
    class Plain:
        prefetch_batches = 2

    class Off:
        prefetch_batches = 0

        def prepare(self, batch):  # pragma: no cover - never called
            raise AssertionError

    for model in (Plain(), Off()):
        assert list(prefetched(model, [[1], [2]])) == [([1], None), ([2], None)]


# --- the hf back end: prepared ahead = prepared in line ----------------------------------------------------------


def test_prepare_on_another_thread_gives_the_same_inputs(tiny, mixed_batch):
    here = tiny.prepare(mixed_batch)
    box = {}
    worker = threading.Thread(target=lambda: box.update(p=tiny.prepare(mixed_batch)))
    worker.start()
    worker.join()
    there = box["p"]
    assert isinstance(there, PreparedBatch) and there.item_ids == here.item_ids
    assert here.inputs.keys() == there.inputs.keys()
    for key in here.inputs:
        assert torch.equal(here.inputs[key], there.inputs[key]), key
    assert tiny.generate(mixed_batch, prepared=there) == tiny.generate(mixed_batch)


def test_prepared_inputs_of_another_batch_are_refused(tiny, mixed_batch):
    prepared = tiny.prepare(mixed_batch[:2])
    with pytest.raises(ValueError, match="other items"):
        tiny.option_logprobs(mixed_batch[1:3], prepared=prepared)


def _bad_image_sample(sample_copy: Path) -> str:
    """Truncate one image of the sample copy: its header still reads (the loader keeps it, its decode check being off
    in these runs), its pixels do not, so it fails at inference."""
    items, _ = load_medmat(sample_copy, max_items_per_file=2, verify_images=False, io_workers=1)
    path = Path(items[3].image_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return items[3].item_id


def _run(out: Path, root: Path, model, mode: str, batch_size: int = 4) -> dict:
    cfg = RunConfig(data=DataConfig(root=str(root), max_items_per_file=2, verify_images=False), experiment=EXP,
                    output_dir=str(out), progress=False, batch_size=batch_size, scoring=ScoringConfig(mode=mode))
    run(cfg, model)
    return json.loads((out / "manifest.json").read_text())


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", ["generate", "likelihood"])
def test_prefetched_run_equals_the_sequential_run(tiny, mode, sample_copy, tmp_path, monkeypatch):
    bad = _bad_image_sample(sample_copy)
    monkeypatch.setattr(tiny, "prefetch_batches", 0)
    seq = _run(tmp_path / "seq", sample_copy, tiny, mode)
    monkeypatch.setattr(tiny, "prefetch_batches", 2)
    monkeypatch.setattr(tiny, "preprocess_workers", 2)
    pipe = _run(tmp_path / "pipe", sample_copy, tiny, mode)
    assert seq["status"] == pipe["status"] == "incomplete"  # the corrupt image failed its own item only
    assert seq["inference_errors"]["by_type"] == pipe["inference_errors"]["by_type"] == {"ImageLoadError": 1}
    errors = [(tmp_path / r / "errors.jsonl").read_text() for r in ("seq", "pipe")]
    assert errors[0] == errors[1] and json.loads(errors[0])["item_id"] == bad
    assert pipe["model_runtime"]["prefetch_batches"] == 2 and seq["model_runtime"]["prefetch_batches"] == 0
    # Identical bytes: every reply, letter and score, in the same order.
    assert (tmp_path / "seq" / "predictions.jsonl").read_bytes() == (tmp_path / "pipe" / "predictions.jsonl").read_bytes()
    assert len(_rows(tmp_path / "pipe")) == seq["data"]["n_items"] - 1


def test_grouping_by_length_changes_no_answer_order_or_resume_key(tiny, sample_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny, "group_by_length", False)
    plain = _run(tmp_path / "plain", sample_copy, tiny, "generate", batch_size=3)
    monkeypatch.setattr(tiny, "group_by_length", True)
    grouped = _run(tmp_path / "grouped", sample_copy, tiny, "generate", batch_size=3)
    a, b = _rows(tmp_path / "plain"), _rows(tmp_path / "grouped")
    assert [r["item_id"] for r in a] == [r["item_id"] for r in b]  # canonical order either way
    assert [r["cache_key"] for r in a] == [r["cache_key"] for r in b]
    assert [r["pred"] for r in a] == [r["pred"] for r in b] and [r["response"] for r in a] == [r["response"] for r in b]
    assert plain["run_key"] == grouped["run_key"]
    # A grouped run resumes from an ungrouped one's predictions: every answer reused.
    monkeypatch.setattr(tiny, "group_by_length", True)
    again = _run(tmp_path / "plain", sample_copy, tiny, "generate", batch_size=3)
    assert again["resume"]["reused"] == again["data"]["n_asked"] and again["resume"]["to_score"] == 0


def test_grouping_puts_images_of_one_size_together(tiny_adapters, mixed_batch):
    qwen = tiny_adapters["tiny_qwen2_vl"]
    keys = qwen.order_keys(mixed_batch)
    sizes = []
    for it in mixed_batch:
        with Image.open(it.image_path) as im:
            sizes.append(im.size[0] * im.size[1])
    assert [k[0] for k in keys] == sizes
    missing = dataclasses.replace(mixed_batch[0], image_path="/nonexistent.png")
    assert qwen.order_keys([missing]) == [(0, 0, 0)]  # sorts first, fails in its own batch


# --- fast and slow image processors --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_size_images(tmp_path_factory):
    """Grey X-ray-like and colour fundus-like images at real sizes, PNG and JPEG."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("real_size")
    paths = []
    for (w, h), mode, ext in [((1024, 1024), "L", "png"), ((2048, 2500), "RGB", "jpg"), ((512, 512), "RGB", "png")]:
        y, x = np.mgrid[0:h, 0:w]
        base = (127 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0)).astype(np.float64)
        noise = rng.normal(0, 12, size=(h, w, 3) if mode == "RGB" else (h, w))
        pixels = np.clip((base[..., None] if mode == "RGB" else base) + noise, 0, 255).astype(np.uint8)
        path = folder / f"{w}x{h}.{ext}"
        Image.fromarray(pixels, mode=mode).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", ["tiny_llava", "tiny_qwen2_vl"])
def test_fast_and_slow_image_processors_agree_on_real_size_images(name, tiny_cache, real_size_images):
    import transformers

    folder = tiny_model_dir(name, tiny_cache)
    fast = transformers.AutoImageProcessor.from_pretrained(folder, backend="torchvision")
    slow = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    for path in real_size_images:
        with Image.open(path) as im:
            image = im.convert("RGB")
        a, b = fast([image], return_tensors="pt"), slow([image], return_tensors="pt")
        assert a.keys() == b.keys()
        for key in a:
            if key != "pixel_values":
                assert torch.equal(a[key], b[key]), (name, path.name, key)  # same grids, same token counts
        diff = (a["pixel_values"] - b["pixel_values"]).abs()
        print(f"{name} {path.name}: pixel_values max abs diff {float(diff.max()):.4f}, mean {float(diff.mean()):.5f}")
        # Resampling rounding only: a few grey levels at most (normalised units: level / 255 / std ~ 0.015).
        assert float(diff.max()) < 0.06 and float(diff.mean()) < 0.005, (name, path.name)


@pytest.mark.parametrize("name", ["tiny_llava", "tiny_qwen2_vl"])
def test_fast_and_slow_image_processors_give_the_same_letters(name, tiny_cache, tiny_adapters, mixed_batch):
    fast = tiny_adapters[name]
    slow = build_adapter(name=name, path=str(tiny_model_dir(name, tiny_cache)), max_new_tokens=8,
                         fast_image_processor=False)
    assert fast.describe()["image_processor"]["backend"] == "torchvision"
    assert slow.describe()["image_processor"] == {"class": type(slow.processor.image_processor).__name__,
                                                  "backend": "pil"}
    assert type(slow.processor.image_processor).__name__.endswith("Pil")
    assert fast.describe() != slow.describe()  # the processor is part of the resume key
    assert fast.generate(mixed_batch) == slow.generate(mixed_batch)
    a, b = fast.option_logprobs(mixed_batch), slow.option_logprobs(mixed_batch)
    assert [max(s, key=s.get) for s in a] == [max(s, key=s.get) for s in b]
    for sa, sb in zip(a, b):
        assert all(sa[l] == pytest.approx(sb[l], abs=1e-3) for l in sa)
