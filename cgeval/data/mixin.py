"""A general-domain multiple-choice set mixed into every training arm (the paper mixes in ImageWikiQA).

The paper (MEDMAT_FACTS "The paper's protocol") adds a non-medical 4-option set to every training set. Its files
are not public, so this module takes any file of multiple-choice records in the Med-MAT record schema:

    [{"id": 1, "image": "imgs/0001.jpg", "Question-choice": "What is shown?\\nA: ...\\nB: ...\\n...",
      "Answer-choice": "B", "Question": "...", "Answer": "...", "caption": "..."}, ...]

``id``, ``image``, ``Question-choice`` and ``Answer-choice`` are required (``data-no`` is not: these records
belong to no Med-MAT subset). Relative image paths are resolved against ``root`` (default: the file's folder)
and may not leave it; absolute paths are used as they are. Options and answers go through the same parsing
as Med-MAT (`parse_question_choice`), so a record the evaluation could not read never trains.

`load_mix_in` reads the file, skips bad records by reason (counted, with examples; never a crash), and draws
``n`` records (all when ``n`` is None) with a generator seeded by the split's seed. The draw is a function of
the file's *set* of records: records are ordered by id before drawing; an id given to two different records
drops both (``id_conflict``), an exact repeat is dropped once (``duplicate_record``). A record whose image is
on a test side of the split (same path, or same content with ``image_identity: content``) is skipped
(``image_in_test_set``): nothing evaluated ever trains.

A missing file, a file that is not a JSON list, or no usable record is a named error. ``n`` larger than the
usable records is `InsufficientMixIn`, or with the split's ``allow_short`` all of them are kept and the
shortfall is a recorded adjustment (the split's convention for arms).

cgeval.data.export adds the drawn records to every arm it writes (LLaMA-Factory and ms-swift), shuffled in
with the arm's items, never to the test list, and records the mix-in in the manifest (`MixIn.manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .images import DEFAULT_MAX_IMAGE_PIXELS, check_max_pixels, image_problem
from .loader import items_hash, parse_choice, record_problem, resolve_image
from .records import Item
from .splits import SplitConfigError, SplitError, image_key

MIX_IN_PREFIX = "MIX-"
GENERAL = "General"  # modality / area / task of mixed-in items: no Med-MAT element

# Skip reasons, in the order a record is checked; each skipped record is counted under exactly one.
SKIP_REASONS = (
    "malformed_record",
    "unparseable_options",
    "answer_not_an_option",
    "duplicate_record",
    "id_conflict",
    "path_outside_root",
    "image_missing",
    "image_too_large",
    "image_unreadable",
    "image_in_test_set",
)
_REQUIRED = {"id": (int, str), "image": (str,), "Question-choice": (str,), "Answer-choice": (str,)}
_MAX_EXAMPLES = 5


class MixInError(SplitError):
    """Base of the mix-in's named errors."""


class MixInFileMissing(MixInError):
    """``split.mix_in.file`` (or its ``root``) does not exist."""


class MixInFormatError(MixInError):
    """The mix-in file is not UTF-8 JSON holding a list of records."""


class InsufficientMixIn(MixInError):
    """``split.mix_in.n`` is larger than the usable records (or none is usable)."""


@dataclass(frozen=True)
class MixInSpec:
    file: str | None = None  # None: no mix-in
    root: str | None = None  # folder relative image paths are resolved against; None: the file's folder
    n: int | None = None  # records to draw; None: every usable record
    verify_images: bool = True  # open each image with Pillow; unreadable ones are skipped

    def __post_init__(self) -> None:
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1):
            raise SplitConfigError(f"split.mix_in.n must be an integer >= 1 or null (all), got {self.n!r}")
        if self.file is None and (self.root is not None or self.n is not None):
            raise SplitConfigError("split.mix_in.root / n are set but split.mix_in.file is not")

    @property
    def enabled(self) -> bool:
        return self.file is not None


