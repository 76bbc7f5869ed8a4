"""Every Table-3-style row the registry supports: Related combination -> Target, with its Baseline+ pool.

The paper's Table 3 (MEDMAT_FACTS "The paper's protocol") has 43 rows in four blocks; only three are known. This
module lists every candidate row from the MAT registry alone, so that the rows the data supports can be chosen,
and the known ones checked, without guessing:

- **fixed modality / fixed area / fixed task**: the target is one composition (the subsets that have it: usually
  one); the Related pair is `related_pairs`
  (two subsets each sharing two MAT elements with the target, different ones, so together they cover all three;
  neither has the target's composition). Both then share the third element with the target and with each other:
  that element names the block (CT-Lung-Cancer + X-ray-Lung-COVID -> CT-Lung-COVID is "fixed area", Lung).
- **modality-area pairs**: the paper names these rows by modality and area only (X-ray-Bones + CT-Brain ->
  X-ray-Brain), so they are listed at that level: the target is a modality-area pair (all its subsets), the
  Related sides are the pairs (same modality, other area) and (other modality, same area), each with all its
  subsets. Tasks play no part (experiments of this block set ``related_axes: [modality, area]``).

The Baseline+ pool of a row is every subset in the universe sharing *no* element with any target subset.
The universe is the released subsets 01-37 by default (``scope="all"``: 01-53), optionally restricted to the
subsets whose QA files are under a data root. Rows come out in a fixed order (block, target, Related).

`PAPER_ROWS` holds the three rows the paper names. A row is marked when its pattern matches exactly one candidate
(``exact``); a name the registry does not know (the paper's task "State") matches any value the row does not
name elsewhere, and a unique match through it is marked ``inferred`` with the value it stood for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import pandas as pd

from .registry import SUBSETS, Composition, axis_values
from .splits import AXES, related_pairs

BLOCKS = ("fixed modality", "fixed area", "fixed task", "modality-area pairs")
_AXIS_BLOCK = {"modality": "fixed modality", "area": "fixed area", "task": "fixed task"}
MA_BLOCK = BLOCKS[3]
SCOPES = ("released", "all")

COLUMNS = (
    "block",
    "shared",
    "target",
    "target_composition",
    "related_a",
    "related_a_composition",
    "related_b",
    "related_b_composition",
    "related",
    "baseline_plus",
    "n_baseline_plus",
    "paper_row",
    "paper_match",
    "experiment",
)
BLOCK_SLUGS = {"fixed modality": "modality", "fixed area": "area", "fixed task": "task", MA_BLOCK: "ma"}
CONFIG_GROUP = "table3_candidates"  # conf/experiment/table3_candidates/: one config per row, generated


class CandidatesError(ValueError):
    """A scope or subset list the enumeration cannot use."""


@dataclass(frozen=True)
class PaperRow:
    """A row the paper names, as MAT patterns (axis -> value) for the two Related sides and the target."""

    text: str
    block: str
    related: tuple[dict, dict]
    target: dict


PAPER_ROWS: tuple[PaperRow, ...] = (
    PaperRow(
        "CT-Cancer + X-ray-COVID -> CT-COVID",
        "fixed area",
        ({"modality": "CT", "task": "Cancer"}, {"modality": "X-ray", "task": "COVID"}),
        {"modality": "CT", "task": "COVID"},
    ),
    PaperRow(
        "X-ray-Bones + CT-Brain -> X-ray-Brain",
        MA_BLOCK,
        ({"modality": "X-ray", "area": "Bones"}, {"modality": "CT", "area": "Brain"}),
        {"modality": "X-ray", "area": "Brain"},
    ),
    PaperRow(
        "CT-State + X-ray-Cancer -> CT-Cancer",
        "fixed area",
        ({"modality": "CT", "task": "State"}, {"modality": "X-ray", "task": "Cancer"}),
        {"modality": "CT", "task": "Cancer"},
    ),
)


@dataclass(frozen=True)
class CandidateRow:
    block: str  # one of BLOCKS
    shared: str  # the element both Related sides share with the target ("Lung"); "" for modality-area pairs
    target: tuple[int, ...]
    related_a: tuple[int, ...]
    related_b: tuple[int, ...]
    baseline_plus: tuple[int, ...]
    paper_row: str = ""
    paper_match: str = ""  # "" | "exact" | "inferred: State=Hemorrhage"

    @property
    def sort_key(self) -> tuple:
        return (BLOCKS.index(self.block), self.target, self.related_a, self.related_b)

    @property
    def related(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.related_a) | set(self.related_b)))

    def as_dict(self) -> dict:
        return {
            "block": self.block,
            "shared": self.shared,
            "target": _nums(self.target),
            "target_composition": _label(self.target, self.block),
            "related_a": _nums(self.related_a),
            "related_a_composition": _label(self.related_a, self.block),
            "related_b": _nums(self.related_b),
            "related_b_composition": _label(self.related_b, self.block),
            "related": f"{_label(self.related_a, self.block)} + {_label(self.related_b, self.block)}",
            "baseline_plus": _nums(self.baseline_plus),
            "n_baseline_plus": len(self.baseline_plus),
            "paper_row": self.paper_row,
            "paper_match": self.paper_match,
            "experiment": f"{CONFIG_GROUP}/{self.name}",
        }

    @property
    def name(self) -> str:
        """The row's experiment name: block, target subsets, the two Related sides (``area_03_from_04_28``)."""
        sides = ("-".join(f"{n:02d}" for n in nums) for nums in (self.target, self.related_a, self.related_b))
        target, a, b = sides
        return f"{BLOCK_SLUGS[self.block]}_{target}_from_{a}_{b}"

    def experiment(self) -> dict:
        """The row as an ``experiment`` config (cgeval.config.ExperimentConfig): the target composition held out
        (for the modality-area block, every task of the pair), the Related subsets named, Related and Baseline+
        arms (Baseline+ drawn from the subsets sharing no element, as `cgeval.data.splits` derives it)."""
        first = SUBSETS[self.target[0]]
        if self.block == MA_BLOCK:
            heldout = [{"modality": first.modality, "area": first.area}]
        else:
            heldout = [{"modality": first.modality, "area": first.area, "task": first.task}]
        exp = {
            "name": self.name,
            "description": f"Table 3 candidate ({self.block}): {_label(self.related_a, self.block)} + "
                           f"{_label(self.related_b, self.block)} -> {_label(self.target, self.block)}",
            "heldout": heldout,
            "arms": ["related", "baseline_plus"],
            "related_subsets": list(self.related),
        }
        if self.block == MA_BLOCK:
            exp["related_axes"] = ["modality", "area"]
        exp["reference"] = {"source": "cgeval.split_candidates (MAT registry)", "block": self.block,
                            "shared": self.shared or None, "paper_row": self.paper_row or None,
                            "paper_match": self.paper_match or None}
        return exp


