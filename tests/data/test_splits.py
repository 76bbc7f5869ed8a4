"""Splits: image-level sides, caps, balance, test-only, duplicates, Related / Baseline+ / Fig. 4 arms, errors."""

import json
import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from cgeval.config import ExperimentConfig
from cgeval.data.loader import DataError, load_medmat
from cgeval.data.records import Item
from cgeval.data.registry import SUBSETS
from cgeval.data.sample import SAMPLE_ROOT
import cgeval.data.splits as splits_module
from cgeval.data.splits import (
    AXES,
    FIG4_ARMS,
    PATH_IDENTITY_WARNING,
    DuplicateImageError,
    DuplicateItemIds,
    ImageLeak,
    InsufficientTrainingData,
    InvalidRelatedSet,
    NotMedMatItems,
    RelatedSubsetsMissing,
    SplitConfigError,
    SplitSettings,
    TargetMissing,
    TargetSpec,
    _assign_sides,
    _path_side,
    balanced_take,
    build_split,
    image_key,
    related_pairs,
    strictly_balanced,
    water_fill,
)

SMALL = SplitSettings(train_cap_per_subset=5, total_cap=20, allow_short=True)
BY_PATH = replace(SMALL, image_identity="path")  # for synthetic items (`synth`): their image files do not exist


@pytest.fixture(scope="module")
def sample_items():
    items, _ = load_medmat(SAMPLE_ROOT, verify_images=False)
    return items


def synth(subset: int, n: int, labels=("a", "b"), prefix="img", folder=None) -> list[Item]:
    """n items of one subset, one image each, labels cycling."""
    s = SUBSETS[subset]
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        image = f"med-mat/{folder or f'S{subset}'}/{prefix}{i}.png"
        out.append(
            Item(
                item_id=f"S{subset:02d}-{prefix}{i}", subset=subset, dataset=s.datasets[0], modality=s.modality,
                area=s.area, task=s.task, image=image, image_path=f"/root/{image}", prompt="Q\nA: a\nB: b",
                question="Q", options=(("A", labels[0]), ("B", labels[1])), gold="A" if label == labels[0] else "B",
                answer_text=label,
            )
        )
    return out


def test_water_fill_is_most_balanced():
    assert water_fill({"a": 1, "b": 10, "c": 10}, 9) == {"a": 1, "b": 4, "c": 4}
    assert sum(water_fill({"a": 3, "b": 3}, 100).values()) == 6
    alloc = water_fill({"a": 5, "b": 5, "c": 5}, 7)
    assert sum(alloc.values()) == 7 and max(alloc.values()) - min(alloc.values()) <= 1


def test_balanced_take_caps_and_balances():
    import random

    items = synth(3, 40, labels=("a", "b")) + synth(3, 4, labels=("c", "d"), prefix="rare")
    got = balanced_take(items, 12, random.Random(0))
    counts = Counter(it.answer_text for it in got)
    assert len(got) == 12 and counts == {"a": 4, "b": 4, "c": 2, "d": 2}


def test_same_inputs_same_split_and_seed_matters(sample_items):
    target = TargetSpec("t", (3,), ("related", "baseline_plus"))
    a = build_split(sample_items, target, SMALL)
    b = build_split(list(reversed(sample_items)), target, SMALL)
    assert json.dumps(a.manifest, sort_keys=True) == json.dumps(b.manifest, sort_keys=True)
    c = build_split(sample_items, target, replace(SMALL, seed=1))
    assert a.manifest["arms"]["related"]["items_hash"] != c.manifest["arms"]["related"]["items_hash"]


def test_image_level_no_overlap_and_caps(sample_items):
    split = build_split(sample_items, TargetSpec("t", (3,), ("all_data",)), SMALL)
    for s in split.subsets.values():
        assert not {it.image for it in s.train} & {it.image for it in s.test}
        assert len(s.train) <= 5
        if not s.test_only:
            assert s.test, s.subset  # 9:1 of 10 images leaves one test image
    assert not {it.image for it in split.test} & {it.image for arm in split.arms.values() for it in arm}


def test_related_is_04_and_28_for_target_03_and_baseline_plus_matches_size(sample_items):
    split = build_split(sample_items, TargetSpec("t", (3,), ("related", "baseline_plus")), SMALL)
    m = split.manifest
    assert m["related_subsets"] == [4, 28] and [tuple(p) for p in m["related_pairs"]] == [(4, 28)]
    assert {it.subset for it in split.arms["related"]} == {4, 28}
    assert len(split.arms["baseline_plus"]) == len(split.arms["related"]) == 10
    target = SUBSETS[3].composition
    for it in split.arms["baseline_plus"]:
        assert SUBSETS[it.subset].composition.shared_elements(target) == 0
    assert all(it.subset == 3 for it in split.test)


def test_registry_pairs_follow_the_paper_definition():
    assert related_pairs(SUBSETS[3].composition, [n for n in SUBSETS if n != 3 and SUBSETS[n].released]) == [(4, 28)]


def test_fig4_arms_follow_their_definitions(sample_items):
    split = build_split(sample_items, TargetSpec("f", (3,), FIG4_ARMS, total_cap=1000), SMALL)
    subsets = {arm: {it.subset for it in its} for arm, its in split.arms.items()}
    assert subsets["wo_modality"] == {28, 30}  # related, not CT
    assert subsets["wo_area"] == {2, 5, 6}  # related, not Lung
    assert subsets["wo_task"] == {2, 4, 5, 6, 30}  # related, not COVID
    assert subsets["all_related"] == {2, 4, 5, 6, 28, 30}
    assert subsets["all_unrelated"] == {8, 13, 14, 22, 26}
    assert subsets["all_data"] == set(split.subsets) - {3}
    # cap 1000 cannot be reached on the sample: every arm's shortfall is recorded, none is silent
    short = {a["arm"]: a for a in split.manifest["adjustments"] if a["kind"] == "arm_short_of_size"}
    assert set(short) == set(FIG4_ARMS)
    assert all(short[arm]["available"] == len(split.arms[arm]) for arm in FIG4_ARMS)


def test_total_cap_is_spread_over_subsets(sample_items):
    split = build_split(sample_items, TargetSpec("f", (3,), ("all_data",), total_cap=22), SMALL)
    counts = Counter(it.subset for it in split.arms["all_data"])
    assert sum(counts.values()) == 22 and max(counts.values()) - min(counts.values()) <= 1


def test_cap_larger_than_data_is_a_named_error(sample_items):
    strict = replace(SMALL, allow_short=False)
    with pytest.raises(InsufficientTrainingData, match="all_data"):
        build_split(sample_items, TargetSpec("f", (3,), ("all_data",), total_cap=10_000), strict)


def test_default_cap_makes_sample_test_only_and_related_missing(sample_items):
    with pytest.raises(RelatedSubsetsMissing, match="test-only"):
        build_split(sample_items, TargetSpec("t", (3,), ("related",)), SplitSettings())
    with pytest.raises(InsufficientTrainingData, match="test-only"):
        build_split(sample_items, TargetSpec("t", (3,), ("all_data",)), replace(SplitSettings(), allow_short=True))
    split = build_split(sample_items, TargetSpec("t", (3,), ()), SplitSettings())
    assert split.manifest["test_only_subsets"] == sorted(split.subsets)
    assert split.arms == {}
    # a test-only subset is all test, label-balanced
    s = split.subsets[3]
    assert s.test_only and len(set(Counter(it.answer_text for it in s.test).values())) == 1


