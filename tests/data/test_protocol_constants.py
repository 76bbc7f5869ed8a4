"""The paper's protocol numbers, through what the default settings build: at most 3,000 training items a
subset, and Fig. 4 arms of 15,000 items when the experiment names no size."""

from collections import Counter
from dataclasses import replace
import yaml

from cgeval.config import CONF_DIR as CONF
from cgeval.data.records import Item
from cgeval.data.registry import SUBSETS
from cgeval.data.splits import SplitSettings, TargetSpec, build_split

TRAIN_CAP_PER_SUBSET = 3_000
FIG4_ARM_SIZE = 15_000


def synth(subset: int, n: int, labels=("a", "b")) -> list[Item]:
    s = SUBSETS[subset]
    return [
        Item(item_id=f"S{subset:02d}-{i}", subset=subset, dataset=s.datasets[0], modality=s.modality, area=s.area,
             task=s.task, image=f"med-mat/S{subset}/img{i}.png", image_path=f"/root/med-mat/S{subset}/img{i}.png",
             prompt="Q\nA: a\nB: b", question="Q", options=(("A", labels[0]), ("B", labels[1])),
             gold="AB"[i % 2], answer_text=labels[i % 2])
        for i in range(n)
    ]


def test_default_settings_cap_each_subset_at_3000_and_build_15000_item_fig4_arms():
    # Target 03 (CT-Lung-COVID); w/o Modality draws from X-ray-Lung subsets 28 and 30 (8,400 items each).
    items = synth(3, 200) + synth(28, 8_400) + synth(30, 8_400)
    settings = replace(SplitSettings(), image_identity="path")  # synthetic items: no image files to hash
    split = build_split(items, TargetSpec("fig4_target03", (3,), ("wo_modality",)), settings)  # no total_cap
    for n in (28, 30):
        assert len(split.subsets[n].train) == TRAIN_CAP_PER_SUBSET
        assert split.subsets[n].train_pool > TRAIN_CAP_PER_SUBSET  # the cap, not the data, decided
    arm = split.arms["wo_modality"]
    assert len(arm) == FIG4_ARM_SIZE == len({it.item_id for it in arm})
    assert Counter(it.subset for it in arm) == {28: FIG4_ARM_SIZE // 2, 30: FIG4_ARM_SIZE // 2}


def test_the_named_defaults_and_the_default_config_agree_with_the_protocol():
    assert SplitSettings().train_cap_per_subset == TRAIN_CAP_PER_SUBSET
    assert SplitSettings().total_cap == FIG4_ARM_SIZE
    default = yaml.safe_load((CONF / "split" / "default.yaml").read_text())
    assert default["train_cap_per_subset"] == TRAIN_CAP_PER_SUBSET
    assert default["total_cap"] == FIG4_ARM_SIZE
    for name in ("fig4_target03", "fig4_target28"):
        exp = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())
        caps = [v for k, v in _walk(exp) if k == "total_cap"]
        assert caps and set(caps) == {FIG4_ARM_SIZE}, (name, caps)


def _walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
