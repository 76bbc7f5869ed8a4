"""Behaviour of cgeval.analysis.stats that the broader tests leave open: exact return types and values, the
recorded fields of bootstrap and McNemar results, the error messages, and which resampling path runs (each path's
draws are checked against numpy's own generator used the way the module documents, not against the module)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from cgeval.analysis import stats
from cgeval.analysis.stats import (BootstrapInterval, ItemSetMismatch, McNemarResult, _distinct_rows,
                                   chance_corrected, chance_level, cluster_bootstrap_accuracy,
                                   cluster_bootstrap_gap, cluster_totals, holm, mcnemar_exact, mcnemar_table,
                                   resample_totals, wilson_interval)

# --------------------------------------------------------------------------------------------------------------
# Wilson intervals


def test_wilson_scalar_gives_python_floats():
    lo, hi = wilson_interval(3, 10)
    assert type(lo) is float and type(hi) is float
    # Wilson 95% for 3/10 by the closed form: (0.3 + z^2/20 -+ z sqrt(0.021 + z^2/400)) / (1 + z^2/10)
    assert (lo, hi) == pytest.approx((0.1077912674063, 0.6032218525389), abs=1e-12)


def test_wilson_scalar_empty_cell_is_nan_floats():
    lo, hi = wilson_interval(0, 0)
    assert type(lo) is float and math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize("alpha", [0.1, 0.01, 0.32])
def test_wilson_alpha_is_passed_through(alpha):
    lo, hi = wilson_interval(7, 20, alpha=alpha)
    assert (lo, hi) == pytest.approx(proportion_confint(7, 20, alpha=alpha, method="wilson"), abs=1e-12)
    z = sps.norm.ppf(1 - alpha / 2)
    p, n = 7 / 20, 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-12)


def test_wilson_default_alpha_is_five_percent():
    assert wilson_interval(7, 20) == pytest.approx(proportion_confint(7, 20, alpha=0.05, method="wilson"), abs=1e-12)


def test_wilson_broadcasts_and_keeps_nan_only_where_n_is_zero():
    k = np.array([[0, 1, 2], [0, 0, 0]])
    n = np.array([[0, 1, 4], [1, 0, 2]])
    lo, hi = wilson_interval(k, n)
    assert lo.shape == hi.shape == (2, 3)
    assert np.isnan(lo[0, 0]) and np.isnan(hi[0, 0]) and np.isnan(lo[1, 1]) and np.isnan(hi[1, 1])
    for (i, j) in [(0, 1), (0, 2), (1, 0), (1, 2)]:
        assert (lo[i, j], hi[i, j]) == pytest.approx(proportion_confint(k[i, j], n[i, j], method="wilson"))
    # a scalar n broadcast against a vector of k
    lo, hi = wilson_interval(np.array([0, 5, 10]), 10)
    assert lo.shape == (3,)
    assert lo[1] == pytest.approx(proportion_confint(5, 10, method="wilson")[0])
    assert hi[0] == pytest.approx(proportion_confint(0, 10, method="wilson")[1])
    # a one-trial cell is an ordinary cell, not an empty one: Wilson(1, 1) = [1 / (1 + z^2), 1]
    lo, hi = wilson_interval(np.array([1, 1]), np.array([1, 0]))
    assert lo[0] == pytest.approx(1 / (1 + 1.959963984540054 ** 2)) and hi[0] == pytest.approx(1.0)
    assert np.isnan(lo[1])


def test_wilson_all_empty_array_is_all_nan():
    lo, hi = wilson_interval(np.zeros(3), np.zeros(3))
    assert lo.shape == (3,) and np.isnan(lo).all() and np.isnan(hi).all()


# --------------------------------------------------------------------------------------------------------------
# Chance


def test_chance_level_values_and_type():
    assert chance_level([1]) == 1.0  # one option: guessing is always right (allowed, not an error)
    assert type(chance_level([4, 4])) is float
    assert chance_level([2, 3, 6]) == pytest.approx((1 / 2 + 1 / 3 + 1 / 6) / 3)
    assert chance_level(np.array([5])) == pytest.approx(0.2)


def test_chance_level_rejects_fewer_than_one_option_with_the_value():
    with pytest.raises(ValueError, match=r"^n_options must be >= 1, got 0$"):
        chance_level([0, 4])
    with pytest.raises(ValueError, match=r"^n_options must be >= 1, got 0.5$"):
        chance_level([4, 0.5, 2])


def test_chance_corrected_arrays_and_types():
    out = chance_corrected(np.array([0.25, 0.5, 1.0, 0.0]), np.array([0.25, 0.5, 0.5, 0.2]))
    assert isinstance(out, np.ndarray)
    assert out.tolist() == pytest.approx([0.0, 0.0, 1.0, -0.25])
    assert type(chance_corrected(0.75, 0.5)) is float
    assert chance_corrected(0.75, 0.5) == pytest.approx(0.5)
    assert chance_corrected(0.6, 0.2) == pytest.approx(0.5)


def test_chance_corrected_is_nan_whenever_chance_is_one():
    # not -inf / +inf: with one option per item there is nothing to correct
    assert math.isnan(chance_corrected(0.5, 1.0))
    assert math.isnan(chance_corrected(0.0, 1.0))
    out = chance_corrected(np.array([0.5, 0.9]), np.array([1.0, 0.5]))
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.8)


# --------------------------------------------------------------------------------------------------------------
# Cluster totals and distinct rows


def test_cluster_totals_values_in_sorted_cluster_order():
    tot = cluster_totals([2, 0, 2, 1, 0], [1, 1, 1, 1, 1], [0.5, 1, 1, 0, 0], [3, 4, 5, 6, 7])
    assert tot.tolist() == [[2, 1, 11], [1, 0, 6], [2, 1.5, 8]]
    assert tot.dtype == float


def test_cluster_totals_numbers_sort_as_numbers():
    tot = cluster_totals([10, 2, 10, 9], [1, 1, 1, 1], [1, 0, 0, 1])
    assert tot.tolist() == [[1, 0], [1, 1], [2, 1]]  # 2, 9, 10 (as text it would be "10" < "2" < "9")


def test_cluster_totals_mixed_types_have_one_order_whatever_the_row_order():
    # ints and strings: numbers first, then text, in either row order
    tot = cluster_totals(np.array([3, "x", 3, 10], dtype=object), [1, 1, 1, 1], [1, 0, 1, 1])
    assert tot.tolist() == [[2, 2], [1, 1], [1, 0]]
    tot = cluster_totals(np.array([10, 3, "x", 3], dtype=object), [1, 1, 1, 1], [1, 1, 0, 1])
    assert tot.tolist() == [[2, 2], [1, 1], [1, 0]]


def test_cluster_totals_unorderable_labels_sort_as_text():
    # bytes and ints cannot be compared: sorted by their text "3" < "b'a'" < "x"
    labels = np.array([b"a", "x", 3, b"a", 3, 3], dtype=object)
    tot = cluster_totals(labels, np.ones(6), [1, 0, 1, 0, 0, 1])
    assert tot.tolist() == [[3, 2], [2, 1], [1, 0]]
    tot = cluster_totals(labels[::-1], np.ones(6), [1, 0, 1, 0, 0, 1][::-1])
    assert tot.tolist() == [[3, 2], [2, 1], [1, 0]]


def test_cluster_totals_missing_label_is_its_own_cluster():
    tot = cluster_totals(np.array(["a", None, "a", None], dtype=object), [1, 1, 1, 1], [1, 1, 0, 0])
    assert tot.tolist() == [[2, 1], [2, 1]]


def test_distinct_rows_counts_by_hand():
    t = np.array([[2, 1], [0, 0], [2, 1], [1, 3], [0, 0], [2, 1]], dtype=float)
    prof, counts = _distinct_rows(t)
    assert prof.tolist() == [[0, 0], [1, 3], [2, 1]] and counts.tolist() == [2, 1, 3]


def test_distinct_rows_order_is_lexicographic_across_columns():
    # keys with radix: a wrong combination of columns would order (0, 5) after (1, 0)
    t = np.array([[1, 0, 0], [0, 5, 2], [0, 5, 1], [1, 0, 0], [0, 0, 9]], dtype=float)
    prof, counts = _distinct_rows(t)
    assert prof.tolist() == [[0, 0, 9], [0, 5, 1], [0, 5, 2], [1, 0, 0]]
    assert counts.tolist() == [1, 1, 1, 2]


@pytest.mark.parametrize("t", [
    np.array([[-1, 2], [3, 4], [-1, 2]], dtype=float),  # negative: not packable
    np.array([[0.5, 1], [0.5, 1], [0, 0]]),  # fractional
    np.array([[2.0 ** 40, 1], [2.0 ** 40, 1], [1, 2.0 ** 30]]),  # too wide to pack into 62 bits
    np.array([[7, 7]], dtype=float),  # a single row
    np.array([[-1, 4], [0, -1]], dtype=float),  # negative: packing would give both rows the key -1
    np.array([[0.5, 1], [0.2, 1], [0.5, 1]]),  # fractional: truncating to integers would merge the rows
    np.array([[0.5, 1.5], [0.25, 1.5]]),  # every entry fractional
])
def test_distinct_rows_unpackable_and_edge_cases_match_numpy(t):
    prof, counts = _distinct_rows(t)
    ref_prof, ref_counts = np.unique(t, axis=0, return_counts=True)
    assert np.array_equal(prof, ref_prof) and np.array_equal(counts, ref_counts)


def test_distinct_rows_wide_but_packable_values():
    # column maxima 2**60 and 1: the packed key (up to 2**61 + 1) fits in int64 but not exactly in a float64
    big = 2.0 ** 60
    t = np.array([[big, 1], [big, 0], [0, 1], [big, 1]])
    prof, counts = _distinct_rows(t)
    assert prof.tolist() == [[0, 1], [big, 0], [big, 1]] and counts.tolist() == [1, 1, 2]


# --------------------------------------------------------------------------------------------------------------
# Resampling paths: each path's draws equal numpy's generator used as the module documents


def _multinomial_draws(profiles, counts, n_boot, seed):
    c = int(np.sum(counts))
    n = np.random.default_rng(seed).multinomial(c, np.asarray(counts) / c, size=n_boot)
    return n @ np.asarray(profiles, dtype=float)


def _index_draws(totals, n_boot, seed):
    totals = np.asarray(totals, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(totals), size=(n_boot, len(totals)))
    return totals[idx].sum(axis=1)


def test_resample_no_rows_is_zero_totals():
    out = resample_totals(np.zeros((0, 3)), 5, np.random.default_rng(0))
    assert out.shape == (5, 3) and not out.any()


def test_resample_small_c_uses_multinomial_even_with_all_distinct_profiles():
    totals = np.column_stack([np.arange(1, 65), np.arange(64) % 3])  # c = 64, 64 distinct rows
    got = resample_totals(totals, 50, np.random.default_rng(4))
    assert np.array_equal(got, _multinomial_draws(totals, np.ones(64), 50, 4))


def test_resample_above_64_distinct_clusters_draws_indices():
    totals = np.column_stack([np.arange(1, 66), np.arange(65) % 3])  # c = 65, 65 distinct rows
    got = resample_totals(totals, 50, np.random.default_rng(4))
    assert np.array_equal(got, _index_draws(totals, 50, 4))


def test_resample_half_distinct_profiles_is_multinomial_and_one_more_is_not():
    # c = 100 with exactly 50 distinct rows (each twice): multinomial over the profiles
    half = np.column_stack([np.arange(50), np.ones(50)])
    totals = np.repeat(half, 2, axis=0)
    got = resample_totals(totals, 40, np.random.default_rng(9))
    assert np.array_equal(got, _multinomial_draws(half, np.full(50, 2), 40, 9))
    # 51 distinct rows among 100: index resampling
    totals = np.vstack([np.repeat(half[:49], 2, axis=0), [[100, 1], [101, 1]]])
    assert len(np.unique(totals, axis=0)) == 51
    got = resample_totals(totals, 40, np.random.default_rng(9))
    assert np.array_equal(got, _index_draws(totals, 40, 9))


@pytest.mark.parametrize("chunk_cells", [300, 1000, 2999])
def test_resample_index_path_in_chunks_equals_one_draw(monkeypatch, chunk_cells):
    """Replicates are drawn a chunk at a time to bound memory (1, 3 or 9 replicates of 300 clusters a chunk);
    with an even number of clusters numpy's stream splits cleanly, so the chunks equal one draw of them all."""
    monkeypatch.setattr(stats, "_CHUNK_CELLS", chunk_cells)
    rng = np.random.default_rng(0)
    totals = np.column_stack([rng.integers(1, 10_000, size=300), rng.integers(0, 5, size=300), np.arange(300)])
    got = resample_totals(totals, 10, np.random.default_rng(21))
    assert got.shape == (10, 3)
    assert np.array_equal(got, _index_draws(totals, 10, 21))


