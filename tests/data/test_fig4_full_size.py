"""Fig. 4 at the paper's size: 15,000-item arms from full-size subsets, where the 3,000-per-subset cap leaves
too few (w/o Modality for target 03 CT-Lung-COVID is X-ray-Lung 28 + 30: 6,000 capped items)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest

from cgeval.data.loader import load_medmat
from cgeval.data.sample import INSTRUCTION
from cgeval.data.splits import InsufficientTrainingData, SplitSettings, TargetSpec, build_split, image_key

REPO = Path(__file__).resolve().parents[2]
# subset -> (data-no, image folder, labels, images, records per image (question templates))
SUBSETS = {
    3: ("3", "SARS-COV-2_Ct-Scan", ("COVID", "Non-COVID"), 200, 2),
    28: ("55", "Chest_X-ray_PD", ("COVID-19", "Normal", "Pneumonia"), 4_200, 2),
    30: ("59", "Tuberculosis_Chest_X-Ray", ("Tuberculosis", "Normal"), 4_200, 2),
}
TEMPLATES = ("What does this image show?", "Which finding is present in this image?")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png(n: int) -> bytes:
    """A valid 4 x 1 grey PNG whose pixels spell ``n``: every image distinct by content, written without Pillow."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 1, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\x00" + struct.pack(">I", n))) + \
        _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def full_size_root(tmp_path_factory) -> Path:
    """Subsets 03, 28 and 30 in the published layout, 28 and 30 with 8,400 records each."""
    root = tmp_path_factory.mktemp("medmat_full")
    (root / "Aggregated_Subsets").mkdir()
    serial = 0
    for subset, (data_no, folder, labels, n_images, per_image) in SUBSETS.items():
        records = []
        for i in range(n_images):
            label = labels[i % len(labels)]
            rel = f"med-mat/{folder}/{label}/{label}- ({i}).png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(tiny_png(serial))
            serial += 1
            for t in range(per_image):
                options = list(labels)
                gold = options.index(label)
                text = "\n".join([TEMPLATES[t], *(f"{'ABCD'[k]}: {o}" for k, o in enumerate(options)), INSTRUCTION])
                records.append({"id": len(records), "caption": label, "image": rel, "Question": TEMPLATES[t],
                                "Answer": label, "Question-choice": text, "Answer-choice": "ABCD"[gold],
                                "data-no": data_no})
        (root / "Aggregated_Subsets" / f"Subset--{subset:02d}-train.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="module")
def items(full_size_root):
    items, report = load_medmat(full_size_root, verify_images=False, max_image_pixels=None)
    assert report.n_skipped == 0 and len(items) == 400 + 8_400 + 8_400
    return items


WO_MODALITY = TargetSpec("fig4_target03", (3,), ("wo_modality",), total_cap=15_000)


def test_a_fig4_arm_the_cap_cannot_fill_is_drawn_from_the_full_training_sides(items):
    split = build_split(items, WO_MODALITY, SplitSettings())  # the paper's protocol: 3,000 a subset, 15,000 an arm
    arm = split.arms["wo_modality"]
    assert len(arm) == 15_000 and len({it.item_id for it in arm}) == 15_000
    by_subset = Counter(it.subset for it in arm)
    assert by_subset == {28: 7_500, 30: 7_500}  # as even as the two training sides allow
    for n in (28, 30):
        s = split.subsets[n]
        assert len(s.train) == 3_000 and not s.test_only
        assert {it.item_id for it in s.train} <= {it.item_id for it in arm}  # every capped item, then the rest
        assert s.train_pool == len(s.train) + len(s.beyond_cap) >= 7_500
        labels = Counter(it.answer_text for it in arm if it.subset == n)
        assert max(labels.values()) - min(labels.values()) <= 1, labels  # label-balanced within each subset
    # Nothing on any test side trains (by content), and the draw is recorded.
    keys: dict[str, str] = {}
    assert not split.tested_images & {image_key(it, "content", keys) for it in arm}
    (beyond,) = [a for a in split.manifest["adjustments"] if a["kind"] == "arm_beyond_subset_cap"]
    assert beyond["count"] == 9_000 and beyond["by_subset"] == {"28": 4_500, "30": 4_500}
    assert split.manifest["arms"]["wo_modality"]["by_subset"] == {"28": 7_500, "30": 7_500}


def test_capped_sets_only_or_an_arm_larger_than_the_full_sides_are_named_errors(items):
    with pytest.raises(InsufficientTrainingData, match="hold 6000 .after caps"):
        build_split(items, WO_MODALITY, SplitSettings(fig4_beyond_cap=False))
    with pytest.raises(InsufficientTrainingData, match="full training sides"):
        build_split(items, TargetSpec("t", (3,), ("wo_modality",), total_cap=20_000), SplitSettings())
    short = build_split(items, TargetSpec("t", (3,), ("wo_modality",), total_cap=20_000), SplitSettings(allow_short=True))
    available = sum(short.subsets[n].train_pool for n in (28, 30))
    assert len(short.arms["wo_modality"]) == available < 20_000
    assert {"arm_beyond_subset_cap", "arm_short_of_size"} <= {a["kind"] for a in short.manifest["adjustments"]}


def test_cli_builds_the_15000_item_arm_with_the_default_settings(full_size_root, tmp_path):
    out = tmp_path / "fig4"
    run = subprocess.run(
        [sys.executable, "-m", "cgeval.split", "experiment=fig4_target03", "experiment.arms=[wo_modality]",
         f"data.root={full_size_root}", "data.verify_images=false", f"split.out={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "wo_modality=15000" in run.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["fig4_beyond_cap"] is True and manifest["settings"]["train_cap_per_subset"] == 3000
    assert len((out / "swift" / "fig4_target03__wo_modality.jsonl").read_text().splitlines()) == 15_000
