"""Tiny real-architecture models, built once per test session into a temporary folder (no hub access)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cgeval.data.loader import load_medmat
from cgeval.data.records import Item
from cgeval.data.sample import SAMPLE_ROOT

TINY = ("tiny_llava", "tiny_qwen2_vl")

VLLM_MISSING = importlib.util.find_spec("vllm") is None
if VLLM_MISSING and os.environ.get("CGEVAL_REQUIRE_VLLM") == "1":  # .ci/vllm_tests.sh: these must run, not skip
    raise RuntimeError("CGEVAL_REQUIRE_VLLM=1 but vllm is not importable in this environment")
# The marks of a module that runs the real vLLM engine (its tests skip where vllm is not installed).
VLLM_ENGINE_MARKS = [
    pytest.mark.vllm,
    pytest.mark.skipif(VLLM_MISSING, reason="needs vllm installed (see README: vLLM engine tests)"),
]


def compose_tiny(name: str, *overrides: str):
    """The run config a user gets from ``python -m cgeval model=<name> model.tiny=true progress=false ...``: the
    real model config, with its checkpoint's offline replica in place of the hub download."""
    from hydra import compose, initialize_config_dir

    from cgeval.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[f"model={name}", "model.tiny=true", "progress=false",
                                                        *overrides])


@contextmanager
def replica_env(root: Path | str, **extra: str) -> Iterator[Path]:
    """Replicas built into (and read from) ``root``, no hub access, plus any ``extra`` environment variables."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"CGEVAL_TINY_CACHE": str(root), "HF_HUB_OFFLINE": "1", **extra}.items():
            mp.setenv(key, value)
        yield Path(root)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    from cgeval.models.tiny import ensure_tiny

    root = tmp_path_factory.mktemp("tiny_models")
    for name in TINY:
        ensure_tiny(name, root)
    return root


@pytest.fixture(scope="session")
def tiny_adapters(tiny_cache):
    """name -> HFAdapter loaded from the saved folder, greedy, 8 new tokens."""
    from cgeval.models.factory import build_adapter
    from cgeval.models.tiny import tiny_model_dir

    return {name: build_adapter(name=name, path=str(tiny_model_dir(name, tiny_cache)), max_new_tokens=8)
            for name in TINY}


@pytest.fixture(params=TINY)
def tiny(request, tiny_adapters):
    return tiny_adapters[request.param]


@pytest.fixture(scope="session")
def sample_items() -> list[Item]:
    items, _ = load_medmat(SAMPLE_ROOT, io_workers=1)
    return items


@pytest.fixture(scope="session")
def mixed_batch(sample_items, tmp_path_factory) -> list[Item]:
    """2- and 4-option items (and a 3-option one) whose images have very different sizes and aspect ratios."""
    from PIL import Image

    by_n: dict[int, list[Item]] = {}
    for it in sample_items:
        by_n.setdefault(it.n_options, []).append(it)
    picked = by_n[4][:2] + by_n[2][:2] + by_n[3][:1] + by_n[4][2:3]
    folder = tmp_path_factory.mktemp("mixed_images")
    sizes = [(40, 150), (120, 120), (200, 64), (33, 33), (90, 60), (64, 48)]
    out = []
    for i, (it, size) in enumerate(zip(picked, sizes)):
        path = folder / f"img{i}.png"
        with Image.open(it.image_path) as im:
            im.convert("L" if i % 2 else "RGB").resize(size).save(path)
        out.append(dataclasses.replace(it, image_path=str(path)))
    return out