def test_resample_index_path_with_more_clusters_than_a_chunk_holds(monkeypatch):
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 100)  # fewer cells than clusters: one replicate a chunk
    totals = np.column_stack([np.arange(1, 301), np.arange(300) % 2])
    assert np.array_equal(resample_totals(totals, 4, np.random.default_rng(3)), _index_draws(totals, 4, 3))


# --------------------------------------------------------------------------------------------------------------
# Bootstrap results


def test_bootstrap_interval_to_dict_and_se():
    draws = np.array([0.2, 0.4, np.nan, 0.6, np.inf])
    bi = BootstrapInterval(0.5, 0.25, 0.75, 5, 3, 7, 11, 0.1, "m", draws)
    assert bi.se == pytest.approx(0.2)  # sample sd (ddof=1) of the finite draws 0.2, 0.4, 0.6
    assert bi.to_dict() == {"estimate": 0.5, "ci_low": 0.25, "ci_high": 0.75, "se": pytest.approx(0.2),
                            "n_boot": 5, "n_valid": 3, "n_clusters": 7, "seed": 11, "alpha": 0.1, "method": "m"}


def test_bootstrap_interval_non_finite_numbers_are_none():
    bi = BootstrapInterval(float("nan"), float("nan"), float("inf"), 2, 0, 1, 0, 0.05, "m", np.array([0.3, np.nan]))
    d = bi.to_dict()
    assert d["estimate"] is None and d["ci_low"] is None and d["ci_high"] is None and d["se"] is None
    assert math.isnan(bi.se)  # one finite draw: no spread
    assert BootstrapInterval(0.0, 0.0, 0.0, 2, 2, 1, 0, 0.05, "m", np.array([0.3, 0.5])).se == pytest.approx(
        math.sqrt(0.02))
    assert type(bi.to_dict()["n_boot"]) is int


