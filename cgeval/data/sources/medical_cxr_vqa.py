"""Medical-CXR-VQA (seed 002): chest X-ray questions, kept where the answer set is finite.

Schema: ``medical-cxr-vqa-questions.csv`` with ``subject_id, study_id, question_type, question, answer`` (the
release adds ``dicom_id`` / ``split``). Question types: abnormality, presence, view, location, level, type.
Closed questions become items:
- any answer ``yes`` / ``no`` -> options Yes / No;
- ``view``: "which view is this image taken?" -> options PA view / AP view;
- ``location``: "... on the left side or right side?" -> options left side / right side.
Open answers (abnormality lists, levels, types, free locations) are counted as ``open_ended``.
Images: an ``image`` / ``image_path`` column, else the MIMIC-CXR-JPG path
``files/p<first 2 digits>/p<subject_id>/s<study_id>/<dicom_id>.jpg``; a row with neither is ``no_image``.
Modality X-ray and area Chest (the whole dataset is chest radiographs); task unknown.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from ..loader import DataRootNotFound, MedMatFormatError
from ..records import Item
from .common import UNKNOWN, YES_NO, Question, Record, Skip, SourceReport
from .common import file_records, load_source, norm_answer, question_and_answer, require_image, text_field, yes_no

SOURCE = "medical_cxr_vqa"
_REQUIRED = ("question", "answer")
_VIEW_OPTIONS = ("PA view", "AP view")
_SIDE_OPTIONS = ("left side", "right side")


def _closed_options(question_type: str, question: str, answer: str) -> tuple[tuple[str, ...], int]:
    yn = yes_no(answer)
    if yn is not None:
        return YES_NO, YES_NO.index(yn)
    a = norm_answer(answer)
    if question_type == "view" and a in ("pa view", "ap view"):
        return _VIEW_OPTIONS, ["pa view", "ap view"].index(a)
    if question_type == "location" and "left side or right side" in question.lower() and a in ("left side", "right side"):
        return _SIDE_OPTIONS, ["left side", "right side"].index(a)
    raise Skip("open_ended", f"{question_type}: {answer!r}")


def _image(row: object) -> str | None:
    explicit = text_field(row, "image", "image_path")
    if explicit:
        return explicit
    subject, study, dicom = (text_field(row, k) for k in ("subject_id", "study_id", "dicom_id"))
    if subject and study and dicom:
        subject, study = subject.removesuffix(".0"), study.removesuffix(".0")
        return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
    return None


def read_questions_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataRootNotFound(f"{path} does not exist or is not a file")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise MedMatFormatError(f"{path}: missing columns {missing}; found {list(df.columns)}")
    return df.to_dict("records")


def _question(rec: Record, report: SourceReport) -> Question:
    question, answer = question_and_answer(rec, "question", "answer", "empty question or answer")
    qtype = (rec.text("question_type") or UNKNOWN).lower()
    options, gold = _closed_options(qtype, question, answer)
    image = require_image(_image(rec.data), "no image/image_path column and no dicom_id")
    return Question(
        rec.text("id") or str(rec.index), image, question[0].upper() + question[1:], options, gold,
        modality="X-ray", area="Chest",
        meta={"question_type": qtype, "split": rec.text("split") or "", "study_id": rec.text("study_id") or ""},
    )


def load_medical_cxr_vqa(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    root = Path(image_root if image_root is not None else path.parent).resolve()
    return load_source(
        SOURCE, [path], root, _question, verify_images, io_workers, records=partial(file_records, read=read_questions_csv)
    )
