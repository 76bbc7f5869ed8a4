"""Statistics for accuracy on multiple-choice items: intervals, chance, cluster bootstrap, paired tests.

Everything here works on plain arrays (one entry per prediction row) and is vectorised: no per-row Python
loops, so a million rows with a thousand bootstrap resamples stays within seconds.

* Wilson intervals and Holm adjustment come from statsmodels; the exact McNemar test too.
* The cluster bootstrap resamples *clusters* (source images, or source datasets) with replacement, because
  items that share an image are not independent. It works on cluster totals: resampling C clusters uniformly
  with replacement gives cluster counts ~ Multinomial(C, 1/C); clusters with identical totals are
  interchangeable, so the replicate totals are exactly ``Multinomial(C, m_t / C) @ profiles`` over the T
  distinct profiles (T is small: a handful of (n, k) pairs). When T is close to C (few large, distinct
  clusters such as datasets) we draw integer indices instead; both give the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint


class ItemSetMismatch(ValueError):
    """Two runs compared as paired are not over the same items (ids, gold answers or option counts differ)."""

    def __init__(self, message: str, only_a: int = 0, only_b: int = 0, differing: int = 0):
        super().__init__(message)
        self.only_a = only_a
        self.only_b = only_b
        self.differing = differing

    @property
    def n_differ(self) -> int:
        return self.only_a + self.only_b + self.differing


class ScoringMismatch(ValueError):
    """Two runs compared as paired scored their items differently (circular vs single-question), so their
    ``correct`` columns do not measure the same thing."""


# --------------------------------------------------------------------------------------------------------------
# Intervals and chance


def wilson_interval(k, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes out of n (arrays or scalars); NaN where n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    lo = np.full(np.broadcast(k, n).shape, np.nan)
    hi = lo.copy()
    ok = np.broadcast_to(n > 0, lo.shape)
    if ok.any():
        kb, nb = np.broadcast_to(k, lo.shape)[ok], np.broadcast_to(n, lo.shape)[ok]
        lo[ok], hi[ok] = proportion_confint(kb, nb, alpha=alpha, method="wilson")
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def chance_level(n_options) -> float:
    """Expected accuracy of uniform guessing over the items: mean of 1 / n_options (NaN when empty)."""
    n_options = np.asarray(n_options, dtype=float)
    if n_options.size == 0:
        return float("nan")
    if (n_options < 1).any():
        raise ValueError(f"n_options must be >= 1, got {n_options.min():g}")
    return float(np.mean(1.0 / n_options))


def chance_corrected(acc, chance):
    """(acc - chance) / (1 - chance): 0 at chance, 1 when perfect, negative below chance; NaN if chance == 1.

    Chance is fixed by the design (the option counts), so this is a linear map of accuracy and interval
    endpoints map through it unchanged.
    """
    acc = np.asarray(acc, dtype=float)
    chance = np.asarray(chance, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(chance < 1, (acc - chance) / (1 - chance), np.nan)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------------------------------------------
# Cluster bootstrap


@dataclass(frozen=True)
class BootstrapInterval:
    """A percentile interval from a cluster bootstrap; ``draws`` holds the replicate statistics."""

    estimate: float
    low: float
    high: float
    n_boot: int
    n_valid: int
    n_clusters: int
    seed: int
    alpha: float
    method: str
    draws: np.ndarray = field(repr=False, compare=False)

    @property
    def se(self) -> float:
        d = self.draws[np.isfinite(self.draws)]
        return float(d.std(ddof=1)) if d.size > 1 else float("nan")

    def to_dict(self) -> dict:
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {"estimate": num(self.estimate), "ci_low": num(self.low), "ci_high": num(self.high),
                "se": num(self.se), "n_boot": self.n_boot, "n_valid": self.n_valid,
                "n_clusters": self.n_clusters, "seed": self.seed, "alpha": self.alpha, "method": self.method}


def cluster_totals(clusters, *values) -> np.ndarray:
    """Per-cluster sums of each value array: shape (n_clusters, len(values)), clusters in sorted order, so that
    a seeded bootstrap gives the same interval whatever the order of the rows."""
    clusters = np.asarray(clusters)
    try:
        codes, uniques = pd.factorize(clusters, sort=True, use_na_sentinel=False)
    except TypeError:  # clusters of mixed types: sort by their text
        codes, uniques = pd.factorize(clusters.astype(str), sort=True, use_na_sentinel=False)
    c = len(uniques)
    return np.column_stack([np.bincount(codes, weights=np.asarray(v, dtype=float), minlength=c) for v in values])


# Above this many (replicate x cluster) cells per chunk, index resampling is done in chunks.
_CHUNK_CELLS = 4_000_000


def _distinct_rows(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows and their counts. Counts are small integers, so rows pack into one int64 key (a 1-D
    unique is far faster than ``np.unique(axis=0)``); otherwise fall back to the general row unique."""
    if np.all(totals == np.round(totals)) and totals.min() >= 0:
        radix = totals.max(axis=0).astype(np.int64) + 1
        if np.sum(np.log2(radix.astype(float))) < 62:
            t = totals.astype(np.int64)
            key = np.zeros(len(t), dtype=np.int64)
            for j in range(t.shape[1]):  # loop over the few columns
                key = key * radix[j] + t[:, j]
            _, first, counts = np.unique(key, return_index=True, return_counts=True)
            return totals[first], counts
    return np.unique(totals, axis=0, return_counts=True)