def test_named_related_subsets_validated(sample_items):
    with pytest.raises(InvalidRelatedSet, match="do not cover"):
        build_split(sample_items, TargetSpec("t", (3,), ("related",), related_subsets=(4, 30)), SMALL)
    with pytest.raises(InvalidRelatedSet, match="target's composition"):
        build_split(sample_items, TargetSpec("t", (14,), ("related",), related_subsets=(15, 8)), SMALL)
    with pytest.raises(RelatedSubsetsMissing, match="32"):
        build_split(sample_items, TargetSpec("t", (6,), ("related",), related_subsets=(5, 32)), SMALL)
    with pytest.raises(TargetMissing, match="32"):
        build_split(sample_items, TargetSpec("t", (32,), ("related",), related_subsets=(26, 6)), SMALL)


def test_bad_settings_and_arms_are_named():
    with pytest.raises(SplitConfigError):
        SplitSettings(test_fraction=1.5)
    with pytest.raises(SplitConfigError):
        SplitSettings(duplicates="ignore")
    with pytest.raises(SplitConfigError, match="unknown arms"):
        TargetSpec("t", (3,), ("relatd",))


def test_same_composition_subsets_are_in_no_arm():
    items = synth(14, 30, folder="A") + synth(15, 30, folder="B") + synth(8, 30) + synth(23, 30) + synth(13, 30)
    split = build_split(items, TargetSpec("t", (14,), ("all_data",), total_cap=None), replace(BY_PATH, train_cap_per_subset=10))
    assert split.manifest["excluded_same_composition"] == [15]
    assert 15 not in {it.subset for it in split.arms["all_data"]}


def test_duplicate_images_across_subsets_never_leak():
    # 03 and 28 share 20 images (same paths). Whatever side an image takes in one, it never trains if it tests.
    shared = synth(3, 20, folder="shared")
    dup = [replace(it, subset=28, item_id=it.item_id.replace("S03", "S28"), modality="X-ray") for it in shared]
    items = shared + synth(3, 20, prefix="own") + dup + synth(28, 20, prefix="own") + synth(4, 40) + synth(8, 40)
    settings = replace(BY_PATH, train_cap_per_subset=10)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), settings)
    assert split.manifest["duplicates"]["n_images_in_several_subsets"] == 20
    tested = {it.image for s in split.subsets.values() for it in s.test}
    trained = {it.image for s in split.subsets.values() for it in s.train}
    assert not tested & trained
    removed = [a for a in split.manifest["adjustments"] if a["kind"] == "shared_image_removed_from_train"]
    assert removed and all(a["count"] > 0 for a in removed)
    with pytest.raises(DuplicateImageError, match="03\\+28"):
        build_split(items, TargetSpec("t", (3,), ("all_data",)), replace(settings, duplicates="error"))


def test_duplicates_by_content(tmp_path: Path, sample_copy: Path):
    # the same picture under two names in two subsets: only content identity sees it
    items, _ = load_medmat(sample_copy, subsets=[3, 28], verify_images=False)
    a = next(it for it in items if it.subset == 3)
    b = next(it for it in items if it.subset == 28)
    Path(b.image_path).write_bytes(Path(a.image_path).read_bytes())
    by_path = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), BY_PATH)
    by_content = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), SMALL)  # the default
    assert by_path.manifest["duplicates"]["n_images_in_several_subsets"] == 0
    assert by_content.manifest["duplicates"]["n_images_in_several_subsets"] == 1


def test_original_split_from_paths():
    train = synth(3, 30, folder="ds/train")
    test = synth(3, 6, folder="ds/test", prefix="t")
    split = build_split(train + test + synth(4, 40), TargetSpec("t", (3,), ("all_data",), total_cap=None), replace(BY_PATH, train_cap_per_subset=10))
    s = split.subsets[3]
    assert s.method == "original" and {it.image for it in s.test} <= {it.image for it in test}
    assert split.subsets[4].method == "random"


def test_other_sources_are_refused():
    item = replace(synth(3, 1)[0], subset=None)
    with pytest.raises(NotMedMatItems):
        build_split([item], TargetSpec("t", (3,), ("all_data",)), BY_PATH)


def test_duplicate_item_ids_are_a_named_error():
    # The split orders items by id: two items under one id would make it depend on the input order.
    items = synth(3, 30) + synth(4, 30)
    twin = replace(items[1], image="med-mat/other/x.png", answer_text="b")
    with pytest.raises(DuplicateItemIds, match="S03-img1"):
        build_split(items + [twin], TargetSpec("t", (3,), ("all_data",), total_cap=None), BY_PATH)


def test_test_cap_smaller_than_label_count_is_kept():
    items = synth(3, 40, labels=("a", "b", "c", "d")) + synth(4, 40)
    settings = replace(BY_PATH, train_cap_per_subset=10, test_cap_per_subset=2)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), settings)
    counts = Counter(it.answer_text for it in split.subsets[3].test)
    assert sum(counts.values()) == 2 and set(counts.values()) == {1}
    assert len(split.subsets[4].test) == 2


def test_short_baseline_plus_trims_related_to_the_same_size():
    # Related (04 + 28) holds 20 training items, the only unrelated subset (08) 10: with allow_short both arms
    # keep 10, so Trained and Baseline+ still see the same amount of data; the trim is recorded.
    items = synth(3, 40) + synth(4, 40) + synth(28, 40) + synth(8, 14)
    settings = replace(BY_PATH, train_cap_per_subset=10)
    split = build_split(items, TargetSpec("t", (3,), ("related", "baseline_plus")), settings)
    assert len(split.arms["related"]) == len(split.arms["baseline_plus"]) == 10
    assert Counter(it.subset for it in split.arms["related"]) == {4: 5, 28: 5}
    kinds = {a["kind"]: a for a in split.manifest["adjustments"]}
    assert kinds["arm_short_of_size"]["arm"] == "baseline_plus"
    assert kinds["related_trimmed_to_baseline_plus"]["count"] == 10
    assert split.manifest["arms"]["related"]["n"] == 10
    with pytest.raises(InsufficientTrainingData, match="baseline_plus"):
        build_split(items, TargetSpec("t", (3,), ("related", "baseline_plus")), replace(settings, allow_short=False))


def test_arms_are_shuffled_not_grouped_by_subset(sample_items):
    # A tool that reads only the first N items (max_samples, streaming) must still see every subset and label.
    split = build_split(sample_items, TargetSpec("f", (3,), ("all_data",), total_cap=None), BY_PATH)
    order = [it.subset for it in split.arms["all_data"]]
    assert order != sorted(order)
    first = split.arms["all_data"][: len(order) // 3]
    assert len({it.subset for it in first}) > 2
    again = build_split(list(reversed(sample_items)), TargetSpec("f", (3,), ("all_data",), total_cap=None), BY_PATH)
    assert [it.item_id for it in again.arms["all_data"]] == [it.item_id for it in split.arms["all_data"]]


def test_leak_invariant_is_raised_not_asserted(monkeypatch):
    # Should a bug ever put a test-side image into training, the split fails loudly (also under python -O).
    items = synth(3, 30) + synth(4, 30)
    real = splits_module.balanced_take
    tested = {}

    def leaky(pool, n, rng):
        out = real(pool, n, rng)
        return out + tested.get(pool[0].subset, []) if pool else out

    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), replace(BY_PATH, train_cap_per_subset=10))
    tested[4] = split.subsets[4].test[:1]
    monkeypatch.setattr(splits_module, "balanced_take", leaky)
    with pytest.raises(ImageLeak, match="all_data"):
        build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), replace(BY_PATH, train_cap_per_subset=10))


