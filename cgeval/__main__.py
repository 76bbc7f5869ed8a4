"""`cgeval experiment=... model=...` (or `python -m cgeval ...`): compose the config, build typed objects, run.

Exit code: 0 when every run is complete, 3 when one finished with items that failed at inference (status
``incomplete``: run the same command again to retry them), 1 when a run stopped on an error, 2 for a command
line that cannot be parsed (`cgeval.run.exit_code`). A named error (cgeval.errors: a data root that does not
exist, a model that cannot be loaded, ...) prints one line, the traceback only with ``HYDRA_FULL_ERROR=1``. A run
that stops before it wrote anything removes the folder Hydra made for it, so no folder that looks like a result is
left behind.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .config import CONF_DIR, resolve_judge, run_config_from_hydra
from .errors import hydra_task_errors
from .run import exit_code, run
from .store import manifest_status

# The status of every run this process finished (several in a sweep run by Hydra's basic launcher).
_statuses: list[str | None] = []


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    with hydra_task_errors("cgeval"):
        cfg = resolve_judge(cfg)
        run_cfg = run_config_from_hydra(cfg, HydraConfig.get().runtime.output_dir)
        model = instantiate(cfg.model)
        # The judge is built like the model, from its model config; only where it has replies to read.
        judge = instantiate(cfg.scoring.judge) if run_cfg.scoring.judged else None
        run(run_cfg, model, OmegaConf.to_container(cfg, resolve=True), judge=judge)
    _statuses.append(manifest_status(run_cfg.output_dir, run_cfg.shard))


def cli() -> int:
    """Run `main` (Hydra exits 1 itself on an error); the exit code for the runs that finished."""
    main()
    return exit_code(_statuses)


if __name__ == "__main__":
    sys.exit(cli())
