"""Hostile inputs: the loader never crashes on bad records; it counts them, or names a file-level error."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cgeval.data.loader import SKIP_REASONS, DataError, load_medmat

_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
_keys = st.sampled_from(["id", "image", "Question-choice", "Answer-choice", "data-no", "Answer", "caption", "x"])
_records = st.one_of(_values, st.dictionaries(_keys, _values, max_size=8))


def _good(sample_copy):
    return json.loads((sample_copy / "Aggregated_Subsets/Subset--02-train.json").read_text())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(_records, max_size=6), mutate=st.dictionaries(_keys, _values, max_size=3))
def test_random_records_are_counted_never_crash(sample_copy, junk, mutate):
    good = _good(sample_copy)
    records = good[:3] + [{**good[3], **mutate}] + junk
    path = sample_copy / "Aggregated_Subsets/Subset--02-train.json"
    path.write_text(json.dumps(records))
    try:
        items, report = load_medmat(sample_copy, subsets=[2], verify_images=False)
    except DataError:
        return  # a named error is an acceptable outcome; an unnamed crash is not
    assert set(report.skipped) <= set(SKIP_REASONS)
    assert report.n_items + report.n_skipped == report.n_records == len(records)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_random_file_bytes_give_a_named_error_or_items(sample_copy, raw):
    (sample_copy / "Aggregated_Subsets/Subset--02-train.json").write_bytes(raw)
    try:
        load_medmat(sample_copy, subsets=[2], verify_images=False)
    except DataError:
        pass


def test_non_utf8_json_is_a_named_error(sample_copy):
    path = sample_copy / "Aggregated_Subsets/Subset--02-train.json"
    path.write_bytes(path.read_text().replace("kidney", "k\u00e9dney").encode("latin-1"))
    try:
        load_medmat(sample_copy, subsets=[2])
    except DataError as e:
        assert "UTF-8" in str(e)
    else:
        raise AssertionError("latin-1 JSON must be a named error")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns between 1x and 2x its limit
def test_decompression_bombs_are_counted_as_too_large(sample_copy, monkeypatch):
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS: with 1,200, only the 48 x 48 sample images pass.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)
    items, report = load_medmat(sample_copy, subsets=[2])
    assert report.skipped == {"image_too_large": 7} and len(items) == 3
