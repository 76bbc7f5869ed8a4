import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from cgeval.analysis.stats import (ItemSetMismatch, _distinct_rows, chance_corrected, chance_level,
                                   cluster_bootstrap_accuracy, cluster_bootstrap_gap, cluster_totals, holm,
                                   mcnemar_exact, mcnemar_table, resample_totals, wilson_interval)


def wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 1), (0, 10), (3, 10), (10, 10), (47, 100), (1, 3000)])
def test_wilson_matches_statsmodels_and_formula(k, n):
    lo, hi = wilson_interval(k, n)
    assert (lo, hi) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)
    assert (lo, hi) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)


def test_wilson_vectorised_and_empty_cell_is_nan():
    lo, hi = wilson_interval(np.array([0, 3, 5]), np.array([0, 10, 5]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert lo[1] == pytest.approx(wilson_by_hand(3, 10)[0])
    assert hi[2] == pytest.approx(1.0)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@settings(max_examples=60, deadline=None)
def test_wilson_contains_estimate(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1


def test_chance_level_and_correction():
    assert chance_level([2, 4]) == pytest.approx((0.5 + 0.25) / 2)
    assert math.isnan(chance_level([]))
    with pytest.raises(ValueError):
        chance_level([0, 2])
    assert chance_corrected(0.25, 0.25) == 0
    assert chance_corrected(1.0, 0.25) == 1
    assert chance_corrected(0.5, 0.25) == pytest.approx(1 / 3)
    assert chance_corrected(0.0, 0.5) == -1
    assert math.isnan(chance_corrected(1.0, 1.0))


def test_distinct_rows_matches_numpy_unique():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 5, size=(500, 4)).astype(float)
    prof, counts = _distinct_rows(t)
    ref_prof, ref_counts = np.unique(t, axis=0, return_counts=True)
    assert np.array_equal(prof, ref_prof) and np.array_equal(counts, ref_counts)
    frac = t + 0.5  # not integers: general path
    prof, counts = _distinct_rows(frac)
    assert np.array_equal(prof, np.unique(frac, axis=0))


def test_cluster_totals():
    tot = cluster_totals(["b", "a", "b", "c"], [1, 1, 1, 1], [1, 0, 1, 0])
    assert tot.tolist() == [[1, 0], [2, 2], [1, 0]]  # clusters in sorted order: a, b, c
    assert cluster_totals([3, "x", 3], [1, 1, 1], [1, 0, 1]).shape == (2, 2)  # mixed types: sorted as text


def test_bootstrap_does_not_depend_on_row_order():
    """Many clusters of distinct sizes (the index-resampling path): the same seed gives the same interval
    whatever order the rows come in."""
    rng = np.random.default_rng(1)
    sizes = np.arange(1, 121)
    clusters = np.repeat([f"img{i:03d}" for i in range(len(sizes))], sizes)
    correct = rng.random(len(clusters)) < 0.5
    a = cluster_bootstrap_accuracy(correct, clusters, 300, seed=5)
    perm = rng.permutation(len(clusters))
    b = cluster_bootstrap_accuracy(correct[perm], clusters[perm], 300, seed=5)
    assert (a.low, a.high) == (b.low, b.high) and np.array_equal(a.draws, b.draws)


def exact_bootstrap_distribution(totals):
    """All C^C equally likely ordered resamples of C clusters: values of sum(k) / sum(n)."""
    c = len(totals)
    vals = [sum(totals[i][1] for i in idx) / sum(totals[i][0] for i in idx)
            for idx in itertools.product(range(c), repeat=c)]
    return np.array(vals)


def test_bootstrap_multinomial_path_matches_exact_enumeration():
    # clusters (n, k): images with 1-3 items; C = 5 -> 3125 equally likely resamples
    totals = [(1, 1), (2, 1), (3, 0), (1, 0), (2, 2)]
    correct = np.concatenate([[1] * k + [0] * (n - k) for n, k in totals])
    clusters = np.concatenate([[i] * n for i, (n, _) in enumerate(totals)])
    exact = exact_bootstrap_distribution(totals)
    res = cluster_bootstrap_accuracy(correct, clusters, n_boot=40_000, seed=3)
    assert res.estimate == pytest.approx(4 / 9)
    assert res.draws.mean() == pytest.approx(exact.mean(), abs=0.004)
    assert res.draws.std() == pytest.approx(exact.std(), abs=0.004)
    assert res.low == pytest.approx(np.quantile(exact, 0.025), abs=0.02)
    assert res.high == pytest.approx(np.quantile(exact, 0.975), abs=0.02)


def test_bootstrap_index_path_equals_brute_force_loop():
    # 200 clusters with distinct sizes -> many distinct profiles -> integer index resampling
    rng = np.random.default_rng(0)
    sizes = np.arange(1, 201)
    ks = rng.binomial(sizes, 0.6)
    totals = np.column_stack([sizes, ks]).astype(float)
    got = resample_totals(totals, 300, np.random.default_rng(11))
    idx = np.random.default_rng(11).integers(0, 200, size=(300, 200))
    brute = np.array([[sum(sizes[j] for j in row), sum(ks[j] for j in row)] for row in idx])
    assert np.array_equal(got, brute)


def test_bootstrap_singletons_match_scipy_percentile():
    rng = np.random.default_rng(5)
    x = (rng.random(300) < 0.4).astype(float)
    ours = cluster_bootstrap_accuracy(x, np.arange(300), n_boot=20_000, seed=1)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", random_state=2).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.01)
    assert ours.high == pytest.approx(ref.high, abs=0.01)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.random(100) < 0.5
    c = np.repeat(np.arange(50), 2)
    a = cluster_bootstrap_accuracy(x, c, 200, seed=7)
    b = cluster_bootstrap_accuracy(x, c, 200, seed=7)
    d = cluster_bootstrap_accuracy(x, c, 200, seed=8)
    assert np.array_equal(a.draws, b.draws) and not np.array_equal(a.draws, d.draws)


def test_clustering_widens_the_interval_when_items_share_images():
    # 50 images x 10 items, all items of an image answered alike: the effective n is 50, not 500
    img_correct = np.random.default_rng(2).random(50) < 0.5
    x = np.repeat(img_correct, 10)
    clustered = cluster_bootstrap_accuracy(x, np.repeat(np.arange(50), 10), 4000, seed=0)
    naive = cluster_bootstrap_accuracy(x, np.arange(500), 4000, seed=0)
    assert (clustered.high - clustered.low) > 2.5 * (naive.high - naive.low)


def test_gap_stratified_matches_exact_enumeration():
    seen = [(1, 1), (2, 1), (1, 0)]
    unseen = [(2, 0), (1, 1), (1, 0)]
    rows_c, rows_a, rows_id = [], [], []
    for cid, (n, k) in enumerate(seen + unseen):
        rows_c += [1] * k + [0] * (n - k)
        rows_a += [cid < 3] * n
        rows_id += [cid] * n
    es, eu = exact_bootstrap_distribution(seen), exact_bootstrap_distribution(unseen)
    exact = (es[:, None] - eu[None, :]).ravel()
    res = cluster_bootstrap_gap(rows_c, rows_a, rows_id, n_boot=40_000, seed=0)
    assert res.method.startswith("cluster bootstrap stratified")
    assert res.estimate == pytest.approx(2 / 4 - 1 / 4)
    assert res.n_valid == 40_000
    assert res.draws.mean() == pytest.approx(exact.mean(), abs=0.005)
    assert res.draws.std() == pytest.approx(exact.std(), abs=0.005)


def test_gap_with_clusters_spanning_groups_drops_replicates_without_a_group():
    correct = [1, 0, 1, 1]
    in_a = [True, False, True, False]
    res = cluster_bootstrap_gap(correct, in_a, [0, 0, 1, 1], n_boot=500, seed=0)
    assert "span" in res.method and res.n_valid == 500  # each cluster has both groups
    with pytest.raises(ValueError):
        cluster_bootstrap_gap([1, 0], [True, True], [0, 1])


def binom_two_sided_by_hand(b, c):
    n = b + c
    tail = sum(math.comb(n, i) for i in range(0, min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b,c", [(0, 0), (3, 1), (10, 2), (0, 7), (25, 25), (40, 18)])
def test_mcnemar_exact_matches_scipy_and_hand(b, c):
    a_correct = np.array([1] * 5 + [1] * b + [0] * c + [0] * 4, bool)
    b_correct = np.array([1] * 5 + [0] * b + [1] * c + [0] * 4, bool)
    r = mcnemar_exact(a_correct, b_correct)
    assert (r.both, r.a_only, r.b_only, r.neither) == (5, b, c, 4)
    assert r.pvalue == pytest.approx(binom_two_sided_by_hand(b, c), rel=1e-9)
    if b + c:
        assert r.pvalue == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    assert mcnemar_table(5, b, c, 4).pvalue == r.pvalue


def test_mcnemar_length_mismatch_is_named():
    with pytest.raises(ItemSetMismatch):
        mcnemar_exact([True, False], [True])


def holm_by_hand(p, alpha):
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj <= alpha, adj


def test_holm_matches_statsmodels_and_hand_and_skips_nan():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2])
    rej, adj = holm(p, 0.05)
    ref_rej, ref_adj, _, _ = multipletests(p, 0.05, method="holm")
    assert np.allclose(adj, ref_adj) and np.array_equal(rej, ref_rej)
    hand_rej, hand_adj = holm_by_hand(p, 0.05)
    assert np.allclose(adj, hand_adj) and np.array_equal(rej, hand_rej)
    rej, adj = holm(np.array([0.01, np.nan, 0.04]), 0.05)
    assert np.isnan(adj[1]) and not rej[1]
    assert adj[[0, 2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])
