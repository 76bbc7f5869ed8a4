"""`python -m cgeval.split experiment=... data.root=... split.out=DIR`: one experiment's training sets and test list.

Loads Med-MAT, builds the split (cgeval.data.splits), writes every arm for LLaMA-Factory and ms-swift and a
manifest (cgeval.data.export). On the embedded sample use `split=sample` (small caps). `split.mix_in.file=F`
(with `split.mix_in.root` and `split.mix_in.n`) adds a general-domain multiple-choice set to every training arm
(cgeval.data.mixin).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONF_DIR, DataConfig, ExperimentConfig, _build
from .data.export import export_split
from .data.loader import load_medmat
from .data.mixin import MixInSpec, load_mix_in, split_test_image_keys
from .data.splits import SplitSettings, TargetSpec, build_split
from .errors import hydra_task_errors

_EXPORT_KEYS = ("formats", "image_paths", "image_separator", "out", "mix_in")


def split_experiment(data: DataConfig, experiment: ExperimentConfig, split_cfg: dict) -> dict:
    """Load, split and export; returns the manifest written to ``split_cfg['out']``."""
    settings = _build(SplitSettings, {k: v for k, v in split_cfg.items() if k not in _EXPORT_KEYS}, "split")
    target = TargetSpec.from_experiment(experiment)
    items, report = load_medmat(
        data.root,
        source=data.source,
        subsets=data.subsets,
        datasets=data.datasets,
        max_items_per_file=data.max_items_per_file,
        verify_images=data.verify_images,
        max_image_pixels=data.max_image_pixels,
        image_roots=data.image_roots,
        io_workers=data.io_workers,
        seed=settings.seed,
    )
    split = build_split(items, target, settings)
    mix_spec = _build(MixInSpec, split_cfg.get("mix_in") or {}, "split.mix_in")
    mix_in = None
    if mix_spec.enabled:
        mix_in = load_mix_in(
            mix_spec,
            seed=settings.seed,
            allow_short=settings.allow_short,
            test_images=split_test_image_keys(split.tested_images, items, settings.image_identity),
            image_identity=settings.image_identity,
            max_image_pixels=data.max_image_pixels,
        )
    return export_split(
        split,
        split_cfg["out"],
        formats=split_cfg.get("formats", ("llamafactory", "swift")),
        image_paths=split_cfg.get("image_paths", "absolute"),
        image_separator=split_cfg.get("image_separator", "newline"),
        extra_manifest={"load_report": report.to_dict(), "experiment_config": experiment.__dict__},
        mix_in=mix_in,
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="split")
def main(cfg: DictConfig) -> None:
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    c.pop("hydra", None)
    # Named errors and config values out of range: one line, exit status 1 (cgeval.errors).
    with hydra_task_errors("cgeval.split", also=(ValueError,)):
        manifest = split_experiment(
            _build(DataConfig, c["data"], "data"), _build(ExperimentConfig, c["experiment"], "experiment"), c["split"]
        )
    arms = ", ".join(f"{a}={v['n']}" for a, v in manifest["arms"].items())
    print(
        f"cgeval.split: {manifest['experiment']} | target {manifest['target']['compositions']} "
        f"test={manifest['target']['test']['n']} | {arms} | adjustments {len(manifest['adjustments'])} "
        f"| test-only {manifest['test_only_subsets']}"
        + (f" | mix-in {manifest['mix_in']['n']} per arm" if manifest["mix_in"] else "")
        + f" -> {c['split']['out']}"
    )
    if manifest["image_root"] is not None:  # relative image paths: both tools must be told the folder
        print(f"cgeval.split: image paths are relative to {manifest['image_root']}: set LLaMA-Factory's "
              f"media_dir to it, and ROOT_IMAGE_DIR={manifest['image_root']} for ms-swift (without it ms-swift "
              "drops every row)")


if __name__ == "__main__":
    main()