def test_bootstrap_accuracy_records_its_settings():
    correct = [1, 0, 1, 1, 0, 1]
    clusters = ["a", "a", "b", "c", "c", "d"]
    res = cluster_bootstrap_accuracy(correct, clusters, n_boot=300, seed=13, alpha=0.2)
    assert (res.n_boot, res.n_valid, res.n_clusters, res.seed, res.alpha) == (300, 300, 4, 13, 0.2)
    assert res.method == "cluster bootstrap, percentile"
    assert res.estimate == pytest.approx(4 / 6) and type(res.estimate) is float
    assert res.draws.shape == (300,) and ((res.draws >= 0) & (res.draws <= 1)).all()
    assert (res.low, res.high) == pytest.approx(tuple(np.quantile(res.draws, [0.1, 0.9])))


def test_bootstrap_accuracy_defaults():
    res = cluster_bootstrap_accuracy([1, 0, 1], [0, 1, 2])
    assert (res.n_boot, res.seed, res.alpha) == (1000, 0, 0.05)
    assert res.draws.shape == (1000,)
    # seed 0 by default: the same draws as an explicit seed 0
    assert np.array_equal(res.draws, cluster_bootstrap_accuracy([1, 0, 1], [0, 1, 2], 1000, 0).draws)
    assert (res.low, res.high) == pytest.approx(tuple(np.quantile(res.draws, [0.025, 0.975])))


