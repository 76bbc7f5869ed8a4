"""The trained prompt is the evaluated prompt: the exported user turn, with the image tag replaced the way
LLaMA-Factory replaces it, is the text the model's chat template renders at evaluation (cgeval.data.export's
``image_separator`` table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from transformers.utils.chat_template_utils import render_jinja_template

from cgeval.data.export import IMAGE_TAG, item_messages
from cgeval.data.loader import load_medmat
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models import chat_templates as published
from cgeval.models.prompt import PromptTemplate, chat_messages

REPO = Path(__file__).resolve().parents[2]
QWEN_VISION = "<|vision_start|><|image_pad|><|vision_end|>"
# What stands for the image in the rendered prompt (before the processor expands it to the image's length) and
# what LLaMA-Factory's multimodal plugins put where the exported tag was: they keep the text after the tag.
IMAGE_MARKER = {
    "tiny_llava": "<image>", "llava_v1_5_7b": "<image>", "llava_med": "<image>", "huatuogpt_vision_7b": "<image>",
    "tiny_qwen2_vl": QWEN_VISION, "qwen2_vl_7b": QWEN_VISION, "qwen2_5_vl_7b": QWEN_VISION, "lingshu_7b": QWEN_VISION,
    "medgemma_4b": "<start_of_image>", "llama3_2_vision_11b": "<|image|>", "internvl3_8b": "<IMG_CONTEXT>",
}
# The table in cgeval/data/export.py.
SEPARATOR = {
    "tiny_llava": "newline", "llava_v1_5_7b": "newline", "llava_med": "newline", "huatuogpt_vision_7b": "newline",
    "internvl3_8b": "newline", "tiny_qwen2_vl": "none", "qwen2_vl_7b": "none", "qwen2_5_vl_7b": "none",
    "lingshu_7b": "none", "medgemma_4b": "none", "llama3_2_vision_11b": "none",
}
# The chat template each hub model config evaluates with: the checkpoint's published one, or the config's own.
PUBLISHED = {"llava_v1_5_7b": published.LLAVA_1_5, "qwen2_vl_7b": published.QWEN2_VL,
             "qwen2_5_vl_7b": published.QWEN2_5_VL, "lingshu_7b": published.LINGSHU, "medgemma_4b": published.GEMMA3,
             "llama3_2_vision_11b": published.LLAMA3_2_VISION, "internvl3_8b": published.INTERNVL3}


def _config_template(model: str) -> str:
    """The chat_template a model config sets (wherever the configs live)."""
    for conf in (REPO / "conf", REPO / "cgeval" / "conf"):
        path = conf / "model" / f"{model}.yaml"
        if path.is_file():
            return OmegaConf.load(path).chat_template
    raise FileNotFoundError(f"no model config {model}")


def _trained_user_turn(item, separator: str, image: str) -> str:
    user = item_messages(item, separator)[0]["content"]
    assert user.count(IMAGE_TAG) == 1
    return user.replace(IMAGE_TAG, image)


def _check(evaluated: str, item, name: str) -> None:
    other = "none" if SEPARATOR[name] == "newline" else "newline"
    assert _trained_user_turn(item, SEPARATOR[name], IMAGE_MARKER[name]) in evaluated, (name, evaluated)
    assert _trained_user_turn(item, other, IMAGE_MARKER[name]) not in evaluated  # the choice matters


@pytest.mark.parametrize("name", sorted(set(PUBLISHED) | {"llava_med", "huatuogpt_vision_7b"}))
def test_every_hub_models_template_renders_the_exported_user_turn(name):
    template = PUBLISHED.get(name) or _config_template(name)
    items, _ = load_medmat(SAMPLE_ROOT, verify_images=False)
    for item in items[::10]:  # Med-MAT questions carry no outer whitespace (Gemma 3 and HuatuoGPT trim it)
        assert item.prompt == item.prompt.strip()
        (evaluated,), _ = render_jinja_template(
            conversations=[chat_messages(item, PromptTemplate())], chat_template=template, add_generation_prompt=True,
            bos_token="<s>", eos_token="</s>")
        _check(evaluated, item, name)


@pytest.mark.parametrize("name", ["tiny_llava", "tiny_qwen2_vl"])
def test_the_tiny_models_evaluate_the_prompt_they_are_trained_on(tiny_adapters, mixed_batch, name):
    # Through the adapter, exactly as a run renders its prompts.
    for item in mixed_batch:
        _check(tiny_adapters[name].prompt_text(item), item, name)
