"""Benchmark: the same questions through each back end, printed as questions/s and ratios (not a timed test).

Rows, all on the same items (sorted by prompt length, as batches should be):
  hf  batch 1, sampling, 256 new tokens   how the Med-MAT authors' group evaluates: the baseline
  hf  batch 1, greedy                      the harness's generation settings, one item at a time
  hf  batch B, greedy                      the harness's generation mode
  hf  batch B, likelihood                  one forward pass, option-letter log-probabilities
  vllm raw LLM.chat, greedy                vLLM by hand, the same messages and sampling parameters
  vllm adapter, greedy / likelihood        the harness's vLLM back end
The vLLM rows run only where vLLM is importable and a CUDA GPU is present; elsewhere they print why not.

Targets (issue 3): on the CPU with a tiny model, hf batched >= 4x hf batch 1 (same settings); on a GPU, the vllm
adapter >= 0.85x raw vLLM, and likelihood mode >= 5x the batch-1 sampling baseline.

    python experiments/bench_backends.py                                  # tiny_llava, CPU, embedded sample
                                                                          # (~4 min on 2 shared cores, mostly the baseline)
    python experiments/bench_backends.py --model tiny_qwen2_vl --n 64 --batch-size 32
    python experiments/bench_backends.py --model qwen2_vl_7b --data-root /data/Med-MAT --n 512 --batch-size 32
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cgeval.data.loader import load_medmat
from cgeval.data.records import Item
from cgeval.config import CONF_DIR as CONF
from cgeval.data.sample import SAMPLE_ROOT


def model_config(name: str, overrides: Sequence[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={name}", *overrides])
    return cfg.model


def timed(fn: Callable[[list[Item]], list], items: list[Item], batch_size: int) -> float:
    """Questions per second of ``fn`` over ``items`` in batches of ``batch_size`` (after one warm-up batch)."""
    fn(items[: min(batch_size, 2)])
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        out = fn(items[i : i + batch_size])
        assert len(out) == len(items[i : i + batch_size])
    return len(items) / (time.perf_counter() - start)


def vllm_unavailable() -> str | None:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError as e:
        return f"{e.name or e} is not installed (pip install -e '.[vllm]')"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


def hf_rows(cfg, items: list[Item], batch_size: int, baseline_tokens: int) -> list[tuple[str, float | None, str]]:
    adapter = instantiate(cfg)
    n_tok = adapter.max_new_tokens
    rows = []
    # The authors' protocol: one item at a time, sampling, 256 new tokens (the adapter's public settings).
    adapter.do_sample, adapter.max_new_tokens = True, baseline_tokens
    rows.append((f"hf  batch 1, sampling, {baseline_tokens} new tokens", timed(adapter.generate, items, 1), "baseline"))
    adapter.do_sample, adapter.max_new_tokens = False, n_tok
    rows.append((f"hf  batch 1, greedy, {n_tok} new tokens", timed(adapter.generate, items, 1), ""))
    rows.append((f"hf  batch {batch_size}, greedy, {n_tok} new tokens", timed(adapter.generate, items, batch_size), ""))
    rows.append((f"hf  batch {batch_size}, likelihood", timed(adapter.option_logprobs, items, batch_size), ""))
    del adapter
    gc.collect()
    return rows


def vllm_rows(cfg, items: list[Item], batch_size: int) -> list[tuple[str, float | None, str]]:
    names = ["vllm raw LLM.chat, greedy", "vllm adapter, greedy", "vllm adapter, likelihood"]
    why = vllm_unavailable()
    if why is None and "vllm" not in cfg.backends:
        why = f"model {cfg.name} does not list the vllm back end"
    if why is not None:
        return [(name, None, f"skipped: {why}") for name in names]

    import vllm

    from cgeval.models.media import load_item_images
    from cgeval.models.prompt import PromptTemplate
    from cgeval.models.vllm_backend import generation_params, vllm_messages

    c = OmegaConf.to_container(cfg, resolve=True)
    section = c.get("vllm") or {}
    source = c.get("path") or c["model_id"]
    llm = vllm.LLM(model=source, revision=None if c.get("path") else c.get("revision"),
                   trust_remote_code=bool(c.get("trust_remote_code")), max_model_len=section.get("max_model_len", 4096),
                   limit_mm_per_prompt={"image": 1}, enable_prefix_caching=True,
                   tensor_parallel_size=section.get("tensor_parallel_size", 1))
    params = vllm.SamplingParams(**generation_params(c.get("max_new_tokens", 16), c.get("seed", 0)))
    template = PromptTemplate(**c["prompt"]) if c.get("prompt") else PromptTemplate()

    def raw(batch: list[Item]) -> list:
        images = load_item_images(batch, bool(c.get("pad_to_square")))
        convs = [vllm_messages(it, template, im) for it, im in zip(batch, images)]
        return llm.chat(convs, params, chat_template=c.get("chat_template"), use_tqdm=False)

    rows = [(names[0], timed(raw, items, len(items)), "")]
    llm = None  # drop the raw engine (and its GPU memory) before the adapter builds its own
    gc.collect()
    adapter = instantiate(cfg, backend="vllm")
    rows.append((names[1], timed(adapter.generate, items, len(items)), ""))
    rows.append((names[2], timed(adapter.option_logprobs, items, len(items)), ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny_llava", help="a conf/model/ name (default tiny_llava)")
    ap.add_argument("--data-root", default=str(SAMPLE_ROOT))
    ap.add_argument("--n", type=int, default=32, help="questions per row")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--baseline-new-tokens", type=int, default=256)
    ap.add_argument("--no-vllm", action="store_true", help="skip the vLLM rows")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model.max_new_tokens=8")
    args = ap.parse_args()

    items, _ = load_medmat(args.data_root, io_workers=2)
    items = sorted(items[: args.n], key=lambda it: len(it.prompt))  # length-sorted batches pad little
    cfg = model_config(args.model, args.overrides)
    print(f"model {args.model} | {len(items)} questions from {args.data_root} | batch size {args.batch_size}")

    rows = hf_rows(cfg, items, args.batch_size, args.baseline_new_tokens)
    if args.no_vllm:
        rows += [("vllm rows", None, "skipped: --no-vllm")]
    else:
        rows += vllm_rows(cfg, items, args.batch_size)

    baseline = rows[0][1]
    print(f"\n{'':45s} {'questions/s':>12s} {'x baseline':>11s}")
    for name, qps, note in rows:
        if qps is None:
            print(f"{name:45s} {'-':>12s} {'-':>11s}  {note}")
        else:
            print(f"{name:45s} {qps:12.2f} {qps / baseline:10.2f}x  {note}")
    by = {name: qps for name, qps, _ in rows}
    hf1, hfb, lik = rows[1][1], rows[2][1], rows[3][1]
    print(f"\nhf batched / hf batch 1 (same settings): {hfb / hf1:.2f}x   (target >= 4x on CPU with a tiny model)")
    print(f"likelihood / batch-1 sampling baseline:  {lik / baseline:.2f}x   (target >= 5x on a GPU)")
    raw, ad = by.get("vllm raw LLM.chat, greedy"), by.get("vllm adapter, greedy")
    if raw and ad:
        print(f"vllm adapter / raw vLLM:                 {ad / raw:.2f}x   (target >= 0.85x)")


if __name__ == "__main__":
    main()
