"""The Hydra target of every real model config: one model config, the back end chosen by ``backend``.

``python -m cgeval model=qwen2_vl_7b`` runs transformers; ``model.backend=vllm`` runs the same model in vLLM.
A model config holds the keys every back end shares (name, model_id, revision, path, prompt, ...) at the top,
and options for one back end only under a section named after it (``hf: {...}``, ``vllm: {...}``,
``openai: {...}``); the chosen back end's section is merged into its constructor's arguments and the other
sections are dropped. Back-end modules are imported only when chosen, so a missing optional extra fails
with a message naming it, and only when it is asked for.
"""

from __future__ import annotations

from typing import Any

from .base import ModelAdapter

BACKENDS = ("hf", "vllm", "openai")


class UnsupportedBackend(ValueError):
    """The config asks for a back end this model (or cgeval) does not support."""


def _adapter_class(backend: str) -> type:
    if backend == "hf":
        from .hf import HFAdapter

        return HFAdapter
    if backend == "vllm":
        from .vllm_backend import VLLMAdapter

        return VLLMAdapter
    from .openai_api import OpenAIAdapter

    return OpenAIAdapter


def build_adapter(backend: str = "hf", backends: list[str] | None = None, **cfg: Any) -> ModelAdapter:
    """Build the adapter for ``backend`` from a model config's keys (see the module docstring)."""
    if backend not in BACKENDS:
        raise UnsupportedBackend(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backends is not None and backend not in backends:
        raise UnsupportedBackend(
            f"model {cfg.get('name')!r} lists back ends {list(backends)}; {backend!r} is not one of them"
        )
    sections = {b: cfg.pop(b, None) or {} for b in BACKENDS}
    kwargs = {**cfg, **sections[backend]}
    if backends is not None:
        kwargs["backends"] = list(backends)
    return _adapter_class(backend)(**kwargs)
