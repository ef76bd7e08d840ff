"""metaxlm.stats: exact t quantiles, per-item metrics and the paired hierarchical bootstrap, checked
against scipy and against exact enumeration of every resample on tiny cases."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from metaxlm import stats


def test_t_quantile_matches_scipy_for_1_to_200_degrees_of_freedom():
    from scipy.stats import t

    for dof in range(1, 201):
        assert stats.t_quantile_975(dof) == pytest.approx(float(t.ppf(0.975, dof)), rel=1e-12), dof
    assert stats.t_quantile_975(31) == pytest.approx(2.0395, abs=1e-4)  # no jump to 1.96 after 30
    with pytest.raises(ValueError):
        stats.t_quantile_975(0)


def test_summarize_uses_the_exact_quantile():
    s = stats.summarize([1.0, 2.0, 3.0])
    assert s["ci95"][1] - s["mean"] == pytest.approx(4.302652729911275 / np.sqrt(3))


ROWS = {
    "correct": [1, 0, 1, 1, 0],
    "correct_total": [[3, 4], [0, 2], [5, 5], [1, 3]],
    "tp_fp_fn": [[1, 0, 1], [0, 2, 0], [2, 1, 0], [0, 0, 0]],
}
EXPECTED = {"correct": 3 / 5, "correct_total": 9 / 14, "tp_fp_fn": 2 * 3 / (2 * 3 + 3 + 1)}


@pytest.mark.parametrize("stat", stats.ITEM_STATS)
def test_item_metric(stat):
    assert stats.item_metric(stat, ROWS[stat]) == pytest.approx(EXPECTED[stat])
    assert stats.item_metric(stat, []) == 0.0


def test_item_metric_agrees_with_the_evaluation_side():
    scores = pytest.importorskip("metaxlm.eval.scores")
    if not hasattr(scores, "metric_from_items"):
        pytest.skip("metaxlm.eval.scores.metric_from_items not there yet")
    rng = np.random.default_rng(0)
    for stat in stats.ITEM_STATS:
        for _ in range(20):
            if stat == "correct":
                rows = rng.integers(0, 2, 30).tolist()
            elif stat == "correct_total":
                n = rng.integers(1, 20, 30)
                rows = np.stack([rng.integers(0, n + 1), n], axis=1).tolist()
            else:
                rows = rng.integers(0, 4, (30, 3)).tolist()
            assert stats.item_metric(stat, rows) == pytest.approx(scores.metric_from_items(stat, rows), abs=1e-12)


@pytest.mark.parametrize("stat, rows", [("correct", [0, 2]), ("correct_total", [[3, 2]]), ("tp_fp_fn", [[1, 2]]),
                                        ("f1", [1])])
def test_item_ratios_refuses_malformed_rows(stat, rows):
    with pytest.raises(ValueError):
        stats.item_ratios(stat, rows)


def _one_run(stat: str, rows) -> list:
    return [[{"en": stats.item_ratios(stat, rows)}]]  # one pretraining seed, one fine-tuning run


def _exact_delta_distribution(stat, rows_a, rows_b) -> np.ndarray:
    """The difference b − a for every one of the n^n equally likely item resamples."""
    ra, rb = stats.item_ratios(stat, rows_a), stats.item_ratios(stat, rows_b)
    n = len(ra)
    out = []
    for idx in itertools.product(range(n), repeat=n):
        idx = list(idx)
        out.append(stats.ratio_metric(rb[idx].sum(0)) - stats.ratio_metric(ra[idx].sum(0)))
    return np.array(out)


@pytest.mark.parametrize("stat, rows_a, rows_b", [
    ("correct", [1, 0, 0, 1], [1, 1, 0, 1]),
    ("correct_total", [[2, 3], [0, 1], [4, 4], [1, 5]], [[3, 3], [1, 1], [2, 4], [1, 5]]),
    ("tp_fp_fn", [[1, 1, 0], [0, 0, 2], [2, 0, 1], [0, 1, 0]], [[2, 0, 0], [1, 0, 1], [2, 1, 0], [0, 0, 0]]),
])
def test_paired_bootstrap_matches_exact_enumeration_of_all_resamples(stat, rows_a, rows_b):
    exact = _exact_delta_distribution(stat, rows_a, rows_b)  # 4^4 = 256 resamples
    draws = stats.bootstrap_languages({"a": _one_run(stat, rows_a), "b": _one_run(stat, rows_b)},
                                      resamples=40_000, seed=1)
    delta = draws["b"]["en"] - draws["a"]["en"]
    assert delta.mean() == pytest.approx(exact.mean(), abs=0.004)
    assert delta.std() == pytest.approx(exact.std(), rel=0.02)
    # the distribution itself: every value's frequency (the deltas take few distinct values)
    values, counts = np.unique(np.round(exact, 9), return_counts=True)
    got = {v: c for v, c in zip(*np.unique(np.round(delta, 9), return_counts=True))}
    assert set(got) <= set(values)
    for v, c in zip(values, counts):
        assert got.get(v, 0) / len(delta) == pytest.approx(c / len(exact), abs=0.01), v
    lo, hi = stats.percentile_interval(delta)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(exact, [0.025, 0.975])), abs=0.1)


def test_hierarchical_bootstrap_matches_exact_enumeration_over_seeds_and_items():
    """Two fine-tuning runs per model, 3 items: every resample of items (3^3) × fine-tuning runs of a
    (2^2) × of b (2^2) is equally likely; the bootstrap must reproduce that distribution."""
    a_runs = [np.array(r, float) for r in ([1, 0, 1], [0, 0, 1])]
    b_runs = [np.array(r, float) for r in ([1, 1, 1], [1, 0, 0])]

    def metric(run, idx):
        return run[list(idx)].mean()

    exact = []
    for idx in itertools.product(range(3), repeat=3):
        for fa in itertools.product(range(2), repeat=2):
            for fb in itertools.product(range(2), repeat=2):
                ma = np.mean([metric(a_runs[f], idx) for f in fa])
                mb = np.mean([metric(b_runs[f], idx) for f in fb])
                exact.append(mb - ma)
    exact = np.array(exact)
    models = {name: [[{"en": stats.item_ratios("correct", r)} for r in runs]]
              for name, runs in (("a", a_runs), ("b", b_runs))}
    draws = stats.bootstrap_languages(models, resamples=40_000, seed=3)
    delta = draws["b"]["en"] - draws["a"]["en"]
    assert delta.mean() == pytest.approx(exact.mean(), abs=0.005)
    assert delta.std() == pytest.approx(exact.std(), rel=0.02)
    for q in (0.025, 0.25, 0.5, 0.75, 0.975):
        assert np.quantile(delta, q) == pytest.approx(np.quantile(exact, q), abs=0.05), q


def test_run_weights_follow_the_two_seed_levels():
    rng = np.random.default_rng(0)
    w = stats.run_weights([1, 1], 40_000, rng)  # two pretraining seeds, one run each
    assert np.allclose(w.sum(1), 1)
    values, counts = np.unique(w[:, 0], return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    assert (counts / len(w)).tolist() == pytest.approx([0.25, 0.5, 0.25], abs=0.01)
    w = stats.run_weights([2, 3], 20_000, rng)  # then fine-tuning runs within each drawn seed
    assert np.allclose(w.sum(1), 1)
    assert w.mean(0) == pytest.approx([1 / 4, 1 / 4, 1 / 6, 1 / 6, 1 / 6], abs=0.01)  # = the recorded mean
    assert np.allclose(stats.run_weights([1], 5, rng), 1.0)  # nothing to resample


def _random_models(n_models=6, langs=8, n=1000, ft=3, pt=1, seed=0):
    rng = np.random.default_rng(seed)
    difficulty = {f"l{i}": rng.random(n) for i in range(langs)}
    models = {}
    for m in range(n_models):
        skill = 0.3 + 0.05 * m
        models[f"m{m}"] = [[{lg: stats.item_ratios("correct", (rng.random(n) * 0.5 + d * 0.5 < skill).astype(int))
                             for lg, d in difficulty.items()} for _ in range(ft)] for _ in range(pt)]
    return models


def test_bootstrap_is_seeded_and_pairing_narrows_the_interval():
    models = _random_models(n_models=2, langs=2, n=300)
    one = stats.bootstrap_languages(models, resamples=500, seed=7)
    two = stats.bootstrap_languages(models, resamples=500, seed=7)
    other = stats.bootstrap_languages(models, resamples=500, seed=8)
    for m in models:
        for lg in one[m]:
            assert np.array_equal(one[m][lg], two[m][lg])
    assert not np.array_equal(one["m0"]["l0"], other["m0"]["l0"])
    # the same models bootstrapped separately (unpaired: different item resamples) give a wider interval
    paired = one["m1"]["l0"] - one["m0"]["l0"]
    apart = stats.bootstrap_languages({"m1": models["m1"]}, resamples=500, seed=7)["m1"]["l0"] - \
        stats.bootstrap_languages({"m0": models["m0"]}, resamples=500, seed=99)["m0"]["l0"]
    assert paired.std() < apart.std()


def test_bootstrap_refuses_runs_with_different_item_counts():
    models = {"a": [[{"en": stats.item_ratios("correct", [1, 0])}]], "b": [[{"en": stats.item_ratios("correct", [1])}]]}
    with pytest.raises(ValueError, match="different numbers of items"):
        stats.bootstrap_languages(models, resamples=10)


def test_bootstrap_is_fast_at_report_scale():
    """8 languages × 1,000 items × 3 fine-tuning seeds × 6 models, 2,000 resamples: seconds."""
    models = _random_models()
    t0 = time.perf_counter()
    draws = stats.bootstrap_languages(models, resamples=2000, seed=0)
    seconds = time.perf_counter() - t0
    assert set(draws) == set(models) and all(len(d) == 8 for d in draws.values())
    assert seconds < 30, seconds  # about 1-2 s on a quiet 2-core machine
