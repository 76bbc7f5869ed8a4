"""cgeval.data.loader function by function: file-name variants, which layout ``auto`` reads, each record check's
counted reason and message, image paths, the report's fields, the items file, and the questions' hash."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from cgeval.data.loader import (
    SKIP_REASONS,
    DataRootNotFound,
    DuplicateQAFile,
    ItemsFileError,
    LoadReport,
    MedMatFormatError,
    NoQAFilesFound,
    NoUsableItems,
    _check_types,
    _image_folder,
    _other_source_hint,
    _read_json_list,
    find_qa_files,
    items_hash,
    load_medmat,
    read_item_ids,
    record_problem,
    resolve_image,
    resolve_source,
)
from cgeval.data.records import Item

from .test_loader import _rewrite, _subset_file

GOOD = {"id": 1, "image": "med-mat/x/a.png", "Question-choice": "Q\nA: a\nB: b\nAnswer.", "Answer-choice": "A",
        "data-no": "2"}


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("[]")


# ------------------------------------------------------------------ the report


def test_report_counts_every_skip_and_keeps_five_examples():
    report = LoadReport(root="/r", source="subsets")
    for i in range(7):
        report.skip("image_missing", f"S03-{i}")
    report.warn("answer_text_differs", "w1")
    assert report.skipped == {"image_missing": 7} and report.n_skipped == 7
    assert report.examples["image_missing"] == ["S03-0", "S03-1", "S03-2", "S03-3", "S03-4"]
    for i in range(6):
        report.warn("dataset_not_in_subset", f"w{i}")
    assert report.warnings == {"answer_text_differs": 1, "dataset_not_in_subset": 6}
    assert report.examples["dataset_not_in_subset"] == ["w0", "w1", "w2", "w3", "w4"]
    with pytest.raises(AssertionError):
        report.skip("not_a_reason", "x")
    report.skip("duplicate_id", "d")
    report.missing_image_folders["med-mat/A"] += 2
    report.selected_missing = [f"S03-{i}" for i in range(12)]
    assert report.to_dict() == {
        "root": "/r", "source": "subsets", "files": [], "missing_requested": [], "n_records": 0, "n_items": 0,
        "n_skipped": 8, "skipped": {"duplicate_id": 1, "image_missing": 7},
        "warnings": {"answer_text_differs": 1, "dataset_not_in_subset": 6},
        "missing_image_folders": {"med-mat/A": 2}, "subsampled_out": 0, "items_file": None, "not_selected": 0,
        "n_selected_missing": 12, "selected_missing_examples": [f"S03-{i}" for i in range(10)],
        "examples": {"answer_text_differs": ["w1"], "dataset_not_in_subset": ["w0", "w1", "w2", "w3", "w4"],
                     "duplicate_id": ["d"], "image_missing": ["S03-0", "S03-1", "S03-2", "S03-3", "S03-4"]},
    }
    assert list(report.to_dict()["skipped"]) == ["duplicate_id", "image_missing"]  # sorted


def test_skip_reasons_in_check_order():
    assert SKIP_REASONS == (
        "malformed_record", "unknown_dataset", "dataset_in_no_subset", "unparseable_options", "answer_not_an_option",
        "duplicate_id", "path_outside_root", "image_folder_missing", "image_missing", "symlink_outside_roots",
        "image_too_large", "image_unreadable",
    )


# ------------------------------------------------------------------ files and layouts


def test_find_qa_files_over_the_name_variants(tmp_path):
    _touch(tmp_path, "Aggregated_Subsets/Subset--03-train.json", "Aggrregated_Subsets/Subset--05-train.json",
           "Subset-4-train.json", "Aggregated_Subsets/Subset--07-test.json", "Aggregated_Subsets/Subset--123-train.json",
           "Aggregated_Subsets/xSubset--08-train.json", "Aggregated_Subsets/Subset--09-train.json.bak",
           "Original_Medical_Datasets/ori--01-train.json", "Ori-102-train.json", "ori--1000-train.json",
           "Original_Medical_Datasets/ORI--03-train.json")
    (tmp_path / "Aggregated_Subsets" / "Subset--06-train.json").mkdir()  # a folder, not a file
    assert find_qa_files(tmp_path, "subsets") == {
        3: tmp_path / "Aggregated_Subsets/Subset--03-train.json",
        4: tmp_path / "Subset-4-train.json",
        5: tmp_path / "Aggrregated_Subsets/Subset--05-train.json",
    }
    assert find_qa_files(tmp_path, "datasets") == {
        1: tmp_path / "Original_Medical_Datasets/ori--01-train.json", 102: tmp_path / "Ori-102-train.json",
    }
    assert find_qa_files(tmp_path / "nowhere", "subsets") == {}


def test_the_same_file_twice_names_both(tmp_path):
    _touch(tmp_path, "Aggregated_Subsets/Subset--03-train.json", "Subset-03-train.json")
    with pytest.raises(DuplicateQAFile) as e:
        find_qa_files(tmp_path, "subsets")
    assert str(e.value) == (f"subset 03 is present twice: {tmp_path / 'Aggregated_Subsets/Subset--03-train.json'} "
                            f"and {tmp_path / 'Subset-03-train.json'}; keep one")
    _touch(tmp_path, "Original_Medical_Datasets/ori--07-train.json", "Ori--7-train.json")
    with pytest.raises(DuplicateQAFile, match="^dataset 07 is present twice"):
        find_qa_files(tmp_path, "datasets")


def test_resolve_source(tmp_path):
    assert resolve_source(tmp_path, "subsets") == "subsets" and resolve_source(tmp_path, "datasets") == "datasets"
    assert resolve_source(tmp_path, "auto") == "subsets"  # nothing there: the default layout
    assert resolve_source(tmp_path, "auto", datasets=[2]) == "datasets"
    assert resolve_source(tmp_path, "auto", subsets=[3], datasets=[2]) == "subsets"
    assert resolve_source(tmp_path, "auto", subsets=[3]) == "subsets"
    _touch(tmp_path, "Original_Medical_Datasets/ori--02-train.json", "ori-2-train.json")  # datasets, twice
    assert resolve_source(tmp_path, "auto") == "datasets"
    _touch(tmp_path, "Subset--03-train.json")
    assert resolve_source(tmp_path, "auto") == "subsets"
    assert resolve_source(tmp_path, "auto", datasets=[2]) == "datasets"


def test_resolve_source_with_a_duplicated_subset_reads_subsets(tmp_path):
    _touch(tmp_path, "Subset--03-train.json", "Aggregated_Subsets/Subset-3-train.json",
           "Original_Medical_Datasets/ori--02-train.json")
    assert resolve_source(tmp_path, "auto") == "subsets"


def test_other_source_hint(tmp_path):
    assert _other_source_hint(tmp_path, "subsets") == ""
    _touch(tmp_path, "Original_Medical_Datasets/ori--02-train.json", "Original_Medical_Datasets/ori--03-train.json")
    assert _other_source_hint(tmp_path, "subsets") == (
        "; but 2 ori--NN-train.json file(s) are there: set data.source=datasets (or data.source=auto) to read them")
    assert _other_source_hint(tmp_path, "datasets") == ""
    _touch(tmp_path, "Subset--03-train.json", "Subset-3-train.json")
    assert _other_source_hint(tmp_path, "datasets") == (
        "; but 1 Subset--NN-train.json file(s) are there: set data.source=subsets (or data.source=auto) to read them")


def test_read_json_list(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(b"\xef\xbb\xbf[1, {\"a\": \"\xc3\xa9\"}]")
    assert _read_json_list(path) == [1, {"a": "é"}]
    path.write_text('{"a": 1}')
    with pytest.raises(MedMatFormatError) as e:
        _read_json_list(path)
    assert str(e.value) == f"{path}: expected a JSON list of records, got dict"
    path.write_text("[1,")
    with pytest.raises(MedMatFormatError, match=r"^" + str(path).replace(".", r"\.") + r": not valid UTF-8 JSON \("):
        _read_json_list(path)
    path.write_bytes(b"[\"\xff\"]")
    with pytest.raises(MedMatFormatError, match="not valid UTF-8 JSON"):
        _read_json_list(path)


# ------------------------------------------------------------------ record checks


@pytest.mark.parametrize("rec, problem", [
    (["a"], "record is a list, not an object"),
    ("x", "record is a str, not an object"),
    ({k: v for k, v in GOOD.items() if k != "image"}, "missing key 'image'"),
    ({**GOOD, "id": 1.0}, "'id' has type float"),
    ({**GOOD, "id": True}, "'id' has type bool"),
    ({**GOOD, "data-no": None}, "'data-no' has type NoneType"),
    ({**GOOD, "Answer-choice": 1}, "'Answer-choice' has type int"),
    ({**GOOD, "data-no": "x2"}, "'data-no' is 'x2', not a number"),
    ({**GOOD, "data-no": "-3"}, "'data-no' is '-3', not a number"),
    ({**GOOD, "data-no": ""}, "'data-no' is '', not a number"),
    (GOOD, None),
    ({**GOOD, "id": "a7", "data-no": " 12 "}, None),
    ({**GOOD, "data-no": 12}, None),
])
def test_record_shape_problems(rec, problem):
    assert _check_types(rec) == problem


def test_record_problem_checks_keys_in_order():
    assert record_problem({}, {"b": (str,), "a": (int,)}) == "missing key 'b'"
    assert record_problem({"b": "x", "a": False}, {"b": (str,), "a": (int,)}) == "'a' has type bool"
    assert record_problem({"b": "x", "a": 0}, {"b": (str,), "a": (int,)}) is None


def test_each_bad_record_is_counted_once_with_its_example(sample_copy):
    def corrupt(recs):
        recs[0]["Answer-choice"] = " b. "  # read as B: usable
        recs[1]["data-no"] = " 2 "  # usable
        recs[2]["Answer-choice"] = "E"
        recs[3]["data-no"] = "64"  # a real dataset that belongs to no subset: only a warning when read as subset 02
        recs[4]["Question-choice"] = "Q\nA: only\nAnswer."
        recs[5]["data-no"] = "200"
        recs[6] = 7

    _rewrite(_subset_file(sample_copy, 2), corrupt)
    items, report = load_medmat(sample_copy, subsets=[2], verify_images=False)
    assert report.skipped == {"answer_not_an_option": 1, "unparseable_options": 1, "unknown_dataset": 1,
                              "malformed_record": 1}
    # " b. " is option B (Cyst) while the record's Answer says Normal: read as B, and the mismatch warned
    assert report.warnings == {"dataset_not_in_subset": 1, "answer_text_differs": 1}
    ex = report.to_dict()["examples"]
    assert ex["answer_not_an_option"] == ["Subset--02-train.json[2]: answer 'E' not in ['A', 'B', 'C', 'D']"]
    assert ex["unknown_dataset"] == ["Subset--02-train.json[5]: data-no 200"]
    assert ex["malformed_record"] == ["Subset--02-train.json[6]: record is a int, not an object"]
    assert ex["unparseable_options"][0].startswith("Subset--02-train.json[4]: ")
    assert ex["dataset_not_in_subset"] == ["Subset--02-train.json[3]: data-no 64 not listed for subset 02"]
    by_id = {it.item_id: it for it in items}
    assert by_id["S02-1"].gold == "B" and by_id["S02-1"].answer_text == "Cyst" == by_id["S02-1"].options[1][1]
    assert by_id["S02-2"].dataset == 2 and by_id["S02-4"].dataset == 64 and by_id["S02-4"].subset == 2
    assert report.n_records == 10 and report.n_items == 6 == len(items)


def test_dataset_file_records(sample_copy):
    path = sample_copy / "Original_Medical_Datasets" / "ori--02-train.json"

    def edit(recs):
        recs[0]["data-no"] = "5"  # differs from the file's number: read as dataset 5 (subset 04), warned
        recs[1]["data-no"] = "64"  # dataset 64 is in no Med-MAT subset
        recs[2]["caption"] = 17
        recs[3]["Answer"] = "Something else"
        recs[4]["Answer"] = 3  # not a string: not compared

    _rewrite(path, edit)
    items, report = load_medmat(sample_copy, source="datasets", datasets=[2], verify_images=False)
    assert report.skipped == {"dataset_in_no_subset": 1}
    assert report.to_dict()["examples"]["dataset_in_no_subset"] == [
        "ori--02-train.json[1]: dataset 64 belongs to no Med-MAT subset"]
    # 64 differs from the file's number too: warned before it is skipped
    assert report.warnings == {"data_no_differs_from_file": 2, "answer_text_differs": 1}
    assert report.examples["data_no_differs_from_file"] == ["ori--02-train.json[0]: data-no 5 in ori--02",
                                                            "ori--02-train.json[1]: data-no 64 in ori--02"]
    recs = json.loads(path.read_text())
    rec3 = recs[3]
    gold3 = rec3["Answer-choice"]
    text3 = dict(l.split(": ", 1) for l in rec3["Question-choice"].splitlines() if l[:3] in ("A: ", "B: ", "C: ",
                                                                                                 "D: "))[gold3]
    assert report.examples["answer_text_differs"] == [
        f"ori--02-train.json[3]: Answer 'Something else' vs option {gold3}: {text3!r}"]
    by_id = {it.item_id: it for it in items}
    first = by_id[f"D02-{recs[0]['id']}"]
    assert (first.subset, first.dataset, first.modality, first.area, first.task) == (4, 5, "CT", "Lung", "Cancer")
    assert by_id[f"D02-{recs[2]['id']}"].caption == "17" and by_id[f"D02-{recs[4]['id']}"].caption == \
        recs[4]["caption"]
    assert all(it.image_path == os.path.join(str(sample_copy.resolve()), it.image) for it in items)


# ------------------------------------------------------------------ image paths


@pytest.mark.parametrize("rel, want", [
    ("", None), ("/etc/x.png", None), ("\\x.png", None), ("a\x00b.png", None), ("..", None), ("../x.png", None),
    ("a/../../x.png", None), ("a/b.png", "R/a/b.png"), ("a/./b.png", "R/a/b.png"), ("a/../b.png", "R/b.png"),
    ("..x/b.png", "R/..x/b.png"),
])
def test_resolve_image(rel, want):
    assert resolve_image(Path("R"), rel) == want


@pytest.mark.parametrize("rel, folder", [
    ("med-mat/DS/sub/x.png", "med-mat/DS"), ("med-mat/DS/x.png", "med-mat/DS"), ("DS/x.png", "DS"),
    ("x.png", "."), ("./med-mat//DS/x.png", "med-mat/DS"), ("med-mat\\DS\\x.png", "med-mat/DS"),
])
def test_image_folder(rel, folder):
    assert _image_folder(rel) == folder


def test_missing_folders_are_counted_by_folder(sample_copy):
    def edit(recs):
        for r in recs[:3]:
            r["image"] = "med-mat/Gone/sub/" + r["image"].rsplit("/", 1)[1]
        recs[3]["image"] = "med-mat/Gone2/x.png"
        recs[4]["image"] = recs[4]["image"] + ".missing"
        recs[5]["image"] = "../up.png"

    _rewrite(_subset_file(sample_copy, 2), edit)
    items, report = load_medmat(sample_copy, subsets=[2], verify_images=False, max_image_pixels=None, io_workers=0)
    assert report.skipped == {"image_folder_missing": 4, "image_missing": 1, "path_outside_root": 1}
    assert report.missing_image_folders == {"med-mat/Gone": 3, "med-mat/Gone2": 1}
    assert report.examples["image_folder_missing"][0] == "S02-1: med-mat/Gone"
    assert report.examples["path_outside_root"] == ["S02-6: ../up.png"]
    assert len(items) == 4


# ------------------------------------------------------------------ load_medmat's errors and counts


def test_load_errors_name_what_is_wrong(tmp_path, sample_copy):
    with pytest.raises(ValueError) as e:
        load_medmat(sample_copy, source="both")
    assert str(e.value) == "data.source must be one of ('auto', 'subsets', 'datasets'), got 'both'"
    with pytest.raises(DataRootNotFound) as e:
        load_medmat(tmp_path / "nope")
    assert str(e.value) == f"data.root {tmp_path / 'nope'} does not exist or is not a folder"
    with pytest.raises(DataRootNotFound) as e:
        load_medmat(sample_copy, image_roots=[tmp_path / "gone", sample_copy])
    assert str(e.value) == f"data.image_roots [{str(tmp_path / 'gone')!r}] do not exist or are not folders"
    root = sample_copy.resolve()
    with pytest.raises(NoQAFilesFound) as e:
        load_medmat(sample_copy, subsets=[31])
    assert str(e.value) == (
        f"no Subset--NN-train.json files under {root} (looked in Aggregated_Subsets, Aggrregated_Subsets, .) for "
        "requested numbers [31]; but 16 ori--NN-train.json file(s) are there: set data.source=datasets "
        "(or data.source=auto) to read them")
    with pytest.raises(NoQAFilesFound) as e:
        load_medmat(sample_copy, source="datasets", datasets=[99])
    assert str(e.value).startswith(f"no ori--NN-train.json files under {root} (looked in Original_Medical_Datasets, "
                                   ".) for requested numbers [99]; but 12 Subset--NN-train.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoQAFilesFound) as e:
        load_medmat(empty, source="auto")
    assert str(e.value) == (
        f"no Med-MAT QA files under {empty}: neither Subset--NN-train.json (looked in Aggregated_Subsets, "
        "Aggrregated_Subsets, .) nor ori--NN-train.json (looked in Original_Medical_Datasets, .)")
    with pytest.raises(NoQAFilesFound) as e:
        load_medmat(empty, source="subsets")
    assert str(e.value) == f"no Subset--NN-train.json files under {empty} (looked in Aggregated_Subsets, " \
                           "Aggrregated_Subsets, .)"
    with pytest.raises(NoQAFilesFound, match="for requested numbers"):
        load_medmat(empty, source="auto", subsets=[3])


def test_a_subset_number_beyond_the_registry_is_a_named_error(sample_copy):
    _touch(sample_copy, "Aggregated_Subsets/Subset--60-train.json", "Aggregated_Subsets/Subset--54-train.json")
    with pytest.raises(MedMatFormatError) as e:
        load_medmat(sample_copy)
    assert str(e.value) == "subset numbers [54, 60] are not Med-MAT subsets 01-53"
    assert len(load_medmat(sample_copy, subsets=["3", 4, 4], verify_images=False)[0]) == 20


def test_files_records_and_subsampling_are_reported(sample_copy):
    items, report = load_medmat(sample_copy, subsets=[4, 3], max_items_per_file=10, verify_images=False)
    assert report.files == ["Aggregated_Subsets/Subset--03-train.json", "Aggregated_Subsets/Subset--04-train.json"]
    assert report.source == "subsets" and report.root == str(sample_copy.resolve())
    assert report.n_records == 20 == report.n_items and report.subsampled_out == 0  # 10 a file: nothing dropped
    items, report = load_medmat(sample_copy, subsets=[3], max_items_per_file=9, verify_images=False)
    assert len(items) == 9 and report.subsampled_out == 1 and report.items_file is None
    items, report = load_medmat(sample_copy, source="auto", subsets=[3], verify_images=False)
    assert report.source == "subsets" and len(items) == 10


def test_duplicate_ids_are_counted_across_nothing_but_one_file(sample_copy):
    _rewrite(_subset_file(sample_copy, 3), lambda recs: recs[1].update({"id": recs[0]["id"]}))
    items, report = load_medmat(sample_copy, subsets=[3, 4], verify_images=False)
    assert report.skipped == {"duplicate_id": 1}
    assert report.examples["duplicate_id"] == [f"Subset--03-train.json[1]: id S03-{json.loads(_subset_file(sample_copy, 3).read_text())[0]['id']}"]
    assert len(items) == 19  # 04's ids are S04-*, not duplicates of 03's


def test_no_usable_record_message(sample_copy):
    _rewrite(_subset_file(sample_copy, 3), lambda recs: [r.update({"data-no": "300"}) for r in recs])
    with pytest.raises(NoUsableItems) as e:
        load_medmat(sample_copy, subsets=[3])
    assert str(e.value).startswith(f"none of the 10 records under {sample_copy.resolve()} is usable; skipped by "
                                   "reason: {'unknown_dataset': 10}; examples: {'unknown_dataset': "
                                   "['Subset--03-train.json[0]: data-no 300'")


def test_items_file_counts(sample_copy, tmp_path):
    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"item_id": "S03-1"}\n{"item_id": "S03-2@r1"}\n{"item_id": "S30-9"}\n')
    _rewrite(_subset_file(sample_copy, 3), lambda recs: recs[0].update({"data-no": "300"}))  # S03-1 unusable
    items, report = load_medmat(sample_copy, subsets=[3, 4], items_file=ids, verify_images=False)
    assert [it.item_id for it in items] == ["S03-2"]
    assert report.not_selected == 8 + 10 and report.selected_missing == ["S03-1", "S30-9"]
    assert report.items_file == str(ids) and report.skipped == {"unknown_dataset": 1}


def test_read_item_ids_errors(tmp_path):
    path = tmp_path / "ids.jsonl"
    with pytest.raises(ItemsFileError) as e:
        read_item_ids(path)
    assert str(e.value) == f"data.items_file {path} does not exist"
    path.write_text('{"item_id": "S03-1@r2"}\n\n{"item_id": "S04-1"}\n')
    assert read_item_ids(path) == {"S03-1", "S04-1"}
    path.write_text('{"item_id": "S03-1"}\n{"item_id": 3}\n')
    with pytest.raises(ItemsFileError) as e:
        read_item_ids(path)
    assert str(e.value) == f"{path}:2: no string 'item_id'"
    path.write_text('{"item_id": "S03-1"}\n[1]\n')
    with pytest.raises(ItemsFileError) as e:
        read_item_ids(path)
    assert str(e.value) == f"{path}:2: no string 'item_id'"
    path.write_text('{"item_id": "S03-1"}\n{"item_id": \n')
    with pytest.raises(ItemsFileError, match=r"^" + str(path).replace(".", r"\.") + r":2: not a JSON line \("):
        read_item_ids(path)
    path.write_text("\n")
    with pytest.raises(ItemsFileError) as e:
        read_item_ids(path)
    assert str(e.value) == f"{path}: lists no item ids"


def _item(item_id: str, image: str, prompt: str, gold: str) -> Item:
    return Item(item_id=item_id, subset=3, dataset=3, modality="CT", area="Lung", task="COVID", image=image,
                image_path="/r/" + image, prompt=prompt, question="Q", options=(("A", "a"), ("B", "b")), gold=gold,
                answer_text="a")


def test_items_hash_is_the_sorted_questions_lines():
    a = _item("S03-1", "med-mat/é.png", "Q é", "A")
    b = _item("S03-0", "med-mat/b.png", "Q", "B")
    text = '["S03-0", "med-mat/b.png", "Q", "B"]\n["S03-1", "med-mat/é.png", "Q é", "A"]\n'
    assert items_hash([a, b]) == hashlib.sha256(text.encode()).hexdigest()
    assert items_hash([]) == hashlib.sha256(b"").hexdigest()


def test_backslash_forms_of_escapes_and_folders():
    assert resolve_image(Path("R"), "..\\x.png") is None  # a Windows-style escape is refused on any platform
    assert _image_folder("med-mat\\\\DS\\\\x.png") == "med-mat/DS"
    assert _image_folder(".\\med-mat\\DS\\x.png") == "med-mat/DS"


def test_only_dots_and_spaces_are_trimmed_from_the_answer_letter(sample_copy):
    _rewrite(_subset_file(sample_copy, 2), lambda recs: recs[0].update({"Answer-choice": "CX"}))
    items, report = load_medmat(sample_copy, subsets=[2], verify_images=False)
    assert report.skipped == {"answer_not_an_option": 1} and len(items) == 9