def test_test_only_subsets_report_what_their_training_side_would_hold():
    items = synth(3, 30) + synth(4, 80)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None),
                        replace(BY_PATH, train_cap_per_subset=50))
    s = split.subsets[3]
    assert s.test_only and not s.train
    assert s.train_pool == 27  # the 9:1 split of 30 single-image items, not 0


def test_a_targets_test_items_do_not_move_when_another_subsets_duplicates_change():
    """The test draw has its own generator: duplicates elsewhere shrink 03's training pool (and so what its
    training draw consumes) but not which of its test images are drawn."""
    base = synth(3, 60, labels=("a", "b", "c")) + synth(4, 60) + synth(8, 60)
    settings = replace(BY_PATH, train_cap_per_subset=10, test_cap_per_subset=3)
    target = TargetSpec("t", (3,), ("all_data",), total_cap=None)
    want = sorted(it.item_id for it in build_split(base, target, settings).subsets[3].test)
    first = build_split(base, target, settings)
    trained = [it for it in first.subsets[3].train][:5]
    for k in (1, 3, 5):  # test-only subset 30 holding copies of some of 03's training images
        dup = [replace(it, subset=30, item_id=f"S30-{i}", modality="X-ray", task="Tuberculosis")
               for i, it in enumerate(trained[:k])]
        got = build_split(base + dup, target, settings).subsets[3].test
        assert sorted(it.item_id for it in got) == want, k


def test_cli_counts_a_26_option_record_and_reads_a_byte_order_mark(sample_copy: Path, tmp_path: Path):
    # One hostile QA file (a record with 26 options, another with 30, saved with a byte-order mark) stops nothing:
    # the split is built and the two records are counted skips in its manifest.
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    letters = [chr(65 + i) for i in range(26)] + ["AA", "AB", "AC", "AD"]

    def many_options(n: int) -> str:
        return "Which one?\n" + "\n".join(f"{l}: label {l}" for l in letters[:n]) + "\nAnswer with the letter."

    path = sample_copy / "Aggregated_Subsets" / "Subset--28-train.json"
    records = json.loads(path.read_text())
    records[0]["Question-choice"] = many_options(26)
    records[1]["Question-choice"] = many_options(30)
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(records).encode())
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "cgeval.split", "split=sample", "experiment=table3_area_lung_ct_covid",
         f"data.root={sample_copy}", f"split.out={out}"],
        cwd=repo, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["load_report"]["skipped"] == {"unparseable_options": 2}
    assert manifest["load_report"]["n_items"] == 118 and manifest["arms"]["related"]["by_subset"]["28"] > 0


def _copies_of_the_target_under_other_names(root: Path) -> None:
    """Every image of target 03 (CT-Lung-COVID), byte for byte, filed again under another name as an X-ray-Lung-COVID
    (28) record: what duplicated source datasets look like."""
    import shutil

    s03 = json.loads((root / "Aggregated_Subsets/Subset--03-train.json").read_text())
    path28 = root / "Aggregated_Subsets/Subset--28-train.json"
    s28 = json.loads(path28.read_text())
    (root / "med-mat/COVID-19_CHEST_X-RAY_DATABASE/copies").mkdir()
    for i, rec in enumerate(s03):
        rel = f"med-mat/COVID-19_CHEST_X-RAY_DATABASE/copies/{i}.png"
        shutil.copy(root / rec["image"], root / rel)
        s28.append({**s28[i], "id": 1000 + i, "image": rel})
    path28.write_text(json.dumps(s28))


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_by_default_a_copy_under_another_name_never_trains(sample_copy: Path, caplog):
    _copies_of_the_target_under_other_names(sample_copy)
    items, _ = load_medmat(sample_copy)
    target = TargetSpec("t", (3,), ("all_data",), total_cap=None)
    settings = SplitSettings(train_cap_per_subset=10, allow_short=True)  # 03 is then test-only: all 10 are tested

    def leaked(split) -> set[str]:
        tested = {_sha(it.image_path) for it in split.test}
        assert len(tested) == 10
        return tested & {_sha(it.image_path) for arm in split.arms.values() for it in arm}

    with caplog.at_level("WARNING"):
        split = build_split(items, target, settings)
    assert split.settings.image_identity == "content" and not leaked(split)
    assert split.manifest["warnings"] == [] and not caplog.records
    by_path = build_split(items, target, replace(settings, image_identity="path"))
    assert len(leaked(by_path)) >= 5  # most of the 10 tested images train too: the reason for the default
    assert by_path.manifest["warnings"] and "image_identity=path" in caplog.text


