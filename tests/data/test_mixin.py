"""General-domain mix-in: drawn, checked and exported into every training arm, never into the test list."""

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from cgeval.data.export import export_split
from cgeval.data.loader import load_medmat
from cgeval.data.mixin import (
    InsufficientMixIn,
    MixInFileMissing,
    MixInFormatError,
    MixInSpec,
    load_mix_in,
    split_test_image_keys,
)
from cgeval.data.records import parse_question_choice
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.data.splits import FIG4_ARMS, SplitConfigError, SplitSettings, TargetSpec, build_split

SMALL = SplitSettings(train_cap_per_subset=5, total_cap=20, allow_short=True)
N_GOOD = 10
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def question(options: list[str], sep: str = ":") -> str:
    lines = [f"{'ABCD'[i]}{sep} {o}" for i, o in enumerate(options)]
    return "Which object is shown in the picture?\n" + "\n".join(lines) + "\n" + INSTRUCTION


def write_fixture(folder: Path) -> Path:
    """N_GOOD usable 4-option records (JPEG and PNG, one absolute path) plus one bad record per skip reason."""
    (folder / "imgs").mkdir(parents=True)
    records = []
    for i in range(N_GOOD):
        ext = "jpg" if i % 2 else "png"
        Image.new("RGB", (8, 8), (20 * i, 100, 200)).save(folder / "imgs" / f"g{i}.{ext}")
        options = ["cat", "bridge", "violin", "tulip"]
        gold = "ABCD"[i % 4]
        image = str(folder / "imgs" / f"g{i}.{ext}") if i == 0 else f"imgs/g{i}.{ext}"
        records.append({"id": i, "image": image, "Question-choice": question(options, ":" if i % 3 else "."),
                        "Answer-choice": gold, "Question": "Which object is shown in the picture?",
                        "Answer": options["ABCD".index(gold)], "caption": options["ABCD".index(gold)]})
    (folder / "imgs" / "broken.jpg").write_bytes(b"not an image")
    good = records[1]
    records += [
        {**good, "id": 100, "Question-choice": "Which object is shown? cat or dog?"},  # unparseable_options
        {**good, "id": 101, "Answer-choice": "D", "Question-choice": question(["cat", "dog"])},  # answer not an option
        {**good, "id": 102, "image": "imgs/absent.png"},  # image_missing
        {**good, "id": 103, "image": "imgs/broken.jpg"},  # image_unreadable
        {**good, "id": 104, "image": "../outside.png"},  # path_outside_root
        {"id": 105, "image": "imgs/g1.jpg", "Question-choice": question(["a", "b"])},  # malformed (no answer)
        ["not", "a", "record"],  # malformed
        dict(records[2]),  # duplicate_record (exact repeat of id 2)
        {**good, "id": 106}, {**good, "id": 106, "Answer-choice": "C"},  # id_conflict (both dropped)
    ]
    path = folder / "wikiqa.json"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


EXPECTED_SKIPS = {
    "answer_not_an_option": 1, "duplicate_record": 1, "id_conflict": 2, "image_missing": 1, "image_unreadable": 1,
    "malformed_record": 2, "path_outside_root": 1, "unparseable_options": 1,
}


@pytest.fixture(scope="module")
def sample_items():
    return load_medmat(SAMPLE_ROOT, verify_images=False)[0]


@pytest.fixture(scope="module")
def split(sample_items):
    return build_split(sample_items, TargetSpec("exp", (3,), ("related", "baseline_plus", *FIG4_ARMS)), SMALL)


@pytest.fixture
def mix_file(tmp_path: Path) -> Path:
    return write_fixture(tmp_path / "wikiqa")


def read_arm(out: Path, manifest: dict, arm: str, fmt: str) -> list[dict]:
    text = (out / manifest["files"]["arms"][arm][fmt]).read_text()
    return json.loads(text) if fmt == "llamafactory" else [json.loads(line) for line in text.splitlines()]


def test_bad_records_are_counted_skips_and_all_good_ones_kept(mix_file: Path):
    mix = load_mix_in(MixInSpec(file=str(mix_file)), seed=0)
    assert mix.manifest["skipped"] == EXPECTED_SKIPS
    assert mix.manifest["n_records"] == N_GOOD + 10 and mix.manifest["n_usable"] == mix.manifest["n"] == N_GOOD
    assert [it.item_id for it in mix.items] == sorted(f"MIX-{i}" for i in range(N_GOOD))
    assert all(it.subset is None and it.gold in it.letters for it in mix.items)
    assert mix.manifest["sha256"] == hashlib.sha256(mix_file.read_bytes()).hexdigest()
    assert mix.manifest["answer_letters"] == {"A": 3, "B": 3, "C": 2, "D": 2} and mix.adjustments == []


