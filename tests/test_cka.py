"""CKA against slow, obviously-correct references: n×n Gram matrices with an explicit centering
matrix H, and the unbiased HSIC as the literal U-statistic over distinct index 4-tuples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from metaxlm.errors import UserError
from metaxlm.probe import cka
from metaxlm.probe.cka import (CKAError, MinibatchCKA, bootstrap_cka, bootstrap_weights, linear_cka,
                               minibatch_cka, rbf_cka, unbiased_hsic, weighted_linear_cka)


# -- references ---------------------------------------------------------------------------------

def ref_hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def ref_cka(K, L):
    return ref_hsic_biased(K, L) / np.sqrt(ref_hsic_biased(K, K) * ref_hsic_biased(L, L))


def ref_hsic1(K, L):
    """Song et al. (2012), eq. (5), with explicit n×n matrices."""
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    Lt = L - np.diag(np.diag(L))
    one = np.ones(n)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ Kt @ Lt @ one)) / (n * (n - 3))


def ref_hsic1_ustat(K, L):
    """The U-statistic itself: mean over distinct (i, j, q, r) of k_ij l_ij + k_ij l_qr − 2 k_ij l_iq."""
    n = K.shape[0]
    tot, cnt = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        tot += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q]
        cnt += 1
    return tot / cnt


def ref_cka_debiased(K, L):
    return ref_hsic1(K, L) / np.sqrt(ref_hsic1(K, K) * ref_hsic1(L, L))


def lin(X):
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


def pair(n, d1, d2, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1))
    Y = X @ rng.normal(size=(d1, d2)) + noise * rng.normal(size=(n, d2))
    return X, Y


# shapes that take the feature-space path (n > d) and the Gram path (n ≤ d)
SHAPES = [(60, 5, 7), (40, 50, 30), (9, 3, 4)]


# -- linear CKA ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d1,d2", SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_matches_gram_reference(n, d1, d2, debiased):
    X, Y = pair(n, d1, d2)
    ref = ref_cka_debiased(lin(X), lin(Y)) if debiased else ref_cka(lin(X), lin(Y))
    assert linear_cka(X, Y, debiased=debiased) == pytest.approx(ref, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("n,d1,d2", SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one(n, d1, d2, debiased):
    X, _ = pair(n, d1, d2)
    assert linear_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n,d1,d2", SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_invariances_and_symmetry(n, d1, d2, debiased):
    X, Y = pair(n, d1, d2, seed=1)
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.normal(size=(d1, d1)))
    base = linear_cka(X, Y, debiased=debiased)
    assert linear_cka(Y, X, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(X @ Q, Y, debiased=debiased) == pytest.approx(base, rel=1e-9)
    assert linear_cka(3.7 * X, 0.01 * Y, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(X + 5.0, Y - 2.0, debiased=debiased) == pytest.approx(base, rel=1e-9)


def test_unrelated_and_identical_extremes():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    assert 0 <= linear_cka(X, Y) < 0.05
    assert abs(linear_cka(X, Y, debiased=True)) < 0.01  # the biased estimate is inflated, the debiased one is not


def test_unbiased_hsic_is_the_u_statistic():
    X, Y = pair(7, 3, 2, seed=4)
    K, L = lin(X), lin(Y)
    assert ref_hsic1(K, L) == pytest.approx(ref_hsic1_ustat(K, L), rel=1e-10)  # the formula is the U-statistic
    assert unbiased_hsic(X, Y) == pytest.approx(ref_hsic1_ustat(K, L), rel=1e-10)
    assert unbiased_hsic(X + 3.0, Y) == pytest.approx(ref_hsic1_ustat(K, L), rel=1e-9)  # translation invariant


def test_float32_input_accumulates_in_float64(monkeypatch):
    rng = np.random.default_rng(5)
    X = (1000.0 + rng.normal(size=(3000, 16))).astype(np.float32)  # large offset: float32 sums would lose it
    Y = (X[:, :8] * 2 + rng.normal(size=(3000, 8))).astype(np.float32)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    Xc, Yc = X64 - X64.mean(0), Y64 - Y64.mean(0)
    ref = np.sum((Xc.T @ Yc) ** 2) / np.sqrt(np.sum((Xc.T @ Xc) ** 2) * np.sum((Yc.T @ Yc) ** 2))
    assert linear_cka(X, Y) == pytest.approx(ref, rel=1e-12)
    monkeypatch.setattr(cka, "_CHUNK", 7)  # many float64 chunks give the same numbers
    assert linear_cka(X, Y) == pytest.approx(ref, rel=1e-12)
    full = linear_cka(X64, Y64, debiased=True)
    assert linear_cka(X, Y, debiased=True) == pytest.approx(full, rel=1e-12)


# -- minibatch -------------------------------------------------------------------------------------

def test_minibatch_one_batch_equals_full_debiased():
    X, Y = pair(50, 6, 4, seed=6)
    full = linear_cka(X, Y, debiased=True)
    assert minibatch_cka(X, Y, batch_size=50) == pytest.approx(full, rel=1e-12)
    assert minibatch_cka(X, Y, batch_size=10_000) == pytest.approx(full, rel=1e-12)


def test_minibatch_averages_hsic_over_batches():
    X, Y = pair(100, 6, 4, seed=7)
    parts = [(X[i:i + 25], Y[i:i + 25]) for i in range(0, 100, 25)]
    xy = np.mean([ref_hsic1(lin(a), lin(b)) for a, b in parts])
    xx = np.mean([ref_hsic1(lin(a), lin(a)) for a, b in parts])
    yy = np.mean([ref_hsic1(lin(b), lin(b)) for a, b in parts])
    assert minibatch_cka(X, Y, batch_size=25) == pytest.approx(xy / np.sqrt(xx * yy), rel=1e-10)
    acc = MinibatchCKA()
    for a, b in parts:
        acc.update(a, b)
    assert acc.value() == pytest.approx(xy / np.sqrt(xx * yy), rel=1e-10) and acc.n == 100
    # 100 rows in batches of ≥ 30: three batches of 34, 33, 33 rows (no short remainder batch)
    acc = MinibatchCKA()
    for rows in ((0, 34), (34, 67), (67, 100)):
        acc.update(X[slice(*rows)], Y[slice(*rows)])
    assert minibatch_cka(X, Y, batch_size=30) == pytest.approx(acc.value(), rel=1e-12)


# -- bootstrap -------------------------------------------------------------------------------------

@pytest.mark.parametrize("debiased", [False, True])
def test_weighted_cka_equals_explicit_resamples(debiased):
    X, Y = pair(30, 4, 5, seed=8)
    rng = np.random.default_rng(9)
    idx = [rng.integers(0, 30, size=30) for _ in range(5)]
    W = np.stack([np.bincount(i, minlength=30) for i in idx], axis=1).astype(float)
    got = weighted_linear_cka(X, Y, W, debiased=debiased, block=7)
    want = [linear_cka(X[i], Y[i], debiased=debiased) for i in idx]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # all-ones weights are the sample itself
    assert weighted_linear_cka(X, Y, np.ones((30, 1)), debiased=debiased)[0] == pytest.approx(
        linear_cka(X, Y, debiased=debiased), rel=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_bootstrap_interval_is_seeded_and_basic(debiased):
    X, Y = pair(200, 6, 6, seed=10, noise=2.0)
    a = bootstrap_cka(X, Y, n_boot=300, seed=1, debiased=debiased)
    b = bootstrap_cka(X, Y, n_boot=300, seed=1, debiased=debiased)
    c = bootstrap_cka(X, Y, n_boot=300, seed=2, debiased=debiased)
    assert a == b and a["ci95"] != c["ci95"]
    assert a["value"] == linear_cka(X, Y, debiased=debiased) and a["n_boot"] == 300 and a["method"] == "basic"
    W = bootstrap_weights(200, 300, 1)
    assert W.shape == (200, 300) and np.all(W.sum(0) == 200)
    boots = [linear_cka(X[np.repeat(np.arange(200), W[:, k].astype(int))], Y[np.repeat(np.arange(200),
             W[:, k].astype(int))], debiased=debiased) for k in range(300)]
    q_lo, q_hi = np.quantile(boots, [0.025, 0.975])
    c0 = linear_cka(X, Y)  # the bootstrap world's truth: CKA of the empirical distribution
    assert a["ci95"] == pytest.approx([a["value"] - (q_hi - c0), a["value"] - (q_lo - c0)], rel=1e-9)
    lo, hi = a["ci95"]
    assert lo < a["value"] < hi and 0 < hi - lo < 0.5


@pytest.mark.slow
def test_bootstrap_interval_covers_the_population_value():
    """Coverage of the 95% interval for a model whose population CKA is known in closed form."""
    rng = np.random.default_rng(1)
    n, d, k = 150, 32, 8
    A, B = rng.normal(size=(k, d)), rng.normal(size=(k, d))
    cxx, cyy, cxy = A.T @ A + 4 * np.eye(d), B.T @ B + 4 * np.eye(d), A.T @ B
    true = np.sum(cxy ** 2) / np.sqrt(np.sum(cxx ** 2) * np.sum(cyy ** 2))
    reps = 150
    for debiased in (False, True):
        hits = 0
        for rep in range(reps):
            Z = rng.normal(size=(n, k))
            X, Y = Z @ A + 2 * rng.normal(size=(n, d)), Z @ B + 2 * rng.normal(size=(n, d))
            lo, hi = bootstrap_cka(X, Y, n_boot=200, seed=rep, debiased=debiased)["ci95"]
            hits += lo <= true <= hi
        assert hits / reps >= 0.85, (debiased, hits / reps)


# -- RBF -------------------------------------------------------------------------------------------

def ref_rbf(X, sigma):
    """Kornblith et al.'s reference ``gram_rbf(x, threshold=sigma)`` (the CKA paper's code), literally:
    the bandwidth is the median of the WHOLE squared-distance matrix, zero diagonal included."""
    dot_products = X.dot(X.T)
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    sq_median_distance = np.median(sq_distances)
    return np.exp(-sq_distances / (2 * sigma ** 2 * sq_median_distance))


def offdiag_rbf(X, sigma):
    """The rule rbf_cka used before: sigma × the median of the off-diagonal distances (not squared)."""
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    med = np.median(np.sqrt(d2[np.triu_indices(len(X), k=1)]))
    return np.exp(-d2 / (2 * (sigma * med) ** 2))


def test_rbf_bandwidth_is_the_reference_rule_on_a_demo_array():
    """On a 6-point demo pair, rbf_cka equals Kornblith's reference value (0.843949…); the off-diagonal
    median rule (0.818271…) would differ: the reference's median counts the n zero self-distances."""
    X = np.array([[0., 0.], [1., 0.], [0., 2.], [3., 1.], [1., 1.], [2., 3.]])
    Y = np.array([[0., 1.], [1., 1.], [1., 2.], [2., 0.], [0., 0.], [3., 3.]])
    reference = ref_cka(ref_rbf(X, 0.8), ref_rbf(Y, 0.8))
    ours = rbf_cka(X, Y)
    offdiag = ref_cka(offdiag_rbf(X, 0.8), offdiag_rbf(Y, 0.8))
    assert reference == pytest.approx(0.8439493905, abs=1e-9)
    assert ours == pytest.approx(reference, rel=1e-12)
    assert offdiag == pytest.approx(0.8182714668, abs=1e-9) and abs(ours - offdiag) > 0.02


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_cka(debiased):
    X, Y = pair(40, 5, 3, seed=11)
    K, L = ref_rbf(X, 0.8), ref_rbf(Y, 0.8)
    ref = ref_cka_debiased(K, L) if debiased else ref_cka(K, L)
    assert rbf_cka(X, Y, debiased=debiased) == pytest.approx(ref, rel=1e-9)
    assert rbf_cka(Y, X, debiased=debiased) == pytest.approx(ref, rel=1e-9)
    assert rbf_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))
    assert rbf_cka(2.0 * X @ Q, Y, debiased=debiased) == pytest.approx(ref, rel=1e-9)