def test_bootstrap_accuracy_exact_distribution_two_clusters():
    """Two clusters (n, k) = (1, 1) and (3, 0): resamples {11, 12, 21, 22} -> 1, 1/4, 1/4, 0 each with p 1/4."""
    res = cluster_bootstrap_accuracy([1, 0, 0, 0], ["p", "q", "q", "q"], n_boot=8000, seed=2)
    vals, freq = np.unique(res.draws, return_counts=True)
    assert vals.tolist() == [0.0, 0.25, 1.0]
    assert (freq / 8000).tolist() == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert (res.low, res.high) == (0.0, 1.0)
    assert res.estimate == 0.25


def test_bootstrap_accuracy_all_correct_is_a_point():
    res = cluster_bootstrap_accuracy(np.ones(12), np.repeat(np.arange(4), 3), n_boot=50, seed=1)
    assert (res.estimate, res.low, res.high) == (1.0, 1.0, 1.0) and res.n_valid == 50


def test_bootstrap_accuracy_of_nothing_is_a_named_error():
    with pytest.raises(ValueError, match="^cluster bootstrap of accuracy over zero rows$"):
        cluster_bootstrap_accuracy([], [])


def test_gap_needs_both_groups_with_a_clear_message():
    for in_a in ([True, True], [False, False]):
        with pytest.raises(ValueError, match="^the gap needs rows in both groups$"):
            cluster_bootstrap_gap([1, 0], in_a, [0, 1])


