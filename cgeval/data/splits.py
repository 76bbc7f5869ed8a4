"""The paper's training/test splits and compositional training sets, as a pure function of the data.

``build_split(items, target, settings)`` takes Med-MAT items (from `load_medmat`), a `TargetSpec` (the held-out
composition and which training sets to build) and `SplitSettings` (seed, caps), and returns a `Split`: the
target's test items, one list of training items per *arm*, and a manifest of every count and adjustment.
Same inputs, same output: every random choice draws from a generator seeded by (seed, subset or arm), and
nothing depends on time, file order or hash randomisation.

Per subset (MEDMAT_FACTS "The paper's protocol"):
- Images, not records, are split: all records of one image land on the same side. An image is its content
  (sha256 of the file, ``image_identity: content``, the default), so byte-identical copies under other names
  are one image; ``path`` tells images apart by path only and is warned about. The side comes from the
  image path when every image carries a ``train``/``test`` folder (the original split), else a seeded,
  label-stratified 9:1 draw.
- An image that sits on the test side anywhere (in any subset) is removed from every training side: the same
  picture filed under two subsets (duplicated source datasets) never leaks into evaluation. Each removal is
  a counted adjustment.
- Training is capped (3,000) and label-balanced; a subset whose training side cannot reach the cap is
  test-only: all of it is test data. Test sets are label-balanced (equal items per label).

Per target (the held-out composition), the arms:
- ``related``: the Related combination: subsets that together cover the target's MAT elements, none with the
  target's composition. Named in the experiment (Table 3 rows) or derived from the registry: every pair
  (a, b) with a and b each sharing two elements with the target, different ones.
- ``baseline_plus``: as many items as ``related``, from subsets sharing no element with the target. Should it
  fall short (``allow_short``), ``related`` is trimmed to its size: the two are compared on equal data.
- Fig. 4: ``all_unrelated`` (no shared element), ``all_related`` (at least one), ``wo_modality`` /
  ``wo_area`` / ``wo_task`` (related, minus those sharing that element), ``all_data``; each capped in total
  (15,000), spread evenly over its subsets' capped training sets. Where those hold fewer (w/o Modality for
  target 03 has two subsets, 6,000 capped items), the rest comes from the same subsets' full training sides:
  every training-side item the 3,000 cap left out (a subset file merges its source datasets' records, so these
  are the source datasets' training sides), never a test-side image, spread as evenly as the subsets allow and
  label-balanced within each (``fig4_beyond_cap``; recorded as ``arm_beyond_subset_cap``). Test-only subsets
  stay out of every arm.
Every arm is shuffled (seeded), so any prefix of a training file samples all its subsets and labels.
Subsets with the target's own composition (e.g. 14 and 15, both FP-Fundus-Diseases) are in no arm.
When an arm cannot reach its size, the split fails with `InsufficientTrainingData`, or with
``allow_short`` it keeps what exists and records the shortfall in the manifest.

Not part of the split: the general-domain mix-in (`cgeval.data.mixin`) joins every arm at export and is
checked against `Split.tested_images`; `cgeval.data.candidates` enumerates every Table-3-style row from
`related_pairs` over the registry.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from .compositions import HeldOut
from .loader import DataError, items_hash
from .records import Item
from .registry import SUBSETS, Composition

AXES = ("modality", "area", "task")
RELATED_ARMS = ("related", "baseline_plus")
FIG4_ARMS = ("all_unrelated", "all_related", "wo_modality", "wo_area", "wo_task", "all_data")
ARMS = RELATED_ARMS + FIG4_ARMS

log = logging.getLogger(__name__)

PATH_IDENTITY_WARNING = (
    "split.image_identity=path: images are told apart by file path only, so a byte-identical copy filed under "
    "another name (duplicated source datasets do this) can train while its twin is tested; "
    "split.image_identity=content (the default) hashes every image and cannot leak that way"
)

_TRAIN_DIRS = {"train", "training"}
_TEST_DIRS = {"test", "testing", "val", "valid", "validation"}


class SplitError(DataError):
    """Base of the split's named errors."""


