"""Before a model is loaded by hub id: can the Hugging Face hub be reached at all?

Without a network, ``from_pretrained`` spends minutes in huggingface_hub's retries (once per file it looks for)
before it fails. One short request to the hub's endpoint (``HF_ENDPOINT``, through huggingface_hub's own HTTP
client, so proxies and certificates are the ones the download would use) tells in seconds; when it gets no
answer the load stops with a `ModelLoadError` that names the two ways out: ``model.path`` (local weights) and
``HF_HUB_OFFLINE=1`` (the local cache, where the model is). In offline mode nothing is asked.
"""

from __future__ import annotations

from pathlib import Path

HUB_PROBE_TIMEOUT_S = 5.0  # connect/read timeout of the one probe request


def hub_offline() -> bool:
    """HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1), as huggingface_hub reads it."""
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # an older huggingface_hub
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_unreachable_reason(endpoint: str | None = None, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the endpoint answers an HTTP request (any status), else why it did not."""
    from huggingface_hub.utils import get_session

    url = endpoint or hub_endpoint()
    try:
        get_session().head(url, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - whatever the HTTP client raises, the hub gave no answer
        return f"{type(e).__name__}: {e}"
    return None


def in_local_cache(model_id: str, revision: str | None = None) -> bool:
    """Whether the model's config.json is in the local Hugging Face cache (at ``revision``, default main)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    return isinstance(found, str)


def ensure_hub_reachable(name: str, model_id: str, revision: str | None = None) -> None:
    """Raise `ModelLoadError` within seconds when ``model_id`` would be fetched from a hub that cannot be reached."""
    if hub_offline() or Path(model_id).expanduser().is_dir():  # a local folder given as the id: no hub
        return
    why = hub_unreachable_reason()
    if why is None:
        return
    from .hf import ModelLoadError

    if in_local_cache(model_id, revision):
        way_out = ("It is in the local Hugging Face cache: set HF_HUB_OFFLINE=1 to load it from there "
                   "(or model.path=/folder/with/the/weights)")
    else:
        way_out = ("Load a local copy with model.path=/folder/with/the/weights, or put the model in the local "
                   "Hugging Face cache and set HF_HUB_OFFLINE=1")
    raise ModelLoadError(
        f"model {name!r}: hub id {model_id} (revision {revision or 'latest'}) needs the Hugging Face hub, and "
        f"{hub_endpoint()} cannot be reached ({why}). {way_out}."
    )
