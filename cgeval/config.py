"""Typed configuration: Hydra's DictConfig becomes these objects at the entry, so the core never sees Hydra."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .data.images import DEFAULT_MAX_IMAGE_PIXELS
from .data.sample import SAMPLE_ROOT

# The Hydra configs (config.yaml, split.yaml and their groups) ship inside the package, so an installed cgeval
# runs from any folder. Entry points name this folder by its absolute path: Hydra then reads the same files
# whether it is started as `cgeval`, `python -m cgeval` or from a test.
CONF_DIR = Path(__file__).resolve().parent / "conf"

# `data.root: ${cgeval.sample_root:}` points at the embedded sample shipped with the package.
OmegaConf.register_new_resolver("cgeval.sample_root", lambda: str(SAMPLE_ROOT), replace=True)

SCORING_MODES = ("generate", "likelihood")
JUDGE_ON = ("unanswered", "all")


class ConfigError(ValueError):
    """A configuration value the run cannot use."""


@dataclass(frozen=True)
class DataConfig:
    root: str
    source: str = "auto"  # auto | subsets | datasets (cgeval.data.loader.resolve_source)
    subsets: list[int] | None = None
    datasets: list[int] | None = None
    max_items_per_file: int | None = None
    items_file: str | None = None  # JSONL with item_id per line: evaluate only those (e.g. a split's test list)
    verify_images: bool = True
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS  # width x height from the header; None: Pillow's limit
    image_roots: list[str] | None = None  # folders outside root that symlinked image folders may lead into
    io_workers: int = 8


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    heldout: list[dict]
    description: str = ""
    # Training-set construction (cgeval.data.splits); all optional, ignored by evaluation.
    related_subsets: list[int] | None = None  # the Related combination; None = derived from the registry
    related_axes: list[str] | None = None  # MAT axes the Related set must cover; None = all three
    baseline_plus_subsets: list[int] | None = None  # Baseline+ pool; None = every subset sharing no element
    arms: list[str] | None = None  # training sets to build (cgeval.data.splits.ARMS); None = by target
    total_cap: int | None = None  # items per capped arm (Fig. 4: 15,000); None = split.total_cap
    reference: dict = field(default_factory=dict)  # the paper's numbers for this row, for comparison


@dataclass(frozen=True)
class ScoringConfig:
    mode: str = "generate"
    extract: str = "strict"  # strict | lenient (adds fuzzy option-text matching); generate mode only
    circular: bool = False  # ask every rotation of the options; correct only if every rotation is
    # The judge's model config (what `model@scoring.judge=NAME` composes), recorded; the adapter built from it is
    # passed to `cgeval.run.run`. None: no judge. Unused in likelihood mode (no replies).
    judge: dict | None = None
    judge_on: str = "unanswered"  # unanswered: only replies the rules abstain on | all: every reply (an audit)

    def __post_init__(self) -> None:
        if self.mode not in SCORING_MODES:
            raise ConfigError(f"scoring.mode must be one of {SCORING_MODES}, got {self.mode!r}")
        if self.extract not in ("strict", "lenient"):
            raise ConfigError(f"scoring.extract must be 'strict' or 'lenient', got {self.extract!r}")
        if self.judge_on not in JUDGE_ON:
            raise ConfigError(f"scoring.judge_on must be one of {JUDGE_ON}, got {self.judge_on!r}")
        if self.judge is not None and not isinstance(self.judge, dict):
            raise ConfigError(f"scoring.judge must be a model config (model@scoring.judge=NAME or "
                              f"scoring.judge=NAME), got {self.judge!r}")

    @property
    def judged(self) -> bool:
        """Whether a judge reads replies in this run (a judge is set and there are replies to read)."""
        return self.judge is not None and self.mode == "generate"


@dataclass(frozen=True)
class ShardConfig:
    """Shard ``index`` of ``count``: a deterministic share of the items (by a hash of the item id)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard.index must be in [0, shard.count), got {self.index} of {self.count}")

    @property
    def enabled(self) -> bool:
        return self.count > 1


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    experiment: ExperimentConfig
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    seed: int = 0
    batch_size: int | None = None  # None: the adapter's preferred_batch_size (8 if it states none)
    output_dir: str = "results/run"
    progress: bool = True
    resume: bool = True  # reuse finished predictions found in output_dir (same cache key only)
    shard: ShardConfig = field(default_factory=ShardConfig)


def _build(cls: type, d: dict[str, Any], where: str):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown keys in {where}: {sorted(unknown)}; expected some of {sorted(names)}")
    return cls(**d)


def resolve_judge(cfg: DictConfig) -> DictConfig:
    """The short form ``scoring.judge=NAME`` (a model config's name, a string): put that model config, as
    ``model=NAME`` would compose it, at ``scoring.judge`` (``model@scoring.judge=NAME`` does the same in Hydra
    itself, and lets its keys be overridden). Interpolations in it (``${seed}``) resolve against this config.
    An unknown name is a `ConfigError` listing the model configs."""
    judge = OmegaConf.select(cfg, "scoring.judge")
    if not isinstance(judge, str):
        return cfg
    path = CONF_DIR / "model" / f"{judge}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
        raise ConfigError(f"scoring.judge={judge!r}: no model config of that name; choose one of {names}")
    with open_dict(cfg):
        cfg.scoring.judge = OmegaConf.load(path)
    return cfg


def run_config_from_hydra(cfg: DictConfig, output_dir: str) -> RunConfig:
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    if c.get("batch_size") is not None and int(c["batch_size"]) < 1:
        raise ConfigError(f"batch_size must be >= 1 or null, got {c['batch_size']}")
    return RunConfig(
        data=_build(DataConfig, c["data"], "data"),
        experiment=_build(ExperimentConfig, c["experiment"], "experiment"),
        scoring=_build(ScoringConfig, c.get("scoring", {}), "scoring"),
        seed=int(c.get("seed", 0)),
        batch_size=None if c.get("batch_size") is None else int(c["batch_size"]),
        output_dir=output_dir,
        progress=bool(c.get("progress", True)),
        resume=bool(c.get("resume", True)),
        shard=_build(ShardConfig, c.get("shard") or {}, "shard"),
    )
