"""PathVQA (seed 001) closed-ended yes/no questions as two-option items (A. Yes, B. No).

Schema: the release's QA lists, records ``{"image": "train_0422", "question", "answer"}`` (some copies add
``answer_type``); images at ``images/<split>/<image>.jpg`` with the split the image name's prefix (train / val
/ test). The release ships the lists as pickles: give them as JSON / JSON Lines (``json.dump(pickle.load(f))``
on a file you trust); pickles are not read here. Pathology images: modality, area and task are not stated.
"""

from __future__ import annotations

from pathlib import Path

from ..records import Item
from .common import YES_NO, SourceReport, finish, make_item, new_report, read_records, text_field, yes_no

SOURCE = "pathvqa"
_CLOSED_TYPES = {"yes/no", "closed", "yes_no"}


def image_path(image: str) -> str:
    """``train_0422`` -> ``images/train/train_0422.jpg``; a name with a suffix or folder is kept as given."""
    if "/" in image or Path(image).suffix:
        return image
    return f"images/{image.split('_')[0]}/{image}.jpg"


def load_pathvqa(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    root = Path(image_root if image_root is not None else path.parent).resolve()
    report = new_report(root, SOURCE)
    report.files.append(path.name)
    items = []
    for i, rec in enumerate(read_records(path)):
        report.n_records += 1
        where = f"{path.name}[{i}]"
        question, answer, image = (text_field(rec, k) for k in ("question", "answer", "image"))
        if question is None or answer is None:
            report.skip("malformed_record", f"{where}: missing question or answer")
            continue
        answer_type = (text_field(rec, "answer_type") or "").lower()
        yn = yes_no(answer)
        if answer_type and answer_type not in _CLOSED_TYPES:
            report.skip("open_ended", f"{where}: answer_type {answer_type!r}")
            continue
        if yn is None:
            report.skip("open_ended" if not answer_type else "not_yes_no", f"{where}: answer {answer!r}")
            continue
        if image is None:
            report.skip("no_image", f"{where}: no image")
            continue
        items.append(
            make_item(
                SOURCE, text_field(rec, "question_id") or f"{path.stem}-{i}", image_path(image), root, question,
                list(YES_NO), YES_NO.index(yn), domain="pathology",
            )
        )
    return finish(items, root, verify_images, io_workers, report), report
