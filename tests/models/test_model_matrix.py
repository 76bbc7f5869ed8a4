"""Every hub model config runs for real on a CPU: ``model=<name> model.tiny=true`` builds a tiny random-weight
replica of the checkpoint's architecture and takes it through the same Hydra config, factory, adapter and
``from_pretrained`` path as the real weights, then through the whole run (both scorings, on the embedded sample).

The golden prompts below are written by hand from each family's published chat template (not from the code under
test), with the image placeholder as the template writes it; the image-token counts from each processor's rule.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from cgeval.config import CONF_DIR, run_config_from_hydra
from cgeval.run import run

from .conftest import compose_tiny, replica_env

CONF = CONF_DIR

# config name -> the transformers class its checkpoint loads as
MODEL_CLASSES = {
    "llava_v1_5_7b": "LlavaForConditionalGeneration",
    "llava_med": "LlavaForConditionalGeneration",
    "huatuogpt_vision_7b": "LlavaForConditionalGeneration",
    "qwen2_vl_7b": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl_7b": "Qwen2_5_VLForConditionalGeneration",
    "lingshu_7b": "Qwen2_5_VLForConditionalGeneration",
    "medgemma_4b": "Gemma3ForConditionalGeneration",
    "llama3_2_vision_11b": "MllamaForConditionalGeneration",
    "internvl3_8b": "InternVLForConditionalGeneration",
}
TEXT_BACKBONES = {"llava_v1_5_7b": "llama", "llava_med": "mistral", "huatuogpt_vision_7b": "qwen2",
                  "internvl3_8b": "qwen2"}
NAMES = sorted(MODEL_CLASSES)

CHATML_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
QWEN_VISION = "<|vision_start|><|image_pad|><|vision_end|>"


def golden_prompt(name: str, text: str) -> str:
    """The prompt each checkpoint's own template renders for one image and ``text`` (before image expansion)."""
    return {
        "llava_v1_5_7b": f"USER: <image>\n{text} ASSISTANT:",
        "llava_med": f"<s>[INST] <image>\n{text} [/INST]",
        "huatuogpt_vision_7b": f"<|user|>\n<image>\n{text.strip()}\n<|assistant|>\n",
        "qwen2_vl_7b": f"{CHATML_SYSTEM}<|im_start|>user\n{QWEN_VISION}{text}<|im_end|>\n<|im_start|>assistant\n",
        "qwen2_5_vl_7b": f"{CHATML_SYSTEM}<|im_start|>user\n{QWEN_VISION}{text}<|im_end|>\n<|im_start|>assistant\n",
        "lingshu_7b": f"{CHATML_SYSTEM}<|im_start|>user\n{QWEN_VISION}{text}<|im_end|>\n<|im_start|>assistant\n",
        "medgemma_4b": f"<bos><start_of_turn>user\n<start_of_image>{text.strip()}<end_of_turn>\n<start_of_turn>model\n",
        "llama3_2_vision_11b": ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>"
                                f"{text}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
        "internvl3_8b": f"<|im_start|>user\n<IMG_CONTEXT>\n{text}<|im_end|>\n<|im_start|>assistant\n",
    }[name]


def qwen_tokens(width: int, height: int) -> int:
    """Qwen2-VL's smart_resize to multiples of 28 (14-px patches merged 2 x 2), then one token per 28 x 28."""
    return round(height / 28) * round(width / 28)


def internvl_tiles(width: int, height: int) -> int:
    """InternVL's dynamic tiling: the grid (i x j, i*j <= 12) closest to the aspect ratio, plus a thumbnail
    when there is more than one tile."""
    ratios = sorted({(i, j) for n in range(1, 13) for i in range(1, n + 1) for j in range(1, n + 1)
                     if 1 <= i * j <= 12}, key=lambda r: r[0] * r[1])
    aspect = width / height
    best = min(ratios, key=lambda r: abs(aspect - r[0] / r[1]))  # ties: the smallest grid (tiny images)
    n = best[0] * best[1]
    return n + 1 if n > 1 else n


# (placeholder token, tokens it expands to for a width x height image)
IMAGE_TOKENS = {
    "llava_v1_5_7b": ("<image>", lambda w, h: 576),
    "llava_med": ("<image>", lambda w, h: 576),
    "huatuogpt_vision_7b": ("<image>", lambda w, h: 576),
    "qwen2_vl_7b": ("<|image_pad|>", qwen_tokens),
    "qwen2_5_vl_7b": ("<|image_pad|>", qwen_tokens),
    "lingshu_7b": ("<|image_pad|>", qwen_tokens),
    "medgemma_4b": ("<image_soft_token>", lambda w, h: 256),
    "llama3_2_vision_11b": ("<|image|>", lambda w, h: 1),  # the image enters through cross-attention
    "internvl3_8b": ("<IMG_CONTEXT>", lambda w, h: 256 * internvl_tiles(w, h)),
}


@pytest.fixture(scope="session")
def replica_cache(tmp_path_factory):
    with replica_env(tmp_path_factory.mktemp("replicas")) as root:
        yield root


_compose = compose_tiny


