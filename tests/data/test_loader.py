import json
import shutil
from pathlib import Path

import pytest

from cgeval.data.loader import (
    DataRootNotFound,
    DuplicateQAFile,
    MedMatFormatError,
    NoQAFilesFound,
    NoUsableItems,
    items_hash,
    load_medmat,
)
from cgeval.data.records import OptionParseError, parse_question_choice
from cgeval.data.sample import SAMPLE_ROOT, SAMPLE_SUBSETS, write_sample


def _subset_file(root: Path, n: int) -> Path:
    return root / "Aggregated_Subsets" / f"Subset--{n:02d}-train.json"


def _rewrite(path: Path, fn) -> None:
    records = json.loads(path.read_text())
    fn(records)
    path.write_text(json.dumps(records))


def test_sample_loads_completely():
    items, report = load_medmat(SAMPLE_ROOT)
    assert len(items) == 10 * len(SAMPLE_SUBSETS)
    assert report.n_skipped == 0 and not report.warnings
    assert {it.subset for it in items} == set(SAMPLE_SUBSETS)
    assert len({it.modality for it in items}) >= 4 and len({it.area for it in items}) >= 4
    assert {it.n_options for it in items} == {2, 3, 4}


def test_both_option_styles_parse():
    stem, opts, instr = parse_question_choice("Q?\nA: Stone\nB: Cyst\nC: Normal\nD: Tumor\nAnswer directly.")
    assert stem == "Q?" and opts == (("A", "Stone"), ("B", "Cyst"), ("C", "Normal"), ("D", "Tumor"))
    assert instr == "Answer directly."
    _, opts, _ = parse_question_choice("Which?\nA. Centrosome, cytosol\nB. Nucleus\nAnswer with the letter.")
    assert opts == (("A", "Centrosome, cytosol"), ("B", "Nucleus"))


@pytest.mark.parametrize(
    "text",
    [
        "Q?\nA: only one\nAnswer.",  # one option
        "Q?\nAnswer.",  # none
        "Q?\nA: a\nC: c\nAnswer.",  # letters out of order
        "Q?\nA: a\nB: b\nC: c\nD: d\nE: e\nAnswer.",  # five options
    ],
)
def test_unparseable_options(text):
    with pytest.raises(OptionParseError):
        parse_question_choice(text)


def test_datasets_source_gives_the_same_questions():
    by_subset, _ = load_medmat(SAMPLE_ROOT, source="subsets")
    by_dataset, report = load_medmat(SAMPLE_ROOT, source="datasets")
    assert len(by_subset) == len(by_dataset)
    key = lambda it: (it.image, it.prompt, it.gold, it.subset, it.modality, it.area, it.task)  # noqa: E731
    assert sorted(map(key, by_subset)) == sorted(map(key, by_dataset))
    assert report.n_skipped == 0


@pytest.mark.parametrize(
    "folder,name",
    [
        ("Aggregated_Subsets", "Subset--04-train.json"),
        ("Aggrregated_Subsets", "Subset--04-train.json"),
        (".", "Subset-04-train.json"),
        ("Aggregated_Subsets", "Subset-04-train.json"),
    ],
)
def test_subset_file_name_variants(sample_copy, folder, name):
    src = _subset_file(sample_copy, 4)
    dst = sample_copy / folder / name
    dst.parent.mkdir(exist_ok=True)
    shutil.move(src, dst)
    items, report = load_medmat(sample_copy, subsets=[4])
    assert len(items) == 10 and report.files == [str(dst.relative_to(sample_copy)).removeprefix("./")]


@pytest.mark.parametrize("name", ["ori--02-train.json", "Ori--02-train.json", "Ori-02-train.json"])
def test_dataset_file_name_variants(sample_copy, name):
    folder = sample_copy / "Original_Medical_Datasets"
    (folder / "ori--02-train.json").rename(folder / name)
    items, _ = load_medmat(sample_copy, source="datasets", datasets=[2])
    assert len(items) == 10 and {it.subset for it in items} == {2}


