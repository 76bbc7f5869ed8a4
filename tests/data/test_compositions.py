import pytest

from cgeval.data.compositions import HeldOut, UnknownMATValue
from cgeval.data.loader import load_medmat
from cgeval.data.sample import SAMPLE_ROOT


@pytest.fixture(scope="module")
def items():
    return load_medmat(SAMPLE_ROOT)[0]


def test_holdout_ct_lung_labels(items):
    held = HeldOut.from_config([{"modality": "CT", "area": "Lung"}])
    assert held.subsets == (3, 4)
    by_subset = {}
    for it in items:
        by_subset.setdefault(it.subset, set()).add(held.label(it))
    assert by_subset[3] == {("unseen", 3)} and by_subset[4] == {("unseen", 3)}
    assert by_subset[28] == {("seen", 2)}  # X-ray-Lung-COVID shares area and task with CT-Lung-COVID
    assert by_subset[6] == {("seen", 2)}  # CT-Brain-Cancer shares modality and task with CT-Lung-Cancer
    assert by_subset[2] == {("seen", 1)}  # CT-Kidney: modality only
    assert by_subset[30] == {("seen", 1)}  # X-ray-Lung-TB: area only
    assert by_subset[26] == {("seen", 0)}  # X-ray-Bones-Fracture: nothing


def test_patterns_by_subset_task_and_aliases():
    assert HeldOut.from_config([{"subsets": [3]}]).subsets == (3,)
    assert HeldOut.from_config([{"subset": 28}]).subsets == (28,)
    assert HeldOut.from_config([{"modality": "x-ray", "area": "lung", "task": "covid"}]).subsets == (28,)
    assert HeldOut.from_config([{"task": "COVID"}]).subsets == (3, 28)
    two = HeldOut.from_config([{"subsets": [3]}, {"modality": "MRI"}])
    assert two.subsets == (3, 22, 45, 46)


@pytest.mark.parametrize(
    "pattern,message",
    [
        ({"modality": "PET"}, "valid modalities: CT"),
        ({"area": "Lungs"}, "valid areas: "),
        ({"task": "Segmentation"}, "valid tasks: "),
        ({"subsets": [99]}, "do not exist"),
        ({"organ": "Lung"}, "unknown keys"),
        ({}, "at least one"),
        ({"modality": "OCT", "area": "Lung"}, "match no Med-MAT subset"),
    ],
)
def test_bad_patterns_are_clear_errors(pattern, message):
    with pytest.raises(UnknownMATValue, match=message):
        HeldOut.from_config([pattern])


def test_empty_heldout_is_an_error():
    with pytest.raises(UnknownMATValue):
        HeldOut.from_config([])
