"""VQA-RAD (seed 001) closed-ended yes/no questions as two-option items (A. Yes, B. No).

Schema: ``VQA_RAD Dataset Public.json``, a list of ``{qid, image_name, image_organ, answer, answer_type,
question_type, question, phrase_type}``; images in ``VQA_RAD Image Folder/`` beside it. ``answer_type`` is
``CLOSED`` or ``OPEN`` (sometimes with stray spaces). ``image_organ`` (HEAD / CHEST / ABD) becomes the area
(Head / Chest / Abdomen); the file states no imaging modality, so modality is unknown.
"""

from __future__ import annotations

from pathlib import Path

from ..records import Item
from .common import Question, Record, SourceReport, canonical_area
from .common import closed_yes_no, load_source, question_and_answer, require_image

SOURCE = "vqa_rad"
IMAGE_FOLDER = "VQA_RAD Image Folder"
_ORGANS = {"HEAD": "Head", "CHEST": "Chest", "ABD": "Abdomen"}


def _question(rec: Record, report: SourceReport) -> Question:
    question, answer = question_and_answer(rec, "question", "answer", "missing question or answer")
    answer_type = rec.text("answer_type")
    options, gold = closed_yes_no(answer, (answer_type or "").upper() == "CLOSED", answer_type)
    image = require_image(rec.text("image_name"), "no image_name")
    organ = (rec.text("image_organ") or "").upper()
    return Question(
        rec.text("qid") or str(rec.index), image, question, options, gold,
        area=canonical_area(_ORGANS.get(organ, organ.title() or None)),
        meta={"question_type": rec.text("question_type") or ""},
    )


def load_vqa_rad(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    if image_root is None:
        image_root = path.parent / IMAGE_FOLDER if (path.parent / IMAGE_FOLDER).is_dir() else path.parent
    return load_source(SOURCE, [path], Path(image_root).resolve(), _question, verify_images, io_workers)
