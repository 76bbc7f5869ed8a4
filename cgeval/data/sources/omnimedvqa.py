"""OmniMedVQA: multiple-choice medical VQA, its ``modality_type`` mapped onto the registry's modalities.

Schema: ``QA_information/Open-access/<dataset>.json`` (and ``Restricted-access``), lists of ``{dataset,
question_id, question_type, question, gt_answer, image_path, option_A, option_B[, option_C, option_D],
modality_type}``; ``image_path`` is relative to the OmniMedVQA root. ``gt_answer`` is an option's text. One file
spells ``modality`` for ``modality_type``: accepted, and counted as a warning. ``question_type`` (Disease
Diagnosis, Anatomy Identification, ...) is kept in meta; area and task are not stated.
"""

from __future__ import annotations

from pathlib import Path

from ..records import Item
from .common import UNKNOWN, Question, Record, Skip, SourceReport, load_source, norm_answer, question_and_answer, require_image

SOURCE = "omnimedvqa"
# The release's spellings (typos included), then keywords for anything else.
_MODALITIES = {
    "ct(computed tomography)": "CT",
    "mr (mag-netic resonance imaging)": "MRI",
    "x-ray": "X-ray",
    "ultrasound": "US",
    "dermoscopy": "Der",
    "fundus photography": "FP",
    "microscopy images": "Mic",
    "oct (optical coherence tomography": "OCT",
}
_KEYWORDS = (
    ("computed tomography", "CT"),
    ("magnetic", "MRI"),
    ("mag-netic", "MRI"),
    ("optical coherence", "OCT"),
    ("x-ray", "X-ray"),
    ("xray", "X-ray"),
    ("ultrasound", "US"),
    ("dermoscop", "Der"),
    ("fundus", "FP"),
    ("microscop", "Mic"),
    ("endoscop", "End"),
    ("colposcop", "Co"),
)


def omnimedvqa_modality(modality_type: str | None) -> str:
    """The registry's modality for an OmniMedVQA ``modality_type``, or ``unknown``."""
    if not modality_type:
        return UNKNOWN
    key = modality_type.strip().lower()
    if key in _MODALITIES:
        return _MODALITIES[key]
    for word, modality in _KEYWORDS:
        if word in key:
            return modality
    if key in ("ct", "mri", "mr", "oct", "us"):
        return {"mr": "MRI"}.get(key, key.upper())
    return UNKNOWN


def _options(rec: Record) -> tuple[str, ...]:
    """``option_A``, ``option_B``[, ``option_C``, ``option_D``] in order, with no gap."""
    options = []
    for letter in "ABCD":
        text = rec.text(f"option_{letter}")
        if text is None:
            break
        options.append(text)
    extra = [l for l in "ABCD"[len(options):] if rec.text(f"option_{l}")]
    if not 2 <= len(options) <= 4 or extra:
        raise Skip("unparseable_options", "options must be option_A, option_B[, C, D] in order")
    return tuple(options)


def _question(rec: Record, report: SourceReport) -> Question:
    question, answer = question_and_answer(rec, "question", "gt_answer", "missing question or gt_answer")
    options = _options(rec)
    gold = {norm_answer(o): j for j, o in enumerate(options)}.get(norm_answer(answer))
    if gold is None:
        raise Skip("answer_not_an_option", f"gt_answer {answer!r} not in {list(options)}")
    image = require_image(rec.text("image_path"), "no image_path")
    raw = rec.text("modality_type")
    if raw is None and rec.text("modality"):
        raw = rec.text("modality")
        report.warn("modality_key_instead_of_modality_type", rec.where)
    modality = omnimedvqa_modality(raw)
    if raw and modality == UNKNOWN:
        report.warn("unmapped_modality", f"{rec.where}: {raw!r}")
    return Question(
        rec.text("question_id") or f"{rec.file.stem}-{rec.index}", image, question, options, gold,
        modality=modality,
        meta={
            "modality_type": raw or "",
            "question_type": rec.text("question_type") or "",
            "source_dataset": rec.text("dataset") or rec.file.stem,
        },
    )


def load_omnimedvqa(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    """``path``: one QA json file, or a folder of them (read in name order)."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if image_root is None:
        # QA_information/Open-access/x.json -> the OmniMedVQA root two levels above the folder.
        folder = path if path.is_dir() else path.parent
        image_root = folder.parent.parent if folder.parent.name == "QA_information" else folder
    return load_source(SOURCE, files, Path(image_root).resolve(), _question, verify_images, io_workers)