def test_same_subset_twice_is_an_error(sample_copy):
    shutil.copy(_subset_file(sample_copy, 4), sample_copy / "Subset-04-train.json")
    with pytest.raises(DuplicateQAFile, match="04"):
        load_medmat(sample_copy)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DataRootNotFound):
        load_medmat(tmp_path / "nope")
    with pytest.raises(NoQAFilesFound, match="Subset--NN-train.json"):
        load_medmat(tmp_path)


def test_a_root_with_only_the_source_datasets(sample_copy):
    """Original_Medical_Datasets/ alone: data.source=auto (the config's default) reads it; an explicit
    data.source=subsets stops with an error that names the setting that would read it."""
    shutil.rmtree(sample_copy / "Aggregated_Subsets")
    items, report = load_medmat(sample_copy, source="auto")
    assert report.source == "datasets" and len(items) == 10 * len(SAMPLE_SUBSETS)
    assert all(it.item_id.startswith("D") for it in items)
    with pytest.raises(NoQAFilesFound, match=r"16 ori--NN-train.json file\(s\) are there: set data.source=datasets"):
        load_medmat(sample_copy, source="subsets")
    # Both present: auto reads the subsets, as before; a data.datasets request reads the source datasets.
    both, _ = load_medmat(SAMPLE_ROOT, source="auto")
    assert [it.item_id for it in both] == [it.item_id for it in load_medmat(SAMPLE_ROOT, source="subsets")[0]]
    assert load_medmat(SAMPLE_ROOT, source="auto", datasets=[2])[1].source == "datasets"


def test_a_root_with_only_the_subsets_names_the_other_setting(sample_copy):
    shutil.rmtree(sample_copy / "Original_Medical_Datasets")
    with pytest.raises(NoQAFilesFound, match="set data.source=subsets"):
        load_medmat(sample_copy, source="datasets")


def test_auto_with_neither_layout_names_what_it_looked_for(tmp_path):
    with pytest.raises(NoQAFilesFound, match="neither Subset--NN-train.json .* nor ori--NN-train.json"):
        load_medmat(tmp_path, source="auto")


def test_requested_subsets_missing_are_reported(sample_copy):
    items, report = load_medmat(sample_copy, subsets=[3, 4, 31])
    assert {it.subset for it in items} == {3, 4}
    assert report.missing_requested == [31]


@pytest.mark.parametrize("content", [b"[{\"id\": 1,", b"\xff\xfe\x00garbage", b"{\"not\": \"a list\"}"])
def test_invalid_json_file_is_a_named_error(sample_copy, content):
    _subset_file(sample_copy, 3).write_bytes(content)
    with pytest.raises(MedMatFormatError, match="Subset--03"):
        load_medmat(sample_copy)


def test_missing_image_folder_and_file_are_counted(sample_copy):
    shutil.rmtree(sample_copy / "med-mat" / "COVID-CT")  # half of subset 03's images
    (sample_copy / "med-mat/Chest_CT-Scan/Normal/Normal- (4).png").unlink()
    items, report = load_medmat(sample_copy)
    assert report.skipped["image_folder_missing"] == 5
    assert report.missing_image_folders == {"med-mat/COVID-CT": 5}
    assert report.skipped["image_missing"] == 1
    assert len(items) == 120 - 6
    assert report.n_items + report.n_skipped == report.n_records