def _nums(numbers: tuple[int, ...]) -> str:
    return " ".join(f"{n:02d}" for n in numbers)


def _label(numbers: tuple[int, ...], block: str) -> str:
    if block == MA_BLOCK:
        return " / ".join(sorted({f"{SUBSETS[n].modality}-{SUBSETS[n].area}" for n in numbers}))
    return " / ".join(sorted({str(SUBSETS[n].composition) for n in numbers}))


def universe(scope: str = "released", present: Iterable[int] | None = None) -> list[int]:
    """The subsets rows may use: released (01-37) or all (01-53), intersected with ``present`` when given."""
    if scope not in SCOPES:
        raise CandidatesError(f"scope must be one of {SCOPES}, got {scope!r}")
    numbers = [n for n in sorted(SUBSETS) if scope == "all" or SUBSETS[n].released]
    if present is not None:
        present = {int(n) for n in present}
        unknown = sorted(present - set(SUBSETS))
        if unknown:
            raise CandidatesError(f"subsets {unknown} are not Med-MAT subsets 1-{max(SUBSETS)}")
        numbers = [n for n in numbers if n in present]
    return numbers


def _baseline_plus(targets: tuple[int, ...], numbers: list[int]) -> tuple[int, ...]:
    comps = [SUBSETS[t].composition for t in targets]
    return tuple(n for n in numbers if all(SUBSETS[n].composition.shared_elements(c) == 0 for c in comps))


def _shared_axis(target: Composition, a: Composition, b: Composition) -> str:
    return next(ax for ax in AXES if getattr(a, ax) == getattr(target, ax) == getattr(b, ax))


