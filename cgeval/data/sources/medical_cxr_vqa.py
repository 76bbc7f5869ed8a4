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

from pathlib import Path

import pandas as pd

from ..loader import DataRootNotFound, MedMatFormatError
from ..records import Item
from .common import UNKNOWN, SourceReport, finish, make_item, new_report, norm_answer, text_field, yes_no

SOURCE = "medical_cxr_vqa"
_REQUIRED = ("question", "answer")
_VIEW_OPTIONS = ["PA view", "AP view"]
_SIDE_OPTIONS = ["left side", "right side"]


def _closed_options(question_type: str, question: str, answer: str) -> tuple[list[str], int] | None:
    yn = yes_no(answer)
    if yn is not None:
        return ["Yes", "No"], ["Yes", "No"].index(yn)
    a = norm_answer(answer)
    if question_type == "view" and a in ("pa view", "ap view"):
        return _VIEW_OPTIONS, ["pa view", "ap view"].index(a)
    if question_type == "location" and "left side or right side" in question.lower() and a in ("left side", "right side"):
        return _SIDE_OPTIONS, ["left side", "right side"].index(a)
    return None


def _image(row: dict) -> str | None:
    explicit = text_field(row, "image", "image_path")
    if explicit:
        return explicit
    subject, study, dicom = (text_field(row, k) for k in ("subject_id", "study_id", "dicom_id"))
    if subject and study and dicom:
        subject, study = subject.removesuffix(".0"), study.removesuffix(".0")
        return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
    return None


def load_medical_cxr_vqa(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    if not path.is_file():
        raise DataRootNotFound(f"{path} does not exist or is not a file")
    root = Path(image_root if image_root is not None else path.parent).resolve()
    report = new_report(root, SOURCE)
    report.files.append(path.name)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise MedMatFormatError(f"{path}: missing columns {missing}; found {list(df.columns)}")
    items = []
    for i, row in enumerate(df.to_dict("records")):
        report.n_records += 1
        where = f"{path.name}[{i}]"
        question, answer = text_field(row, "question"), text_field(row, "answer")
        if question is None or answer is None:
            report.skip("malformed_record", f"{where}: empty question or answer")
            continue
        qtype = (text_field(row, "question_type") or UNKNOWN).lower()
        closed = _closed_options(qtype, question, answer)
        if closed is None:
            report.skip("open_ended", f"{where}: {qtype}: {answer!r}")
            continue
        image = _image(row)
        if image is None:
            report.skip("no_image", f"{where}: no image/image_path column and no dicom_id")
            continue
        options, gold = closed
        stem = question[0].upper() + question[1:]
        items.append(
            make_item(
                SOURCE, text_field(row, "id") or str(i), image, root, stem, options, gold,
                modality="X-ray", area="Chest", question_type=qtype, split=text_field(row, "split") or "",
                study_id=text_field(row, "study_id") or "",
            )
        )
    return finish(items, root, verify_images, io_workers, report), report
