"""Does the CPU keep the device busy? Image preprocessing (slow vs fast processors) and its overlap with inference.

1. Preprocessing images/s per architecture family, PIL ("slow") vs torch ("fast") image processor, on generated
   images at real sizes (512 x 512, 1024 x 1024, 2048 x 2500; PNG and JPEG). The processors are the real
   checkpoints' (their settings as the offline replicas of `cgeval.models.tiny_hub` carry them; Mllama's tile
   back at its real 560 px), and the max abs difference of their pixel_values is printed.
2. End to end through the real hf adapter (a Qwen2-VL replica: its real processor and chat template) and the
   run's own batch loop, with a stand-in forward that sleeps a fixed time per batch (by default the measured
   preparation time of a batch, where overlap matters most; ``--forward-ms``) and answers a letter that depends
   on each row's tokens and the batch's pixels: questions/s sequential vs pipelined, and whether the letters
   are the same. Also the padding fraction of those batches in the previous order (prompt length only) and in
   the adapter's grouped order (image size, then prompt length).

    python experiments/bench_pipeline.py [--items 96] [--batch-size 8] [--forward-ms MS] [--family qwen2_vl]

The last line is ``pipelined / sequential: X.XX x (ideal 2.00 x)``. Target on 2 cores: >= 1.6 x, same letters.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cgeval.data.loader import load_medmat
from cgeval.data.records import LETTERS
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models.factory import build_adapter
from cgeval.models.media import load_rgb
from cgeval.models.pipeline import prefetched
from cgeval.models.tiny import ensure_replica
from cgeval.run import _Errors, _score_isolating, batches
from cgeval.config import ScoringConfig

SIZES = [(512, 512), (1024, 1024), (2048, 2500)]
FORMATS = ["png", "jpg"]
# family -> (hub id of the replica whose processor settings are used, overrides back to the real checkpoint's)
FAMILIES = {
    "Qwen2-VL / Qwen2.5-VL": ("Qwen/Qwen2-VL-7B-Instruct", {}),
    "Gemma 3 (MedGemma)": ("google/medgemma-4b-it", {}),
    "Mllama (Llama 3.2 Vision)": ("meta-llama/Llama-3.2-11B-Vision-Instruct", {"size": {"height": 560, "width": 560}}),
    "InternVL3": ("OpenGVLab/InternVL3-8B-hf", {}),
    "LLaVA 1.5 / LLaVA-Med": ("llava-hf/llava-1.5-7b-hf", {}),
}
E2E_FAMILIES = {"qwen2_vl": "Qwen/Qwen2-VL-7B-Instruct", "internvl": "OpenGVLab/InternVL3-8B-hf",
                "gemma3": "google/medgemma-4b-it", "llava": "llava-hf/llava-1.5-7b-hf"}


def make_images(folder: Path) -> list[Path]:
    """A grey X-ray-like and a colour fundus-like image per size (smooth structure plus sensor noise), each saved
    as PNG and as JPEG."""
    rng = np.random.default_rng(0)
    paths = []
    for w, h in SIZES:
        y, x = np.mgrid[0:h, 0:w]
        base = 127 + 90 * np.sin(x / 41.0) * np.cos(y / 57.0) + 30 * np.sin((x + y) / 300.0)
        for mode in ("L", "RGB"):
            noise = rng.normal(0, 10, size=(h, w, 3) if mode == "RGB" else (h, w))
            px = np.clip((base[..., None] * [1.0, 0.7, 0.45] if mode == "RGB" else base) + noise, 0, 255)
            image = Image.fromarray(px.astype(np.uint8), mode=mode)
            for fmt in FORMATS:
                path = folder / f"{w}x{h}_{mode}.{fmt}"
                image.save(path, quality=92) if fmt == "jpg" else image.save(path)
                paths.append(path)
    return paths


def preprocessing(paths: list[Path], repeats: int) -> None:
    import torch
    import transformers

    start = time.perf_counter()
    images = [load_rgb(str(p)) for p in paths]
    decode = len(paths) / (time.perf_counter() - start)
    print(f"decoding (PIL, to RGB): {decode:6.1f} images/s over {len(paths)} images "
          f"({', '.join(f'{w}x{h}' for w, h in SIZES)}; PNG and JPEG)")
    print(f"{'family':28s} {'slow img/s':>10s} {'fast img/s':>10s} {'fast/slow':>9s} {'max |diff|':>10s}  classes")
    for family, (hub_id, overrides) in FAMILIES.items():
        folder = ensure_replica(hub_id)
        rates, outs, names = {}, {}, {}
        for backend in ("pil", "torchvision"):
            ip = transformers.AutoImageProcessor.from_pretrained(folder, backend=backend, **overrides)
            names[backend] = type(ip).__name__
            ip([images[0]], return_tensors="pt")  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                outs[backend] = [ip([im], return_tensors="pt")["pixel_values"] for im in images]
            rates[backend] = repeats * len(images) / (time.perf_counter() - start)
        diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(outs["pil"], outs["torchvision"]))
        print(f"{family:28s} {rates['pil']:10.1f} {rates['torchvision']:10.1f} "
              f"{rates['torchvision'] / rates['pil']:8.2f}x {diff:10.4f}  {names['pil']} / {names['torchvision']}")
        del outs


class SleepingForward:
    """Stands in for ``model.generate``: sleeps a fixed time per batch, then answers each row with a letter that
    depends on that row's tokens and on the batch's pixels (so mixed-up inputs would show as other letters).
    Records each row's real length (its attention mask), for the padding figures."""

    def __init__(self, seconds: float, letter_ids: dict[str, tuple[int, ...]]):
        self.seconds = seconds
        self.letters = [letter_ids[l][0] for l in LETTERS[:4]]
        self.lengths: list[list[int]] = []

    def __call__(self, input_ids, attention_mask, pixel_values=None, **_):
        import torch

        time.sleep(self.seconds)
        mask = attention_mask.bool()
        self.lengths.append(mask.sum(dim=1).tolist())
        # A strided sample of the batch's pixels: cheap next to the sleep, and different for other images.
        pixels = 0 if pixel_values is None else int(pixel_values.flatten()[::997].float().abs().sum().item() * 1000)
        picks = []
        for ids, m in zip(input_ids, mask):
            real = ids[m].long()
            h = int((real * torch.arange(1, real.numel() + 1)).sum().item()) + pixels
            picks.append(self.letters[h % len(self.letters)])
        return torch.cat([input_ids, torch.tensor(picks, dtype=input_ids.dtype).unsqueeze(1)], dim=1)