def test_gap_stratified_exact_values_and_fields():
    """Group a: clusters (n, k) = (1, 1), (1, 0); group b: one cluster (2, 1). Stratified resampling keeps one
    cluster of b (acc 1/2) and two of a: acc 1, 1/2, 1/2, 0 -> gap 1/2, 0, 0, -1/2 with p 1/4, 1/2, 1/4."""
    correct = [1, 0, 1, 0]
    in_a = [True, True, False, False]
    clusters = ["x", "y", "z", "z"]
    res = cluster_bootstrap_gap(correct, in_a, clusters, n_boot=8000, seed=5, alpha=0.6)
    assert res.method == "cluster bootstrap stratified by group, percentile"
    assert (res.n_boot, res.n_valid, res.n_clusters, res.seed, res.alpha) == (8000, 8000, 3, 5, 0.6)
    assert res.estimate == 0.0 and type(res.estimate) is float
    vals, freq = np.unique(res.draws, return_counts=True)
    assert vals.tolist() == [-0.5, 0.0, 0.5]
    assert (freq / 8000).tolist() == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert (res.low, res.high) == (0.0, 0.0)  # its 30% and 70% quantiles


def test_gap_sign_is_a_minus_b():
    correct = [1, 1, 1, 0, 0, 0, 1, 0]
    in_a = [True, True, True, True, False, False, False, False]
    res = cluster_bootstrap_gap(correct, in_a, np.arange(8), n_boot=2000, seed=0)
    assert res.estimate == pytest.approx(3 / 4 - 1 / 4)
    assert res.draws.mean() == pytest.approx(0.5, abs=0.03)
    assert res.low < 0.5 < res.high


def test_gap_defaults():
    res = cluster_bootstrap_gap([1, 0, 1, 0], [True, True, False, False], [0, 1, 2, 3])
    assert (res.n_boot, res.seed, res.alpha) == (1000, 0, 0.05)
    assert (res.low, res.high) == pytest.approx(tuple(np.quantile(res.draws, [0.025, 0.975])))