class SplitConfigError(SplitError, ValueError):
    """A split setting or experiment field the split cannot use."""


class TargetMissing(SplitError):
    """The held-out (target) subsets are absent from the data."""


class InvalidRelatedSet(SplitError):
    """The named Related subsets do not cover the target, or include its composition."""


class RelatedSubsetsMissing(SplitError):
    """The Related subsets are absent from the data, test-only, or no Related combination exists."""


class InsufficientTrainingData(SplitError):
    """An arm's size (cap, or the Related size for Baseline+) is larger than what the data holds."""


class DuplicateImageError(SplitError):
    """The same image appears in several subsets and ``duplicates: error`` was asked for."""


class NotMedMatItems(SplitError):
    """Items without a Med-MAT subset (other sources) cannot be split by MAT composition."""


class DuplicateItemIds(SplitError):
    """Several items share one ``item_id``: the split orders items by id, so it could not be a function of them."""


class ImageLeak(SplitError):
    """Invariant broken: an image on a test side is in a training arm. A bug, never expected from any input."""


@dataclass(frozen=True)
class SplitSettings:
    seed: int = 0
    test_fraction: float = 0.1
    train_cap_per_subset: int = 3000
    test_cap_per_subset: int | None = None
    total_cap: int | None = 15000  # default size of the Fig. 4 arms; an experiment's total_cap wins
    original_split: str = "auto"  # auto: use train/test folders in image paths when every image has one
    duplicates: str = "test_wins"  # test_wins: shared images leave every training side | error
    image_identity: str = "content"  # content (sha256 of the file: catches copies under other names) | path
    allow_short: bool = False  # keep an arm smaller than asked, recorded in the manifest, instead of failing
    # Fig. 4 arms the capped training sets cannot fill draw the rest from the same subsets' full training sides
    # (the items the per-subset cap left out), as the paper's 15,000-item arms need; false: capped sets only.
    fig4_beyond_cap: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise SplitConfigError(f"split.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.train_cap_per_subset < 1:
            raise SplitConfigError(f"split.train_cap_per_subset must be >= 1, got {self.train_cap_per_subset}")
        for name in ("test_cap_per_subset", "total_cap"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SplitConfigError(f"split.{name} must be >= 1 or null, got {value}")
        for name, allowed in (
            ("original_split", ("auto", "ignore")),
            ("duplicates", ("test_wins", "error")),
            ("image_identity", ("path", "content")),
        ):
            if getattr(self, name) not in allowed:
                raise SplitConfigError(f"split.{name} must be one of {allowed}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class TargetSpec:
    """What to build for one experiment: the held-out subsets and the training arms."""

    name: str
    target_subsets: tuple[int, ...]
    arms: tuple[str, ...]
    related_subsets: tuple[int, ...] | None = None
    related_axes: tuple[str, ...] = AXES
    baseline_plus_subsets: tuple[int, ...] | None = None
    total_cap: int | None = None

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise SplitConfigError(f"unknown arms {unknown}; valid arms: {', '.join(ARMS)}")
        bad_axes = [a for a in self.related_axes if a not in AXES]
        if bad_axes or not self.related_axes:
            raise SplitConfigError(f"related_axes must be a non-empty subset of {AXES}, got {self.related_axes}")
        for name in ("related_subsets", "baseline_plus_subsets"):
            numbers = getattr(self, name) or ()
            bad = [n for n in numbers if n not in SUBSETS]
            if bad:
                raise SplitConfigError(f"experiment.{name} {bad} are not Med-MAT subsets 1-{max(SUBSETS)}")
        if self.total_cap is not None and self.total_cap < 1:
            raise SplitConfigError(f"experiment.total_cap must be >= 1, got {self.total_cap}")

    @property
    def compositions(self) -> tuple[Composition, ...]:
        return tuple(dict.fromkeys(SUBSETS[n].composition for n in self.target_subsets))

    @classmethod
    def from_experiment(cls, exp) -> "TargetSpec":
        """From a `cgeval.config.ExperimentConfig` (or anything with its fields)."""
        target = HeldOut.from_config(exp.heldout).subsets
        arms = exp.arms
        if arms is None:
            single = len({SUBSETS[n].composition for n in target}) == 1
            arms = list(RELATED_ARMS) if single else ["all_data"]
        return cls(
            name=exp.name,
            target_subsets=tuple(target),
            arms=tuple(arms),
            related_subsets=None if exp.related_subsets is None else tuple(int(n) for n in exp.related_subsets),
            related_axes=AXES if exp.related_axes is None else tuple(exp.related_axes),
            baseline_plus_subsets=(
                None if exp.baseline_plus_subsets is None else tuple(int(n) for n in exp.baseline_plus_subsets)
            ),
            total_cap=exp.total_cap,
        )


@dataclass
class SubsetSplit:
    subset: int
    method: str  # "original" (train/test folders in the paths) or "random"
    n_items: int
    n_images: int
    train_pool: int  # training-side items after duplicate removal, before the cap
    test_only: bool
    train: list[Item] = field(default_factory=list)
    test: list[Item] = field(default_factory=list)
    # The training side the cap left out (train_pool - len(train) items): only Fig. 4 arms draw on it.
    beyond_cap: list[Item] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "composition": str(SUBSETS[self.subset].composition),
            "method": self.method,
            "n_items": self.n_items,
            "n_images": self.n_images,
            "train_pool": self.train_pool,
            "test_only": self.test_only,
            "train": _label_counts(self.train),
            "test": _label_counts(self.test),
        }


@dataclass
class Split:
    target: TargetSpec
    settings: SplitSettings
    subsets: dict[int, SubsetSplit]
    test: list[Item]  # the target's test items
    arms: dict[str, list[Item]]
    manifest: dict
    # Keys (by ``settings.image_identity``, see `image_key`) of every image on a test side anywhere: what must
    # never train, also checked against the general-domain mix-in (cgeval.data.mixin).
    tested_images: frozenset[str] = frozenset()


def _label_counts(items: list[Item]) -> dict:
    counts = Counter(it.answer_text for it in items)
    return {"n": len(items), "labels": dict(sorted(counts.items()))}


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds hash with sha512 in `random`, independent of PYTHONHASHSEED.
    return random.Random("/".join(str(p) for p in (seed, *parts)))


def water_fill(capacity: dict, n: int) -> dict:
    """Split ``n`` over keys as evenly as their capacities allow (the most balanced allocation).

    Keys with little capacity take all they have; the rest share what is left equally, remainders going to
    keys in sorted order. Returns key -> count, summing to min(n, total capacity).
    """
    alloc = {k: 0 for k in capacity}
    remaining = n
    order = sorted(capacity, key=lambda k: (capacity[k], str(k)))
    for i, k in enumerate(order):
        share = remaining // (len(order) - i)
        alloc[k] = min(capacity[k], share)
        remaining -= alloc[k]
    for k in sorted(capacity, key=str):
        if remaining == 0:
            break
        if alloc[k] < capacity[k]:
            alloc[k] += 1
            remaining -= 1
    return alloc


def balanced_take(items: list[Item], n: int, rng: random.Random) -> list[Item]:
    """Up to ``n`` items, labels as balanced as possible, chosen at random within each label."""
    by_label: dict[str, list[Item]] = defaultdict(list)
    for it in sorted(items, key=lambda x: x.item_id):
        by_label[it.answer_text].append(it)
    for label in sorted(by_label):
        rng.shuffle(by_label[label])
    quota = water_fill({label: len(v) for label, v in by_label.items()}, n)
    return [it for label in sorted(by_label) for it in by_label[label][: quota[label]]]


def strictly_balanced(items: list[Item], cap: int | None, rng: random.Random) -> list[Item]:
    """The same number of items for every label: the rarest label's count (and at most cap // labels)."""
    by_label: dict[str, list[Item]] = defaultdict(list)
    for it in sorted(items, key=lambda x: x.item_id):
        by_label[it.answer_text].append(it)
    if not by_label:
        return []
    per_label = min(len(v) for v in by_label.values())
    labels = sorted(by_label)
    if cap is not None and cap < len(labels):
        # Fewer places than labels: one item each for ``cap`` labels drawn at random, still equal per label.
        labels = sorted(rng.sample(labels, cap))
        per_label = 1
    elif cap is not None:
        per_label = min(per_label, cap // len(labels))
    out = []
    for label in labels:
        rng.shuffle(by_label[label])
        out.extend(by_label[label][:per_label])
    return out


def image_key(item: Item, identity: str, cache: dict[str, str]) -> str:
    if identity == "path":
        return str(PurePosixPath(item.image.replace("\\", "/")))
    if item.image_path not in cache:
        cache[item.image_path] = "sha256:" + hashlib.sha256(Path(item.image_path).read_bytes()).hexdigest()
    return cache[item.image_path]


def _path_side(rel: str) -> str | None:
    parts = {p.lower() for p in PurePosixPath(rel.replace("\\", "/")).parts[:-1]}
    if parts & _TRAIN_DIRS and not parts & _TEST_DIRS:
        return "train"
    if parts & _TEST_DIRS and not parts & _TRAIN_DIRS:
        return "test"
    return None


def _assign_sides(
    number: int, images: dict[str, list[Item]], settings: SplitSettings
) -> tuple[str, set[str]]:
    """(method, test image keys) for one subset."""
    if settings.original_split == "auto":
        sides = {k: _path_side(its[0].image) for k, its in images.items()}
        if all(sides.values()) and len(set(sides.values())) == 2:
            return "original", {k for k, s in sides.items() if s == "test"}
    rng = _rng(settings.seed, "side", number)
    by_label: dict[str, list[str]] = defaultdict(list)
    for k in sorted(images):
        by_label[images[k][0].answer_text].append(k)
    labels = sorted(by_label)
    rng.shuffle(labels)
    for label in labels:
        rng.shuffle(by_label[label])
    # Round-robin over labels: any prefix of this order is label-stratified.
    order = [by_label[l][i] for i in range(max(len(v) for v in by_label.values())) for l in labels if i < len(by_label[l])]
    n_test = max(1, round(settings.test_fraction * len(order))) if len(order) >= 2 else 0
    return "random", set(order[:n_test])


class _Adjustments:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, kind: str, count: int, **detail) -> None:
        if count:
            self.rows.append({"kind": kind, "count": count, **detail})


def split_subsets(
    items: list[Item], settings: SplitSettings, adjust: _Adjustments, cache: dict[str, str]
) -> tuple[dict[int, SubsetSplit], dict, set[str]]:
    """Per-subset train/test sides, duplicate handling, caps and test-only marking.

    Returns the subsets' splits, the duplicate-image summary and the keys of every image on a test side anywhere
    (``cache`` holds the content hashes `image_key` computed, for checking the arms against those keys)."""
    no_subset = [it.item_id for it in items if it.subset is None]
    if no_subset:
        raise NotMedMatItems(
            f"{len(no_subset)} items have no Med-MAT subset (e.g. {no_subset[:3]}); splits need Med-MAT items"
        )
    id_counts = Counter(it.item_id for it in items)
    repeated = sorted(i for i, c in id_counts.items() if c > 1)
    if repeated:
        raise DuplicateItemIds(
            f"{len(repeated)} item ids occur more than once (e.g. {repeated[:3]}); load each record once"
        )
    images: dict[int, dict[str, list[Item]]] = defaultdict(lambda: defaultdict(list))
    for it in sorted(items, key=lambda x: x.item_id):
        images[it.subset][image_key(it, settings.image_identity, cache)].append(it)

    owners: dict[str, list[int]] = defaultdict(list)
    for number in sorted(images):
        for k in images[number]:
            owners[k].append(number)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    pair_counts = Counter("+".join(f"{n:02d}" for n in v) for v in shared.values())
    duplicates = {
        "identity": settings.image_identity,
        "n_images_in_several_subsets": len(shared),
        "by_subsets": dict(sorted(pair_counts.items())),
        "examples": sorted(shared)[:5],
    }
    if shared and settings.duplicates == "error":
        raise DuplicateImageError(
            f"{len(shared)} images appear in several subsets ({dict(pair_counts)}); e.g. {sorted(shared)[:3]}. "
            "Use split.duplicates=test_wins to keep each such image out of every training side instead."
        )

    methods: dict[int, str] = {}
    test_keys: dict[int, set[str]] = {}
    for number in sorted(images):
        methods[number], test_keys[number] = _assign_sides(number, images[number], settings)

    # Test-only marking and duplicate removal feed each other (a test-only subset puts all its images on the
    # test side; removing them from other training sides can push those below the cap): iterate to a fixpoint.
    test_only: set[int] = set()
    while True:
        global_test = set().union(*(images[n].keys() if n in test_only else test_keys[n] for n in images))
        pools = {
            n: [k for k in sorted(images[n]) if k not in test_keys[n] and k not in global_test]
            for n in images
            if n not in test_only
        }
        newly = {n for n, keys in pools.items() if sum(len(images[n][k]) for k in keys) < settings.train_cap_per_subset}
        if not newly:
            break
        test_only |= newly

    result: dict[int, SubsetSplit] = {}
    for number in sorted(images):
        imgs = images[number]
        n_items = sum(len(v) for v in imgs.values())
        rng = _rng(settings.seed, "subset", number)
        if number in test_only:
            test_side = [it for k in sorted(imgs) for it in imgs[k]]
            train: list[Item] = []
            beyond_cap: list[Item] = []
            # What its training side would have held (its own images are all on the test side now).
            elsewhere = set().union(*(images[n].keys() if n in test_only else test_keys[n]
                                      for n in images if n != number))
            pool_n = sum(len(imgs[k]) for k in imgs if k not in test_keys[number] and k not in elsewhere)
        else:
            removed = [k for k in imgs if k not in test_keys[number] and k in global_test]
            adjust.add(
                "shared_image_removed_from_train",
                sum(len(imgs[k]) for k in removed),
                subset=number,
                detail="images on the test side of another subset",
            )
            pool = [it for k in pools[number] for it in imgs[k]]
            pool_n = len(pool)
            train = balanced_take(pool, settings.train_cap_per_subset, rng)
            taken = {it.item_id for it in train}
            beyond_cap = [it for it in pool if it.item_id not in taken]
            test_side = [it for k in sorted(test_keys[number]) for it in imgs[k]]
        # Its own generator: the test draw must not depend on how much the training draw consumed (which moves
        # with duplicates in other subsets, i.e. with which image folders a user has).
        test = strictly_balanced(test_side, settings.test_cap_per_subset, _rng(settings.seed, "test", number))
        adjust.add("test_dropped_for_label_balance", len(test_side) - len(test), subset=number)
        result[number] = SubsetSplit(
            subset=number,
            method=methods[number],
            n_items=n_items,
            n_images=len(imgs),
            train_pool=pool_n,
            test_only=number in test_only,
            train=train,
            test=test,
            beyond_cap=beyond_cap,
        )
    return result, duplicates, global_test


def _shares(number: int, comps: tuple[Composition, ...]) -> int:
    return max(SUBSETS[number].composition.shared_elements(c) for c in comps)


def related_pairs(target: Composition, candidates: list[int]) -> list[tuple[int, int]]:
    """The paper's Related combinations: (a, b) each sharing two elements with the target, different ones,
    so that together they cover all three while sharing one element with each other."""
    def missing(n: int) -> str | None:
        c = SUBSETS[n].composition
        miss = [ax for ax in AXES if getattr(c, ax) != getattr(target, ax)]
        return miss[0] if len(miss) == 1 else None

    near = [n for n in sorted(candidates) if missing(n)]
    return [(a, b) for i, a in enumerate(near) for b in near[i + 1 :] if missing(a) != missing(b)]


def _take_across(
    arm: str,
    subsets: list[int],
    splits: dict[int, SubsetSplit],
    size: int | None,
    settings: SplitSettings,
    adjust: _Adjustments,
    why: str,
    beyond_cap: bool = False,
) -> list[Item]:
    """``size`` items spread as evenly as possible over the subsets' training sets (all when size is None).

    With ``beyond_cap`` (Fig. 4 arms), when the capped training sets hold fewer than ``size``, all of them are
    taken and the rest is drawn from the same subsets' full training sides (`SubsetSplit.beyond_cap`), spread as
    evenly as those allow and label-balanced within each subset; recorded as ``arm_beyond_subset_cap``."""
    capacity = {n: len(splits[n].train) for n in subsets}
    total = sum(capacity.values())
    if size is None:
        size = total
    extra = {n: 0 for n in subsets}
    if total < size and beyond_cap:
        extra = water_fill({n: len(splits[n].beyond_cap) for n in subsets}, size - total)
        adjust.add(
            "arm_beyond_subset_cap", sum(extra.values()), arm=arm,
            by_subset={f"{n:02d}": c for n, c in sorted(extra.items()) if c},
            detail=f"the capped training sets hold {total}; the rest comes from the same subsets' full training sides",
        )
    available = total + sum(extra.values())
    if available < size:
        if not settings.allow_short:
            where = "their full training sides" if beyond_cap else "after caps and test-only marking"
            raise InsufficientTrainingData(
                f"arm {arm!r} needs {size} training items ({why}) but its subsets "
                f"{[f'{n:02d}' for n in subsets]} hold {available} ({where}); "
                "lower the cap, add data, or set split.allow_short=true to keep a smaller, recorded arm"
            )
        adjust.add("arm_short_of_size", size - available, arm=arm, asked=size, available=available, detail=why)
        size = available
    quota = water_fill(capacity, min(size, total))
    out: list[Item] = []
    for n in sorted(subsets):
        rng = _rng(settings.seed, "arm", arm, n)
        out.extend(splits[n].train if quota[n] == capacity[n] else balanced_take(splits[n].train, quota[n], rng))
        if extra[n]:
            out.extend(balanced_take(splits[n].beyond_cap, extra[n], _rng(settings.seed, "beyond_cap", arm, n)))
    return out


def _check_present(numbers: list[int], splits: dict[int, SubsetSplit], role: str, target: TargetSpec) -> None:
    absent = [n for n in numbers if n not in splits]
    test_only = [n for n in numbers if n in splits and splits[n].test_only]
    if absent or test_only:
        parts = []
        if absent:
            parts.append(f"absent from the data: {[f'{n:02d} {SUBSETS[n].composition}' for n in absent]}")
        if test_only:
            parts.append(f"test-only (below the per-subset cap): {[f'{n:02d}' for n in test_only]}")
        raise RelatedSubsetsMissing(f"experiment {target.name!r}: {role} subsets " + "; ".join(parts))


def build_arms(target: TargetSpec, splits: dict[int, SubsetSplit], settings: SplitSettings, adjust: _Adjustments) -> tuple[dict[str, list[Item]], dict]:
    comps = target.compositions
    same_comp = sorted(n for n in splits if n not in target.target_subsets and SUBSETS[n].composition in comps)
    trainable = sorted(
        n for n in splits if n not in target.target_subsets and n not in same_comp and not splits[n].test_only
    )
    info: dict = {"excluded_same_composition": same_comp}
    arms: dict[str, list[Item]] = {}

    def pool(arm: str) -> list[int]:
        related = [n for n in trainable if _shares(n, comps) >= 1]
        if arm == "all_unrelated":
            return [n for n in trainable if _shares(n, comps) == 0]
        if arm == "all_related":
            return related
        if arm == "all_data":
            return trainable
        axis = arm.removeprefix("wo_")
        values = {getattr(c, axis) for c in comps}
        return [n for n in related if getattr(SUBSETS[n], axis) not in values]

    need_related = "related" in target.arms or "baseline_plus" in target.arms
    if need_related:
        if target.related_subsets is not None:
            named = sorted(set(target.related_subsets))
            equal = [n for n in named if SUBSETS[n].composition in comps or n in target.target_subsets]
            if equal:
                raise InvalidRelatedSet(
                    f"experiment {target.name!r}: related subsets {equal} have the target's composition"
                )
            for c in comps:
                uncovered = [
                    ax for ax in target.related_axes if all(getattr(SUBSETS[n], ax) != getattr(c, ax) for n in named)
                ]
                if uncovered:
                    raise InvalidRelatedSet(
                        f"experiment {target.name!r}: related subsets {named} do not cover the target {c}'s "
                        f"{', '.join(uncovered)}"
                    )
            _check_present(named, splits, "related", target)
            related = named
            info["related_pairs"] = None
        else:
            if len(comps) != 1:
                raise SplitConfigError(
                    f"experiment {target.name!r}: a derived Related set needs one target composition, got "
                    f"{[str(c) for c in comps]}; name experiment.related_subsets"
                )
            candidates = [n for n in SUBSETS if SUBSETS[n].released and SUBSETS[n].composition != comps[0]]
            pairs = related_pairs(comps[0], candidates)
            usable = [(a, b) for a, b in pairs if a in trainable and b in trainable]
            if not usable:
                raise RelatedSubsetsMissing(
                    f"experiment {target.name!r}: no Related combination for {comps[0]} is in the data "
                    f"(registry pairs: {pairs or 'none'}; trainable subsets: {trainable}; test-only subsets: "
                    f"{sorted(n for n in splits if splits[n].test_only)}; absent: "
                    f"{sorted({n for p in pairs for n in p} - set(splits))})"
                )
            adjust.add("related_pairs_unusable", len(pairs) - len(usable), detail=[p for p in pairs if p not in usable])
            related = sorted({n for p in usable for n in p})
            info["related_pairs"] = usable
        arms["related"] = _take_across("related", related, splits, None, settings, adjust, "Related")
        info["related_subsets"] = related

    if "baseline_plus" in target.arms:
        if target.baseline_plus_subsets is not None:
            named = sorted(set(target.baseline_plus_subsets))
            sharing = [n for n in named if _shares(n, comps) > 0]
            if sharing:
                raise SplitConfigError(
                    f"experiment {target.name!r}: baseline_plus subsets {sharing} share an element with the target"
                )
            _check_present(named, splits, "baseline_plus", target)
            bp_pool = named
        else:
            bp_pool = pool("all_unrelated")
        arms["baseline_plus"] = _take_across(
            "baseline_plus", bp_pool, splits, len(arms["related"]), settings, adjust, "as many as Related"
        )
        info["baseline_plus_subsets"] = bp_pool
        if len(arms["baseline_plus"]) < len(arms["related"]):
            # allow_short kept a smaller Baseline+: the protocol compares equal amounts of data, so Related
            # shrinks to the same size (spread over its subsets as evenly as they allow), recorded.
            adjust.add(
                "related_trimmed_to_baseline_plus",
                len(arms["related"]) - len(arms["baseline_plus"]),
                arm="related",
                detail="Baseline+ could not reach the Related size; both arms keep the same number of items",
            )
            arms["related"] = _take_across(
                "related", related, splits, len(arms["baseline_plus"]), settings, adjust, "as many as Baseline+"
            )

    cap = target.total_cap if target.total_cap is not None else settings.total_cap
    for arm in FIG4_ARMS:
        if arm in target.arms:
            subsets = pool(arm)
            if not subsets:
                raise InsufficientTrainingData(
                    f"experiment {target.name!r}: arm {arm!r} has no trainable subset (test-only subsets: "
                    f"{sorted(n for n in splits if splits[n].test_only)})"
                )
            arms[arm] = _take_across(arm, subsets, splits, cap, settings, adjust, f"total cap {cap}",
                                     beyond_cap=settings.fig4_beyond_cap)
    if not need_related:
        info["related_subsets"] = None
    if "related" in arms and "related" not in target.arms:
        del arms["related"]  # built only to size Baseline+
    # Items come out grouped by subset and label; a seeded shuffle keeps any prefix of a training file (a tool's
    # max_samples, a streamed or unshuffled run) a fair sample of the whole arm.
    for arm, its in arms.items():
        _rng(settings.seed, "order", arm).shuffle(its)
    return {a: arms[a] for a in target.arms}, info


def build_split(items: list[Item], target: TargetSpec, settings: SplitSettings) -> Split:
    warnings = []
    if settings.image_identity == "path":
        log.warning(PATH_IDENTITY_WARNING)
        warnings.append(PATH_IDENTITY_WARNING)
    adjust = _Adjustments()
    cache: dict[str, str] = {}
    splits, duplicates, tested_images = split_subsets(items, settings, adjust, cache)
    absent = [n for n in target.target_subsets if n not in splits]
    if len(absent) == len(target.target_subsets):
        raise TargetMissing(
            f"experiment {target.name!r}: target subsets {[f'{n:02d}' for n in absent]} are absent from the data "
            f"(present: {[f'{n:02d}' for n in sorted(splits)]})"
        )
    adjust.add("target_subset_absent", len(absent), subsets=absent)
    arms, info = build_arms(target, splits, settings, adjust)
    test = [it for n in target.target_subsets if n in splits for it in splits[n].test]
    manifest = {
        "experiment": target.name,
        "settings": asdict(settings),
        "target": {
            "subsets": list(target.target_subsets),
            "present": [n for n in target.target_subsets if n in splits],
            "compositions": [str(c) for c in target.compositions],
            "test": _label_counts(test),
            "test_items_hash": items_hash(test),
        },
        "subsets_in_data": sorted(splits),
        "released_subsets_absent": sorted(n for n in SUBSETS if SUBSETS[n].released and n not in splits),
        "test_only_subsets": sorted(n for n, s in splits.items() if s.test_only),
        **info,
        "arms": {
            arm: {
                "n": len(its),
                "by_subset": {f"{n:02d}": c for n, c in sorted(Counter(it.subset for it in its).items())},
                "labels_by_subset": {
                    f"{n:02d}": _label_counts([it for it in its if it.subset == n])["labels"]
                    for n in sorted({it.subset for it in its})
                },
                "items_hash": items_hash(its),
            }
            for arm, its in arms.items()
        },
        "subsets": {f"{n:02d}": s.summary() for n, s in sorted(splits.items())},
        "duplicates": duplicates,
        "adjustments": adjust.rows,
        "warnings": warnings,
    }
    _check_no_leak(arms, tested_images, settings, cache)
    return Split(
        target=target, settings=settings, subsets=splits, test=test, arms=arms, manifest=manifest,
        tested_images=frozenset(tested_images),
    )


def _check_no_leak(
    arms: dict[str, list[Item]], tested_images: set[str], settings: SplitSettings, cache: dict[str, str]
) -> None:
    """Invariant, not input validation: no image on any subset's test side (the target's included), by the
    split's own image identity, is in any training arm. Raised, not asserted, so ``python -O`` keeps it."""
    for arm, its in arms.items():
        leaked = tested_images & {image_key(it, settings.image_identity, cache) for it in its}
        if leaked:
            raise ImageLeak(f"arm {arm} contains images from a test side: {sorted(leaked)[:3]}")
