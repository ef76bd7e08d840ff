"""Mining benchmark: metaxlm's margin mining versus a straightforward LASER-style implementation.

Both mine the same synthetic bitext (``--n`` sentences per side, ``--d`` dimensions, a third of the
x side with a noisy translation hidden in y) with ratio margin, k = 4, retrieval ``max``. The
baseline is written out below as LASER's ``mine_bitexts.py`` does it: one faiss ``IndexFlatIP`` per
direction over the whole array, a Python double loop scoring the candidates, and greedy linking with
Python sets. Prints both times (wall and CPU), their ratios and whether the mined pairs are
identical. On a shared machine CPU time is the steadier comparison; ``--repeat`` alternates runs.

    python benchmarks/bench_mining.py                 # 50k x 50k, d = 768 (the issue's setting)
    python benchmarks/bench_mining.py --n 10000       # smaller, for a quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


# -- baseline: LASER mine_bitexts.py, written out ----------------------------------------------------
def laser_knn(x, y, k):
    import faiss

    idx = faiss.IndexFlatIP(x.shape[1])
    idx.add(y)
    return idx.search(x, k)


def laser_score(x, y, fwd_mean, bwd_mean, margin):
    return margin(x.dot(y), (fwd_mean + bwd_mean) / 2)


def laser_score_candidates(x, y, candidate_inds, fwd_mean, bwd_mean, margin):
    scores = np.zeros(candidate_inds.shape)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            k = candidate_inds[i, j]
            scores[i, j] = laser_score(x[i], y[k], fwd_mean[i], bwd_mean[k], margin)
    return scores


def laser_mine(x, y, k=4):
    """LASER's mining (ratio margin, retrieval 'max'); x, y: float32 arrays, normalised in place."""
    import faiss

    faiss.normalize_L2(x)
    faiss.normalize_L2(y)
    x2y_sim, x2y_ind = laser_knn(x, y, min(y.shape[0], k))
    x2y_mean = x2y_sim.mean(axis=1)
    y2x_sim, y2x_ind = laser_knn(y, x, min(x.shape[0], k))
    y2x_mean = y2x_sim.mean(axis=1)
    margin = lambda a, b: a / b  # noqa: E731
    fwd_scores = laser_score_candidates(x, y, x2y_ind, x2y_mean, y2x_mean, margin)
    bwd_scores = laser_score_candidates(y, x, y2x_ind, y2x_mean, x2y_mean, margin)
    fwd_best = x2y_ind[np.arange(x.shape[0]), fwd_scores.argmax(axis=1)]
    bwd_best = y2x_ind[np.arange(y.shape[0]), bwd_scores.argmax(axis=1)]
    indices = np.stack((np.concatenate((np.arange(x.shape[0]), bwd_best)),
                        np.concatenate((fwd_best, np.arange(y.shape[0])))), axis=1)
    scores = np.concatenate((fwd_scores.max(axis=1), bwd_scores.max(axis=1)))
    seen_src, seen_trg = set(), set()
    out = []
    for i in np.argsort(-scores):
        src_ind, trg_ind = indices[i]
        if src_ind not in seen_src and trg_ind not in seen_trg:
            seen_src.add(src_ind)
            seen_trg.add(trg_ind)
            out.append((int(src_ind), int(trg_ind), float(scores[i])))
    return out


# -- data ---------------------------------------------------------------------------------------------
def make_data(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.standard_normal((n, d), dtype=np.float32)
    m = n // 3
    perm = rng.permutation(n)[:m]
    y[perm] = x[:m] + 0.8 * rng.standard_normal((m, d), dtype=np.float32)
    return x, y


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="sentences per side (default 50000)")
    ap.add_argument("--d", type=int, default=768, help="embedding dimension (default 768)")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (alternating); the fastest counts")
    args = ap.parse_args(argv)

    import faiss
    import torch  # noqa: F401  (imported before timing: a one-time cost, not part of mining)

    from metaxlm.eval.retrieval import compute_mined_pairs

    x, y = make_data(args.n, args.d, args.seed)
    print(f"mining {args.n:,} x {args.n:,}, d = {args.d}, ratio margin, k = {args.k}, retrieval max; "
          f"cpus {os.cpu_count()}, faiss threads {faiss.omp_get_max_threads()}, "
          f"faiss GPUs {faiss.get_num_gpus() if hasattr(faiss, 'get_num_gpus') else 0}", flush=True)

    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    t_ours = t_base = c_ours = c_base = float("inf")
    for r in range(args.repeat):
        (pairs, scores), w, c = timed(lambda: compute_mined_pairs(x, y, k=args.k, margin="ratio", retrieval="max"))
        t_ours, c_ours = min(t_ours, w), min(c_ours, c)
        print(f"metaxlm:  {w:8.2f} s wall {c:8.2f} s cpu  ({len(pairs):,} pairs)", flush=True)
        base, w, c = timed(lambda: laser_mine(x.copy(), y.copy(), k=args.k))
        t_base, c_base = min(t_base, w), min(c_base, c)
        print(f"baseline: {w:8.2f} s wall {c:8.2f} s cpu  ({len(base):,} pairs, LASER-style faiss flat)", flush=True)

    ours = {(int(a), int(b)): float(s) for (a, b), s in zip(pairs.tolist(), scores.tolist())}
    ref = {(a, b): s for a, b, s in base}
    identical = set(ours) == set(ref)
    max_diff = max((abs(ours[p] - ref[p]) for p in ours if p in ref), default=0.0)
    print(f"metaxlm {t_ours:.2f} s, baseline {t_base:.2f} s (wall, best of {args.repeat})")
    print(f"speed-up (baseline / metaxlm): {t_base / t_ours:.2f}x wall, {c_base / c_ours:.2f}x cpu time")
    print(f"identical mined pairs: {identical}  (only ours {len(set(ours) - set(ref))}, "
          f"only baseline {len(set(ref) - set(ours))}; max score difference {max_diff:.2e})")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main())