@pytest.fixture(scope="session")
def replicas(replica_cache):
    """name -> adapter, instantiated from the real model config with model.tiny=true (built on first use)."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = instantiate(_compose(name).model)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def batch_of_8(sample_items, mixed_batch):
    """The mixed-size batch (2, 3 and 4 options; grey and colour; 33 to 200 px) and two sample items."""
    return mixed_batch + [sample_items[40], sample_items[90]]


@pytest.mark.parametrize("name", NAMES)
def test_replica_has_the_checkpoints_architecture(name, replicas):
    adapter = replicas(name)
    assert type(adapter.model).__name__ == MODEL_CLASSES[name]
    d = adapter.describe()
    assert d["model_class"] == MODEL_CLASSES[name] and d["tiny_replica"] is True
    assert d["dtype"] == "float32" and d["path"] and Path(d["path"]).is_dir()
    if name in TEXT_BACKBONES:
        assert adapter.model.config.text_config.model_type == TEXT_BACKBONES[name]
    text = adapter.model.config.text_config
    assert text.hidden_size == 64 and text.num_attention_heads * 32 == text.hidden_size  # head_dim 32 (vLLM CPU)
    size = sum(p.stat().st_size for p in Path(d["path"]).rglob("*") if p.is_file())
    assert size < 2_000_000, f"{name}: replica folder is {size} bytes"


@pytest.mark.parametrize("name", NAMES)
def test_prompt_is_the_checkpoints_template_and_the_image_expands_by_its_rule(name, replicas, sample_items, tmp_path):
    adapter = replicas(name)
    item = sample_items[0]
    assert adapter.prompt_text(item) == golden_prompt(name, item.prompt)
    placeholder, count = IMAGE_TOKENS[name]
    token_id = adapter.tokenizer.convert_tokens_to_ids(placeholder)
    for w, h in [(56, 56), (200, 64)]:
        path = tmp_path / f"{w}x{h}.png"
        Image.new("RGB", (w, h), (90, 40, 200)).save(path)
        enc = adapter.encode([dataclasses.replace(item, image_path=str(path))])
        assert int((enc["input_ids"][0] == token_id).sum()) == count(w, h), (name, w, h)
        if name == "llama3_2_vision_11b":  # tiles: 1 for a square tile-sized image, several for a wide one
            tiles = int(enc["aspect_ratio_mask"][0, 0].sum())
            assert tiles == 1 if w == h else tiles > 1
        if name == "medgemma_4b":  # bidirectional attention over the image: token_type_ids mark it
            assert int(enc["token_type_ids"][0].sum()) == 256


@pytest.mark.parametrize("name", NAMES)
def test_letter_scores_do_not_depend_on_the_batch(name, replicas, batch_of_8):
    adapter = replicas(name)
    batched = adapter.option_logprobs(batch_of_8)
    single = [adapter.option_logprobs([it])[0] for it in batch_of_8]
    for b, s, it in zip(batched, single, batch_of_8):
        assert tuple(b) == it.letters
        for letter in b:
            assert b[letter] == pytest.approx(s[letter], abs=1e-5), (name, it.item_id, letter)


@pytest.mark.parametrize("name", NAMES)
def test_mixed_image_sizes_generate_as_one_at_a_time(name, replicas, mixed_batch):
    adapter = replicas(name)
    assert adapter.generate(mixed_batch) == [adapter.generate([it])[0] for it in mixed_batch]


@pytest.mark.parametrize("name", NAMES)
def test_both_scorings_run_on_the_sample(name, replicas, sample_items, tmp_path):
    adapter = replicas(name)
    texts = {it.item_id: it.prompt for it in sample_items}
    for scoring in ("likelihood", "generate"):
        # Five items a file (60 of the sample's 120): InternVL tiles the sample's 4:3 images into 12 + 1 tiles
        # of 256 tokens, as the real processor does, which makes it the slowest replica by far.
        cfg = _compose(name, f"scoring={scoring}", "data.max_items_per_file=5")
        out = tmp_path / scoring
        run(run_config_from_hydra(cfg, str(out)), adapter, None)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert manifest["model"]["model_class"] == MODEL_CLASSES[name] and manifest["model"]["tiny_replica"]
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == manifest["data"]["n_items"] == 60
        for row in rows:
            assert row["prompt"] == golden_prompt(name, texts[row["item_id"]])
        if scoring == "likelihood":  # never leaves an item unanswered
            assert all(r["pred"] is not None and r["parse_rule"] == "likelihood" for r in rows)
        else:
            assert all(isinstance(r["response"], str) for r in rows)


def _instantiate_error(*overrides: str) -> BaseException:
    """The error building the model raises (Hydra wraps it in an InstantiationException)."""
    with pytest.raises(Exception) as info:
        instantiate(_compose(*overrides).model)
    return info.value.__cause__ or info.value


def test_tiny_needs_a_local_back_end_and_no_path(replica_cache):
    from cgeval.models.factory import UnsupportedBackend

    err = _instantiate_error("qwen2_vl_7b", "model.backend=openai")
    assert isinstance(err, UnsupportedBackend) and "tiny" in str(err)
    err = _instantiate_error("qwen2_vl_7b", "model.path=/somewhere")
    assert isinstance(err, ValueError) and "model.path" in str(err)


def test_a_checkpoint_without_a_replica_is_a_named_error(replica_cache):
    from cgeval.models.tiny import UnknownTinyModel

    err = _instantiate_error("qwen2_vl_7b", "model.model_id=someone/else")
    assert isinstance(err, UnknownTinyModel) and "no tiny replica of 'someone/else'" in str(err)


def test_every_hub_config_has_a_replica():
    from cgeval.models.tiny_hub import HUB_REPLICAS

    for name in NAMES:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            m = compose(config_name="config", overrides=[f"model={name}"]).model
        assert m.tiny is False and m.model_id in HUB_REPLICAS, name