def test_corrupt_and_empty_images_are_counted(sample_copy):
    (sample_copy / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png").write_bytes(b"not a png at all")
    (sample_copy / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (3).png").write_bytes(b"")
    items, report = load_medmat(sample_copy)
    assert report.skipped["image_unreadable"] == 2
    assert len(items) == 118
    # Without verification only the header is read (for the pixel cap): a file that is no image at all is
    # still found; without the cap either, only existence is checked.
    items, report = load_medmat(sample_copy, verify_images=False)
    assert report.skipped == {"image_unreadable": 2}
    items, report = load_medmat(sample_copy, verify_images=False, max_image_pixels=None)
    assert len(items) == 120


def test_a_truncated_image_is_found_by_verification_only(sample_copy):
    path = sample_copy / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the header is intact
    assert load_medmat(sample_copy)[1].skipped == {"image_unreadable": 1}
    assert load_medmat(sample_copy, verify_images=False)[1].n_skipped == 0


def test_bad_records_are_counted_by_reason(sample_copy):
    def corrupt(recs):
        del recs[0]["Question-choice"]  # malformed
        recs[1]["data-no"] = "999"  # unknown dataset
        recs[2]["Question-choice"] = "What is it?\nAnswer directly."  # unparseable options
        recs[3]["Answer-choice"] = "Z"  # not an option
        recs[4]["image"] = "../outside.png"  # escapes root
        recs[5]["image"] = "/etc/passwd"  # absolute
        recs[6]["id"] = recs[7]["id"]  # duplicate id
        recs[8]["data-no"] = 7.5  # wrong type
        recs.append("not a record")

    _rewrite(_subset_file(sample_copy, 2), corrupt)
    items, report = load_medmat(sample_copy)
    assert report.skipped == {
        "malformed_record": 3,
        "unknown_dataset": 1,
        "unparseable_options": 1,
        "answer_not_an_option": 1,
        "path_outside_root": 2,
        "duplicate_id": 1,
    }
    assert report.n_records == 121
    assert len(items) == 121 - 9
    assert report.n_items + report.n_skipped == report.n_records
    d = report.to_dict()
    assert d["examples"]["unknown_dataset"][0].startswith("Subset--02-train.json[1]")


def test_answer_letter_forms_and_warnings(sample_copy):
    def edit(recs):
        recs[0]["Answer-choice"] = f" {recs[0]['Answer-choice'].lower()}. "  # " c. " is read as C
        recs[1]["data-no"] = "5"  # a real dataset, but not one of subset 02's
        recs[2]["Answer"] = "Something else"

    _rewrite(_subset_file(sample_copy, 2), edit)
    items, report = load_medmat(sample_copy, subsets=[2])
    original = json.loads(_subset_file(SAMPLE_ROOT, 2).read_text())[0]["Answer-choice"]
    assert items[0].gold == original
    assert report.warnings == {"dataset_not_in_subset": 1, "answer_text_differs": 1}


def test_every_record_unusable_is_a_named_error(sample_copy):
    _rewrite(_subset_file(sample_copy, 3), lambda recs: [r.update({"Answer-choice": "Q"}) for r in recs])
    with pytest.raises(NoUsableItems, match="answer_not_an_option"):
        load_medmat(sample_copy, subsets=[3])


def test_subsample_is_seeded_and_counted():
    a, ra = load_medmat(SAMPLE_ROOT, max_items_per_file=3, seed=1)
    b, _ = load_medmat(SAMPLE_ROOT, max_items_per_file=3, seed=1)
    c, _ = load_medmat(SAMPLE_ROOT, max_items_per_file=3, seed=2)
    assert [i.item_id for i in a] == [i.item_id for i in b] != [i.item_id for i in c]
    assert ra.subsampled_out == 120 - len(a) == 120 - 36
    # A file's sample is the same whichever other files are loaded.
    alone, _ = load_medmat(SAMPLE_ROOT, subsets=[30], max_items_per_file=3, seed=1)
    assert [i.item_id for i in alone] == [i.item_id for i in a if i.subset == 30]


def test_subsample_does_not_depend_on_record_order(sample_copy):
    import json

    want = [i.item_id for i in load_medmat(sample_copy, subsets=[30], max_items_per_file=4, seed=3)[0]]
    path = next(sample_copy.rglob("*Subset*30-train.json"))
    path.write_text(json.dumps(list(reversed(json.loads(path.read_text())))))
    got = [i.item_id for i in load_medmat(sample_copy, subsets=[30], max_items_per_file=4, seed=3)[0]]
    assert sorted(got) == sorted(want)


def test_items_hash_depends_on_content(sample_copy):
    items, _ = load_medmat(sample_copy)
    h = items_hash(items)
    assert h == items_hash(list(reversed(items)))
    assert h != items_hash(items[1:])


def test_shipped_sample_is_what_the_generator_writes(tmp_path):
    from PIL import Image

    write_sample(tmp_path)
    shipped = sorted(p.relative_to(SAMPLE_ROOT) for p in SAMPLE_ROOT.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == fresh
    for rel in shipped:
        if rel.suffix == ".json":
            assert (SAMPLE_ROOT / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
        else:
            with Image.open(SAMPLE_ROOT / rel) as a, Image.open(tmp_path / rel) as b:
                assert a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes(), rel


def test_items_file_restricts_and_reports(tmp_path, sample_copy):
    from cgeval.data.loader import ItemsFileError

    ids = tmp_path / "ids.jsonl"
    ids.write_text("\n".join(json.dumps({"item_id": i}) for i in ["S03-1", "S03-2@r1", "S04-5", "S99-1"]) + "\n")
    items, report = load_medmat(sample_copy, items_file=ids)
    assert sorted(it.item_id for it in items) == ["S03-1", "S03-2", "S04-5"]
    assert report.not_selected == 117 and report.selected_missing == ["S99-1"]
    ids.write_text('{"id": 3}\n')
    with pytest.raises(ItemsFileError, match="item_id"):
        load_medmat(sample_copy, items_file=ids)
    with pytest.raises(ItemsFileError, match="does not exist"):
        load_medmat(sample_copy, items_file=tmp_path / "nope.jsonl")


def many_options(n: int) -> str:
    """A Question-choice with ``n`` option lines lettered A, B, ..., Z, AA, AB, ... (more than any record may have)."""
    letters = [chr(65 + i) if i < 26 else "A" + chr(65 + i - 26) for i in range(n)]
    return "Which one?\n" + "\n".join(f"{l}: label {i}" for i, l in enumerate(letters)) + "\nAnswer with the letter."


@pytest.mark.parametrize("n", [26, 30])
def test_too_many_options_is_an_option_parse_error(n):
    with pytest.raises(OptionParseError, match="found 26"):
        parse_question_choice(many_options(n))


def test_a_record_with_26_or_30_options_is_skipped_and_counted(sample_copy):
    def edit(recs):
        recs[0]["Question-choice"] = many_options(26)
        recs[1]["Question-choice"] = many_options(30)

    _rewrite(_subset_file(sample_copy, 2), edit)
    items, report = load_medmat(sample_copy)
    assert report.skipped == {"unparseable_options": 2}
    assert len(items) == 118 and report.examples["unparseable_options"][0].startswith("Subset--02-train.json[0]")


def test_a_byte_order_mark_is_accepted(tmp_path, sample_copy):
    # Files saved by editors that write a UTF-8 byte-order mark: the QA files and an items file.
    for path in [_subset_file(sample_copy, 2), sample_copy / "Original_Medical_Datasets" / "ori--02-train.json"]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    items, report = load_medmat(sample_copy, subsets=[2])
    assert len(items) == 10 and report.n_skipped == 0
    assert len(load_medmat(sample_copy, source="datasets", datasets=[2])[0]) == 10
    ids = tmp_path / "ids.jsonl"
    ids.write_bytes(b"\xef\xbb\xbf" + b'{"item_id": "S02-1"}\n{"item_id": "S02-2"}\n')
    assert sorted(it.item_id for it in load_medmat(sample_copy, items_file=ids)[0]) == ["S02-1", "S02-2"]


@pytest.fixture(scope="module")
def image_bomb(tmp_path_factory) -> Path:
    """A 12,000 x 12,000 PNG (144 Mpx, under Pillow's own limit) of about 18 KB: one bit a pixel, all zero."""
    from PIL import Image

    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    return path


def _plant(sample_copy: Path, source: Path, rel: str) -> None:
    shutil.copy(source, sample_copy / rel)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own warning at open (> 89 Mpx)
@pytest.mark.parametrize("verify", [True, False])
def test_an_image_above_the_pixel_cap_is_skipped_from_its_header(sample_copy, image_bomb, monkeypatch, verify):
    from PIL import Image

    _plant(sample_copy, image_bomb, "med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png")
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda im: decoded.append(im.size) or real_load(im))
    items, report = load_medmat(sample_copy, verify_images=verify)
    assert report.skipped == {"image_too_large": 1} and len(items) == 119
    assert report.examples["image_too_large"][0].endswith(": med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png")
    assert (12_000, 12_000) not in decoded  # refused from the header: never decoded
    # A cap above its size lets it through (header only, no decode); null leaves Pillow's limit alone.
    items, report = load_medmat(sample_copy, verify_images=False, max_image_pixels=150_000_000)
    assert report.n_skipped == 0 and len(items) == 120
    items, report = load_medmat(sample_copy, verify_images=False, max_image_pixels=None)
    assert report.n_skipped == 0


def test_an_image_above_pillows_own_limit_is_too_large_even_without_a_cap(sample_copy, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow now refuses the sample's images as bombs
    with pytest.raises(NoUsableItems, match="image_too_large"):
        load_medmat(sample_copy, subsets=[2], max_image_pixels=None)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "50M"])
def test_a_bad_pixel_cap_is_a_named_error(bad):
    with pytest.raises(ValueError, match="data.max_image_pixels"):
        load_medmat(SAMPLE_ROOT, max_image_pixels=bad)


def test_symlinks_are_confined_to_the_data_root_and_image_roots(tmp_path, sample_copy):
    # A dataset folder symlinked in from elsewhere, and a link to / that lets a record address any file.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(sample_copy / "med-mat" / "COVID-CT", elsewhere / "COVID-CT")
    (sample_copy / "med-mat" / "COVID-CT").symlink_to(elsewhere / "COVID-CT", target_is_directory=True)
    secret = tmp_path / "secret.png"
    shutil.copy(SAMPLE_ROOT / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (1).png", secret)
    (sample_copy / "med-mat" / "everything").symlink_to("/", target_is_directory=True)
    # One file linked on its own (the folder is real): also followed to where it points.
    linked = sample_copy / "med-mat/Head_CT/Hemorrhage/Hemorrhage- (3).png"
    linked.unlink()
    linked.symlink_to(secret)

    def edit(recs):
        recs[0]["image"] = "med-mat/everything" + str(secret)

    _rewrite(_subset_file(sample_copy, 2), edit)
    items, report = load_medmat(sample_copy)
    assert report.skipped == {"symlink_outside_roots": 5 + 1 + 1}
    assert len(items) == 120 - 7 and not any(it.image.startswith("med-mat/everything") for it in items)
    assert any("data.image_roots" in e and str(secret) in e for e in report.examples["symlink_outside_roots"])

    # Naming the folders the links lead into makes those images usable again, and only those.
    items, report = load_medmat(sample_copy, image_roots=[str(elsewhere)])
    assert report.skipped == {"symlink_outside_roots": 2}
    items, report = load_medmat(sample_copy, image_roots=[str(elsewhere), str(tmp_path)])
    assert report.n_skipped == 0 and len(items) == 120
    with pytest.raises(DataRootNotFound, match="image_roots"):
        load_medmat(sample_copy, image_roots=[str(tmp_path / "nope")])


def test_a_symlink_inside_the_root_is_followed(sample_copy):
    # Links that stay inside data.root (a folder filed under two names) are fine.
    (sample_copy / "med-mat" / "alias").symlink_to(sample_copy / "med-mat" / "Head_CT", target_is_directory=True)
    _rewrite(_subset_file(sample_copy, 5), lambda recs: recs[0].update(image=recs[0]["image"].replace("Head_CT", "alias")))
    items, report = load_medmat(sample_copy, subsets=[5])
    assert report.n_skipped == 0 and len(items) == 10