def test_gap_spanning_clusters_exact_enumeration_and_dropped_replicates():
    """Clusters: 0 = one a-row (right), 1 = one b-row (wrong), 2 = an a-row (wrong) and a b-row (right). All 27
    ordered resamples of three clusters are equally likely; the two that miss a group (all 0s, all 1s) are
    dropped, so n_valid ~ 25/27 of n_boot."""
    correct = [1, 0, 0, 1]
    in_a = [True, False, True, False]
    clusters = [0, 1, 2, 2]
    tot = {0: (1, 1, 0, 0), 1: (0, 0, 1, 0), 2: (1, 0, 1, 1)}  # (n_a, k_a, n_b, k_b)
    exact = []
    for idx in itertools.product(range(3), repeat=3):
        na, ka, nb, kb = (sum(tot[i][j] for i in idx) for j in range(4))
        if na and nb:
            exact.append(ka / na - kb / nb)
    exact = np.array(exact)
    assert len(exact) == 25
    n_boot = 27_000
    res = cluster_bootstrap_gap(correct, in_a, clusters, n_boot=n_boot, seed=1)
    assert res.method == "cluster bootstrap (clusters span both groups), percentile"
    assert res.n_clusters == 3 and res.estimate == pytest.approx(1 / 2 - 1 / 2)
    assert res.n_valid == np.isfinite(res.draws).sum()
    assert res.n_valid == pytest.approx(n_boot * 25 / 27, abs=250)
    valid = res.draws[np.isfinite(res.draws)]
    assert valid.mean() == pytest.approx(exact.mean(), abs=0.01)
    assert valid.std() == pytest.approx(exact.std(), abs=0.01)
    assert (res.low, res.high) == pytest.approx(tuple(np.quantile(valid, [0.025, 0.975])))
    assert res.to_dict()["n_valid"] == res.n_valid


# --------------------------------------------------------------------------------------------------------------
# McNemar and Holm


def test_mcnemar_result_fields_and_accuracies():
    r = mcnemar_table(5, 3, 1, 4)
    assert (r.n, r.both, r.a_only, r.b_only, r.neither) == (13, 5, 3, 1, 4)
    assert r.acc_a == pytest.approx(8 / 13) and r.acc_b == pytest.approx(6 / 13)
    # exact two-sided binomial p for 3 vs 1 discordant pairs: 2 * (1 + 4) / 16
    assert r.pvalue == pytest.approx(10 / 16)
    assert r.to_dict() == {"n": 13, "both": 5, "a_only": 3, "b_only": 1, "neither": 4,
                           "acc_a": pytest.approx(8 / 13), "acc_b": pytest.approx(6 / 13),
                           "pvalue": pytest.approx(10 / 16)}
    assert type(r.pvalue) is float


def test_mcnemar_p_depends_on_discordant_pairs_only():
    # 7 vs 0 discordant: p = 2 * 0.5**7, whatever the concordant counts
    for both, neither in [(0, 0), (30, 0), (0, 30), (12, 9)]:
        assert mcnemar_table(both, 7, 0, neither).pvalue == pytest.approx(2 * 0.5 ** 7)
        assert mcnemar_table(both, 0, 7, neither).pvalue == pytest.approx(2 * 0.5 ** 7)
    assert mcnemar_table(10, 0, 0, 3).pvalue == 1.0


def test_mcnemar_on_no_items_is_all_zero_with_nan_p():
    r = mcnemar_table(0, 0, 0, 0)
    assert (r.n, r.both, r.a_only, r.b_only, r.neither) == (0, 0, 0, 0, 0)
    assert math.isnan(r.pvalue) and math.isnan(r.acc_a) and math.isnan(r.acc_b)
    d = mcnemar_exact([], []).to_dict()
    assert d["n"] == 0 and math.isnan(d["pvalue"]) and math.isnan(d["acc_a"]) and math.isnan(d["acc_b"])
    r1 = mcnemar_table(1, 0, 0, 0)  # a single concordant item is an ordinary table
    assert (r1.n, r1.both, r1.acc_a, r1.acc_b, r1.pvalue) == (1, 1, 1.0, 1.0, 1.0)


def test_mcnemar_result_acc_by_hand():
    r = McNemarResult(n=10, both=2, a_only=3, b_only=4, neither=1, pvalue=0.5)
    assert r.acc_a == pytest.approx(0.5) and r.acc_b == pytest.approx(0.6)
    assert math.isnan(McNemarResult(0, 0, 0, 0, 0, 1.0).acc_a)


