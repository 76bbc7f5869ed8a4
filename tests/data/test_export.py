"""Export: the written LLaMA-Factory / ms-swift files load back with the right counts, images and answers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cgeval.data.export import ExportError, export_split
from cgeval.data.loader import load_medmat
from cgeval.data.records import parse_question_choice
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.data.splits import FIG4_ARMS, SplitSettings, TargetSpec, build_split

REPO = Path(__file__).resolve().parents[2]
SMALL = SplitSettings(train_cap_per_subset=5, total_cap=20, allow_short=True)


@pytest.fixture(scope="module")
def split():
    items, _ = load_medmat(SAMPLE_ROOT, verify_images=False)
    return build_split(items, TargetSpec("exp", (3,), ("related", "baseline_plus", *FIG4_ARMS)), SMALL)


def check_records(records: list[dict], expected_items, absolute: bool = True) -> None:
    assert len(records) == len(expected_items)
    for rec, item in zip(records, expected_items):
        user, assistant = rec["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"].count("<image>") == len(rec["images"]) == 1
        image = Path(rec["images"][0])
        assert image.is_absolute() == absolute
        assert (image if absolute else Path(SAMPLE_ROOT) / image).is_file()
        _, options, _ = parse_question_choice(user["content"].removeprefix("<image>\n"))
        assert assistant["content"] in dict(options)  # the answer is one of its options
        assert dict(options)[assistant["content"]] == item.answer_text


def test_llamafactory_and_swift_load_back(tmp_path: Path, split):
    manifest = export_split(split, tmp_path)
    info = json.loads((tmp_path / "llamafactory" / "dataset_info.json").read_text())
    assert set(info) == {f"exp__{arm}" for arm in split.arms}
    for arm, items in split.arms.items():
        entry = info[f"exp__{arm}"]
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
        assert entry["tags"]["role_tag"] == "role" and entry["tags"]["user_tag"] == "user"
        lf = json.loads((tmp_path / "llamafactory" / entry["file_name"]).read_text())
        check_records(lf, items)
        lines = (tmp_path / manifest["files"]["arms"][arm]["swift"]).read_text().splitlines()
        check_records([json.loads(line) for line in lines], items)
        assert manifest["arms"][arm]["n"] == len(items)
    test_lines = (tmp_path / manifest["files"]["test"]).read_text().splitlines()
    rows = [json.loads(line) for line in test_lines]
    assert [r["item_id"] for r in rows] == [it.item_id for it in split.test]
    assert all(r["gold"] in r["options"] for r in rows)
    assert json.loads((tmp_path / "manifest.json").read_text())["experiment"] == "exp"


def test_relative_image_paths(tmp_path: Path, split):
    export_split(split, tmp_path, formats=["swift"], image_paths="relative")
    assert not (tmp_path / "llamafactory").exists()
    lines = (tmp_path / "swift" / "exp__related.jsonl").read_text().splitlines()
    check_records([json.loads(line) for line in lines], split.arms["related"], absolute=False)


def test_export_twice_is_byte_identical(tmp_path: Path, split):
    export_split(split, tmp_path / "a")
    export_split(split, tmp_path / "b")
    for f in sorted((tmp_path / "a").rglob("*.json*")):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f


def test_unknown_format_is_refused(tmp_path: Path, split):
    with pytest.raises(ExportError, match="unknown export formats"):
        export_split(split, tmp_path, formats=["alpaca"])


def test_cli_on_the_sample(tmp_path: Path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "cgeval.split", "split=sample", "experiment=table3_area_lung_ct_covid", f"split.out={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["related_subsets"] == [4, 28] and manifest["arms"]["baseline_plus"]["n"] == 10
    assert (out / "swift" / "table3_area_lung_ct_covid__related.jsonl").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "cgeval.split", "split=sample", "experiment=table3_task_cancer_ct_brain", f"split.out={out}2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode != 0 and "RelatedSubsetsMissing" in missing.stderr and "32" in missing.stderr


def test_reexport_leaves_no_stale_arm(tmp_path: Path, split):
    # An earlier export with more arms and formats is replaced: the folder ends as a fresh export leaves it, and
    # dataset_info.json names no arm the new split lacks (a tool would train on it silently).
    items, _ = load_medmat(SAMPLE_ROOT, verify_images=False)
    smaller = build_split(items, TargetSpec("exp", (3,), ("related", "baseline_plus")), SMALL)
    other = build_split(items, TargetSpec("other", (3,), ("related",)), SMALL)
    export_split(other, tmp_path / "reused", formats=["llamafactory"])
    export_split(split, tmp_path / "reused")
    export_split(smaller, tmp_path / "reused", formats=["llamafactory"])
    export_split(other, tmp_path / "fresh", formats=["llamafactory"])
    export_split(smaller, tmp_path / "fresh", formats=["llamafactory"])
    tree = lambda root: {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}
    assert tree(tmp_path / "reused") == tree(tmp_path / "fresh")
    info = json.loads((tmp_path / "reused" / "llamafactory" / "dataset_info.json").read_text())
    assert set(info) == {"exp__related", "exp__baseline_plus", "other__related"}
    assert not (tmp_path / "reused" / "swift").exists()


def test_image_separator_decides_what_follows_the_image_tag(tmp_path: Path, split):
    manifest = export_split(split, tmp_path / "none", image_separator="none")
    assert manifest["image_separator"] == "none"
    for fmt in ("llamafactory", "swift"):
        text = (tmp_path / "none" / manifest["files"]["arms"]["related"][fmt]).read_text()
        records = json.loads(text) if fmt == "llamafactory" else [json.loads(line) for line in text.splitlines()]
        by_image = {it.image_path: it for it in split.arms["related"]}
        for rec in records:
            assert rec["messages"][0]["content"] == "<image>" + by_image[rec["images"][0]].prompt
    default = export_split(split, tmp_path / "newline")
    assert default["image_separator"] == "newline"
    first = json.loads((tmp_path / "newline" / default["files"]["arms"]["related"]["swift"]).read_text().splitlines()[0])
    assert first["messages"][0]["content"].startswith("<image>\n")
    with pytest.raises(ExportError, match="image_separator"):
        export_split(split, tmp_path / "bad", image_separator="\n")


def test_relative_paths_name_the_folder_each_tool_needs(tmp_path: Path, split):
    manifest = export_split(split, tmp_path / "rel", image_paths="relative")
    assert manifest["image_root"] == str(SAMPLE_ROOT)
    lines = (tmp_path / "rel" / manifest["files"]["arms"]["related"]["swift"]).read_text().splitlines()
    assert all((Path(manifest["image_root"]) / json.loads(line)["images"][0]).is_file() for line in lines)
    assert export_split(split, tmp_path / "abs")["image_root"] is None
    run = subprocess.run(
        [sys.executable, "-m", "cgeval.split", "split=sample", "experiment=table3_area_lung_ct_covid",
         f"split.out={tmp_path / 'cli'}", "split.image_paths=relative", "split.image_separator=none"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"ROOT_IMAGE_DIR={SAMPLE_ROOT}" in run.stdout and "media_dir" in run.stdout
    cli_manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert cli_manifest["image_separator"] == "none" and cli_manifest["image_root"] == str(SAMPLE_ROOT)