# -- guards ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, needle", [
    (lambda: linear_cka(np.ones((3, 2)) * np.arange(3)[:, None], np.arange(6.).reshape(3, 2), debiased=True),
     "at least 4 examples, got 3"),
    (lambda: minibatch_cka(np.arange(6.).reshape(3, 2), np.arange(6.).reshape(3, 2)), "at least 4 examples"),
    (lambda: minibatch_cka(*pair(20, 2, 2), batch_size=2), "batch_size must be at least 4"),
    (lambda: linear_cka(np.zeros((1, 2)), np.zeros((1, 2))), "at least 2 examples, got 1"),
    (lambda: linear_cka(*pair(5, 2, 2)[:1], pair(6, 2, 2)[1]), "same examples, got 5 and 6"),
    (lambda: linear_cka(np.ones((10, 3)), pair(10, 2, 2)[1]), "X is the same for every example"),
    (lambda: linear_cka(pair(10, 2, 2)[0], np.full((10, 2), np.nan)), "NaN"),
    (lambda: linear_cka(np.arange(5.), np.arange(5.)), "2-D array"),
    # n = 4 with one outlier: HSIC₁(X, X) = 0, so the debiased ratio would be 0/0
    (lambda: linear_cka(np.array([[0.], [0.], [0.], [1.]]), pair(4, 2, 2)[1], debiased=True),
     "unbiased HSIC of X with itself"),
    (lambda: bootstrap_weights(10, 0, 0), "at least 1"),
])
def test_guards(call, needle):
    with pytest.raises(CKAError, match=needle) as e:
        call()
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("n,d", [(30, 4), (12, 20)])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrix_equals_pairwise(n, d, debiased):
    rng = np.random.default_rng(12)
    Xs = [rng.normal(size=(n, d)) for _ in range(3)]
    Ys = [Xs[0] @ rng.normal(size=(d, d + 1)) + rng.normal(size=(n, d + 1)) for _ in range(2)]
    M = cka.cka_matrix(Xs, np.stack(Ys), debiased=debiased)
    assert M.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert M[i, j] == pytest.approx(linear_cka(Xs[i], Ys[j], debiased=debiased), rel=1e-10)
    assert np.diag(cka.cka_matrix(Xs, Xs, debiased=debiased)) == pytest.approx(1.0, abs=1e-12)
