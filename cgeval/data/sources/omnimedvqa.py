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
from .common import UNKNOWN, SourceReport, finish, make_item, new_report, norm_answer, read_records, text_field

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
    root = Path(image_root).resolve()
    report = new_report(root, SOURCE)
    items = []
    for file in files:
        report.files.append(file.name)
        for i, rec in enumerate(read_records(file)):
            report.n_records += 1
            where = f"{file.name}[{i}]"
            question, answer, image = (text_field(rec, k) for k in ("question", "gt_answer", "image_path"))
            if question is None or answer is None:
                report.skip("malformed_record", f"{where}: missing question or gt_answer")
                continue
            options = []
            for letter in "ABCD":
                text = text_field(rec, f"option_{letter}")
                if text is None:
                    break
                options.append(text)
            extra = [l for l in "ABCD"[len(options):] if text_field(rec, f"option_{l}")]
            if not 2 <= len(options) <= 4 or extra:
                report.skip("unparseable_options", f"{where}: options must be option_A, option_B[, C, D] in order")
                continue
            by_text = {norm_answer(o): j for j, o in enumerate(options)}
            gold = by_text.get(norm_answer(answer))
            if gold is None:
                report.skip("answer_not_an_option", f"{where}: gt_answer {answer!r} not in {options}")
                continue
            if image is None:
                report.skip("no_image", f"{where}: no image_path")
                continue
            raw = text_field(rec, "modality_type")
            if raw is None and text_field(rec, "modality"):
                raw = text_field(rec, "modality")
                report.warn("modality_key_instead_of_modality_type", where)
            modality = omnimedvqa_modality(raw)
            if raw and modality == UNKNOWN:
                report.warn("unmapped_modality", f"{where}: {raw!r}")
            items.append(
                make_item(
                    SOURCE, text_field(rec, "question_id") or f"{file.stem}-{i}", image, root, question, options,
                    gold, modality=modality, modality_type=raw or "", question_type=text_field(rec, "question_type") or "",
                    source_dataset=text_field(rec, "dataset") or file.stem,
                )
            )
    return finish(items, root, verify_images, io_workers, report), report