def test_mcnemar_exact_counts_each_cell():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 1], bool)
    b = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 1], bool)
    r = mcnemar_exact(a, b)
    assert (r.n, r.both, r.a_only, r.b_only, r.neither) == (10, 3, 2, 2, 3)
    assert r.pvalue == pytest.approx(sps.binomtest(2, 4, 0.5).pvalue)
    r = mcnemar_exact([1, 1, 0], [0, 0, 0])  # lists of ints work as booleans
    assert (r.both, r.a_only, r.b_only, r.neither) == (0, 2, 0, 1)


def test_mcnemar_length_mismatch_says_by_how_much():
    with pytest.raises(ItemSetMismatch, match=r"^paired arrays differ in length: 5 vs 2$") as e:
        mcnemar_exact([1, 0, 1, 0, 1], [1, 0])
    assert (e.value.differing, e.value.only_a, e.value.only_b, e.value.n_differ) == (3, 0, 0, 3)
    with pytest.raises(ItemSetMismatch) as e:
        mcnemar_exact([1], [1, 0, 0])
    assert e.value.differing == 2


def test_item_set_mismatch_counts():
    e = ItemSetMismatch("m", only_a=2, only_b=3, differing=4)
    assert str(e) == "m" and e.n_differ == 9
    e = ItemSetMismatch("m")
    assert (e.only_a, e.only_b, e.differing, e.n_differ) == (0, 0, 0, 0)


def test_holm_by_hand_three_tests():
    # sorted p 0.01, 0.02, 0.04: adjusted 3 * 0.01 = 0.03, max(0.03, 2 * 0.02) = 0.04, max(0.04, 0.04) = 0.04
    rej, adj = holm([0.04, 0.01, 0.02])
    assert adj.tolist() == pytest.approx([0.04, 0.03, 0.04])
    assert rej.tolist() == [True, True, True] and rej.dtype == bool
    rej, adj = holm([0.04, 0.01, 0.02], alpha=0.035)
    assert rej.tolist() == [False, True, False]
    rej, _ = holm([0.04, 0.01, 0.02], alpha=0.04)
    assert rej.tolist() == [True, True, True]  # adjusted p <= alpha rejects


def test_holm_default_alpha_and_nan_rows():
    rej, adj = holm([0.03, np.nan, 0.02])  # two tests: 2 * 0.02 = 0.04, max(0.04, 0.03) = 0.04
    assert adj[0] == pytest.approx(0.04) and adj[2] == pytest.approx(0.04) and np.isnan(adj[1])
    assert rej.tolist() == [True, False, True]
    rej, adj = holm([0.03, 0.026])  # 2 * 0.026 = 0.052 > 0.05: nothing rejected at the default 5%
    assert rej.tolist() == [False, False] and adj.tolist() == pytest.approx([0.052, 0.052])


def test_holm_all_nan_and_empty():
    rej, adj = holm([np.nan, np.nan])
    assert rej.tolist() == [False, False] and np.isnan(adj).all() and adj.dtype == float
    rej, adj = holm([])
    assert rej.shape == (0,) and adj.shape == (0,)


# --------------------------------------------------------------------------------------------------------------
# Edge cases: one row, one draw, no draws, missing values, integer flags, no numpy warnings


def test_bootstrap_of_one_row():
    res = cluster_bootstrap_accuracy([1], ["a"], n_boot=5, seed=0)
    assert (res.estimate, res.low, res.high, res.n_valid, res.n_clusters) == (1.0, 1.0, 1.0, 5, 1)
    res = cluster_bootstrap_accuracy([0], ["a"], n_boot=5, seed=0)
    assert (res.estimate, res.low, res.high) == (0.0, 0.0, 0.0)


def test_bootstrap_with_one_replicate_uses_it():
    res = cluster_bootstrap_accuracy([1, 1, 0, 1], [0, 1, 2, 3], n_boot=1, seed=3)
    assert res.n_valid == 1 and res.draws.shape == (1,)
    assert res.low == res.high == res.draws[0] and 0 <= res.low <= 1 and res.low * 4 == round(res.low * 4)


def test_bootstrap_with_no_replicates_is_nan_not_an_error():
    res = cluster_bootstrap_accuracy([1, 0], [0, 1], n_boot=0, seed=0)
    assert math.isnan(res.low) and math.isnan(res.high) and res.n_valid == 0 and res.estimate == 0.5
    d = res.to_dict()
    assert d["ci_low"] is None and d["ci_high"] is None and d["n_valid"] == 0


