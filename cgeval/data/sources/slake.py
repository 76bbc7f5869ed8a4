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
from .common import (
    UNKNOWN,
    YES_NO,
    SourceReport,
    canonical_area,
    finish,
    make_item,
    new_report,
    read_records,
    text_field,
    yes_no,
)

SOURCE = "slake"


def load_slake(
    paths: str | Path | list, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    """``paths``: one split file or several (their records are pooled; the split name goes into meta)."""
    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    root = Path(image_root if image_root is not None else paths[0].parent / "imgs").resolve()
    report = new_report(root, SOURCE)
    items = []
    for path in paths:
        report.files.append(path.name)
        for i, rec in enumerate(read_records(path)):
            report.n_records += 1
            where = f"{path.name}[{i}]"
            question, answer, image = (text_field(rec, k) for k in ("question", "answer", "img_name"))
            if question is None or answer is None:
                report.skip("malformed_record", f"{where}: missing question or answer")
                continue
            if (text_field(rec, "q_lang") or "en").lower() != "en":
                report.skip("non_english", f"{where}: q_lang {rec.get('q_lang')!r}")
                continue
            if (text_field(rec, "answer_type") or "").upper() != "CLOSED":
                report.skip("open_ended", f"{where}: answer_type {rec.get('answer_type')!r}")
                continue
            yn = yes_no(answer)
            if yn is None:
                report.skip("not_yes_no", f"{where}: closed answer {answer!r}")
                continue
            if image is None:
                report.skip("no_image", f"{where}: no img_name")
                continue
            raw_modality = text_field(rec, "modality")
            modality = canonical_modality(raw_modality) if raw_modality else None
            if raw_modality and modality is None:
                report.warn("unmapped_modality", f"{where}: {raw_modality!r}")
            items.append(
                make_item(
                    SOURCE, text_field(rec, "qid") or f"{path.stem}-{i}", image, root, question, list(YES_NO),
                    YES_NO.index(yn), modality=modality or UNKNOWN, area=canonical_area(text_field(rec, "location")),
                    split=path.stem, content_type=text_field(rec, "content_type") or "",
                )
            )
    return finish(items, root, verify_images, io_workers, report), report
