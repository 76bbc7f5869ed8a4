from cgeval.data.registry import DATASETS, SUBSETS, axis_values, canonical_modality, subset_of_dataset


def test_every_subset_and_dataset_is_registered():
    assert sorted(SUBSETS) == list(range(1, 54))
    assert sorted(DATASETS) == list(range(1, 110))
    assert [n for n, s in SUBSETS.items() if s.released] == list(range(1, 38))


def test_subset_to_dataset_mapping_matches_table_17():
    assert SUBSETS[3].datasets == (3, 4, 6)
    assert SUBSETS[28].datasets == (54, 55, 56, 57, 60, 62, 81)
    assert SUBSETS[31].datasets == (61, 73, 76, 77, 80, 85, 87)
    # Dataset 44 (brain MRI) belongs to subset 22 only; subset 18 takes 43 (LC25000) instead.
    assert subset_of_dataset(44).number == 22
    assert subset_of_dataset(43).number == 18


def test_datasets_in_no_subset():
    assert {n for n, d in DATASETS.items() if d.subset is None} == {64, 83}
    assert subset_of_dataset(64) is None
    assert subset_of_dataset(999) is None


def test_each_dataset_is_in_at_most_one_subset_and_agrees_on_modality_and_area():
    seen = {}
    for s in SUBSETS.values():
        for d in s.datasets:
            assert d not in seen, f"dataset {d} in subsets {seen[d]} and {s.number}"
            seen[d] = s.number
            assert DATASETS[d].modality == s.modality, (d, s.number)
            # Known disagreements between the README's two tables: DP datasets say "Teeth" where the
            # subsets say "Mouth"; dataset 97 (BUSI, breast) sits in subset 43 "US/Chest".
            if s.modality != "DP" and (d, s.number) != (97, 43):
                assert DATASETS[d].area == s.area, (d, s.number)


def test_axis_values_and_aliases():
    assert "CT" in axis_values("modality") and "Lung" in axis_values("area") and "COVID" in axis_values("task")
    assert canonical_modality("X-Ray") == "X-ray"
    assert canonical_modality("ultrasound") == "US"
    assert canonical_modality("PET") is None