def test_cli_default_identity_is_content_and_path_is_warned(sample_copy: Path, tmp_path: Path):
    import subprocess
    import sys

    _copies_of_the_target_under_other_names(sample_copy)
    repo = Path(__file__).resolve().parents[2]

    def split_cli(out: Path, *extra: str) -> tuple[dict, set[str], str]:
        run = subprocess.run(
            [sys.executable, "-m", "cgeval.split", "split=sample", "experiment=holdout_ct_lung_covid",
             "+experiment.arms=[all_data]", "split.train_cap_per_subset=10", f"data.root={sample_copy}",
             f"split.out={out}", *extra],
            cwd=repo, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        trained = {_sha(json.loads(line)["images"][0])
                   for line in (out / manifest["files"]["arms"]["all_data"]["swift"]).read_text().splitlines()}
        tested = {_sha(sample_copy / json.loads(line)["image"])
                  for line in (out / manifest["files"]["test"]).read_text().splitlines()}
        return manifest, trained & tested, run.stdout + run.stderr

    manifest, leaked, output = split_cli(tmp_path / "default")
    assert manifest["settings"]["image_identity"] == "content" and not leaked and "WARNING" not in output
    manifest, leaked, output = split_cli(tmp_path / "by_path", "split.image_identity=path")
    assert leaked and manifest["warnings"] and "WARNING" in output and "image_identity=path" in output


# ------------------------------------------------------------------ piece by piece, every count worked out by hand
# Synthetic items (`synth`, one image each, labels alternating a/b) make the counts easy to follow: a subset of n
# single-image items has round(n / 10) test images (at least one), drawn round-robin over its labels, so the test
# side of 20 items is one ``a`` and one ``b``, and of 30 items two of one label and one of the other (one dropped
# to balance the test set).

CAP10 = replace(BY_PATH, train_cap_per_subset=10, allow_short=False)


def _raises(exc, message: str):
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


# ------------------------------------------------------------------ settings and experiment checks


def test_split_settings_bounds_and_messages():
    for bad in (0, 1, 1.5):
        with _raises(SplitConfigError, f"split.test_fraction must be in (0, 1), got {bad}"):
            SplitSettings(test_fraction=bad)
    with _raises(SplitConfigError, "split.train_cap_per_subset must be >= 1, got 0"):
        SplitSettings(train_cap_per_subset=0)
    with _raises(SplitConfigError, "split.test_cap_per_subset must be >= 1 or null, got 0"):
        SplitSettings(test_cap_per_subset=0)
    with _raises(SplitConfigError, "split.total_cap must be >= 1 or null, got 0"):
        SplitSettings(total_cap=0)
    with _raises(SplitConfigError, "split.original_split must be one of ('auto', 'ignore'), got 'x'"):
        SplitSettings(original_split="x")
    with _raises(SplitConfigError, "split.duplicates must be one of ('test_wins', 'error'), got 'keep'"):
        SplitSettings(duplicates="keep")
    with _raises(SplitConfigError, "split.image_identity must be one of ('path', 'content'), got 'hash'"):
        SplitSettings(image_identity="hash")
    # the edges that are allowed
    ok = SplitSettings(test_fraction=0.01, train_cap_per_subset=1, test_cap_per_subset=1, total_cap=1,
                       original_split="ignore", duplicates="error", image_identity="path")
    assert ok.train_cap_per_subset == ok.test_cap_per_subset == ok.total_cap == 1
    assert SplitSettings(test_fraction=0.99, test_cap_per_subset=None, total_cap=None).total_cap is None
    assert issubclass(SplitConfigError, ValueError) and issubclass(SplitConfigError, DataError)


def test_split_settings_defaults():
    s = SplitSettings()
    assert (s.seed, s.test_fraction, s.test_cap_per_subset, s.original_split, s.duplicates, s.image_identity,
            s.allow_short, s.fig4_beyond_cap) == (0, 0.1, None, "auto", "test_wins", "content", False, True)


def test_target_spec_checks_and_messages():
    with _raises(SplitConfigError, "unknown arms ['x']; valid arms: related, baseline_plus, all_unrelated, "
                                   "all_related, wo_modality, wo_area, wo_task, all_data"):
        TargetSpec("t", (3,), ("related", "x"))
    for axes in ((), ("colour",), ("area", "colour")):
        with _raises(SplitConfigError,
                     f"related_axes must be a non-empty subset of ('modality', 'area', 'task'), got {axes}"):
            TargetSpec("t", (3,), (), related_axes=axes)
    with _raises(SplitConfigError, "experiment.related_subsets [54] are not Med-MAT subsets 1-53"):
        TargetSpec("t", (3,), (), related_subsets=(4, 54))
    with _raises(SplitConfigError, "experiment.baseline_plus_subsets [0] are not Med-MAT subsets 1-53"):
        TargetSpec("t", (3,), (), baseline_plus_subsets=(0, 8))
    with _raises(SplitConfigError, "experiment.total_cap must be >= 1, got 0"):
        TargetSpec("t", (3,), (), total_cap=0)
    ok = TargetSpec("t", (3,), ("all_data",), related_axes=("area",), related_subsets=(53,),
                    baseline_plus_subsets=(1,), total_cap=1)
    assert ok.total_cap == 1
    assert AXES == ("modality", "area", "task")


def test_target_compositions_once_each_in_order():
    spec = TargetSpec("t", (14, 15, 3), ())
    assert [str(c) for c in spec.compositions] == ["FP-Fundus-Diseases", "CT-Lung-COVID"]


def test_target_spec_from_experiment():
    one = TargetSpec.from_experiment(ExperimentConfig(name="e", heldout=[{"subsets": [3]}]))
    assert one == TargetSpec("e", (3,), ("related", "baseline_plus"))
    assert one.related_subsets is None and one.baseline_plus_subsets is None and one.related_axes == AXES
    # two subsets of one composition (14 and 15 are both FP-Fundus-Diseases): still a Related target
    fundus = TargetSpec.from_experiment(ExperimentConfig(name="f", heldout=[{"subsets": [14, 15]}]))
    assert fundus.target_subsets == (14, 15) and fundus.arms == ("related", "baseline_plus")
    two = TargetSpec.from_experiment(ExperimentConfig(name="g", heldout=[{"subsets": [3, 4]}]))
    assert two.arms == ("all_data",)
    named = TargetSpec.from_experiment(ExperimentConfig(
        name="h", heldout=[{"subsets": [3]}], related_subsets=["4", 28], related_axes=["area"],
        baseline_plus_subsets=["8"], arms=["related", "wo_task"], total_cap=100))
    assert named == TargetSpec("h", (3,), ("related", "wo_task"), related_subsets=(4, 28), related_axes=("area",),
                               baseline_plus_subsets=(8,), total_cap=100)


# ------------------------------------------------------------------ allocation helpers


def test_water_fill_exact_allocations():
    assert water_fill({"a": 5, "b": 5, "c": 5}, 7) == {"a": 2, "b": 2, "c": 3}
    assert water_fill({"x": 0, "y": 4}, 3) == {"x": 0, "y": 3}
    assert water_fill({2: 3, 10: 3}, 3) == {2: 2, 10: 1}  # ties in capacity: keys in string order ("10" < "2")
    assert water_fill({"a": 2, "b": 9}, 20) == {"a": 2, "b": 9}
    assert water_fill({"a": 2, "b": 9}, 0) == {"a": 0, "b": 0}
    assert water_fill({}, 5) == {}


def test_balanced_take_exact_counts():
    items = synth(3, 4, labels=("a", "x"), prefix="p") + synth(3, 20, labels=("b", "y"), prefix="q")
    got = balanced_take(items, 9, random.Random(0))
    assert Counter(it.answer_text for it in got) == {"a": 2, "x": 2, "b": 2, "y": 3}  # the last key takes the odd one
    assert len(balanced_take(items, 100, random.Random(0))) == 24
    assert balanced_take(items, 0, random.Random(0)) == []


def test_strictly_balanced_counts():
    items = (synth(3, 3, labels=("a", "a"), prefix="a") + synth(3, 5, labels=("b", "b"), prefix="b")
             + synth(3, 4, labels=("c", "c"), prefix="c"))
    assert Counter(it.answer_text for it in strictly_balanced(items, None, random.Random(0))) == {"a": 3, "b": 3,
                                                                                                  "c": 3}
    assert Counter(it.answer_text for it in strictly_balanced(items, 7, random.Random(0))) == {"a": 2, "b": 2,
                                                                                               "c": 2}
    assert Counter(it.answer_text for it in strictly_balanced(items, 3, random.Random(0))) == {"a": 1, "b": 1,
                                                                                               "c": 1}
    two = Counter(it.answer_text for it in strictly_balanced(items, 2, random.Random(0)))
    assert sum(two.values()) == 2 and set(two.values()) == {1}
    assert strictly_balanced([], 5, random.Random(0)) == []


def test_image_key_by_path_and_by_content(tmp_path):
    item = synth(3, 1)[0]
    assert image_key(replace(item, image="med-mat\\A\\b.png"), "path", {}) == "med-mat/A/b.png"
    assert image_key(replace(item, image="med-mat/./A/b.png"), "path", {}) == "med-mat/A/b.png"
    f = tmp_path / "x.png"
    f.write_bytes(b"abc")
    cache: dict[str, str] = {}
    sha_abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert image_key(replace(item, image_path=str(f)), "content", cache) == sha_abc
    assert cache == {str(f): sha_abc}
    f.write_bytes(b"changed")  # read once: the cache answers
    assert image_key(replace(item, image_path=str(f)), "content", cache) == sha_abc


# ------------------------------------------------------------------ image sides


@pytest.mark.parametrize("path, side", [
    ("med-mat/ds/train/a.png", "train"),
    ("med-mat/ds/Training/x/a.png", "train"),
    ("med-mat/ds/TEST/a.png", "test"),
    ("med-mat/ds/testing/a.png", "test"),
    ("med-mat/ds/val/a.png", "test"),
    ("med-mat/ds/valid/a.png", "test"),
    ("med-mat/ds/validation/a.png", "test"),
    ("med-mat\\ds\\test\\a.png", "test"),
    ("med-mat/ds/train/test/a.png", None),
    ("med-mat/ds/a.png", None),
    ("med-mat/ds/test.png", None),  # a file name is not a folder
    ("med-mat/ds/trainings/a.png", None),
])
def test_path_side(path, side):
    assert _path_side(path) == side


def _by_image(items):
    return {it.image: [it] for it in items}


@pytest.mark.parametrize("n, n_test", [(30, 3), (25, 2), (20, 2), (5, 1), (2, 1), (1, 0)])
def test_random_side_is_a_tenth_at_least_one(n, n_test):
    method, test = _assign_sides(3, _by_image(synth(3, n)), BY_PATH)
    assert method == "random" and len(test) == n_test


def test_random_test_side_is_label_stratified():
    items = synth(3, 30, labels=("a", "b", "c"))
    for seed in range(5):
        _, test = _assign_sides(3, _by_image(items), replace(BY_PATH, seed=seed))
        assert sorted(items[int(k.split("img")[1].split(".")[0])].answer_text for k in test) == ["a", "b", "c"]
    items = synth(3, 20)
    for seed in range(5):
        _, test = _assign_sides(3, _by_image(items), replace(BY_PATH, seed=seed))
        assert sorted(int(k.split("img")[1].split(".")[0]) % 2 for k in test) == [0, 1]


def test_original_side_needs_every_image_in_a_train_or_test_folder_and_both_sides():
    train, test = synth(3, 8, folder="ds/train"), synth(3, 2, folder="ds/test", prefix="t")
    method, keys = _assign_sides(3, _by_image(train + test), BY_PATH)
    assert method == "original" and keys == {it.image for it in test}
    assert _assign_sides(3, _by_image(train + test), replace(BY_PATH, original_split="ignore"))[0] == "random"
    assert _assign_sides(3, _by_image(train + synth(3, 2, prefix="t")), BY_PATH)[0] == "random"  # one without
    assert _assign_sides(3, _by_image(train), BY_PATH)[0] == "random"  # all train: no test side to use


# ------------------------------------------------------------------ a split worked out by hand


def _two_arm_items():
    # 03 target (20 items); Related 04 + 28; Baseline+ (no shared element with CT-Lung-COVID) 08 + 13
    return synth(3, 20) + synth(4, 30) + synth(28, 30) + synth(8, 30) + synth(13, 30)


def test_manifest_counts_of_a_small_related_split():
    split = build_split(_two_arm_items(), TargetSpec("t", (3,), ("related", "baseline_plus")), CAP10)
    assert split.target == TargetSpec("t", (3,), ("related", "baseline_plus")) and split.settings == CAP10
    m = split.manifest
    assert m["experiment"] == "t"
    assert m["target"]["subsets"] == [3] and m["target"]["present"] == [3]
    assert m["target"]["compositions"] == ["CT-Lung-COVID"]
    assert m["target"]["test"] == {"n": 2, "labels": {"a": 1, "b": 1}}
    assert m["subsets_in_data"] == [3, 4, 8, 13, 28]
    assert m["released_subsets_absent"] == [n for n in range(1, 38) if n not in (3, 4, 8, 13, 28)]
    assert m["test_only_subsets"] == [] and m["excluded_same_composition"] == []
    assert m["related_pairs"] == [(4, 28)] and m["related_subsets"] == [4, 28]
    assert m["baseline_plus_subsets"] == [8, 13]
    for arm, subsets in (("related", ("04", "28")), ("baseline_plus", ("08", "13"))):
        assert m["arms"][arm]["n"] == 20
        assert m["arms"][arm]["by_subset"] == {s: 10 for s in subsets}
        assert m["arms"][arm]["labels_by_subset"] == {s: {"a": 5, "b": 5} for s in subsets}
    assert m["subsets"]["03"] == {
        "composition": "CT-Lung-COVID", "method": "random", "n_items": 20, "n_images": 20, "train_pool": 18,
        "test_only": False, "train": {"n": 10, "labels": {"a": 5, "b": 5}}, "test": {"n": 2, "labels": {"a": 1, "b": 1}},
    }
    for s in ("04", "08", "13", "28"):
        assert m["subsets"][s]["train_pool"] == 27 and m["subsets"][s]["test"]["n"] == 2
        assert len(split.subsets[int(s)].beyond_cap) == 17
    assert m["adjustments"] == [{"kind": "test_dropped_for_label_balance", "count": 1, "subset": n}
                                for n in (4, 8, 13, 28)]
    assert m["duplicates"] == {"identity": "path", "n_images_in_several_subsets": 0, "by_subsets": {},
                               "examples": []}
    assert m["warnings"] == [PATH_IDENTITY_WARNING]
    assert m["settings"]["train_cap_per_subset"] == 10 and m["settings"]["image_identity"] == "path"
    assert [it.item_id for it in split.test] == [it.item_id for it in split.subsets[3].test]
    assert split.tested_images > frozenset(it.image for s in split.subsets.values() for it in s.test)
    assert len(split.tested_images) == 2 + 4 * 3  # an image dropped to balance a test set stays off training


def test_baseline_plus_alone_is_sized_by_a_related_set_it_does_not_return():
    split = build_split(_two_arm_items(), TargetSpec("t", (3,), ("baseline_plus",)), CAP10)
    assert set(split.arms) == {"baseline_plus"} and len(split.arms["baseline_plus"]) == 20
    assert split.manifest["related_subsets"] == [4, 28] and set(split.manifest["arms"]) == {"baseline_plus"}


def test_fig4_only_split_records_no_related_set():
    split = build_split(_two_arm_items(), TargetSpec("t", (3,), ("all_unrelated",), total_cap=20), CAP10)
    assert split.manifest["related_subsets"] is None and "related_pairs" not in split.manifest
    assert split.manifest["arms"]["all_unrelated"]["by_subset"] == {"08": 10, "13": 10}


def test_a_partly_absent_target_is_counted():
    items = synth(14, 30) + synth(8, 30) + synth(13, 30)
    split = build_split(items, TargetSpec("t", (14, 15), ("all_data",), total_cap=None), CAP10)
    assert split.manifest["target"]["present"] == [14]
    absent = [a for a in split.manifest["adjustments"] if a["kind"] == "target_subset_absent"]
    assert absent == [{"kind": "target_subset_absent", "count": 1, "subsets": [15]}]
    with _raises(TargetMissing, "experiment 't': target subsets ['15', '32'] are absent from the data "
                                "(present: ['08', '13', '14'])"):
        build_split(items, TargetSpec("t", (15, 32), ("all_data",)), CAP10)


def test_a_test_only_subset_is_all_test_and_counts_what_would_have_trained():
    # 04 (30 items) cannot reach a cap of 28 (27 training-side items): all 30 are tested, balanced 15 / 15.
    items = synth(3, 60) + synth(4, 30) + synth(28, 60)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None),
                        replace(CAP10, train_cap_per_subset=28))
    s = split.subsets[4]
    assert s.test_only and s.train == [] and s.beyond_cap == [] and len(s.test) == 30 and s.train_pool == 27
    assert split.manifest["test_only_subsets"] == [4]
    assert split.manifest["subsets"]["04"]["test_only"] is True
    assert {it.subset for it in split.arms["all_data"]} == {28}
    assert len(split.tested_images) == 30 + 6 + 6


