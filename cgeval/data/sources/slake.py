"""SLAKE (seed 003) closed-ended yes/no questions, English only, as two-option items (A. Yes, B. No).

Schema: ``train.json`` / ``validate.json`` / ``test.json``, lists of ``{img_id, img_name, question, answer,
q_lang, location, modality, answer_type, base_type, content_type, triple, qid}``; images under ``imgs/``
(``img_name`` is ``xmlab102/source.jpg``). ``modality`` (CT / MRI / X-Ray) maps onto the registry; ``location``
(Lung, Brain, Abdomen, ...) is the area, in the registry's spelling where it has one. Chinese questions
(``q_lang: zh``) are counted as ``non_english``.
"""

from __future__ import annotations

from pathlib import Path

from ..records import Item
from ..registry import canonical_modality
from .common import UNKNOWN, Question, Record, Skip, SourceReport
from .common import canonical_area, closed_yes_no, load_source, question_and_answer, require_image

SOURCE = "slake"


def _question(rec: Record, report: SourceReport) -> Question:
    question, answer = question_and_answer(rec, "question", "answer", "missing question or answer")
    if (rec.text("q_lang") or "en").lower() != "en":
        raise Skip("non_english", f"q_lang {rec.text('q_lang')!r}")
    answer_type = rec.text("answer_type")
    options, gold = closed_yes_no(answer, (answer_type or "").upper() == "CLOSED", answer_type)
    image = require_image(rec.text("img_name"), "no img_name")
    raw_modality = rec.text("modality")
    modality = canonical_modality(raw_modality) if raw_modality else None
    if raw_modality and modality is None:
        report.warn("unmapped_modality", f"{rec.where}: {raw_modality!r}")
    return Question(
        rec.text("qid") or f"{rec.file.stem}-{rec.index}", image, question, options, gold,
        modality=modality or UNKNOWN, area=canonical_area(rec.text("location")),
        meta={"split": rec.file.stem, "content_type": rec.text("content_type") or ""},
    )


def load_slake(
    paths: str | Path | list, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    """``paths``: one split file or several (their records are pooled; the split name goes into meta)."""
    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    root = Path(image_root if image_root is not None else paths[0].parent / "imgs").resolve()
    return load_source(SOURCE, paths, root, _question, verify_images, io_workers)