@dataclass
class MixIn:
    items: list[Item]  # the drawn records, ordered by item_id
    manifest: dict  # file, sha256, root, seed, counts, skips by reason
    adjustments: list[dict] = field(default_factory=list)  # rows for the split manifest's "adjustments"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Skips:
    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, where: str, count: int = 1) -> None:
        assert reason in SKIP_REASONS, reason
        self.counts[reason] += count
        if len(self.examples[reason]) < _MAX_EXAMPLES:
            self.examples[reason].append(where)


def _problem(rec: object) -> str | None:
    problem = record_problem(rec, _REQUIRED)
    if problem:
        return problem
    if not str(rec["id"]).strip() or not rec["image"].strip():
        return "empty 'id' or 'image'"
    return None


def _image_path(root: Path, image: str) -> str | None:
    """Absolute, normalised path of a record's image; None when a relative path leaves ``root``."""
    if os.path.isabs(image):
        return os.path.normpath(image)
    path = resolve_image(root, image)
    return None if path is None else os.path.normpath(path)


def record_to_item(rec: dict, where: str, root: Path, skips: _Skips) -> Item | None:
    """A mix-in record as an `Item` (no subset), or None with the reason counted."""
    problem = _problem(rec)
    if problem:
        skips.add("malformed_record", f"{where}: {problem}")
        return None
    choice = parse_choice(rec, where, skips.add)
    if choice is None:
        return None
    stem, options, gold = choice
    path = _image_path(root, rec["image"])
    if path is None:
        skips.add("path_outside_root", f"{where}: {rec['image']}")
        return None
    return Item(
        item_id=f"{MIX_IN_PREFIX}{str(rec['id']).strip()}",
        subset=None,
        dataset=0,
        modality=GENERAL,
        area=GENERAL,
        task=GENERAL,
        image=rec["image"],
        image_path=path,
        prompt=rec["Question-choice"],
        question=stem,
        options=options,
        gold=gold,
        answer_text=dict(options)[gold],
        caption=str(rec.get("caption", "")),
        meta={"mix_in": True},
    )


