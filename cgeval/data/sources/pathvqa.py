"""PathVQA (seed 001) closed-ended yes/no questions as two-option items (A. Yes, B. No).

Schema: the release's QA lists, records ``{"image": "train_0422", "question", "answer"}`` (some copies add
``answer_type``); images at ``images/<split>/<image>.jpg`` with the split the image name's prefix (train / val
/ test). The release ships the lists as pickles: give them as JSON / JSON Lines (``json.dump(pickle.load(f))``
on a file you trust); pickles are not read here. Pathology images: modality, area and task are not stated.
A record without ``answer_type`` is closed when its answer is yes or no.
"""

from __future__ import annotations

from pathlib import Path

from ..records import Item
from .common import Question, Record, SourceReport, closed_yes_no, load_source, question_and_answer, require_image

SOURCE = "pathvqa"
_CLOSED_TYPES = {"yes/no", "closed", "yes_no"}


def image_path(image: str) -> str:
    """``train_0422`` -> ``images/train/train_0422.jpg``; a name with a suffix or folder is kept as given."""
    if "/" in image or Path(image).suffix:
        return image
    return f"images/{image.split('_')[0]}/{image}.jpg"


def _question(rec: Record, report: SourceReport) -> Question:
    question, answer = question_and_answer(rec, "question", "answer", "missing question or answer")
    answer_type = (rec.text("answer_type") or "").lower()
    options, gold = closed_yes_no(answer, answer_type in _CLOSED_TYPES if answer_type else None, answer_type)
    image = require_image(rec.text("image"), "no image")
    return Question(
        rec.text("question_id") or f"{rec.file.stem}-{rec.index}", image_path(image), question, options, gold,
        meta={"domain": "pathology"},
    )


def load_pathvqa(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    root = Path(image_root if image_root is not None else path.parent).resolve()
    return load_source(SOURCE, [path], root, _question, verify_images, io_workers)