def test_shared_images_leave_training_sides_and_are_counted():
    # 28 holds copies (same paths) of all 20 of 03's images; 03's two test images must leave 28's training side.
    target = synth(3, 20)
    copies = [replace(it, subset=28, item_id=it.item_id.replace("S03", "S28"), modality="X-ray") for it in target]
    items = target + copies + synth(28, 40, prefix="own") + synth(4, 30)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), CAP10)
    d = split.manifest["duplicates"]
    assert d["n_images_in_several_subsets"] == 20 and d["by_subsets"] == {"03+28": 20}
    assert d["examples"] == sorted(it.image for it in target)[:5]
    removed = [a for a in split.manifest["adjustments"] if a["kind"] == "shared_image_removed_from_train"]
    # 28 has 60 images, 6 of them on its own test side; of 03's two test images, those not already on 28's test
    # side leave its training side
    tested_03 = {it.image for it in split.subsets[3].test}
    tested_28 = {it.image for it in split.subsets[28].test}
    n = len(tested_03 - tested_28)
    assert n >= 1 and removed == [{"kind": "shared_image_removed_from_train", "count": n, "subset": 28,
                                   "detail": "images on the test side of another subset"}]
    assert split.subsets[28].train_pool == 60 - 6 - n


# ------------------------------------------------------------------ arm errors and messages