def resample_totals(totals: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``totals`` rows over ``n_boot`` resamples of its rows with replacement: shape (n_boot, m)."""
    totals = np.asarray(totals, dtype=float)
    c, m = totals.shape
    if c == 0:
        return np.zeros((n_boot, m))
    profiles, counts = _distinct_rows(totals)
    if len(profiles) <= c // 2 or c <= 64:
        # Exact: the number of draws landing on each distinct profile is multinomial.
        n_per_profile = rng.multinomial(c, counts / c, size=n_boot)  # (n_boot, T)
        return n_per_profile @ profiles
    out = np.empty((n_boot, m))
    step = max(1, _CHUNK_CELLS // c)
    for start in range(0, n_boot, step):  # loop over chunks of replicates, not rows
        b = min(step, n_boot - start)
        idx = rng.integers(0, c, size=(b, c))
        for j in range(m):
            out[start:start + b, j] = totals[idx, j].sum(axis=1)
    return out


def _percentile(draws: np.ndarray, alpha: float) -> tuple[float, float, int]:
    valid = draws[np.isfinite(draws)]
    if valid.size == 0:
        return float("nan"), float("nan"), 0
    lo, hi = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), int(valid.size)


def cluster_bootstrap_accuracy(correct, clusters, n_boot: int = 1000, seed: int = 0,
                               alpha: float = 0.05) -> BootstrapInterval:
    """Percentile interval for accuracy, resampling clusters (e.g. source images) with replacement."""
    correct = np.asarray(correct, dtype=float)
    if correct.size == 0:
        raise ValueError("cluster bootstrap of accuracy over zero rows")
    totals = cluster_totals(clusters, np.ones_like(correct), correct)
    rng = np.random.default_rng(seed)
    rep = resample_totals(totals, n_boot, rng)
    draws = rep[:, 1] / rep[:, 0]
    lo, hi, n_valid = _percentile(draws, alpha)
    return BootstrapInterval(float(correct.mean()), lo, hi, n_boot, n_valid, len(totals), seed, alpha,
                             "cluster bootstrap, percentile", draws)


def cluster_bootstrap_gap(correct, in_a, clusters, n_boot: int = 1000, seed: int = 0,
                          alpha: float = 0.05) -> BootstrapInterval:
    """Percentile interval for acc(group a) - acc(group b), e.g. seen - unseen, resampling clusters.

    When every cluster lies wholly in one group (the usual case: an image is either seen or unseen) the
    resampling is stratified by group, so both group sizes stay fixed as in the design. Otherwise clusters are
    resampled jointly and replicates that miss a group are dropped (``n_valid`` says how many remain).
    """
    correct = np.asarray(correct, dtype=float)
    in_a = np.asarray(in_a, dtype=bool)
    if not in_a.any() or in_a.all():
        raise ValueError("the gap needs rows in both groups")
    a = in_a.astype(float)
    b = 1.0 - a
    totals = cluster_totals(clusters, a, correct * a, b, correct * b)
    estimate = correct[in_a].mean() - correct[~in_a].mean()
    rng = np.random.default_rng(seed)
    pure = (totals[:, 0] == 0) | (totals[:, 2] == 0)
    if pure.all():
        rep = (resample_totals(totals[totals[:, 0] > 0], n_boot, rng)
               + resample_totals(totals[totals[:, 2] > 0], n_boot, rng))
        method = "cluster bootstrap stratified by group, percentile"
    else:
        rep = resample_totals(totals, n_boot, rng)
        method = "cluster bootstrap (clusters span both groups), percentile"
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = rep[:, 1] / rep[:, 0] - rep[:, 3] / rep[:, 2]
    lo, hi, n_valid = _percentile(draws, alpha)
    return BootstrapInterval(float(estimate), lo, hi, n_boot, n_valid, len(totals), seed, alpha, method, draws)


# --------------------------------------------------------------------------------------------------------------
# Paired comparison and multiplicity


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test on paired correctness; ``a_only`` = items only run A got right."""

    n: int
    both: int
    a_only: int
    b_only: int
    neither: int
    pvalue: float

    @property
    def acc_a(self) -> float:
        return (self.both + self.a_only) / self.n if self.n else float("nan")

    @property
    def acc_b(self) -> float:
        return (self.both + self.b_only) / self.n if self.n else float("nan")

    def to_dict(self) -> dict:
        return {"n": self.n, "both": self.both, "a_only": self.a_only, "b_only": self.b_only,
                "neither": self.neither, "acc_a": self.acc_a, "acc_b": self.acc_b, "pvalue": self.pvalue}


def mcnemar_exact(correct_a, correct_b) -> McNemarResult:
    """Exact (binomial) McNemar test between two runs' correctness on the same items, in the same order."""
    ca = np.asarray(correct_a, dtype=bool)
    cb = np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape:
        raise ItemSetMismatch(f"paired arrays differ in length: {ca.size} vs {cb.size}",
                              differing=abs(ca.size - cb.size))
    return mcnemar_table(int(np.sum(ca & cb)), int(np.sum(ca & ~cb)), int(np.sum(~ca & cb)), int(np.sum(~ca & ~cb)))


def mcnemar_table(both: int, a_only: int, b_only: int, neither: int) -> McNemarResult:
    """Exact McNemar test from the 2x2 paired counts."""
    n = both + a_only + b_only + neither
    if n == 0:
        return McNemarResult(0, 0, 0, 0, 0, float("nan"))
    p = float(mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue)
    return McNemarResult(n, both, a_only, b_only, neither, p)


def holm(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down adjustment; NaN p-values (n/a rows) stay NaN and are not counted as tests."""
    p = np.asarray(pvalues, dtype=float)
    adj = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, dtype=bool)
    ok = np.isfinite(p)
    if ok.any():
        reject[ok], adj[ok], _, _ = multipletests(p[ok], alpha=alpha, method="holm")
    return reject, adj
