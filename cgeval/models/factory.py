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


def build_adapter(backend: str = "hf", backends: list[str] | None = None, tiny: bool = False,
                  **cfg: Any) -> ModelAdapter:
    """Build the adapter for ``backend`` from a model config's keys (see the module docstring).

    ``tiny=True`` (``model.tiny=true``) swaps the hub weights for a tiny random-weight replica of the same
    checkpoint (`cgeval.models.tiny_hub`), built locally on first use, and loads it through the same adapter
    and ``from_pretrained`` path with every other key of the config unchanged."""
    if backend not in BACKENDS:
        raise UnsupportedBackend(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backends is not None and backend not in backends:
        raise UnsupportedBackend(
            f"model {cfg.get('name')!r} lists back ends {list(backends)}; {backend!r} is not one of them"
        )
    if tiny:
        cfg = _with_tiny_replica(backend, cfg)
    sections = {b: cfg.pop(b, None) or {} for b in BACKENDS}
    kwargs = {**cfg, **sections[backend]}
    if backends is not None:
        kwargs["backends"] = list(backends)
    return _adapter_class(backend)(**kwargs)


def _with_tiny_replica(backend: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from .tiny import ensure_replica

    name = cfg.get("name")
    if backend == "openai":
        raise UnsupportedBackend(f"model {name!r}: model.tiny=true builds a local replica for an in-process back "
                                 "end (hf or vllm); a server serves its own weights")
    if cfg.get("path") is not None:
        raise ValueError(f"model {name!r}: model.tiny=true and model.path both set; the tiny replica is a local "
                         "folder of its own, so unset one of them")
    if not cfg.get("model_id"):
        raise ValueError(f"model {name!r}: model.tiny=true needs the config's hub model_id to know which "
                         "checkpoint to replicate")
    return {**cfg, "path": str(ensure_replica(cfg["model_id"])), "tiny_replica": True}