def test_arm_definition_errors_are_named():
    items = _two_arm_items()
    with _raises(SplitConfigError, "experiment 't': a derived Related set needs one target composition, got "
                                   "['CT-Lung-COVID', 'CT-Lung-Cancer']; name experiment.related_subsets"):
        build_split(items, TargetSpec("t", (3, 4), ("related",)), CAP10)
    with _raises(SplitConfigError, "experiment 't': baseline_plus subsets [4] share an element with the target"):
        build_split(items, TargetSpec("t", (3,), ("baseline_plus",), baseline_plus_subsets=(4, 8)), CAP10)
    with _raises(RelatedSubsetsMissing, "experiment 't': baseline_plus subsets absent from the data: "
                                        "['22 MRI-Brain-Diseases']"):
        build_split(items, TargetSpec("t", (3,), ("baseline_plus",), baseline_plus_subsets=(8, 22)), CAP10)
    with _raises(InvalidRelatedSet, "experiment 't': related subsets [4] do not cover the target CT-Lung-COVID's "
                                    "task"):
        build_split(items, TargetSpec("t", (3,), ("related",), related_subsets=(4,)), CAP10)
    with _raises(InvalidRelatedSet, "experiment 't': related subsets [3] have the target's composition"):
        build_split(items, TargetSpec("t", (3,), ("related",), related_subsets=(3, 28)), CAP10)
    with _raises(InsufficientTrainingData, "experiment 't': arm 'wo_modality' has no trainable subset "
                                           "(test-only subsets: [])"):
        build_split(synth(3, 20) + synth(4, 30), TargetSpec("t", (3,), ("wo_modality",)), CAP10)


def test_named_related_set_on_one_axis():
    items = _two_arm_items()
    split = build_split(items, TargetSpec("t", (3,), ("related",), related_subsets=(4,), related_axes=("area",)),
                        CAP10)
    assert split.manifest["related_subsets"] == [4] and split.manifest["related_pairs"] is None
    assert Counter(it.subset for it in split.arms["related"]) == {4: 10}


def test_test_only_related_subsets_are_named():
    items = synth(3, 20) + synth(4, 9) + synth(28, 30) + synth(8, 30)
    with _raises(RelatedSubsetsMissing, "experiment 't': related subsets test-only (below the per-subset cap): "
                                        "['04']"):
        build_split(items, TargetSpec("t", (3,), ("related",), related_subsets=(4, 28)), CAP10)
    with _raises(RelatedSubsetsMissing, "experiment 't': no Related combination for CT-Lung-COVID is in the data "
                                        "(registry pairs: [(4, 28)]; trainable subsets: [8, 28]; test-only subsets: "
                                        "[4]; absent: [])"):
        build_split(items, TargetSpec("t", (3,), ("related",)), CAP10)
    with _raises(RelatedSubsetsMissing, "experiment 't': no Related combination for CT-Lung-COVID is in the data "
                                        "(registry pairs: [(4, 28)]; trainable subsets: [8]; test-only subsets: "
                                        "[]; absent: [4, 28])"):
        build_split(synth(3, 20) + synth(8, 30), TargetSpec("t", (3,), ("related",)), CAP10)


# ------------------------------------------------------------------ Fig. 4 arms beyond the per-subset cap


def _fig4_items():
    return synth(3, 20) + synth(28, 30) + synth(30, 30)  # w/o Modality for 03: X-ray-Lung 28 and 30


def test_fig4_arm_takes_the_rest_from_the_full_training_sides():
    split = build_split(_fig4_items(), TargetSpec("t", (3,), ("wo_modality",), total_cap=40), CAP10)
    arm = split.arms["wo_modality"]
    assert len(arm) == 40 == len({it.item_id for it in arm})
    assert Counter(it.subset for it in arm) == {28: 20, 30: 20}
    for n in (28, 30):
        assert Counter(it.answer_text for it in arm if it.subset == n) == {"a": 10, "b": 10}
        assert {it.item_id for it in split.subsets[n].train} <= {it.item_id for it in arm}
    assert split.manifest["adjustments"][-1] == {
        "kind": "arm_beyond_subset_cap", "count": 20, "arm": "wo_modality", "by_subset": {"28": 10, "30": 10},
        "detail": "the capped training sets hold 20; the rest comes from the same subsets' full training sides",
    }