def test_records_with_26_or_30_options_are_counted_not_fatal(tmp_path: Path, mix_file: Path):
    records = json.loads(mix_file.read_text())
    for i, n in enumerate((26, 30)):
        letters = [chr(65 + k) if k < 26 else "A" + chr(39 + k) for k in range(n)]
        text = "Which?\n" + "\n".join(f"{l}: thing {k}" for k, l in enumerate(letters)) + "\n" + INSTRUCTION
        records.append({**records[1], "id": 200 + i, "Question-choice": text})
    mix_file.write_text(json.dumps(records), encoding="utf-8")
    mix = load_mix_in(MixInSpec(file=str(mix_file)), seed=0)
    assert mix.manifest["skipped"]["unparseable_options"] == EXPECTED_SKIPS["unparseable_options"] + 2
    assert mix.manifest["n"] == N_GOOD


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own warning at open (> 89 Mpx)
def test_an_image_above_the_pixel_cap_is_counted_and_never_decoded(mix_file: Path):
    Image.new("1", (12_000, 12_000)).save(mix_file.parent / "imgs" / "g3.png")  # 144 Mpx in about 18 KB
    (mix_file.parent / "imgs" / "g3.jpg").unlink(missing_ok=True)
    records = json.loads(mix_file.read_text())
    records[3]["image"] = "imgs/g3.png"
    mix_file.write_text(json.dumps(records), encoding="utf-8")
    mix = load_mix_in(MixInSpec(file=str(mix_file)), seed=0)
    assert mix.manifest["skipped"] == {**EXPECTED_SKIPS, "image_too_large": 1} and mix.manifest["n"] == N_GOOD - 1
    assert load_mix_in(MixInSpec(file=str(mix_file)), seed=0, max_image_pixels=None).manifest["n"] == N_GOOD


def test_mix_in_goes_into_every_training_arm_never_the_test_list(tmp_path: Path, split, mix_file: Path):
    mix = load_mix_in(MixInSpec(file=str(mix_file), n=4), seed=0)
    manifest = export_split(split, tmp_path / "mixed", mix_in=mix)
    plain = export_split(split, tmp_path / "plain")
    mixed_images = {it.image_path for it in mix.items}
    assert len(mixed_images) == 4
    for arm, items in split.arms.items():
        for fmt in ("llamafactory", "swift"):
            records = read_arm(tmp_path / "mixed", manifest, arm, fmt)
            assert len(records) == len(items) + 4 == manifest["arms"][arm]["n_written"]
            extra = [r for r in records if r["images"][0] in mixed_images]
            assert len(extra) == 4 and {r["images"][0] for r in extra} == mixed_images
            for rec in records:
                image = Path(rec["images"][0])
                assert image.is_absolute() and image.is_file()
                user, assistant = rec["messages"]
                assert user["content"].count("<image>") == 1
                _, options, _ = parse_question_choice(user["content"].removeprefix("<image>\n"))
                assert assistant["content"] in dict(options)
            # The arm's own items are those of the plain export, in some order.
            own = [r for r in records if r["images"][0] not in mixed_images]
            assert sorted(map(json.dumps, own)) == sorted(map(json.dumps, read_arm(tmp_path / "plain", plain, arm, fmt)))
        assert manifest["arms"][arm]["n"] == len(items) and manifest["arms"][arm]["n_mix_in"] == 4
    test_rel = manifest["files"]["test"]
    assert (tmp_path / "mixed" / test_rel).read_bytes() == (tmp_path / "plain" / test_rel).read_bytes()
    assert "MIX-" not in (tmp_path / "mixed" / test_rel).read_text()
    info = manifest["mix_in"]
    assert info["file"] == str(mix_file.resolve()) and info["seed"] == 0 and info["n"] == 4 and info["n_asked"] == 4
    assert info["arms"] == {arm: 4 for arm in split.arms} and info["skipped"] == EXPECTED_SKIPS
    assert plain["mix_in"] is None and "n_mix_in" not in split.manifest["arms"]["related"]  # split left as it was
    on_disk = json.loads((tmp_path / "mixed" / "manifest.json").read_text())
    assert on_disk["mix_in"]["sha256"] == hashlib.sha256(mix_file.read_bytes()).hexdigest()


def test_same_seed_byte_identical_independent_of_file_order(tmp_path: Path, split, mix_file: Path):
    records = json.loads(mix_file.read_text())
    reordered = mix_file.with_name("reordered.json")
    reordered.write_text(json.dumps(list(reversed(records))), encoding="utf-8")
    a = load_mix_in(MixInSpec(file=str(mix_file), n=5), seed=3)
    b = load_mix_in(MixInSpec(file=str(mix_file), n=5), seed=3)
    c = load_mix_in(MixInSpec(file=str(reordered), n=5), seed=3)
    assert [it.item_id for it in a.items] == [it.item_id for it in c.items]
    assert a.manifest["skipped"] == c.manifest["skipped"]
    other = {tuple(it.item_id for it in load_mix_in(MixInSpec(file=str(mix_file), n=5), seed=s).items) for s in range(6)}
    assert len(other) > 1  # the seed matters
    export_split(split, tmp_path / "a", mix_in=a)
    export_split(split, tmp_path / "b", mix_in=b)
    export_split(split, tmp_path / "c", mix_in=c)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json*"))
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
        if rel.name != "manifest.json":  # the manifest names the (reordered) file and its hash
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "c" / rel).read_bytes(), rel


