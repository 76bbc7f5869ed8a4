"""Every conf/experiment/*.yaml composes (in the eval and split configs), its fields parse, and its subsets are
reported as present in / missing from the embedded sample; those fully present build their split there."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import cgeval.config  # noqa: F401  registers the cgeval.sample_root resolver
from cgeval.config import CONF_DIR, ExperimentConfig, _build
from cgeval.data.compositions import HeldOut
from cgeval.data.loader import load_medmat
from cgeval.data.registry import SUBSETS
from cgeval.data.sample import SAMPLE_ROOT, SAMPLE_SUBSETS
from cgeval.data.splits import RelatedSubsetsMissing, SplitSettings, TargetMissing, TargetSpec, build_split

CONF = CONF_DIR
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SAMPLE = SplitSettings(train_cap_per_subset=5, total_cap=30, allow_short=True)


def compose_experiment(config_name: str, name: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=[f"experiment={name}"])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="module")
def sample_items():
    return load_medmat(SAMPLE_ROOT, verify_images=False)[0]


def test_experiments_exist():
    assert {"holdout_ct_lung", "fig4_target03", "fig4_target28", "table3_area_lung_ct_covid"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_parses(name, sample_items):
    for config_name in ("config", "split"):
        c = compose_experiment(config_name, name)
        exp = _build(ExperimentConfig, c["experiment"], "experiment")
        assert exp.name == name and exp.description
    held = HeldOut.from_config(exp.heldout)
    target = TargetSpec.from_experiment(exp)
    assert target.target_subsets == held.subsets
    if exp.reference.get("source", "").endswith("Table 3"):
        assert exp.arms == ["related", "baseline_plus"] and exp.related_subsets
        for n in exp.related_subsets:
            assert SUBSETS[n].composition not in held.compositions
    needed = sorted(set(held.subsets) | set(exp.related_subsets or []) | set(exp.baseline_plus_subsets or []))
    missing = [n for n in needed if n not in SAMPLE_SUBSETS]
    # The file's own header names the subsets the sample lacks.
    header = (CONF / "experiment" / f"{name}.yaml").read_text()
    if missing and name.startswith(("table3", "fig4")):
        assert "missing from the embedded sample: " + ", ".join(f"{n:02d}" for n in missing) in header
    present_targets = [n for n in held.subsets if n in SAMPLE_SUBSETS]
    if not present_targets:
        with pytest.raises(TargetMissing):
            build_split(sample_items, target, SAMPLE)
    elif [n for n in exp.related_subsets or [] if n not in SAMPLE_SUBSETS]:
        with pytest.raises(RelatedSubsetsMissing):
            build_split(sample_items, target, SAMPLE)
    else:
        split = build_split(sample_items, target, SAMPLE)
        assert set(split.arms) == set(target.arms) and all(split.arms.values()) and split.test
