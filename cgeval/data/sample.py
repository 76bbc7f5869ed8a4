"""The embedded sample: a small Med-MAT in the exact published layout and schema, generated deterministically.

``python -m cgeval.data.sample OUT`` writes it; the copy shipped in ``cgeval/data/sample_medmat`` is the
output of that command (a test regenerates it and compares). Images are small synthetic PNGs (mixed sizes,
grey-scale for CT / X-ray / MRI, colour otherwise) with a label-dependent pattern, so a model *could* learn
them; they are not medical images.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from .registry import SUBSETS

SAMPLE_ROOT = Path(__file__).parent / "sample_medmat"
INSTRUCTION = "Answer with the option's letter from the given choices directly."
ITEMS_PER_SUBSET = 10
SIZES = ((48, 48), (64, 48), (48, 64), (56, 56))
GREY = {"CT", "X-ray", "MRI"}

# subset: (datasets as (number, image folder under med-mat/), labels, two question templates)
SAMPLE_SUBSETS: dict[int, tuple[tuple[tuple[int, str], ...], tuple[str, ...], tuple[str, str]]] = {
    2: (
        ((2, "CT_Kindney_Dataset/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"),),
        ("Normal", "Cyst", "Tumor", "Stone"),
        ("Review this kidney CT scan and determine the possible condition it represents.",
         "What does this CT image of the kidney show?"),
    ),
    3: (
        ((3, "SARS-COV-2_Ct-Scan"), (4, "COVID-CT")),
        ("COVID", "Non-COVID"),
        ("Is there evidence of COVID-19 in this lung CT scan?",
         "Classify this chest CT slice."),
    ),
    4: (
        ((5, "Chest_CT-Scan"),),
        ("Adenocarcinoma", "Large cell carcinoma", "Squamous cell carcinoma", "Normal"),
        ("Which type of lung cancer, if any, does this CT scan show?",
         "Identify the finding in this lung CT image."),
    ),
    5: (
        ((7, "Head_CT"),),
        ("Hemorrhage", "No hemorrhage"),
        ("Does this head CT show an intracranial hemorrhage?",
         "Assess this brain CT scan."),
    ),
    6: (
        ((8, "CT_of_Brain"),),
        ("Cancer", "Normal", "Aneurysm"),
        ("What condition does this brain CT scan suggest?",
         "Determine the diagnosis from this CT of the brain."),
    ),
    8: (
        ((11, "PED-UFES-20"), (9, "MED-NODE")),
        ("Melanoma", "Nevus", "Basal cell carcinoma", "Actinic keratosis"),
        ("Which skin condition is shown in this dermoscopy image?",
         "Classify the lesion in this dermoscopic picture."),
    ),
    13: (
        ((20, "Kvasir"),),
        ("Polyps", "Ulcerative colitis", "Esophagitis", "Normal cecum"),
        ("What does this endoscopy image of the intestine show?",
         "Identify the finding in this endoscopic view."),
    ),
    14: (
        ((21, "ACRIMA"), (75, "Cataract_Dataset")),
        ("Glaucoma", "Cataract", "Normal", "Retina disease"),
        ("Which eye disease does this fundus photograph show?",
         "Diagnose the condition visible in this retinal image."),
    ),
    22: (
        ((45, "Brain_Tumor_MRI"),),
        ("Glioma", "Meningioma", "Pituitary", "No tumor"),
        ("What type of brain abnormality is visible in this MRI?",
         "Classify this brain MRI scan."),
    ),
    26: (
        ((51, "Fracture_detection"),),
        ("Fractured", "Not fractured"),
        ("Is there a fracture in this bone X-ray?",
         "Examine this X-ray and decide whether the bone is fractured."),
    ),
    28: (
        ((55, "Chest_X-ray_PD"), (56, "COVID-19_CHEST_X-RAY_DATABASE")),
        ("COVID-19", "Pneumonia", "Normal"),
        ("What does this chest X-ray indicate?",
         "Classify this lung X-ray image."),
    ),
    30: (
        ((59, "Tuberculosis_Chest_X-Ray_Database"),),
        ("Tuberculosis", "Normal"),
        ("Does this chest X-ray show signs of tuberculosis?",
         "Assess this lung radiograph."),
    ),
}


def _image(rng: np.random.Generator, size: tuple[int, int], label_index: int, grey: bool) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.normal(90, 25, size=(h, w))
    # A bright blob whose position depends on the label: a learnable signal.
    cx = w * (0.25 + 0.5 * ((label_index % 2)))
    cy = h * (0.25 + 0.5 * ((label_index // 2) % 2))
    blob = 120 * np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (min(w, h) / 6) ** 2)))
    img = np.clip(base + blob, 0, 255).astype(np.uint8)
    if grey:
        return Image.fromarray(img, mode="L")
    tint = rng.uniform(0.6, 1.0, size=3)
    rgb = np.stack([np.clip(img * t, 0, 255) for t in tint], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, mode="RGB")


def _question_choice(stem: str, options: list[str], style: str) -> str:
    sep = ": " if style == "colon" else ". "
    lines = [stem] + [f"{'ABCD'[i]}{sep}{opt}" for i, opt in enumerate(options)] + [INSTRUCTION]
    return "\n".join(lines)


def build_records(seed: int = 0) -> dict[int, list[dict]]:
    """Subset number -> records, with image paths (images are drawn by `write_sample`)."""
    out: dict[int, list[dict]] = {}
    for number, (datasets, labels, templates) in SAMPLE_SUBSETS.items():
        rng = random.Random(seed * 1000 + number)
        style = "colon" if number % 2 == 0 else "dot"
        records = []
        for i in range(ITEMS_PER_SUBSET):
            label = labels[i % len(labels)]
            ds_no, folder = datasets[i % len(datasets)]
            n_opt = min(4, len(labels))
            distractors = rng.sample([l for l in labels if l != label], n_opt - 1)
            options = [label, *distractors]
            rng.shuffle(options)
            stem = templates[i % len(templates)]
            safe = label.replace(" ", "_")
            records.append(
                {
                    "id": i + 1,
                    "caption": label,
                    "image": f"med-mat/{folder}/{safe}/{safe}- ({i + 1}).png",
                    "Question": stem,
                    "Answer": label,
                    "Question-choice": _question_choice(stem, options, style),
                    "Answer-choice": "ABCD"[options.index(label)],
                    "data-no": str(ds_no),
                }
            )
        out[number] = records
    return out


def write_sample(root: str | Path, seed: int = 0) -> Path:
    """Write the sample (QA JSON for subsets and source datasets, and images) under ``root``."""
    root = Path(root)
    records = build_records(seed)
    subsets_dir = root / "Aggregated_Subsets"
    datasets_dir = root / "Original_Medical_Datasets"
    subsets_dir.mkdir(parents=True, exist_ok=True)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[int, list[dict]] = {}
    for number, recs in records.items():
        labels = SAMPLE_SUBSETS[number][1]
        grey = SUBSETS[number].modality in GREY
        for i, rec in enumerate(recs):
            path = root / rec["image"]
            path.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(seed * 100_000 + number * 1000 + i)
            _image(rng, SIZES[i % len(SIZES)], labels.index(rec["caption"]), grey).save(path, format="PNG")
            by_dataset.setdefault(int(rec["data-no"]), []).append(rec)
        _write_json(subsets_dir / f"Subset--{number:02d}-train.json", recs)
    for ds_no, recs in sorted(by_dataset.items()):
        renumbered = [{**r, "id": j + 1} for j, r in enumerate(recs)]
        _write_json(datasets_dir / f"ori--{ds_no:02d}-train.json", renumbered)
    return root


def _write_json(path: Path, records: list[dict]) -> None:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=4) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write the sample into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_sample(args.out, args.seed)
    print(f"wrote the Med-MAT sample to {args.out}")


if __name__ == "__main__":
    main()
