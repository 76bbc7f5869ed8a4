"""Compose every config file in every group, not only the root config."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import cgeval.config  # noqa: F401  (registers the cgeval.sample_root resolver)
from cgeval.config import CONF_DIR, run_config_from_hydra
from cgeval.data.compositions import HeldOut

CONF = CONF_DIR
GROUP_FILES = sorted(
    (p.parent.relative_to(CONF).as_posix(), p.stem) for p in CONF.glob("*/**/*.yaml") if p.parent != CONF
)
PRIMARY_GROUPS = ("data", "model", "experiment", "scoring")


def _compose(overrides, config_name="config", hydra_config=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra_config)


def test_root_config_defaults():
    cfg = _compose([])
    assert cfg.experiment.name == "holdout_ct_lung" and cfg.model.name == "random"
    run_cfg = run_config_from_hydra(cfg, "/tmp/x")
    assert Path(run_cfg.data.root).is_dir() and run_cfg.scoring.mode == "generate"


def test_there_are_configs_in_each_required_group():
    groups = {g for g, _ in GROUP_FILES}
    assert {"data", "model", "experiment", "scoring"} <= groups


@pytest.mark.parametrize("group,name", GROUP_FILES, ids=[f"{g}/{n}" for g, n in GROUP_FILES])
def test_every_config_composes(group, name):
    top, _, sub = group.partition("/")
    if top in PRIMARY_GROUPS:  # conf/experiment/table3_candidates/x.yaml is experiment=table3_candidates/x
        cfg = _compose([f"{top}={sub + '/' if sub else ''}{name}"])
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        run_cfg = run_config_from_hydra(cfg, "/tmp/x")
        HeldOut.from_config(run_cfg.experiment.heldout)  # every experiment's patterns are valid
        if top == "model":
            assert cfg.model.name and "_target_" in cfg.model
    elif group.startswith("hydra/"):
        cfg = _compose([f"{group}={name}"], hydra_config=True)
        node = OmegaConf.select(cfg, group.replace("/", "."))
        assert node is not None and "_target_" in node
    else:
        # A group that belongs to another primary config (conf/<group>.yaml selects it).
        primary = group.split("/")[0]
        assert (CONF / f"{primary}.yaml").is_file(), f"conf/{group}/ is used by no primary config"
        cfg = _compose([f"{group}={name}"], config_name=primary)
        OmegaConf.to_container(cfg, resolve=True)


def test_experiment_overrides_win_over_primary_config():
    cfg = _compose(["experiment=holdout_ct_lung_covid"])
    assert cfg.experiment.name == "holdout_ct_lung_covid"
    assert list(cfg.experiment.heldout) == [{"subsets": [3]}]


def test_vllm_tensor_parallelism_is_selected_in_config(monkeypatch):
    """`model.backend=vllm model.vllm.tensor_parallel_size=2` reaches the vLLM adapter's constructor."""
    from hydra.utils import instantiate

    from cgeval.models import factory

    received = {}

    class Recorder:
        def __init__(self, **kwargs):
            received.update(kwargs)

    monkeypatch.setattr(factory, "_adapter_class", lambda backend: Recorder)
    cfg = _compose(["model=qwen2_vl_7b", "model.backend=vllm", "model.vllm.tensor_parallel_size=2"])
    instantiate(cfg.model)
    assert received["tensor_parallel_size"] == 2 and received["model_id"] == "Qwen/Qwen2-VL-7B-Instruct"
    assert "hf" not in received and "device_map" not in received  # the hf section is dropped


@pytest.mark.parametrize("scoring", ["generate", "likelihood"])
def test_scoring_switches_are_plain_overrides(scoring):
    cfg = _compose([f"scoring={scoring}", "scoring.circular=true", "scoring.extract=lenient"])
    run_cfg = run_config_from_hydra(cfg, "/tmp/x")
    assert run_cfg.scoring.circular is True and run_cfg.scoring.extract == "lenient"