def _read_records(path: Path) -> list:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))  # a leading byte-order mark is accepted
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MixInFormatError(f"split.mix_in.file {path}: not valid UTF-8 JSON ({e})") from e
    if not isinstance(data, list):
        raise MixInFormatError(f"split.mix_in.file {path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _image_identity(item: Item, identity: str) -> str:
    """The key a test-side image is compared by: its content hash as the split computes it (`image_key`), or
    its absolute path (mix-in images do not live under data.root, so their relative paths mean nothing there)."""
    if identity == "content":
        return image_key(item, "content", {})
    return item.image_path


def load_mix_in(
    spec: MixInSpec,
    *,
    seed: int,
    allow_short: bool = False,
    test_images: frozenset[str] | set[str] = frozenset(),
    image_identity: str = "content",
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> MixIn:
    """Read, check and draw the mix-in records.

    ``test_images`` holds the split's test-side images as this function compares them: absolute normalised
    paths (``image_identity="path"``) or ``sha256:<hex>`` of their content (``"content"``); see
    `split_test_image_keys`. Images above ``max_image_pixels`` (by their header; data.max_image_pixels) are
    skipped as ``image_too_large``.
    """
    max_image_pixels = check_max_pixels(max_image_pixels)
    if not spec.enabled:
        raise SplitConfigError("load_mix_in needs split.mix_in.file")
    path = Path(spec.file).expanduser().resolve()
    if not path.is_file():
        raise MixInFileMissing(f"split.mix_in.file {path} does not exist or is not a file")
    root = Path(spec.root).expanduser().resolve() if spec.root is not None else path.parent
    if not root.is_dir():
        raise MixInFileMissing(f"split.mix_in.root {root} does not exist or is not a folder")
    records = _read_records(path)
    skips = _Skips()

    # Parse, then settle ids independently of file order: identical repeats collapse, conflicting ids drop.
    by_id: dict[str, list[tuple[str, Item, str]]] = defaultdict(list)
    for i, rec in enumerate(records):
        where = f"{path.name}[{i}]"
        item = record_to_item(rec, where, root, skips)
        if item is not None:
            by_id[item.item_id].append((json.dumps(rec, sort_keys=True, ensure_ascii=False), item, where))
    candidates: list[Item] = []
    for item_id in sorted(by_id):
        group = by_id[item_id]
        if len({content for content, _, _ in group}) > 1:
            skips.add("id_conflict", f"{', '.join(w for _, _, w in group)}: id {item_id} names different records",
                      count=len(group))
            continue
        if len(group) > 1:
            skips.add("duplicate_record", f"{', '.join(w for _, _, w in group)}: id {item_id}", count=len(group) - 1)
        candidates.append(group[0][1])

    usable: list[Item] = []
    for item in candidates:
        if not os.path.isfile(item.image_path):
            problem = "image_missing"
        else:  # the header's size first: an oversized image is never decoded
            problem = image_problem(item.image_path, max_image_pixels, spec.verify_images)
        if problem is None and test_images and _image_identity(item, image_identity) in test_images:
            problem = "image_in_test_set"
        if problem is None:
            usable.append(item)
        else:
            skips.add(problem, f"{item.item_id}: {item.image}")

    adjustments: list[dict] = []
    asked = spec.n if spec.n is not None else len(usable)
    if not usable:
        raise InsufficientMixIn(
            f"split.mix_in.file {path}: none of its {len(records)} records is usable; skipped by reason: "
            f"{dict(skips.counts)}; examples: {dict(skips.examples)}"
        )
    if asked > len(usable):
        if not allow_short:
            raise InsufficientMixIn(
                f"split.mix_in.n={asked} but {path} holds {len(usable)} usable records of {len(records)} "
                f"(skipped: {dict(skips.counts)}); lower n, set it to null (all), or set split.allow_short=true "
                "to keep them all, recorded"
            )
        adjustments.append(
            {"kind": "mix_in_short_of_size", "count": asked - len(usable), "asked": asked, "available": len(usable)}
        )
    if asked < len(usable):
        # A string seed hashes with sha512 in `random`: independent of PYTHONHASHSEED.
        drawn = random.Random(f"{seed}/mix_in").sample(usable, asked)
        chosen = sorted(drawn, key=lambda it: it.item_id)
    else:
        chosen = usable
    manifest = {
        "file": str(path),
        "sha256": file_sha256(path),
        "root": str(root),
        "seed": seed,
        "n_asked": spec.n,  # null: all usable records
        "n_records": len(records),
        "n_usable": len(usable),
        "n": len(chosen),
        "n_skipped": sum(skips.counts.values()),
        "skipped": dict(sorted(skips.counts.items())),
        "examples": dict(sorted(skips.examples.items())),
        "answer_letters": dict(sorted(Counter(it.gold for it in chosen).items())),
        "n_options": dict(sorted(Counter(it.n_options for it in chosen).items())),
        "items_hash": items_hash(chosen),
        "image_identity": image_identity,
        "image_paths": "absolute",  # always, even with image_paths=relative: they are not under data.root
    }
    return MixIn(items=chosen, manifest=manifest, adjustments=adjustments)


def split_test_image_keys(tested_images: frozenset[str], items: list[Item], image_identity: str) -> frozenset[str]:
    """A split's test-side image keys (`Split.tested_images`) in the form `load_mix_in` compares.

    With ``content`` identity the keys already are content hashes; with ``path`` they are paths relative to
    data.root, turned into the absolute paths of the loaded ``items`` that carry them."""
    if image_identity == "content":
        return frozenset(tested_images)
    return frozenset(
        os.path.normpath(it.image_path) for it in items if image_key(it, "path", {}) in tested_images
    )