def mat_rows(numbers: list[int]) -> list[CandidateRow]:
    """Rows of the fixed modality / area / task blocks: one per target composition and Related pair.

    The target is a composition, so it is every subset that has it (27 and 36 are both X-ray-Bones-Diseases):
    holding out one of them while the other trained would show the model the "unseen" composition."""
    by_comp: dict[Composition, tuple[int, ...]] = {}
    for n in numbers:
        by_comp[SUBSETS[n].composition] = (*by_comp.get(SUBSETS[n].composition, ()), n)
    rows = []
    for comp, targets in by_comp.items():
        others = [n for n in numbers if SUBSETS[n].composition != comp]
        for a, b in related_pairs(comp, others):
            axis = _shared_axis(comp, SUBSETS[a].composition, SUBSETS[b].composition)
            rows.append(
                CandidateRow(
                    block=_AXIS_BLOCK[axis],
                    shared=getattr(comp, axis),
                    target=targets,
                    related_a=(a,),
                    related_b=(b,),
                    baseline_plus=_baseline_plus(targets, numbers),
                )
            )
    return rows


def ma_rows(numbers: list[int]) -> list[CandidateRow]:
    """Rows of the modality-area block: target pair (M, A) from (M, other area) + (other modality, A)."""
    by_pair: dict[tuple[str, str], tuple[int, ...]] = {}
    for n in numbers:
        key = (SUBSETS[n].modality, SUBSETS[n].area)
        by_pair[key] = (*by_pair.get(key, ()), n)
    rows = []
    for (m, a), targets in sorted(by_pair.items()):
        same_modality = [p for p in sorted(by_pair) if p[0] == m and p[1] != a]
        same_area = [p for p in sorted(by_pair) if p[1] == a and p[0] != m]
        for pa in same_modality:
            for pb in same_area:
                rows.append(
                    CandidateRow(
                        block=MA_BLOCK,
                        shared="",
                        target=targets,
                        related_a=by_pair[pa],
                        related_b=by_pair[pb],
                        baseline_plus=_baseline_plus(targets, numbers),
                    )
                )
    return rows


def match_paper_rows(rows: list[CandidateRow], paper_rows: tuple[PaperRow, ...] = PAPER_ROWS) -> tuple[list[CandidateRow], dict]:
    """Mark each paper row on its candidate when exactly one candidate matches; returns (rows, report)."""
    known = {ax: set(axis_values(ax)) for ax in AXES}
    marked = list(rows)
    report: dict[str, str] = {}
    for pr in paper_rows:
        patterns = (*pr.related, pr.target)
        # Names the registry does not know match any value this row does not name elsewhere.
        unknown = {ax: {p[ax] for p in patterns if ax in p and p[ax] not in known[ax]} for ax in AXES}
        named = {ax: {p[ax] for p in patterns if ax in p and p[ax] in known[ax]} for ax in AXES}

        def side(numbers: tuple[int, ...], pattern: dict) -> dict[str, str] | None:
            stood: dict[str, str] = {}
            for ax, want in pattern.items():
                values = {getattr(SUBSETS[n], ax) for n in numbers}
                if want in unknown[ax]:
                    if len(values) != 1 or values & named[ax]:
                        return None
                    stood[want] = next(iter(values))
                elif values != {want}:
                    return None
            return stood

        hits = []
        for i, row in enumerate(rows):
            if row.block != pr.block:
                continue
            target = side(row.target, pr.target)
            if target is None:
                continue
            for first, second in ((row.related_a, row.related_b), (row.related_b, row.related_a)):
                s1, s2 = side(first, pr.related[0]), side(second, pr.related[1])
                if s1 is not None and s2 is not None:
                    hits.append((i, {**target, **s1, **s2}))
                    break
        if len(hits) == 1:
            i, stood = hits[0]
            how = "exact" if not stood else "inferred: " + ", ".join(f"{k}={v}" for k, v in sorted(stood.items()))
            marked[i] = replace(marked[i], paper_row=pr.text, paper_match=how)
            row = rows[i]
            report[pr.text] = (
                f"{how} -> target {_nums(row.target)}, related {_nums(row.related_a)} + {_nums(row.related_b)}"
            )
        else:
            report[pr.text] = f"not marked: {len(hits)} candidate rows match"
    return marked, report


def candidate_rows(numbers: list[int]) -> tuple[list[CandidateRow], dict]:
    """Every candidate row over ``numbers`` (see `universe`), in block order, with the paper's rows marked."""
    numbers = sorted(set(numbers))  # the rows and pools are a function of the set, not of its order
    rows = sorted(mat_rows(numbers) + ma_rows(numbers), key=lambda r: r.sort_key)
    return match_paper_rows(rows)


def candidates_frame(rows: list[CandidateRow]) -> pd.DataFrame:
    return pd.DataFrame([r.as_dict() for r in rows], columns=list(COLUMNS))


def block_counts(rows: list[CandidateRow]) -> dict[str, int]:
    return {b: sum(r.block == b for r in rows) for b in BLOCKS}
