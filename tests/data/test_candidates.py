"""Table 3 candidate rows: every Related pair the registry supports, blocks, Baseline+ pools, the paper's rows."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cgeval.data.candidates import (
    BLOCKS,
    MA_BLOCK,
    CandidatesError,
    block_counts,
    candidate_rows,
    candidates_frame,
    universe,
)
from cgeval.data.registry import SUBSETS
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.split_candidates import enumerate_candidates, write_candidates


@pytest.fixture(scope="module")
def released():
    return candidate_rows(universe("released"))


def test_ct_lung_covid_from_cancer_and_xray_covid_is_a_fixed_area_row(released):
    rows, report = released
    hits = [r for r in rows if r.target == (3,) and r.related == (4, 28)]
    assert len(hits) == 1
    row = hits[0]
    assert row.block == "fixed area" and row.shared == "Lung"
    assert row.paper_row == "CT-Cancer + X-ray-COVID -> CT-COVID" and row.paper_match == "exact"
    assert report["CT-Cancer + X-ray-COVID -> CT-COVID"].startswith("exact -> target 03, related 04 + 28")


def test_related_never_has_the_target_composition_and_covers_it(released):
    rows, _ = released
    assert rows
    for r in rows:
        target_comps = {SUBSETS[t].composition for t in r.target}
        assert not target_comps & {SUBSETS[n].composition for n in r.related}
        assert not set(r.target) & set(r.related)
        if r.block == MA_BLOCK:
            ((m, a),) = {(SUBSETS[t].modality, SUBSETS[t].area) for t in r.target}
            assert {SUBSETS[n].modality for n in r.related_a} == {m} and a not in {SUBSETS[n].area for n in r.related_a}
            assert {SUBSETS[n].area for n in r.related_b} == {a} and m not in {SUBSETS[n].modality for n in r.related_b}
            continue
        (tc,) = target_comps
        a, b = SUBSETS[r.related_a[0]].composition, SUBSETS[r.related_b[0]].composition
        assert a.shared_elements(tc) == b.shared_elements(tc) == 2
        axis = r.block.removeprefix("fixed ")
        assert getattr(a, axis) == getattr(b, axis) == getattr(tc, axis) == r.shared
        for ax in ("modality", "area", "task"):  # together they cover all three elements
            assert getattr(tc, ax) in (getattr(a, ax), getattr(b, ax))


def test_baseline_plus_shares_no_element_and_is_complete(released):
    rows, _ = released
    numbers = universe("released")
    for r in rows:
        comps = [SUBSETS[t].composition for t in r.target]
        expected = [n for n in numbers if all(SUBSETS[n].composition.shared_elements(c) == 0 for c in comps)]
        assert list(r.baseline_plus) == expected


def test_counts_per_block_over_released_subsets(released):
    rows, report = released
    assert block_counts(rows) == {"fixed modality": 20, "fixed area": 3, "fixed task": 1, "modality-area pairs": 22}
    assert all(r.target[0] <= 37 and max(r.related) <= 37 for r in rows)
    # Targets 27 and 36 share a composition: each is listed with the same nine pairs, never with the other.
    assert sum(r.target == (27,) for r in rows) == sum(r.target == (36,) for r in rows) == 9


def test_paper_rows_are_marked_once_each(released):
    rows, report = released
    marked = {r.paper_row: r for r in rows if r.paper_row}
    assert set(marked) == set(report) and len(marked) == 3
    ma = marked["X-ray-Bones + CT-Brain -> X-ray-Brain"]
    assert ma.block == MA_BLOCK and ma.target == (32,) and ma.paper_match == "exact"
    assert ma.related_a == (25, 26, 27, 35, 36) and ma.related_b == (5, 6)
    state = marked["CT-State + X-ray-Cancer -> CT-Cancer"]
    assert state.target == (6,) and state.related == (5, 32) and state.paper_match == "inferred: State=Hemorrhage"


def test_restricted_universe_drops_rows_and_unmarks_unmappable_paper_rows():
    numbers, rows, report = enumerate_candidates("released", SAMPLE_ROOT)
    assert numbers == [2, 3, 4, 5, 6, 8, 13, 14, 22, 26, 28, 30]
    assert all(set(r.target) | set(r.related) | set(r.baseline_plus) <= set(numbers) for r in rows)
    assert report["X-ray-Bones + CT-Brain -> X-ray-Brain"] == "not marked: 0 candidate rows match"
    assert any(r.target == (3,) and r.related == (4, 28) and r.paper_match == "exact" for r in rows)
    assert [r for r in rows if r.paper_row and r.paper_row.startswith("CT-State")] == []


def test_all_scope_adds_unreleased_and_bad_inputs_are_named():
    rows, _ = candidate_rows(universe("all"))
    assert any(max(r.related + r.target) > 37 for r in rows)
    with pytest.raises(CandidatesError, match="scope"):
        universe("some")
    with pytest.raises(CandidatesError, match="not Med-MAT subsets"):
        universe("released", [3, 99])
    with pytest.raises(CandidatesError, match="does not exist"):
        enumerate_candidates("released", "/nonexistent/medmat")


def test_output_is_deterministic_and_ordered(tmp_path: Path):
    a = write_candidates(tmp_path / "a")
    b = write_candidates(tmp_path / "b")
    for pa, pb in zip(a["paths"], b["paths"]):
        assert pa.read_bytes() == pb.read_bytes()
    frame = pd.read_csv(a["paths"][0], dtype=str, keep_default_na=False)
    rows, _ = candidate_rows(universe("released"))
    assert frame.equals(candidates_frame(rows).astype(str))
    order = [BLOCKS.index(b) for b in frame["block"]]
    assert order == sorted(order)
    assert len(frame) == 46 and list(frame.columns)[:3] == ["block", "shared", "target"]
    # Subset order in the input does not matter.
    shuffled, _ = candidate_rows(list(reversed(universe("released"))))
    assert candidates_frame(shuffled).equals(candidates_frame(rows))


def test_cli_writes_csv_and_markdown(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, "-m", "cgeval.split_candidates", "--out", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "46 rows (fixed modality 20, fixed area 3, fixed task 1, modality-area pairs 22)" in run.stdout
    md = (tmp_path / "table3_candidates.md").read_text()
    assert "| fixed area" in md and "CT-Lung-Cancer + X-ray-Lung-COVID" in md
    bad = subprocess.run(
        [sys.executable, "-m", "cgeval.split_candidates", "--data-root", str(tmp_path / "none")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and "CandidatesError" in bad.stderr
