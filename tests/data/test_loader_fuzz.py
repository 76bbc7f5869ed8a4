"""Hostile inputs: the loader never crashes on bad records; it counts them, or names a file-level error."""

import json
from contextlib import contextmanager
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cgeval.data.loader import SKIP_REASONS, MedMatFormatError, NoUsableItems, load_medmat
from cgeval.data.registry import DATASETS

_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
_REQUIRED = ("id", "image", "Question-choice", "Answer-choice", "data-no")
_not_text = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _good(sample_copy):
    return json.loads((sample_copy / "Aggregated_Subsets/Subset--02-train.json").read_text())


@contextmanager
def _restored(path):
    """Hypothesis runs every example on one fixture: each example starts from the sample's own file."""
    original = path.read_bytes()
    try:
        yield
    finally:
        path.write_bytes(original)


def _bad_record(draw, template: dict, serial: int) -> tuple[object, str]:
    """One hostile record and the one reason the loader must count it under."""
    rec = {**template, "id": 10_000 + serial}
    kind = draw(st.sampled_from(["not_an_object", "missing_key", "wrong_type", "data_no_not_a_number",
                                 "unknown_dataset", "unparseable_options", "answer_not_an_option", "duplicate_id"]))
    if kind == "not_an_object":
        return draw(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                              st.lists(st.integers(), max_size=3))), "malformed_record"
    if kind == "missing_key":
        rec.pop(draw(st.sampled_from(_REQUIRED)))
        return rec, "malformed_record"
    if kind == "wrong_type":
        rec[draw(st.sampled_from(_REQUIRED))] = draw(_not_text)
        return rec, "malformed_record"
    if kind == "data_no_not_a_number":
        rec["data-no"] = draw(st.text(max_size=8).filter(lambda t: not t.strip().isdigit()))
        return rec, "malformed_record"
    if kind == "unknown_dataset":
        rec["data-no"] = draw(st.integers(min_value=0, max_value=10**6).filter(lambda n: n not in DATASETS))
        return rec, "unknown_dataset"
    if kind == "unparseable_options":  # one line holds at most one option: 2-4 are needed
        rec["Question-choice"] = draw(st.text(max_size=40).map(lambda t: t.replace("\n", " ").replace("\r", " ")))
        return rec, "unparseable_options"
    if kind == "answer_not_an_option":
        rec["Answer-choice"] = draw(st.sampled_from("EFGHXYZ"))
        return rec, "answer_not_an_option"
    return dict(template), "duplicate_id"  # the template's own id is already taken


@st.composite
def _hostile(draw, template: dict):
    n = draw(st.integers(min_value=0, max_value=6))
    return [_bad_record(draw, template, i) for i in range(n)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_each_hostile_record_is_counted_under_its_reason(sample_copy, data):
    with _restored(sample_copy / "Aggregated_Subsets/Subset--02-train.json"):
        good = _good(sample_copy)  # the sample's own file, with the few bad records it ships
        base_items, base = load_medmat(sample_copy, subsets=[2], verify_images=False)
        template = next(r for r in good if f"S02-{r['id']}" == base_items[0].item_id)
        bad = data.draw(_hostile(template))
        records = good + [rec for rec, _ in bad]
        path = sample_copy / "Aggregated_Subsets/Subset--02-train.json"
        path.write_text(json.dumps(records))
        items, report = load_medmat(sample_copy, subsets=[2], verify_images=False)
        assert report.skipped == base.skipped + Counter(reason for _, reason in bad)
        assert len(items) == report.n_items == base.n_items
        assert report.n_records == len(records)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(_values, max_size=6), mutate=st.dictionaries(st.sampled_from(_REQUIRED), _values, max_size=3))
def test_random_records_are_counted_never_crash(sample_copy, junk, mutate):
    with _restored(sample_copy / "Aggregated_Subsets/Subset--02-train.json"):
        good = _good(sample_copy)
        records = good[:3] + [{**good[3], **mutate}] + junk
        path = sample_copy / "Aggregated_Subsets/Subset--02-train.json"
        path.write_text(json.dumps(records))
        items, report = load_medmat(sample_copy, subsets=[2], verify_images=False)  # 3 good records: no DataError
        assert set(report.skipped) <= set(SKIP_REASONS)
        assert report.n_items + report.n_skipped == report.n_records == len(records)
        # Junk that is not an object is malformed; so is the mutated record when a required key has a wrong type.
        wrong_type = any(not isinstance(v, (str, int)) or isinstance(v, bool) or (k != "id" and k != "data-no" and
                         not isinstance(v, str)) for k, v in mutate.items())
        assert report.skipped["malformed_record"] >= len(junk) + wrong_type
        assert len(items) >= 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200),
                     st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                                  lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                       max_size=3),
                                  max_leaves=8).map(lambda v: json.dumps(v).encode())))
def test_random_file_bytes_give_the_named_error_they_deserve(sample_copy, raw):
    path = sample_copy / "Aggregated_Subsets/Subset--02-train.json"
    path.write_bytes(raw)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        expected, match = MedMatFormatError, "not valid UTF-8 JSON"
    else:
        if not isinstance(data, list):
            expected, match = MedMatFormatError, "expected a JSON list of records"
        else:  # a list of values that are never usable Med-MAT records
            expected, match = NoUsableItems, None
    with pytest.raises(expected, match=match) as err:
        load_medmat(sample_copy, subsets=[2], verify_images=False)
    if expected is MedMatFormatError:
        assert str(path) in str(err.value)


def test_a_dataset_in_no_subset_is_counted(sample_copy):
    """Datasets 64 and 83 are in Med-MAT but in none of its subsets: their records are counted, not used."""
    folder = sample_copy / "Original_Medical_Datasets"
    records = json.loads((folder / "ori--02-train.json").read_text())
    (folder / "ori--64-train.json").write_text(json.dumps([{**r, "data-no": "64"} for r in records]))
    items, report = load_medmat(sample_copy, source="datasets", datasets=[2, 64], verify_images=False)
    assert report.skipped == {"dataset_in_no_subset": len(records)}
    assert len(items) == report.n_items == len(records)
    assert report.n_records == 2 * len(records)
    assert any("dataset 64 belongs to no Med-MAT subset" in e for e in report.examples["dataset_in_no_subset"])


def test_non_utf8_json_is_a_named_error(sample_copy):
    path = sample_copy / "Aggregated_Subsets/Subset--02-train.json"
    path.write_bytes(path.read_text().replace("kidney", "k\u00e9dney").encode("latin-1"))
    with pytest.raises(MedMatFormatError, match="not valid UTF-8 JSON"):
        load_medmat(sample_copy, subsets=[2])


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns between 1x and 2x its limit
def test_decompression_bombs_are_counted_as_too_large(sample_copy, monkeypatch):
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS: with 1,200, only the 48 x 48 sample images pass.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)
    items, report = load_medmat(sample_copy, subsets=[2])
    assert report.skipped == {"image_too_large": 7} and len(items) == 3
