"""VQA-RAD (seed 001) closed-ended yes/no questions as two-option items (A. Yes, B. No).

Schema: ``VQA_RAD Dataset Public.json``, a list of ``{qid, image_name, image_organ, answer, answer_type,
question_type, question, phrase_type}``; images in ``VQA_RAD Image Folder/`` beside it. ``answer_type`` is
``CLOSED`` or ``OPEN`` (sometimes with stray spaces). ``image_organ`` (HEAD / CHEST / ABD) becomes the area
(Head / Chest / Abdomen); the file states no imaging modality, so modality is unknown.
"""

from __future__ import annotations

from pathlib import Path

from ..records import Item
from .common import YES_NO, SourceReport, canonical_area, finish, make_item, new_report, read_records, text_field, yes_no

SOURCE = "vqa_rad"
IMAGE_FOLDER = "VQA_RAD Image Folder"
_ORGANS = {"HEAD": "Head", "CHEST": "Chest", "ABD": "Abdomen"}


def load_vqa_rad(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    if image_root is None:
        image_root = path.parent / IMAGE_FOLDER if (path.parent / IMAGE_FOLDER).is_dir() else path.parent
    root = Path(image_root).resolve()
    report = new_report(root, SOURCE)
    report.files.append(path.name)
    items = []
    for i, rec in enumerate(read_records(path)):
        report.n_records += 1
        where = f"{path.name}[{i}]"
        question, answer, image = (text_field(rec, k) for k in ("question", "answer", "image_name"))
        if question is None or answer is None:
            report.skip("malformed_record", f"{where}: missing question or answer")
            continue
        if (text_field(rec, "answer_type") or "").upper() != "CLOSED":
            report.skip("open_ended", f"{where}: answer_type {rec.get('answer_type')!r}")
            continue
        yn = yes_no(answer)
        if yn is None:
            report.skip("not_yes_no", f"{where}: closed answer {answer!r}")
            continue
        if image is None:
            report.skip("no_image", f"{where}: no image_name")
            continue
        organ = (text_field(rec, "image_organ") or "").upper()
        items.append(
            make_item(
                SOURCE, text_field(rec, "qid") or str(i), image, root, question, list(YES_NO), YES_NO.index(yn),
                area=canonical_area(_ORGANS.get(organ, organ.title() or None)),
                question_type=text_field(rec, "question_type") or "",
            )
        )
    return finish(items, root, verify_images, io_workers, report), report