def test_fig4_arm_beyond_the_full_sides_or_capped_only():
    target = TargetSpec("t", (3,), ("wo_modality",), total_cap=60)
    with _raises(InsufficientTrainingData,
                 "arm 'wo_modality' needs 60 training items (total cap 60) but its subsets ['28', '30'] hold 54 "
                 "(their full training sides); lower the cap, add data, or set split.allow_short=true to keep a "
                 "smaller, recorded arm"):
        build_split(_fig4_items(), target, CAP10)
    short = build_split(_fig4_items(), target, replace(CAP10, allow_short=True))
    assert len(short.arms["wo_modality"]) == 54
    assert short.manifest["adjustments"][-1] == {"kind": "arm_short_of_size", "count": 6, "arm": "wo_modality",
                                                 "asked": 60, "available": 54, "detail": "total cap 60"}
    capped = replace(CAP10, fig4_beyond_cap=False)
    with pytest.raises(InsufficientTrainingData, match=r"hold 20 \(after caps and test-only marking\)"):
        build_split(_fig4_items(), target, capped)
    only = build_split(_fig4_items(), target, replace(capped, allow_short=True))
    assert Counter(it.subset for it in only.arms["wo_modality"]) == {28: 10, 30: 10}
    assert "arm_beyond_subset_cap" not in {a["kind"] for a in only.manifest["adjustments"]}


def test_fig4_arm_within_the_capped_sets_draws_nothing_beyond():
    split = build_split(_fig4_items(), TargetSpec("t", (3,), ("wo_modality",), total_cap=15), CAP10)
    assert Counter(it.subset for it in split.arms["wo_modality"]) == {28: 7, 30: 8}  # 15 // 2 to the first, the rest to the second
    assert not [a for a in split.manifest["adjustments"] if a["kind"].startswith("arm_")]


def test_the_experiments_total_cap_wins_over_the_settings():
    split = build_split(_fig4_items(), TargetSpec("t", (3,), ("wo_modality",), total_cap=12),
                        replace(CAP10, total_cap=40))
    assert len(split.arms["wo_modality"]) == 12
    split = build_split(_fig4_items(), TargetSpec("t", (3,), ("wo_modality",)), replace(CAP10, total_cap=14))
    assert len(split.arms["wo_modality"]) == 14


def test_every_arm_draw_uses_its_documented_generator():
    """Reproducibility across versions: each draw is seeded by (seed, what, arm, subset) as documented, so a split
    recorded in a manifest can be rebuilt. Rebuilt here from the subsets' training sets with those generators."""
    settings = replace(CAP10, seed=3)
    items = _fig4_items() + synth(4, 30)
    split = build_split(items, TargetSpec("t", (3,), ("related", "wo_modality", "all_data"), total_cap=45,
                                          related_subsets=(4, 28)), settings)
    # a draw below the capped sets: 12 of 04's, 28's and 30's 30 (all share Lung), 4 each by the arm's generator
    small = build_split(items, TargetSpec("t", (3,), ("all_related",), total_cap=12), settings)
    want = [it for n in (4, 28, 30) for it in
            balanced_take(split.subsets[n].train, 4, random.Random(f"3/arm/all_related/{n}"))]
    ids = [it.item_id for it in want]
    random.Random("3/order/all_related").shuffle(ids)
    assert [it.item_id for it in small.arms["all_related"]] == ids
    train = {n: split.subsets[n].train for n in (4, 28, 30)}

    def shuffled(arm, its):
        ids = [it.item_id for it in its]
        random.Random(f"3/order/{arm}").shuffle(ids)
        return ids

    # Related: every training item of 04 and 28, subset by subset, then the arm's shuffle
    assert [it.item_id for it in split.arms["related"]] == shuffled("related", train[4] + train[28])
    # all_data, 45 from three subsets of 10 capped items: all 30, then 5 a subset beyond the cap
    want = [it for n in (4, 28, 30) for it in
            train[n] + balanced_take(split.subsets[n].beyond_cap, 5, random.Random(f"3/beyond_cap/all_data/{n}"))]
    assert [it.item_id for it in split.arms["all_data"]] == shuffled("all_data", want)
    # w/o Modality, 45 from 28 and 30 (20 capped): all 20 capped items, then 25 beyond the cap (12 and 13)
    want = []
    for n, extra in ((28, 12), (30, 13)):
        want += train[n] + balanced_take(split.subsets[n].beyond_cap, extra, random.Random(f"3/beyond_cap/wo_modality/{n}"))
    assert [it.item_id for it in split.arms["wo_modality"]] == shuffled("wo_modality", want)


def test_a_leak_names_three_images():
    items = synth(3, 30) + synth(4, 60)
    settings = replace(BY_PATH, train_cap_per_subset=10)
    target = TargetSpec("t", (3,), ("all_data",), total_cap=None)
    tested = build_split(items, target, settings).subsets[4].test
    assert len(tested) == 6
    real = splits_module.balanced_take

    def leaky(pool, n, rng):
        out = real(pool, n, rng)
        return out + tested if pool and pool[0].subset == 4 else out

    import unittest.mock

    with unittest.mock.patch.object(splits_module, "balanced_take", leaky), pytest.raises(ImageLeak) as e:
        build_split(items, target, settings)
    assert str(e.value) == f"arm all_data contains images from a test side: {sorted(it.image for it in tested)[:3]}"


def test_absent_and_test_only_named_subsets_in_one_message():
    items = synth(3, 20) + synth(4, 9) + synth(8, 30)
    with _raises(RelatedSubsetsMissing, "experiment 't': related subsets absent from the data: "
                                        "['28 X-ray-Lung-COVID']; test-only (below the per-subset cap): ['04']"):
        build_split(items, TargetSpec("t", (3,), ("related",), related_subsets=(4, 28)), CAP10)


def test_derived_related_pairs_and_the_unusable_ones_are_recorded():
    # Target 06 CT-Brain-Cancer: the registry's pairs are (04, 05), (04, 32), (05, 32); 32 is not in the data.
    items = synth(6, 20) + synth(4, 30) + synth(5, 30) + synth(8, 30)
    split = build_split(items, TargetSpec("t", (6,), ("related",)), CAP10)
    assert split.manifest["related_pairs"] == [(4, 5)] and split.manifest["related_subsets"] == [4, 5]
    unusable = [a for a in split.manifest["adjustments"] if a["kind"] == "related_pairs_unusable"]
    assert unusable == [{"kind": "related_pairs_unusable", "count": 2, "detail": [(4, 32), (5, 32)]}]
    # Target 28 X-ray-Lung-COVID: only released subsets make pairs ((03, 30); never 47 or 48, detection sets)
    items = synth(28, 20) + synth(3, 30) + synth(30, 30)
    split = build_split(items, TargetSpec("t", (28,), ("related",)), CAP10)
    assert split.manifest["related_pairs"] == [(3, 30)]
    assert "related_pairs_unusable" not in {a["kind"] for a in split.manifest["adjustments"]}


def test_a_target_without_registry_pairs_says_none():
    items = synth(2, 20) + synth(8, 30)
    with _raises(RelatedSubsetsMissing, "experiment 't': no Related combination for CT-Kidney-Diseases is in the "
                                        "data (registry pairs: none; trainable subsets: [8]; test-only subsets: []; "
                                        "absent: [])"):
        build_split(items, TargetSpec("t", (2,), ("related",)), CAP10)


def test_named_related_set_missing_several_axes():
    with _raises(InvalidRelatedSet, "experiment 't': related subsets [8] do not cover the target CT-Lung-COVID's "
                                    "modality, area, task"):
        build_split(_two_arm_items(), TargetSpec("t", (3,), ("related",), related_subsets=(8,)), CAP10)


