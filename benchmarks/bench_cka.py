"""Linear CKA: metaxlm's feature-space form vs the Gram-matrix (n×n) formulation, in one run.

    python benchmarks/bench_cka.py [--n 10000] [--d 768] [--repeats 3]

Both compute the same float64 number from the same float32 inputs (n sentences × d features, two
correlated representations). The Gram reference is the usual implementation of Kornblith et al.
(2019): K = XXᵀ, L = YYᵀ, centered by row/column means (O(n²), no n×n centering-matrix products),
HSIC = ⟨K, L⟩. A second reference is the textbook form HSIC = tr(KHLH)/(n−1)² with the explicit
centering matrix H = I − 11ᵀ/n (H·K·H as two n×n matrix products, as in widely copied CKA code);
``--textbook`` times it too (one repeat: it is O(n³)). Prints the best-of-``repeats`` wall and CPU time of each (CPU time of this process,
all BLAS threads: steadier than wall time on a shared machine), the speed ratio (target ≥ 50×),
the multiply-add ratio that bounds it (n/(2d): both are BLAS-bound), and the peak memory each
allocates (tracemalloc, which NumPy reports its buffers to), measured in a separate untimed call.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from metaxlm.probe.cka import linear_cka  # noqa: E402


def gram_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Reference: n×n Gram matrices, centered, Frobenius inner products (all float64)."""
    def centered_gram(A):
        A = A.astype(np.float64)
        K = A @ A.T
        means = K.mean(0)
        K -= means[None, :]
        K -= means[:, None]
        K += means.mean()
        return K

    K = centered_gram(X)
    L = centered_gram(Y)
    kl = float(np.einsum("ij,ij->", K, L))
    kk = float(np.einsum("ij,ij->", K, K))
    ll = float(np.einsum("ij,ij->", L, L))
    return kl / np.sqrt(kk * ll)


def textbook_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Reference: centering matrix H = I − 11ᵀ/n, HKH by matrix products, CKA = HSIC(K,L)/√(HSIC(K,K)HSIC(L,L))."""
    n = X.shape[0]
    H = np.eye(n) - np.full((n, n), 1.0 / n)

    def centered(A):
        A = A.astype(np.float64)
        return H @ (A @ A.T) @ H

    Kc = centered(X)
    Lc = centered(Y)
    kl = float(np.trace(Kc @ Lc)) if n <= 2000 else float(np.sum(Kc * Lc.T))  # tr(AB) = Σ A∘Bᵀ
    return kl / np.sqrt(float(np.sum(Kc * Kc)) * float(np.sum(Lc * Lc)))


def best_time(fn, repeats: int) -> tuple[float, float, float]:
    """(best wall seconds, best CPU seconds of this process — all BLAS threads —, value)."""
    walls, cpus, value = [], [], None
    for _ in range(repeats):
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        value = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), value


def peak_mib(fn) -> float:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--textbook", action="store_true",
                    help="also time the textbook centering-matrix (H·K·H) Gram form, once (O(n³))")
    ap.add_argument("--skip-gram", action="store_true",
                    help="time only the feature-space form (for n whose n×n matrices do not fit)")
    args = ap.parse_args()
    n, d = args.n, args.d
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (0.5 * X @ rng.normal(size=(d, d)).astype(np.float32) / np.sqrt(d)
         + rng.normal(size=(n, d)).astype(np.float32))
    input_mib = (X.nbytes + Y.nbytes) / 2**20
    print(f"n = {n}, d = {d}, float32 inputs {input_mib:.0f} MiB, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs")

    t_feat, c_feat, v_feat = best_time(lambda: linear_cka(X, Y), args.repeats)
    t_deb, c_deb, _ = best_time(lambda: linear_cka(X, Y, debiased=True), args.repeats)
    m_feat = peak_mib(lambda: linear_cka(X, Y))
    print(f"feature-space linear_cka : wall {t_feat:8.3f} s  cpu {c_feat:8.3f} s  peak {m_feat:8.1f} MiB  "
          f"CKA {v_feat:.12f}")
    print(f"  (debiased)             : wall {t_deb:8.3f} s  cpu {c_deb:8.3f} s")
    if args.skip_gram:
        return
    t_gram, c_gram, v_gram = best_time(lambda: gram_cka(X, Y), args.repeats)
    m_gram = peak_mib(lambda: gram_cka(X, Y))
    print(f"Gram-matrix (n×n)        : wall {t_gram:8.3f} s  cpu {c_gram:8.3f} s  peak {m_gram:8.1f} MiB  "
          f"CKA {v_gram:.12f}")
    print(f"|difference|             : {abs(v_feat - v_gram):.2e}")
    print(f"speed ratio (Gram / feature-space): wall {t_gram / t_feat:.1f}×, cpu {c_gram / c_feat:.1f}×   "
          "(target ≥ 50×)")
    print(f"multiply-adds: Gram n²·d = {n * n * d:.2e} (two n×n syrk), feature-space 2·n·d² = "
          f"{2 * n * d * d:.2e} (two d×d syrk + one gemm): ratio n/(2d) = {n / (2 * d):.1f}")
    print(f"memory ratio (Gram / feature-space): {m_gram / m_feat:.1f}×; one n×n float64 matrix is "
          f"{n * n * 8 / 2**20:.0f} MiB, one d×d is {d * d * 8 / 2**20:.1f} MiB")
    if args.textbook:
        t_tb, c_tb, v_tb = best_time(lambda: textbook_cka(X, Y), 1)
        print(f"textbook H·K·H Gram      : wall {t_tb:8.3f} s  cpu {c_tb:8.3f} s  CKA {v_tb:.12f}  "
              f"|difference| {abs(v_feat - v_tb):.2e}")
        print(f"speed ratio (textbook Gram / feature-space): wall {t_tb / t_feat:.1f}×, cpu {c_tb / c_feat:.1f}×   "
              "(target ≥ 50×)")


if __name__ == "__main__":
    main()