def test_relative_export_keeps_mix_in_images_absolute(tmp_path: Path, split, mix_file: Path):
    mix = load_mix_in(MixInSpec(file=str(mix_file), n=2), seed=0)
    manifest = export_split(split, tmp_path, formats=["swift"], image_paths="relative", mix_in=mix)
    records = read_arm(tmp_path, manifest, "related", "swift")
    mixed = [r for r in records if Path(r["images"][0]).is_absolute()]
    assert len(mixed) == 2 and all(Path(r["images"][0]).is_file() for r in mixed)
    assert all((Path(SAMPLE_ROOT) / r["images"][0]).is_file() for r in records if r not in mixed)


def test_an_image_on_a_test_side_never_trains(tmp_path: Path, split, sample_items, mix_file: Path):
    by_path = build_split(sample_items, split.target, replace(SMALL, image_identity="path"))
    for identity, built in (("content", split), ("path", by_path)):
        records = json.loads(mix_file.read_text())
        test_image = built.test[0].image_path
        records.append({**records[1], "id": 200, "image": test_image})
        leaky = mix_file.with_name(f"leaky_{identity}.json")
        leaky.write_text(json.dumps(records), encoding="utf-8")
        keys = split_test_image_keys(built.tested_images, sample_items, identity)
        expected_key = ("sha256:" + hashlib.sha256(Path(test_image).read_bytes()).hexdigest()
                        if identity == "content" else str(Path(test_image)))
        assert expected_key in keys
        mix = load_mix_in(MixInSpec(file=str(leaky)), seed=0, test_images=keys, image_identity=identity)
        assert mix.manifest["skipped"]["image_in_test_set"] == 1 and mix.manifest["n"] == N_GOOD
    # Content is the default, as in the split.
    assert load_mix_in(MixInSpec(file=str(mix_file.with_name("leaky_content.json"))), seed=0,
                       test_images=split_test_image_keys(split.tested_images, sample_items, "content")
                       ).manifest["skipped"]["image_in_test_set"] == 1


def test_named_errors_and_the_allow_short_convention(tmp_path: Path, mix_file: Path):
    with pytest.raises(MixInFileMissing):
        load_mix_in(MixInSpec(file=str(tmp_path / "absent.json")), seed=0)
    with pytest.raises(MixInFileMissing, match="root"):
        load_mix_in(MixInSpec(file=str(mix_file), root=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(InsufficientMixIn, match=f"holds {N_GOOD} usable"):
        load_mix_in(MixInSpec(file=str(mix_file), n=N_GOOD + 1), seed=0)
    short = load_mix_in(MixInSpec(file=str(mix_file), n=N_GOOD + 5), seed=0, allow_short=True)
    assert short.manifest["n"] == N_GOOD
    assert short.adjustments == [{"kind": "mix_in_short_of_size", "count": 5, "asked": N_GOOD + 5, "available": N_GOOD}]
    not_list = tmp_path / "obj.json"
    not_list.write_text('{"id": 1}')
    with pytest.raises(MixInFormatError):
        load_mix_in(MixInSpec(file=str(not_list)), seed=0)
    all_bad = tmp_path / "bad.json"
    all_bad.write_text(json.dumps([{"id": 1, "image": "x.png", "Question-choice": "no options", "Answer-choice": "A"}]))
    with pytest.raises(InsufficientMixIn, match="none of its 1 records"):
        load_mix_in(MixInSpec(file=str(all_bad)), seed=0, allow_short=True)
    for bad in ({"file": "f.json", "n": 0}, {"file": "f.json", "n": True}, {"n": 3}):
        with pytest.raises(SplitConfigError):
            MixInSpec(**bad)


def test_cli_mixes_in_and_reports(tmp_path: Path, mix_file: Path):
    out = tmp_path / "out"
    base = [sys.executable, "-m", "cgeval.split", "split=sample", "experiment=table3_area_lung_ct_covid"]
    run = subprocess.run(
        [*base, f"split.out={out}", f"split.mix_in.file={mix_file}", "split.mix_in.n=15"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"mix-in {N_GOOD} per arm" in run.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mix_in"]["n"] == N_GOOD and manifest["mix_in"]["n_asked"] == 15  # split=sample: allow_short
    assert {"kind": "mix_in_short_of_size", "count": 5, "asked": 15, "available": N_GOOD} in manifest["adjustments"]
    lines = (out / "swift" / "table3_area_lung_ct_covid__related.jsonl").read_text().splitlines()
    assert len(lines) == manifest["arms"]["related"]["n"] + N_GOOD
    missing = subprocess.run(
        [*base, f"split.out={out}2", f"split.mix_in.file={tmp_path / 'absent.json'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode != 0 and "MixInFileMissing" in missing.stderr


def test_a_byte_order_mark_is_accepted(mix_file: Path):
    mix_file.write_bytes(b"\xef\xbb\xbf" + mix_file.read_bytes())
    assert load_mix_in(MixInSpec(file=str(mix_file)), seed=0).manifest["n"] == N_GOOD