def test_gap_accepts_zero_one_group_flags():
    # the group given as 0/1 integers, not booleans: rows 0-2 are group a (all right), rows 3-5 group b (1 of 3)
    res = cluster_bootstrap_gap([1, 1, 1, 0, 0, 1], [1, 1, 1, 0, 0, 0], np.arange(6), n_boot=200, seed=0)
    assert res.estimate == pytest.approx(1.0 - 1 / 3)
    assert res.method.startswith("cluster bootstrap stratified")
    assert (res.draws <= 1.0).all() and (res.draws >= 0.0).all()  # a is always 1; b is 0, 1/3, 2/3 or 1


def test_gap_is_seeded():
    args = ([1, 0, 1, 1, 0, 0], [True, True, True, False, False, False], np.arange(6))
    a = cluster_bootstrap_gap(*args, n_boot=200, seed=4)
    b = cluster_bootstrap_gap(*args, n_boot=200, seed=4)
    c = cluster_bootstrap_gap(*args, n_boot=200, seed=5)
    assert np.array_equal(a.draws, b.draws) and not np.array_equal(a.draws, c.draws)


def test_gap_clusters_spanning_groups_with_every_b_row_wrong_still_span():
    # each cluster holds an a-row and a b-row; the b-rows are all wrong (k_b = 0 everywhere)
    res = cluster_bootstrap_gap([1, 0, 0, 0], [True, False, True, False], [0, 0, 1, 1], n_boot=300, seed=0)
    assert res.method == "cluster bootstrap (clusters span both groups), percentile"
    assert res.n_valid == 300  # every replicate holds both groups
    assert set(np.round(res.draws, 12)) <= {0.0, 0.5, 1.0}


def test_missing_values_from_json_nulls_are_nan():
    """Columns read back from metrics.json hold None where a number was n/a (object arrays)."""
    acc = np.array([0.5, None], dtype=object)
    out = chance_corrected(acc, 0.25)
    assert out[0] == pytest.approx(1 / 3) and math.isnan(out[1])
    out = chance_corrected(0.5, np.array([0.25, None], dtype=object))
    assert out[0] == pytest.approx(1 / 3) and math.isnan(out[1])
    lo, hi = wilson_interval(np.array([3, None], dtype=object), np.array([10, 10], dtype=object))
    assert lo[0] == pytest.approx(proportion_confint(3, 10, method="wilson")[0]) and math.isnan(lo[1])
    lo, hi = wilson_interval(np.array([3, 3], dtype=object), np.array([10, None], dtype=object))
    assert hi[0] == pytest.approx(proportion_confint(3, 10, method="wilson")[1]) and math.isnan(hi[1])
    rej, adj = holm(np.array([0.01, None, 0.04], dtype=object))
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.04)
    assert rej.tolist() == [True, False, True]


def test_option_counts_as_text_are_read_as_numbers():
    assert chance_level(np.array(["2", "4"])) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="got 0"):
        chance_level(np.array(["0", "4"]))


def test_wilson_scalar_k_against_vector_n():
    lo, hi = wilson_interval(3, np.array([10, 20, 0]))
    assert lo.shape == (3,)
    assert lo[0] == pytest.approx(proportion_confint(3, 10, method="wilson")[0])
    assert hi[1] == pytest.approx(proportion_confint(3, 20, method="wilson")[1])
    assert np.isnan(lo[2])


def test_empty_cells_and_impossible_chance_raise_no_numpy_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(wilson_interval(0, 0)[0])
        assert np.isnan(wilson_interval(np.array([0, 1]), np.array([0, 2]))[0][0])
        assert math.isnan(chance_corrected(1.0, 1.0))  # 0 / 0
        assert math.isnan(chance_corrected(0.5, 1.0))  # x / 0
        # replicates that miss a group divide 0 by 0
        res = cluster_bootstrap_gap([1, 0, 0, 1], [True, False, True, False], [0, 1, 2, 2], n_boot=400, seed=1)
        assert res.n_valid < 400
