"""`python -m cgeval experiment=... model=...`: compose the config, build typed objects, run."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .config import run_config_from_hydra
from .run import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    output_dir = HydraConfig.get().runtime.output_dir
    run_cfg = run_config_from_hydra(cfg, output_dir)
    model = instantiate(cfg.model)
    run(run_cfg, model, OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    main()
