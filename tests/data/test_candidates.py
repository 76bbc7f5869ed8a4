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
    assert block_counts(rows) == {"fixed modality": 11, "fixed area": 3, "fixed task": 1, "modality-area pairs": 22}
    assert all(r.target[0] <= 37 and max(r.related) <= 37 for r in rows)
    # 27 and 36 share a composition (X-ray-Bones-Diseases): one target of both, with nine pairs, neither of them.
    assert sum(r.target == (27, 36) for r in rows) == 9
    assert not any(set(r.target) & {27, 36} and set(r.target) != {27, 36} for r in rows)
    assert not any({27, 36} & set(r.related) for r in rows if r.target == (27, 36))


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
    assert len(frame) == 37 and list(frame.columns)[:3] == ["block", "shared", "target"]
    # Subset order in the input does not matter.
    shuffled, _ = candidate_rows(list(reversed(universe("released"))))
    assert candidates_frame(shuffled).equals(candidates_frame(rows))


def test_cli_writes_csv_and_markdown(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, "-m", "cgeval.split_candidates", "--out", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "37 rows (fixed modality 11, fixed area 3, fixed task 1, modality-area pairs 22)" in run.stdout
    md = (tmp_path / "table3_candidates.md").read_text()
    assert "| fixed area" in md and "CT-Lung-Cancer + X-ray-Lung-COVID" in md
    bad = subprocess.run(
        [sys.executable, "-m", "cgeval.split_candidates", "--data-root", str(tmp_path / "none")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and "CandidatesError" in bad.stderr


# --- one experiment config per row, shipped under conf/experiment/table3_candidates ----------------------------

from cgeval.config import CONF_DIR as CONF  # noqa: E402

SHIPPED = CONF / "experiment" / "table3_candidates"


def test_shipped_candidate_configs_are_exactly_what_the_registry_gives(tmp_path: Path):
    from cgeval.split_candidates import write_configs

    fresh = write_configs(tmp_path / "configs")
    assert sorted(p.name for p in fresh) == sorted(p.name for p in SHIPPED.glob("*.yaml"))
    for p in fresh:
        assert (SHIPPED / p.name).read_text(encoding="utf-8") == p.read_text(encoding="utf-8"), (
            f"{p.name} differs: rerun python -m cgeval.split_candidates --write-configs {SHIPPED}")
    (tmp_path / "configs" / "stale_row.yaml").write_text("experiment: {}\n")
    write_configs(tmp_path / "configs")
    assert not (tmp_path / "configs" / "stale_row.yaml").exists()


@pytest.mark.parametrize("row", candidate_rows(universe("released"))[0], ids=lambda r: r.name)
def test_each_candidate_config_composes_and_holds_out_its_target(row, sample_items):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from cgeval.config import ExperimentConfig, _build
    from cgeval.data.compositions import HeldOut
    from cgeval.data.sample import SAMPLE_SUBSETS
    from cgeval.data.splits import SplitSettings, TargetSpec, build_split

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="split", overrides=[f"experiment=table3_candidates/{row.name}"])
    exp = _build(ExperimentConfig, OmegaConf.to_container(cfg, resolve=True)["experiment"], "experiment")
    assert exp.name == row.name and exp.related_subsets == list(row.related)
    held = HeldOut.from_config(exp.heldout)
    assert [n for n in held.subsets if SUBSETS[n].released] == list(row.target)
    assert not any(SUBSETS[n].composition in held.compositions for n in exp.related_subsets)
    target = TargetSpec.from_experiment(exp)  # validates that the Related subsets cover the target
    if set(row.target) | set(row.related) <= set(SAMPLE_SUBSETS):
        split = build_split(sample_items, target, SplitSettings(train_cap_per_subset=5, total_cap=30,
                                                                allow_short=True))
        assert split.arms["related"] and len(split.arms["related"]) == len(split.arms["baseline_plus"])


@pytest.fixture(scope="module")
def sample_items():
    from cgeval.data.loader import load_medmat

    return load_medmat(SAMPLE_ROOT, verify_images=False)[0]