def padding_fraction(lengths: dict[str, int], order: list[str], batch_size: int) -> float:
    pad = total = 0
    for start in range(0, len(order), batch_size):
        chunk = [lengths[i] for i in order[start:start + batch_size]]
        pad += max(chunk) * len(chunk) - sum(chunk)
        total += max(chunk) * len(chunk)
    return pad / total


def loop(adapter, items, batch_size: int) -> tuple[float, dict[str, str]]:
    """The run's own batch loop (`cgeval.run`): prefetched batches, each scored in isolation."""
    errors = _Errors()
    replies: dict[str, str] = {}
    start = time.perf_counter()
    for batch, prepared in prefetched(adapter, batches(items, batch_size)):
        for item, scored in _score_isolating(adapter, batch, ScoringConfig(mode="generate"), errors, prepared):
            replies[item.item_id] = scored["response"]
    elapsed = time.perf_counter() - start
    if errors.counts:
        raise RuntimeError(f"benchmark items failed: {errors.to_dict()}")
    return elapsed, replies


def end_to_end(paths: list[Path], args) -> None:
    sample, _ = load_medmat(SAMPLE_ROOT, io_workers=1)
    items = [dataclasses.replace(sample[(i * 7) % len(sample)], item_id=f"bench-{i:04d}",
                                 image_path=str(paths[i % len(paths)])) for i in range(args.items)]
    adapter = build_adapter(name=f"bench_{args.family}", path=str(ensure_replica(E2E_FAMILIES[args.family])),
                            max_new_tokens=1, tiny_replica=True)
    keys = adapter.order_keys(items)
    grouped = [it for _, _, it in sorted(((k, len(it.prompt), it.item_id), i, it) for i, (k, it) in
                                         enumerate(zip(keys, items)))]
    before = sorted(items, key=lambda it: (len(it.prompt), it.item_id))  # the order runs had before grouping

    # A batch's preparation time, measured on its own (same batches as the runs below).
    adapter.prepare(grouped[:args.batch_size])  # warm-up
    start = time.perf_counter()
    for batch in batches(grouped, args.batch_size):
        adapter.prepare(batch)
    n_batches = -(-len(grouped) // args.batch_size)
    prep = (time.perf_counter() - start) / n_batches
    forward = prep if args.forward_ms is None else args.forward_ms / 1000
    print(f"\nend to end: {len(items)} questions, batch size {args.batch_size} ({n_batches} batches), {args.family} "
          f"replica through the hf adapter, image processor {adapter.describe()['image_processor']['class']}")
    print(f"preparation (decode + processor + tokenizer) {1000 * prep:.0f} ms a batch; stand-in forward "
          f"{1000 * forward:.0f} ms a batch ({'--forward-ms' if args.forward_ms is not None else 'equal to it'})")

    stand_in = SleepingForward(forward, adapter.letter_ids)
    adapter.model.generate = stand_in
    adapter.prefetch_batches, adapter.preprocess_workers = 0, 1
    seq_time, seq = loop(adapter, grouped, args.batch_size)
    lengths = {}
    for batch, lens in zip(batches(grouped, args.batch_size), stand_in.lengths):
        lengths.update({it.item_id: n for it, n in zip(batch, lens)})
    adapter.prefetch_batches, adapter.preprocess_workers = args.prefetch, args.workers
    pipe_time, pipe = loop(adapter, grouped, args.batch_size)

    same = seq == pipe
    letters = "".join(seq[it.item_id] for it in items[:24])
    print(f"padding fraction of the batches: {padding_fraction(lengths, [it.item_id for it in before], args.batch_size):.3f} "
          f"ordered by prompt length (before) -> {padding_fraction(lengths, [it.item_id for it in grouped], args.batch_size):.3f} "
          f"grouped by image size, then prompt length (after)")
    print(f"sequential: {len(items) / seq_time:6.2f} questions/s ({seq_time:.2f} s; preparation took "
          f"{1000 * (seq_time / n_batches - forward):.0f} ms a batch in it, against {1000 * prep:.0f} ms measured)")
    print(f"pipelined : {len(items) / pipe_time:6.2f} questions/s ({pipe_time:.2f} s; {args.prefetch} batch(es) "
          f"ahead, {args.workers} worker(s))")
    print(f"same letters: {'yes' if same else 'NO'} ({len(seq)} answers; first ones {letters})")
    ideal = 2 * n_batches / (n_batches + 1) if abs(forward - prep) < 1e-9 else None
    if ideal is not None:
        print(f"(with {n_batches} batches the first preparation cannot overlap: the bound is {ideal:.2f} x)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"pipelined / sequential: {seq_time / pipe_time:.2f} x (ideal 2.00 x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--forward-ms", type=float, default=None,
                        help="stand-in forward time a batch (default: the measured preparation time of a batch)")
    parser.add_argument("--family", choices=sorted(E2E_FAMILIES), default="qwen2_vl")
    parser.add_argument("--prefetch", type=int, default=1, help="batches prepared ahead in the pipelined run")
    parser.add_argument("--workers", type=int, default=1, help="preparation threads in the pipelined run")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the images for the processor rates")
    parser.add_argument("--skip-processors", action="store_true", help="only the end-to-end part")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp))
        if not args.skip_processors:
            preprocessing(paths, args.repeats)
        end_to_end(paths, args)


if __name__ == "__main__":
    main()
