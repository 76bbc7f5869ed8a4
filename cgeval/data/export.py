"""Write a split's training arms in the formats fine-tuning tools read, plus the target's test list.

Formats (checked against the tools' dataset docs):
- ``llamafactory``: LLaMA-Factory's ShareGPT-style multimodal JSON: a list of
  ``{"messages": [{"role": "user", "content": "<image>..."}, {"role": "assistant", "content": "B"}],
  "images": ["/abs/path.png"]}``, and a ``dataset_info.json`` entry with ``"formatting": "sharegpt"``,
  ``columns`` {messages, images} and role/content ``tags``. Copy the entry into LLaMA-Factory's
  ``data/dataset_info.json`` (or point ``dataset_dir`` at this folder) and train with ``dataset: <name>``.
- ``swift``: ms-swift's standard JSONL, one ``{"messages": [...], "images": [...]}`` per line; pass the file to
  ``swift sft --dataset <path>``.
Each user turn holds exactly one ``<image>`` tag for its one image (both tools check the counts match), then the
record's own ``Question-choice`` text; the assistant answers with the option letter, as the evaluation asks.

The trained prompt and the evaluated prompt. Evaluation gives the model's chat template an image and the record's
``Question-choice`` text (`cgeval.models.prompt.chat_messages`), and the template decides what sits between the
two. In training, the tool replaces the ``<image>`` tag with its image placeholder and keeps the text after it
verbatim. ``image_separator`` is what the exported user turn puts after the tag: ``newline`` (``<image>\n`` +
question, the default) or ``none`` (``<image>`` + question). For the trained user turn to be the evaluated one,
choose what the model's chat template puts after the image:

- ``newline``: llava_v1_5_7b and tiny_llava (``USER: <image>\n...``), llava_med and huatuogpt_vision_7b (the
  templates in their configs), internvl3_8b (``<IMG_CONTEXT>\n`` then the question).
- ``none``: qwen2_vl_7b, qwen2_5_vl_7b, lingshu_7b and tiny_qwen2_vl (``<|vision_start|><|image_pad|><|vision_end|>``
  then the question), llama3_2_vision_11b (``<|image|>`` then the question), medgemma_4b (``<start_of_image>`` then
  the question).

That holds for LLaMA-Factory, whose multimodal plugins replace the tag with image tokens only. ms-swift's templates
may write more than the image marker in its place (its ``llava1_5_hf`` template writes ``<image>\n``, so LLaVA-1.5
in ms-swift needs ``none``): check ``replace_tag`` of the template your ms-swift version uses. The tests render
every config's template (the checkpoints' published ones, `cgeval.models.chat_templates`, and the configs' own)
and check these values against it. Only the user turn is ours: the system prompt and the role markers come from the tool's
``template`` (LLaMA-Factory) or model type (ms-swift), which should match the model's chat template. The manifest
records ``image_separator``.

Exporting into a folder that holds an earlier export of the same experiment replaces it: arm files and
``dataset_info.json`` entries of that experiment which this split does not write are removed, so the folder
ends up as a fresh export would leave it and no tool trains on a stale arm. Other experiments' entries stay.

Image paths are absolute by default, so the files work from any working directory; ``image_paths="relative"``
writes them as in the Med-MAT records, relative to data.root, and each tool must be told that folder: LLaMA-Factory's
``media_dir: <data.root>``, and ms-swift's ``ROOT_IMAGE_DIR=<data.root>`` environment variable (without it ms-swift
cannot find a relative image and, unless run with strict checking, drops the row: an arm that trains on nothing).
The manifest's ``image_root`` names the folder; the split command prints both settings.

With a general-domain mix-in (`cgeval.data.mixin`, ``split.mix_in``), its records are added to every training
arm's files in both formats (the same records in each arm), shuffled in with the arm's items (seeded per arm),
and never to the test list. Their image paths are always absolute: they do not live under data.root (an
absolute path stays absolute under LLaMA-Factory's ``media_dir``). The manifest's ``mix_in`` block records the
file, its sha256, the seed, the counts and the skipped records by reason; each arm records ``n_mix_in`` and
``n_written`` beside its own ``n`` (the Med-MAT items, which Related and Baseline+ hold in equal numbers).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from .mixin import MixIn
from .records import Item
from .splits import ARMS, Split

FORMATS = ("llamafactory", "swift")
IMAGE_TAG = "<image>"
# What the user turn puts between the image tag and the question (see the module docstring's table).
IMAGE_SEPARATORS = {"newline": "\n", "none": ""}


class ExportError(ValueError):
    pass


def _separator(image_separator: str) -> str:
    if image_separator not in IMAGE_SEPARATORS:
        raise ExportError(f"image_separator must be one of {sorted(IMAGE_SEPARATORS)}, got {image_separator!r}")
    return IMAGE_SEPARATORS[image_separator]


def item_messages(item: Item, image_separator: str = "newline") -> list[dict]:
    return [
        {"role": "user", "content": f"{IMAGE_TAG}{_separator(image_separator)}{item.prompt}"},
        {"role": "assistant", "content": item.gold},
    ]


def item_record(item: Item, image_paths: str = "absolute", image_separator: str = "newline") -> dict:
    if image_paths not in ("absolute", "relative"):
        raise ExportError(f"image_paths must be 'absolute' or 'relative', got {image_paths!r}")
    if IMAGE_TAG in item.prompt:
        raise ExportError(f"{item.item_id}: the question text itself contains {IMAGE_TAG!r}")
    # Mix-in images are not under data.root: absolute in either mode.
    image = item.image_path if image_paths == "absolute" or item.meta.get("mix_in") else item.image
    return {"messages": item_messages(item, image_separator), "images": [image]}


def llamafactory_entry(file_name: str) -> dict:
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }


def write_llamafactory(items: list[Item], out_dir: Path, name: str, image_paths: str = "absolute",
                       image_separator: str = "newline") -> Path:
    """Write ``<name>.json`` and add (or replace) its entry in ``dataset_info.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    records = [item_record(it, image_paths, image_separator) for it in items]
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    info_path = out_dir / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info[name] = llamafactory_entry(path.name)
    info_path.write_text(json.dumps(dict(sorted(info.items())), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def write_swift(items: list[Item], out_dir: Path, name: str, image_paths: str = "absolute",
                image_separator: str = "newline") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(item_record(it, image_paths, image_separator), ensure_ascii=False) + "\n")
    return path


_FORMAT_FILES = {"llamafactory": ("llamafactory", ".json"), "swift": ("swift", ".jsonl")}


def remove_stale_arms(out: Path, experiment: str, written: dict[str, set[str]]) -> list[str]:
    """Delete this experiment's arm files (and LLaMA-Factory entries) that ``written`` (format -> dataset
    names) does not list; returns the removed paths relative to ``out``."""
    removed = []
    candidates = {f"{experiment}__{arm}" for arm in ARMS}
    for fmt, (folder, suffix) in _FORMAT_FILES.items():
        for name in sorted(candidates - written.get(fmt, set())):
            path = out / folder / f"{name}{suffix}"
            if path.is_file():
                path.unlink()
                removed.append(str(path.relative_to(out)))
    info_path = out / "llamafactory" / "dataset_info.json"
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        stale = sorted(k for k in info if k in candidates - written.get("llamafactory", set()))
        for k in stale:
            del info[k]
        if not info:
            info_path.unlink()
        elif stale:
            info_path.write_text(json.dumps(dict(sorted(info.items())), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for fmt, (folder, _) in _FORMAT_FILES.items():
        if (out / folder).is_dir() and not any((out / folder).iterdir()):
            (out / folder).rmdir()
    return removed


def data_root(split: Split) -> str | None:
    """The folder the split's relative image paths are under (data.root), from its items' two paths."""
    for items in (split.test, *split.arms.values(), *(s.train for s in split.subsets.values())):
        for it in items:
            if it.image_path.endswith(it.image) and len(it.image_path) > len(it.image):
                return it.image_path[: -len(it.image)].rstrip("/\\") or "/"
    return None


def with_mix_in(items: list[Item], mix_in: MixIn | None, seed: int, arm: str) -> list[Item]:
    """The arm's items plus the mix-in's, shuffled together (seeded per arm), so any prefix samples both."""
    if mix_in is None or not mix_in.items:
        return items
    combined = [*items, *mix_in.items]
    random.Random(f"{seed}/mix_in_order/{arm}").shuffle(combined)
    return combined


def target_test_rows(items: list[Item]) -> list[dict]:
    """The target's test items, enough to restrict an evaluation to them (ids, images, prompt, gold)."""
    return [
        {
            "item_id": it.item_id,
            "subset": it.subset,
            "image": it.image,
            "prompt": it.prompt,
            "options": dict(it.options),
            "gold": it.gold,
            "answer_text": it.answer_text,
        }
        for it in items
    ]


def export_split(
    split: Split,
    out: str | Path,
    formats: list[str] | tuple[str, ...] = FORMATS,
    image_paths: str = "absolute",
    extra_manifest: dict | None = None,
    mix_in: MixIn | None = None,
    image_separator: str = "newline",
) -> dict:
    """Write every arm in every format (plus the mix-in's records, when given), the target's test list and
    ``manifest.json``; returns the manifest."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export formats {unknown}; valid: {', '.join(FORMATS)}")
    _separator(image_separator)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_arms(
        out, split.target.name, {f: {f"{split.target.name}__{arm}" for arm in split.arms} for f in formats}
    )
    files: dict[str, dict[str, str]] = {}
    arms_info = copy.deepcopy(split.manifest["arms"])
    for arm, arm_items in split.arms.items():
        items = with_mix_in(arm_items, mix_in, split.settings.seed, arm)
        arms_info[arm]["n_mix_in"] = len(items) - len(arm_items)
        arms_info[arm]["n_written"] = len(items)
        name = f"{split.target.name}__{arm}"
        files[arm] = {}
        if "llamafactory" in formats:
            files[arm]["llamafactory"] = str(
                write_llamafactory(items, out / "llamafactory", name, image_paths, image_separator).relative_to(out))
        if "swift" in formats:
            files[arm]["swift"] = str(
                write_swift(items, out / "swift", name, image_paths, image_separator).relative_to(out))
    test_path = out / "test" / f"{split.target.name}__test.jsonl"
    test_path.parent.mkdir(parents=True, exist_ok=True)
    with test_path.open("w", encoding="utf-8") as f:
        for row in target_test_rows(split.test):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    mix_info = None
    if mix_in is not None:
        mix_info = {**mix_in.manifest, "arms": {arm: info["n_mix_in"] for arm, info in arms_info.items()}}
    manifest = {
        **split.manifest,
        "arms": arms_info,
        "adjustments": [*split.manifest["adjustments"], *(mix_in.adjustments if mix_in else [])],
        "mix_in": mix_info,
        "files": {"arms": files, "test": str(test_path.relative_to(out))},
        "image_paths": image_paths,
        # The folder relative image paths are under: LLaMA-Factory's media_dir, ms-swift's ROOT_IMAGE_DIR.
        "image_root": data_root(split) if image_paths == "relative" else None,
        "image_separator": image_separator,
        **(extra_manifest or {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return manifest
