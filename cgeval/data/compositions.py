"""Held-out compositions: which MAT combinations a model did not see, and how each item relates to them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .records import Item
from .registry import SUBSETS, Composition, axis_values, canonical_modality


class UnknownMATValue(ValueError):
    """A held-out pattern names a modality, area, task or subset that does not exist."""


@dataclass(frozen=True)
class HeldOutPattern:
    """Matches every composition whose given fields equal the pattern's (None matches anything).

    ``subsets`` matches by subset number instead of (or in addition to) the MAT fields.
    """

    modality: str | None = None
    area: str | None = None
    task: str | None = None
    subsets: tuple[int, ...] | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "HeldOutPattern":
        allowed = {"modality", "area", "task", "subset", "subsets"}
        extra = set(d) - allowed
        if extra:
            raise UnknownMATValue(f"held-out pattern has unknown keys {sorted(extra)}; allowed: {sorted(allowed)}")
        subsets = d.get("subsets", d.get("subset"))
        if subsets is not None:
            subsets = tuple(int(s) for s in (subsets if isinstance(subsets, (list, tuple)) else [subsets]))
            bad = [s for s in subsets if s not in SUBSETS]
            if bad:
                raise UnknownMATValue(f"held-out subsets {bad} do not exist; valid subsets are 1-{max(SUBSETS)}")
        modality = d.get("modality")
        if modality is not None:
            canon = canonical_modality(str(modality))
            if canon is None:
                raise UnknownMATValue(
                    f"unknown modality {modality!r}; valid modalities: {', '.join(axis_values('modality'))}"
                )
            modality = canon
        area = _canonical(d.get("area"), "area")
        task = _canonical(d.get("task"), "task")
        pattern = cls(modality, area, task, subsets)
        if not any([modality, area, task, subsets]):
            raise UnknownMATValue("a held-out pattern must name at least one of modality, area, task, subsets")
        return pattern

    def matches_subset(self, number: int) -> bool:
        s = SUBSETS[number]
        return (
            (self.modality is None or s.modality == self.modality)
            and (self.area is None or s.area == self.area)
            and (self.task is None or s.task == self.task)
            and (self.subsets is None or number in self.subsets)
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in (("modality", self.modality), ("area", self.area), ("task", self.task)) if v]
        if self.subsets:
            parts.append("subsets=" + ",".join(f"{s:02d}" for s in self.subsets))
        return " ".join(parts)


def _canonical(value: object, axis: str) -> str | None:
    if value is None:
        return None
    valid = axis_values(axis)
    by_lower = {v.lower(): v for v in valid}
    canon = by_lower.get(str(value).strip().lower())
    if canon is None:
        raise UnknownMATValue(f"unknown {axis} {value!r}; valid {axis}s: {', '.join(valid)}")
    return canon


@dataclass(frozen=True)
class HeldOut:
    """The held-out side of an experiment: patterns, and the registry compositions they select."""

    patterns: tuple[HeldOutPattern, ...]

    @classmethod
    def from_config(cls, patterns: list[dict]) -> "HeldOut":
        if not patterns:
            raise UnknownMATValue("experiment.heldout is empty: name at least one held-out composition")
        held = cls(tuple(HeldOutPattern.from_dict(dict(p)) for p in patterns))
        if not held.subsets:
            raise UnknownMATValue(
                f"held-out patterns {[str(p) for p in held.patterns]} match no Med-MAT subset"
            )
        return held

    # Computed once per experiment (cached_property writes to __dict__, which a frozen dataclass allows).
    @cached_property
    def subsets(self) -> tuple[int, ...]:
        return tuple(n for n in sorted(SUBSETS) if any(p.matches_subset(n) for p in self.patterns))

    @cached_property
    def compositions(self) -> tuple[Composition, ...]:
        return tuple(dict.fromkeys(SUBSETS[n].composition for n in self.subsets))

    @cached_property
    def _subset_set(self) -> frozenset[int]:
        return frozenset(self.subsets)

    def is_unseen(self, item: Item) -> bool:
        return item.subset in self._subset_set

    def shared_elements(self, item: Item) -> int:
        """How many MAT elements the item shares with the closest held-out composition (0-3)."""
        return self._shared(item.modality, item.area, item.task)

    def _shared(self, modality: str, area: str, task: str) -> int:
        cache = self.__dict__.setdefault("_shared_cache", {})
        key = (modality, area, task)
        if key not in cache:
            comp = Composition(modality, area, task)
            cache[key] = max(comp.shared_elements(h) for h in self.compositions)
        return cache[key]

    def label(self, item: Item) -> tuple[str, int]:
        return ("unseen" if self.is_unseen(item) else "seen"), self.shared_elements(item)
