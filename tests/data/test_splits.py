"""Splits: image-level sides, caps, balance, test-only, duplicates, Related / Baseline+ / Fig. 4 arms, errors."""

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from cgeval.data.loader import load_medmat
from cgeval.data.records import Item
from cgeval.data.registry import SUBSETS
from cgeval.data.sample import SAMPLE_ROOT
import cgeval.data.splits as splits_module
from cgeval.data.splits import (
    FIG4_ARMS,
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
    balanced_take,
    build_split,
    related_pairs,
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