def test_named_baseline_plus_subsets():
    items = _two_arm_items() + synth(22, 30) + synth(2, 30)
    split = build_split(items, TargetSpec("t", (3,), ("related", "baseline_plus"), baseline_plus_subsets=(22, 13)),
                        CAP10)
    assert split.manifest["baseline_plus_subsets"] == [13, 22]
    assert Counter(it.subset for it in split.arms["baseline_plus"]) == {13: 10, 22: 10}
    # one shared element is one too many (02 CT-Kidney shares CT with the target)
    with _raises(SplitConfigError, "experiment 't': baseline_plus subsets [2] share an element with the target"):
        build_split(items, TargetSpec("t", (3,), ("baseline_plus",), baseline_plus_subsets=(2, 8)), CAP10)


def test_a_short_baseline_plus_says_it_must_match_related():
    items = synth(3, 20) + synth(4, 30) + synth(28, 30) + synth(8, 30)
    with _raises(InsufficientTrainingData,
                 "arm 'baseline_plus' needs 20 training items (as many as Related) but its subsets ['08'] hold 10 "
                 "(after caps and test-only marking); lower the cap, add data, or set split.allow_short=true to keep "
                 "a smaller, recorded arm"):
        build_split(items, TargetSpec("t", (3,), ("related", "baseline_plus")), CAP10)
    split = build_split(items, TargetSpec("t", (3,), ("related", "baseline_plus")), replace(CAP10, allow_short=True))
    short, trimmed = [a for a in split.manifest["adjustments"] if a["kind"] in ("arm_short_of_size",
                                                                                 "related_trimmed_to_baseline_plus")]
    assert short == {"kind": "arm_short_of_size", "count": 10, "arm": "baseline_plus", "asked": 20, "available": 10,
                     "detail": "as many as Related"}
    assert trimmed == {"kind": "related_trimmed_to_baseline_plus", "count": 10, "arm": "related",
                       "detail": "Baseline+ could not reach the Related size; both arms keep the same number of items"}


def test_related_trimmed_to_baseline_plus_is_drawn_by_the_related_generator():
    items = synth(3, 20) + synth(4, 30) + synth(28, 30) + synth(8, 30)
    split = build_split(items, TargetSpec("t", (3,), ("related", "baseline_plus")),
                        replace(CAP10, allow_short=True, seed=4))
    want = [it.item_id for n in (4, 28)
            for it in balanced_take(split.subsets[n].train, 5, random.Random(f"4/arm/related/{n}"))]
    random.Random("4/order/related").shuffle(want)
    assert [it.item_id for it in split.arms["related"]] == want


def test_strictly_balanced_with_as_many_places_as_labels_shuffles_each_label():
    items = synth(3, 9, labels=("a", "b", "c"))
    rng = random.Random(7)
    by_label = {l: sorted((it for it in items if it.answer_text == l), key=lambda it: it.item_id) for l in "abc"}
    want = []
    for label in "abc":  # one generator, each label's items shuffled in label order, the first of each taken
        rng.shuffle(by_label[label])
        want.append(by_label[label][0].item_id)
    assert [it.item_id for it in strictly_balanced(items, 3, random.Random(7))] == want


def test_subset_training_and_test_draws_use_their_documented_generators():
    settings = replace(CAP10, seed=5, test_cap_per_subset=2)
    items = synth(3, 60, labels=("a", "b", "c")) + synth(4, 30)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), settings)
    for n in (3, 4):
        own = [it for it in items if it.subset == n]
        pool = [it for it in own if it.image not in split.tested_images]
        want = balanced_take(pool, 10, random.Random(f"5/subset/{n}"))
        assert [it.item_id for it in split.subsets[n].train] == [it.item_id for it in want]
        test_side = sorted((it for it in own if it.image in split.tested_images), key=lambda it: it.image)
        want = strictly_balanced(test_side, 2, random.Random(f"5/test/{n}"))
        assert [it.item_id for it in split.subsets[n].test] == [it.item_id for it in want]


def test_test_only_marking_reaches_a_fixpoint_over_shared_images():
    """30 (8 images) cannot reach the cap: all of it is tested, which takes its 8 images out of 28's training side
    (28 holds copies of them), and 28 falls below the cap in turn: both end test-only."""
    a = synth(30, 8, folder="shared")
    copies = [replace(it, subset=28, item_id=it.item_id.replace("S30", "S28"), modality="X-ray", task="COVID")
              for it in a]
    items = synth(3, 40) + synth(4, 40) + a + copies + synth(28, 10, prefix="own")
    settings = replace(CAP10, allow_short=True)
    split = build_split(items, TargetSpec("t", (3,), ("all_data",), total_cap=None), settings)
    assert split.manifest["test_only_subsets"] == [28, 30]
    assert {it.subset for it in split.arms["all_data"]} == {4}
    # What their training sides would have held: 30's images are all tested in 28 (test-only) too, so none;
    # 28's own images off its own test side, none of 30's copies.
    assert split.subsets[30].train_pool == 0
    images28 = {it.image: [it] for it in copies + synth(28, 10, prefix="own")}
    _, test28 = _assign_sides(28, images28, settings)
    assert split.subsets[28].train_pool == len(set(images28) - test28 - {it.image for it in a})


def test_labels_by_subset_are_each_subsets_own():
    items = synth(3, 20) + synth(4, 30) + synth(28, 30, labels=("c", "d"))
    split = build_split(items, TargetSpec("t", (3,), ("related",), related_subsets=(4, 28)), CAP10)
    assert split.manifest["arms"]["related"]["labels_by_subset"] == {"04": {"a": 5, "b": 5}, "28": {"c": 5, "d": 5}}
    from cgeval.data.loader import items_hash

    assert split.manifest["target"]["test_items_hash"] == items_hash(split.test)
    assert split.manifest["arms"]["related"]["items_hash"] == items_hash(split.arms["related"])


def test_input_errors_name_three_examples():
    items = synth(3, 30) + synth(4, 30)
    no_subset = [replace(it, subset=None) for it in items[:5]]
    with _raises(NotMedMatItems, "5 items have no Med-MAT subset (e.g. ['S03-img0', 'S03-img1', 'S03-img2']); "
                                 "splits need Med-MAT items"):
        build_split(no_subset + items[5:], TargetSpec("t", (3,), ("all_data",)), CAP10)
    twins = [replace(it, image=it.image + ".2") for it in items[:4]]
    with _raises(DuplicateItemIds, "4 item ids occur more than once (e.g. ['S03-img0', 'S03-img1', 'S03-img2']); "
                                   "load each record once"):
        build_split(items + twins, TargetSpec("t", (3,), ("all_data",)), CAP10)
    shared = [replace(it, subset=4, item_id=it.item_id.replace("S03", "S04x")) for it in items[:4]]
    with _raises(DuplicateImageError, "4 images appear in several subsets ({'03+04': 4}); e.g. "
                                      "['med-mat/S3/img0.png', 'med-mat/S3/img1.png', 'med-mat/S3/img2.png']. "
                                      "Use split.duplicates=test_wins to keep each such image out of every training "
                                      "side instead."):
        build_split(items + shared, TargetSpec("t", (3,), ("all_data",)), replace(CAP10, duplicates="error"))
