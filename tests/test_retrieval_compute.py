"""Retrieval and mining math against slow, obviously-correct NumPy references written here."""

from __future__ import annotations

import numpy as np
import pytest

from metaxlm.eval import retrieval as R


def _unit(a):
    a = np.asarray(a, np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _pairs_data(n=60, m=70, d=16, seed=0, noise=0.6):
    """x: n sentences; y: m sentences of which the first n//2 translate x[:n//2] (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d))
    y[: n // 2] = x[: n // 2] + noise * rng.standard_normal((n // 2, d))
    return x.astype(np.float32), y.astype(np.float32)


# -- references ---------------------------------------------------------------------------------
def ref_topk(q, db, k):
    sims = _unit(q) @ _unit(db).T
    ids = np.array([sorted(range(len(db)), key=lambda j: -sims[i, j])[:k] for i in range(len(q))])
    return np.take_along_axis(sims, ids, 1), ids


def ref_margin_score(x, y, i, j, k, margin):
    """margin(cos(x_i, y_j), mean cos of x_i to its k NN in y / 2 + mean cos of y_j to its k NN in x / 2)."""
    sims = _unit(x) @ _unit(y).T
    kx, ky = min(k, len(y)), min(k, len(x))
    a = sims[i, j]
    b = np.sort(sims[i])[::-1][:kx].mean() / 2 + np.sort(sims[:, j])[::-1][:ky].mean() / 2
    return {"ratio": a / b, "distance": a - b, "absolute": a}[margin]


def ref_mine(x, y, k, margin, retrieval):
    """Brute force: score every candidate in each direction's k NN, then link as LASER does."""
    sims = _unit(x) @ _unit(y).T
    nx, ny = sims.shape
    kx, ky = min(k, ny), min(k, nx)
    fwd = []  # (score, i, j)
    for i in range(nx):
        cands = np.argsort(-sims[i], kind="stable")[:kx]
        best = max(cands, key=lambda j: ref_margin_score(x, y, i, j, k, margin))
        fwd.append((ref_margin_score(x, y, i, best, k, margin), i, int(best)))
    bwd = []
    for j in range(ny):
        cands = np.argsort(-sims[:, j], kind="stable")[:ky]
        best = max(cands, key=lambda i: ref_margin_score(x, y, i, j, k, margin))
        bwd.append((ref_margin_score(x, y, best, j, k, margin), int(best), j))
    if retrieval == "fwd":
        out = fwd
    elif retrieval == "bwd":
        out = bwd
    elif retrieval == "intersect":
        bwd_best = {j: i for _, i, j in bwd}
        out = [(s, i, j) for s, i, j in fwd if bwd_best[j] == i]
    else:
        out, ux, uy = [], set(), set()
        for s, i, j in sorted(fwd + bwd, key=lambda t: -t[0]):
            if i not in ux and j not in uy:
                ux.add(i)
                uy.add(j)
                out.append((s, i, j))
    return {(i, j): s for s, i, j in out}


def ref_best_f1(scores, correct, n_gold):
    """Try every threshold (each distinct score, accept score >= t) and return the best F1."""
    best = 0.0
    for t in sorted(set(scores)):
        keep = [c for s, c in zip(scores, correct) if s >= t]
        tp = sum(keep)
        p = tp / len(keep) if keep else 0.0
        r = tp / n_gold
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        best = max(best, f1)
    return best


# -- tests ----------------------------------------------------------------------------------------
def test_faiss_topk_equals_numpy():
    x, y = _pairs_data(n=50, m=80, d=24, seed=1)
    sims, ids = R.knn(x, y, 5, chunk_size=7)
    rs, ri = ref_topk(x, y, 5)
    np.testing.assert_array_equal(ids, ri)
    np.testing.assert_allclose(sims, rs, atol=1e-5)
    s1, i1 = R.knn(x, y[:3], 10)  # k clipped to the database size
    assert i1.shape == (50, 3)


@pytest.mark.parametrize("tile", [7, 16, 4096])
def test_fused_both_ways_topk_equals_numpy(tile):
    x, y = _pairs_data(n=45, m=38, d=12, seed=11)
    xs, xi, ys, yi = R.knn_both(x, y, 4, 3, tile=tile)
    rs, ri = ref_topk(x, y, 4)
    np.testing.assert_array_equal(xi, ri)
    np.testing.assert_allclose(xs, rs, atol=1e-5)
    rs, ri = ref_topk(y, x, 3)
    np.testing.assert_array_equal(yi, ri)
    np.testing.assert_allclose(ys, rs, atol=1e-5)
    _, xi, _, yi = R.knn_both(x[:2], y, 4, 4, tile=tile)  # k clipped to the other side's size
    assert xi.shape == (2, 4) and yi.shape == (38, 2)


def test_ties_resolve_to_the_lowest_index_for_every_k_and_engine():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((20, 8)).astype(np.float32)
    y = np.repeat(rng.standard_normal((5, 8)).astype(np.float32), 4, axis=0)  # each vector 4 times
    ref = (_unit(x) @ _unit(y[::4]).T).argmax(1) * 4  # first copy of the best vector
    for k in (1, 3, 4, 6):
        _, fused, _, _ = R.knn_both(x, y, k, k, tile=7)
        _, flat = R.knn(x, y, k)
        np.testing.assert_array_equal(fused[:, 0], ref)
        np.testing.assert_array_equal(flat[:, 0], ref)


@pytest.mark.parametrize("engine", ["fused", "faiss"])
def test_engines_mine_the_same_pairs(engine):
    x, y = _pairs_data(n=80, m=90, d=16, seed=12)
    pairs, _ = R.compute_mined_pairs(x, y, engine=engine)
    assert set(map(tuple, pairs.tolist())) == set(ref_mine(x, y, 4, "ratio", "max"))


@pytest.mark.parametrize("margin", R.MARGINS)
def test_margin_scores_equal_brute_force(margin):
    x, y = _pairs_data(n=30, m=25, seed=2)
    c = R.compute_margin_candidates(x, y, k=4, margin=margin)
    for i in range(len(x)):
        for col, j in enumerate(c.fwd_ids[i]):
            assert c.fwd_scores[i, col] == pytest.approx(ref_margin_score(x, y, i, j, 4, margin), rel=1e-5, abs=1e-6)
    for j in range(len(y)):
        for col, i in enumerate(c.bwd_ids[j]):
            assert c.bwd_scores[j, col] == pytest.approx(ref_margin_score(x, y, i, j, 4, margin), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("retrieval", R.RETRIEVALS)
@pytest.mark.parametrize("margin", R.MARGINS)
def test_mined_pairs_equal_brute_force(retrieval, margin):
    x, y = _pairs_data(n=40, m=50, seed=3)
    pairs, scores = R.compute_mined_pairs(x, y, k=3, margin=margin, retrieval=retrieval)
    ref = ref_mine(x, y, 3, margin, retrieval)
    got = {tuple(p): s for p, s in zip(pairs.tolist(), scores.tolist())}
    assert set(got) == set(ref)
    for p, s in got.items():
        assert s == pytest.approx(ref[p], rel=1e-5, abs=1e-6)
    assert list(scores) == sorted(scores, reverse=True)
    if retrieval in ("max", "intersect"):  # one-to-one
        assert len({p[0] for p in got}) == len(got) == len({p[1] for p in got})


def test_small_pools_clip_k():
    x, y = _pairs_data(n=2, m=3, seed=4)
    pairs, _ = R.compute_mined_pairs(x, y, k=4)
    assert set(map(tuple, pairs.tolist())) == set(ref_mine(x, y, 4, "ratio", "max"))


def test_threshold_search_equals_exhaustive():
    rng = np.random.default_rng(5)
    for trial in range(30):
        n = int(rng.integers(1, 40))
        scores = np.round(rng.random(n), 1 if trial % 2 else 6)  # with and without ties
        correct = rng.random(n) < 0.5
        n_gold = int(correct.sum() + rng.integers(0, 5)) or 1
        best = R.compute_best_threshold(scores, correct, n_gold)
        assert best["f1"] == pytest.approx(ref_best_f1(scores.tolist(), correct.tolist(), n_gold))
        if best["f1"] > 0:
            again = R.compute_prf(scores, correct, n_gold, best["threshold"])
            assert again["f1"] == pytest.approx(best["f1"])
            assert again["precision"] == pytest.approx(best["precision"])
    none = R.compute_best_threshold(np.array([0.5]), np.array([False]), 3)
    assert none["f1"] == 0 and none["threshold"] == float("inf")


def test_average_precision_matches_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(6)
    for trial in range(20):
        n = int(rng.integers(2, 50))
        scores = np.round(rng.random(n), 1 if trial % 2 else 6)
        correct = rng.random(n) < 0.4
        correct[0] = True
        missed = int(rng.integers(0, 4))
        n_gold = int(correct.sum()) + missed
        ref = average_precision_score(correct, scores) * correct.sum() / n_gold
        assert R.compute_average_precision(scores, correct, n_gold) == pytest.approx(ref)


def test_dedup_expand():
    firsts, groups = R.dedup_texts(["a", "b", "a", "c", "b"])
    assert firsts == [0, 1, 3] and groups == [[0, 2], [1, 4], [3]]
    pairs, scores = R.expand_dedup_pairs(np.array([[0, 1]]), np.array([2.0]), groups, [[0], [1, 2]])
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (2, 1), (2, 2)]
    assert scores.tolist() == [2.0] * 4


def test_tatoeba_identical_embeddings_score_one():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((200, 32)).astype(np.float32)
    res = R.compute_tatoeba(x, x.copy())
    for key in ("acc_cosine_xx2en", "acc_cosine_en2xx", "acc_cosine", "acc_margin_xx2en", "acc_margin_en2xx",
                "acc_dedup_xx2en", "acc_dedup_en2xx"):
        assert res[key] == 1.0, key
    assert res["xsim_error"] == 0.0 and res["chance"] == pytest.approx(1 / 200) and res["n"] == 200


def test_tatoeba_shuffled_embeddings_are_chance_level():
    rng = np.random.default_rng(8)
    n = 100
    x = rng.standard_normal((n, 32)).astype(np.float32)
    accs = []
    for _ in range(200):
        perm = rng.permutation(n)
        res = R.compute_tatoeba(x, x[perm])
        assert res["acc_cosine_xx2en"] == pytest.approx((perm == np.arange(n)).mean())  # only fixed points hit
        accs.append(res["acc_cosine_xx2en"])
    assert np.mean(accs) == pytest.approx(1 / n, abs=0.5 / n)  # expected fixed points of a permutation: 1


def test_weighted_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(10)
    for n in (1, 5, 30):
        for _ in range(10):
            pred = np.where(rng.random(n) < 0.4, np.arange(n), rng.integers(0, n, n))
            ref = f1_score(np.arange(n), pred, average="weighted", zero_division=0)
            assert R.weighted_f1(pred) == pytest.approx(ref)


def test_tatoeba_matches_reference_and_duplicates():
    x, y = _pairs_data(n=40, m=40, seed=9, noise=1.2)
    res = R.compute_tatoeba(x, y, k=4)
    sims = _unit(x) @ _unit(y).T
    a = np.arange(40)
    assert res["acc_cosine_xx2en"] == pytest.approx((sims.argmax(1) == a).mean())
    assert res["acc_cosine_en2xx"] == pytest.approx((sims.argmax(0) == a).mean())
    margin_pred = [max(np.argsort(-sims[i])[:4], key=lambda j: ref_margin_score(x, y, i, j, 4, "ratio"))
                   for i in range(40)]
    assert res["acc_margin_xx2en"] == pytest.approx((np.array(margin_pred) == a).mean())
    # duplicates: make English line 1 a copy of line 0 (same text and same vector)
    y2 = y.copy()
    y2[1] = y2[0]
    texts = [f"s{i}" for i in range(40)]
    texts[1] = texts[0]
    plain = R.compute_tatoeba(x, y2)
    aware = R.compute_tatoeba(x, y2, y_texts=texts, x_texts=[f"x{i}" for i in range(40)])
    assert aware["acc_dedup_xx2en"] >= plain["acc_dedup_xx2en"]
    pred = (_unit(x) @ _unit(y2).T).argmax(1)
    ref = np.mean([p == i or texts[p] == texts[i] for i, p in enumerate(pred)])
    assert aware["acc_dedup_xx2en"] == pytest.approx(ref)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown margin"):
        R.compute_margin_candidates(np.ones((2, 2)), np.ones((2, 2)), margin="cosine")
    with pytest.raises(ValueError, match="same positive number"):
        R.compute_tatoeba(np.ones((2, 2)), np.ones((3, 2)))


def test_benchmark_script_mines_identical_pairs(capsys):
    """benchmarks/bench_mining.py at a small size: same pairs as the LASER-style baseline."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "bench_mining.py"
    spec = importlib.util.spec_from_file_location("bench_mining", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--n", "1500", "--d", "64"]) == 0
    out = capsys.readouterr().out
    assert "identical mined pairs: True" in out and "speed-up" in out
