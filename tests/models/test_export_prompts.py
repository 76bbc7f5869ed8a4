"""The trained prompt is the evaluated prompt: the exported user turn, with the image tag replaced the way
LLaMA-Factory replaces it, is the text the model's chat template renders at evaluation (cgeval.data.export's
``image_separator`` table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cgeval.data.export import IMAGE_TAG, item_messages
from cgeval.models.prompt import PromptTemplate, chat_messages

REPO = Path(__file__).resolve().parents[2]
# LLaMA-Factory's multimodal plugins put the model's image tokens where the tag was (one image token here; the
# processor expands it to the image's length, in training as in evaluation) and keep the text after the tag.
LLAMAFACTORY_IMAGE = {"tiny_llava": "<image>", "tiny_qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>"}
# The table in cgeval/data/export.py, for the templates that can be rendered here.
SEPARATOR = {"tiny_llava": "newline", "tiny_qwen2_vl": "none", "llava_med": "newline", "huatuogpt_vision_7b": "newline"}


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


@pytest.mark.parametrize("name", sorted(LLAMAFACTORY_IMAGE))
def test_the_tiny_models_evaluate_the_prompt_they_are_trained_on(tiny_adapters, mixed_batch, name):
    adapter = tiny_adapters[name]
    other = "none" if SEPARATOR[name] == "newline" else "newline"
    for item in mixed_batch:
        evaluated = adapter.prompt_text(item)
        assert _trained_user_turn(item, SEPARATOR[name], LLAMAFACTORY_IMAGE[name]) in evaluated
        assert _trained_user_turn(item, other, LLAMAFACTORY_IMAGE[name]) not in evaluated  # the choice matters


@pytest.mark.parametrize("model", ["llava_med", "huatuogpt_vision_7b"])
def test_the_configs_own_templates_match_their_separator(tiny_adapters, mixed_batch, model):
    processor = tiny_adapters["tiny_llava"].processor  # any processor renders a given template
    template = _config_template(model)
    for item in mixed_batch:
        evaluated = processor.apply_chat_template(chat_messages(item, PromptTemplate()), chat_template=template,
                                                  add_generation_prompt=True, tokenize=False)
        trained = _trained_user_turn(item, SEPARATOR[model], "<image>")
        # HuatuoGPT's template trims the question; the records' questions carry no outer whitespace.
        assert trained in evaluated, (trained, evaluated)
