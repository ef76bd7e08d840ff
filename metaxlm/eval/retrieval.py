"""Bitext retrieval and mining: pure functions on embedding matrices (no I/O, no models).

- :func:`knn`: exact top-k inner product with faiss ``IndexFlatIP`` on L2-normalised vectors, over
  query chunks so memory stays bounded; on a GPU index when asked (``gpu=N``, see :func:`faiss_gpu`).
- :func:`knn_both`: exact top-k in both directions from one pass over ``x yᵀ`` in tiles (faiss
  top-k heaps), half the arithmetic of two searches; the CPU engine for margin scoring (mining needs
  both directions). Equal computed similarities resolve to the lowest index in both functions (see
  :func:`_ties_by_index` for what that does not promise on duplicate rows).
- :func:`compute_margin_candidates`: margin scores as in Artetxe & Schwenk (2019), "Margin-based
  parallel corpus mining with multilingual sentence embeddings": for candidates ``y`` among the ``k``
  nearest neighbours of ``x`` (and vice versa),
  ``margin(cos(x, y), (mean_k cos(x, NN_k(x)) + mean_k cos(y, NN_k(y))) / 2)`` with ``ratio``
  (a / b), ``distance`` (a - b) or ``absolute`` (a).
- :func:`compute_mined_pairs`: ``fwd`` (best y per x), ``bwd`` (best x per y), ``intersect``
  (mutual best), ``max`` (pool both directions, sort by score, link greedily so each sentence is
  used once).
- :func:`compute_best_threshold` (maximise F1), :func:`compute_prf` (apply a threshold),
  :func:`compute_average_precision` (threshold-free).
- :func:`compute_tatoeba`: top-1 accuracies for line-aligned sets in every convention we report, in
  both directions (``xx2en``: each xx sentence queries the English ones; ``en2xx``: each English
  sentence queries the xx ones, which is what XTREME's Tatoeba code scores: it indexes the xx
  sentences and searches them with the English ones).

All scores follow LASER's arithmetic (float32 similarities and means) so mined pairs match a
straightforward LASER-style implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Margin = Literal["ratio", "distance", "absolute"]
Retrieval = Literal["fwd", "bwd", "intersect", "max"]
MARGINS = ("ratio", "distance", "absolute")
RETRIEVALS = ("fwd", "bwd", "intersect", "max")


# -- nearest neighbours ---------------------------------------------------------------------------
def l2_normalize(x: np.ndarray) -> np.ndarray:
    """A float32, C-contiguous copy of ``x`` with unit rows (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array (n, dim), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


_gpu_res: dict = {}  # faiss GPU number -> StandardGpuResources, made once per process


def import_faiss():
    """The faiss module; missing is a UserError that says which build to install."""
    try:
        import faiss
    except ImportError:
        from metaxlm.errors import UserError

        raise UserError("retrieval needs faiss, which is not installed: pip install 'metaxlm[cpu]' (faiss-cpu), "
                        "or on a CUDA machine 'metaxlm[gpu]' (faiss-gpu); install only one of the two") from None
    return faiss


def faiss_gpu(device) -> int | None:
    """The faiss GPU to search on for a model on ``device``: its CUDA number when ``device`` is CUDA and
    faiss is a GPU build that sees that GPU; None (the CPU, as with faiss-cpu) otherwise."""
    faiss = import_faiss()
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not hasattr(faiss, "StandardGpuResources") or not hasattr(faiss, "get_num_gpus"):
        return None
    gpu = device.index or 0
    return gpu if gpu < faiss.get_num_gpus() else None


def faiss_backend(gpu: int | None) -> str:
    """How results name the search backend: ``faiss-gpu:N`` or ``cpu``."""
    return "cpu" if gpu is None else f"faiss-gpu:{gpu}"


def _index(database: np.ndarray, gpu: int | None):
    """A flat inner-product index holding ``database``, on faiss GPU ``gpu`` (None: the CPU)."""
    faiss = import_faiss()

    index = faiss.IndexFlatIP(database.shape[1])
    if gpu is not None:
        if gpu not in _gpu_res:
            _gpu_res[gpu] = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(_gpu_res[gpu], gpu, index)
    index.add(database)
    return index


def knn(queries: np.ndarray, database: np.ndarray, k: int, *, normalized: bool = False,
        chunk_size: int = 8192, gpu: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product (cosine unless ``normalized`` says the inputs already are), on
    faiss GPU ``gpu`` (None: the CPU).

    Returns ``(sims, ids)``, each ``(len(queries), min(k, len(database)))``, best first; ``sims`` is
    float32, ``ids`` int64. Queries are searched ``chunk_size`` at a time.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32) if normalized else l2_normalize(queries)
    db = np.ascontiguousarray(database, dtype=np.float32) if normalized else l2_normalize(database)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"dimension mismatch: queries {q.shape[1]}, database {db.shape[1]}")
    k = min(int(k), db.shape[0])
    if k < 1 or q.shape[0] == 0:
        return np.zeros((q.shape[0], max(k, 0)), np.float32), np.zeros((q.shape[0], max(k, 0)), np.int64)
    index = _index(db, gpu)
    sims = np.empty((q.shape[0], k), np.float32)
    ids = np.empty((q.shape[0], k), np.int64)
    for s in range(0, q.shape[0], chunk_size):
        d, i = index.search(q[s:s + chunk_size], k)
        sims[s:s + chunk_size], ids[s:s + chunk_size] = d, i
    return _ties_by_index(sims, ids)


class _TopK:
    """faiss heaps keeping the ``k`` largest values (and their column ids) of each of ``n`` rows."""

    def __init__(self, n: int, k: int):
        faiss = import_faiss()

        self.sims = np.empty((n, k), np.float32)
        self.ids = np.empty((n, k), np.int64)
        self._heaps = faiss.float_minheap_array_t()
        self._heaps.k, self._heaps.nh = k, n
        self._heaps.val, self._heaps.ids = faiss.swig_ptr(self.sims), faiss.swig_ptr(self.ids)
        self._heaps.heapify()

    def add(self, block: np.ndarray, row0: int, col0: int) -> None:
        """``block`` (rows row0.., columns col0..), C-contiguous float32."""
        faiss = import_faiss()

        self._heaps.addn(block.shape[1], faiss.swig_ptr(block), col0, row0, block.shape[0])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._heaps.reorder()  # best first
        return _ties_by_index(self.sims, self.ids)


def _ties_by_index(sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows best first, equal similarities by increasing id.

    The tie rule applies to the similarities as computed (float32). Within one engine the top-1 is
    then the same for every ``k``. Across engines (:func:`knn` on faiss, :func:`knn_both` on BLAS
    tiles, the GPU) it is the same except among bit-identical duplicate rows: the same dot product
    can round differently (by an ulp) depending on where it falls in a BLAS / faiss block, so copies
    of one vector need not tie, and one engine may return a later copy where another returns the
    first (the margin means built on those similarities differ in the last bit too). The retrieved
    vector — and so a duplicate-aware score — is the same; an exact-index score can differ.
    """
    order = np.lexsort((ids, -sims), axis=1) if sims.size else np.zeros(sims.shape, np.int64)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def knn_both(x: np.ndarray, y: np.ndarray, kx: int, ky: int, *, normalized: bool = False,
             tile: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k both ways from ONE pass over the similarity matrix (half the work of two searches).

    Returns ``(x2y_sims, x2y_ids, y2x_sims, y2x_ids)`` like two :func:`knn` calls with ``kx`` and
    ``ky`` neighbours. Each ``tile × tile`` block of ``x yᵀ`` is computed once (BLAS) and fed,
    as is and transposed, to faiss top-k heaps; memory is two blocks plus the results.
    """
    import torch

    x = np.ascontiguousarray(x, dtype=np.float32) if normalized else l2_normalize(x)
    y = np.ascontiguousarray(y, dtype=np.float32) if normalized else l2_normalize(y)
    nx, ny = len(x), len(y)
    kx, ky = min(int(kx), ny), min(int(ky), nx)
    if nx == 0 or ny == 0 or kx < 1 or ky < 1:
        z = lambda n, k: (np.zeros((n, max(k, 0)), np.float32), np.zeros((n, max(k, 0)), np.int64))  # noqa: E731
        return (*z(nx, kx), *z(ny, ky))
    fwd, bwd = _TopK(nx, kx), _TopK(ny, ky)
    buf = np.empty(min(tile, nx) * min(tile, ny), np.float32)
    buf_t = np.empty_like(buf)
    for i0 in range(0, nx, tile):
        xb = x[i0:i0 + tile]
        for j0 in range(0, ny, tile):
            yb = y[j0:j0 + tile]
            block = buf[: len(xb) * len(yb)].reshape(len(xb), len(yb))
            np.matmul(xb, yb.T, out=block)
            fwd.add(block, i0, j0)
            block_t = buf_t[: len(xb) * len(yb)].reshape(len(yb), len(xb))
            torch.from_numpy(block_t).copy_(torch.from_numpy(block).T)  # fast transpose
            bwd.add(block_t, j0, i0)
    return (*fwd.result(), *bwd.result())


# -- margin scoring -------------------------------------------------------------------------------
def apply_margin(a: np.ndarray, b: np.ndarray, margin: str) -> np.ndarray:
    if margin == "ratio":
        return a / b
    if margin == "distance":
        return a - b
    if margin == "absolute":
        return a
    raise ValueError(f"unknown margin {margin!r}; choose one of {', '.join(MARGINS)}")


@dataclass
class MarginCandidates:
    """k nearest neighbours both ways with their margin scores (rows best-cosine first)."""

    fwd_ids: np.ndarray  # (nx, k) ids into y
    fwd_scores: np.ndarray  # (nx, k) margin scores
    bwd_ids: np.ndarray  # (ny, k) ids into x
    bwd_scores: np.ndarray  # (ny, k)
    fwd_mean: np.ndarray  # (nx,) mean cosine of x to its k NN in y
    bwd_mean: np.ndarray  # (ny,)

    @property
    def fwd_best(self) -> np.ndarray:
        return self.fwd_ids[np.arange(len(self.fwd_ids)), self.fwd_scores.argmax(axis=1)]

    @property
    def bwd_best(self) -> np.ndarray:
        return self.bwd_ids[np.arange(len(self.bwd_ids)), self.bwd_scores.argmax(axis=1)]


def compute_margin_candidates(x: np.ndarray, y: np.ndarray, *, k: int = 4, margin: str = "ratio",
                              normalized: bool = False, chunk_size: int = 8192, gpu: int | None = None,
                              engine: str = "auto") -> MarginCandidates:
    """kNN both ways (``k`` clipped to the other side's size) and margin scores of the candidates.

    ``engine``: ``fused`` (:func:`knn_both`, one pass over the similarity matrix; the CPU default),
    ``faiss`` (two ``IndexFlatIP`` searches; the default with a faiss GPU ``gpu``).
    """
    if margin not in MARGINS:
        raise ValueError(f"unknown margin {margin!r}; choose one of {', '.join(MARGINS)}")
    if engine not in ("auto", "fused", "faiss"):
        raise ValueError(f"unknown engine {engine!r}; choose auto, fused or faiss")
    if not normalized:
        x, y = l2_normalize(x), l2_normalize(y)
    if engine == "auto":
        engine = "fused" if gpu is None else "faiss"
    if engine == "fused":
        x2y_sim, x2y_ind, y2x_sim, y2x_ind = knn_both(x, y, k, k, normalized=True)
    else:
        x2y_sim, x2y_ind = knn(x, y, min(len(y), k), normalized=True, chunk_size=chunk_size, gpu=gpu)
        y2x_sim, y2x_ind = knn(y, x, min(len(x), k), normalized=True, chunk_size=chunk_size, gpu=gpu)
    x2y_mean = x2y_sim.mean(axis=1)
    y2x_mean = y2x_sim.mean(axis=1)
    fwd = apply_margin(x2y_sim, (x2y_mean[:, None] + y2x_mean[x2y_ind]) / 2, margin)
    bwd = apply_margin(y2x_sim, (y2x_mean[:, None] + x2y_mean[y2x_ind]) / 2, margin)
    return MarginCandidates(x2y_ind, fwd, y2x_ind, bwd, x2y_mean, y2x_mean)


def compute_mined_pairs(x: np.ndarray | None = None, y: np.ndarray | None = None, *, k: int = 4,
                        margin: str = "ratio", retrieval: str = "max",
                        candidates: MarginCandidates | None = None, normalized: bool = False,
                        chunk_size: int = 8192, gpu: int | None = None,
                        engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Mine pairs: ``(pairs (m, 2) int64 [x index, y index], scores (m,))``, highest score first.

    No threshold is applied: every candidate the retrieval strategy links is returned, so a
    threshold can be chosen afterwards (:func:`compute_best_threshold`).
    """
    if retrieval not in RETRIEVALS:
        raise ValueError(f"unknown retrieval {retrieval!r}; choose one of {', '.join(RETRIEVALS)}")
    c = candidates or compute_margin_candidates(x, y, k=k, margin=margin, normalized=normalized,
                                                chunk_size=chunk_size, gpu=gpu, engine=engine)
    nx, ny = len(c.fwd_ids), len(c.bwd_ids)
    if nx == 0 or ny == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float64)
    fwd_best, bwd_best = c.fwd_best, c.bwd_best
    fwd_max, bwd_max = c.fwd_scores.max(axis=1), c.bwd_scores.max(axis=1)
    if retrieval == "fwd":
        pairs = np.stack([np.arange(nx), fwd_best], axis=1)
        scores = fwd_max
    elif retrieval == "bwd":
        pairs = np.stack([bwd_best, np.arange(ny)], axis=1)
        scores = bwd_max
    elif retrieval == "intersect":
        keep = bwd_best[fwd_best] == np.arange(nx)
        pairs = np.stack([np.arange(nx)[keep], fwd_best[keep]], axis=1)
        scores = fwd_max[keep]
    else:  # max: pool both directions, greedy one-to-one linking by decreasing score
        all_pairs = np.concatenate([np.stack([np.arange(nx), fwd_best], axis=1),
                                    np.stack([bwd_best, np.arange(ny)], axis=1)])
        all_scores = np.concatenate([fwd_max, bwd_max])
        order = np.argsort(-all_scores, kind="stable")
        used_x = np.zeros(nx, bool)
        used_y = np.zeros(ny, bool)
        keep = []
        for i, (a, b) in zip(order.tolist(), all_pairs[order].tolist()):
            if not used_x[a] and not used_y[b]:
                used_x[a] = used_y[b] = True
                keep.append(i)
        keep = np.array(keep, np.int64)
        pairs, scores = all_pairs[keep], all_scores[keep]
    order = np.argsort(-scores, kind="stable")
    return pairs[order].astype(np.int64), scores[order].astype(np.float64)


# -- deduplication --------------------------------------------------------------------------------
def dedup_texts(texts: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """First index of each distinct text, and for each distinct text all indices holding it."""
    first: dict[str, int] = {}
    groups: list[list[int]] = []
    for i, t in enumerate(texts):
        if t in first:
            groups[first[t]].append(i)
        else:
            first[t] = len(groups)
            groups.append([i])
    return [g[0] for g in groups], groups


def expand_dedup_pairs(pairs: np.ndarray, scores: np.ndarray, x_groups: list[list[int]],
                       y_groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs mined over distinct texts → every (x index, y index) with those texts, same score."""
    out_p, out_s = [], []
    for (a, b), s in zip(pairs.tolist(), scores.tolist()):
        for i in x_groups[a]:
            for j in y_groups[b]:
                out_p.append((i, j))
                out_s.append(s)
    if not out_p:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float64)
    return np.array(out_p, np.int64), np.array(out_s, np.float64)


# -- scoring mined pairs --------------------------------------------------------------------------
def _tie_groups(scores: np.ndarray, correct: np.ndarray):
    """Sorted by score descending: (distinct scores, cumulative extracted, cumulative correct)."""
    scores = np.asarray(scores, np.float64)
    correct = np.asarray(correct, bool)
    order = np.argsort(-scores, kind="stable")
    s, c = scores[order], correct[order]
    if len(s) == 0:
        return s, np.zeros(0, np.int64), np.zeros(0, np.int64)
    last = np.r_[s[1:] != s[:-1], True]  # last item of each tie group
    n_ext = np.arange(1, len(s) + 1)[last]
    n_cor = np.cumsum(c)[last]
    return s[last], n_ext, n_cor


def _f1(tp, n_ext, n_gold):
    tp, n_ext = np.asarray(tp, np.float64), np.asarray(n_ext, np.float64)
    denom = n_ext + n_gold
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def compute_best_threshold(scores: np.ndarray, correct: np.ndarray, n_gold: int) -> dict:
    """The threshold maximising F1 when accepting candidates with ``score >= threshold``.

    Recall is over ``n_gold`` (gold pairs never proposed count as misses). Among thresholds with the
    same F1 the highest wins. With no correct candidate the threshold is ``inf`` (accept nothing).
    Returns ``{threshold, f1, precision, recall, n_extracted, n_correct}``.
    """
    vals, n_ext, n_cor = _tie_groups(scores, correct)
    if len(vals) == 0 or n_cor[-1] == 0:
        return {"threshold": float("inf"), "f1": 0.0, "precision": 0.0, "recall": 0.0,
                "n_extracted": 0, "n_correct": 0}
    f1 = _f1(n_cor, n_ext, n_gold)
    best = int(np.argmax(f1))  # first = highest threshold among ties
    return {"threshold": float(vals[best]), "f1": float(f1[best]),
            "precision": float(n_cor[best] / n_ext[best]),
            "recall": float(n_cor[best] / n_gold) if n_gold else 0.0,
            "n_extracted": int(n_ext[best]), "n_correct": int(n_cor[best])}


def compute_prf(scores: np.ndarray, correct: np.ndarray, n_gold: int, threshold: float) -> dict:
    """Precision, recall and F1 of the candidates with ``score >= threshold``."""
    scores = np.asarray(scores, np.float64)
    correct = np.asarray(correct, bool)
    keep = scores >= threshold
    n_ext, tp = int(keep.sum()), int(correct[keep].sum())
    p = tp / n_ext if n_ext else 0.0
    r = tp / n_gold if n_gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"threshold": float(threshold), "precision": p, "recall": r, "f1": f1,
            "n_extracted": n_ext, "n_correct": tp}


def compute_average_precision(scores: np.ndarray, correct: np.ndarray, n_gold: int) -> float:
    """Area under the precision-recall step curve of the ranked candidates, recall over ``n_gold``.

    Tied scores form one step (as in scikit-learn). Gold pairs that were never proposed lower the
    maximum reachable recall, so AP ≤ (correct candidates / n_gold).
    """
    vals, n_ext, n_cor = _tie_groups(scores, correct)
    if len(vals) == 0 or n_gold <= 0:
        return 0.0
    d_cor = np.diff(np.r_[0, n_cor])
    return float(np.sum(d_cor / n_gold * (n_cor / n_ext)))


# -- Tatoeba ----------------------------------------------------------------------------------------
TATOEBA_CONVENTIONS = {
    "acc_cosine_xx2en": "top-1 accuracy, each xx sentence retrieves its nearest English sentence by cosine; "
                        "correct iff it is the aligned line",
    "acc_cosine_en2xx": "top-1 accuracy, English → xx, cosine, correct iff aligned line",
    "acc_cosine": "mean of acc_cosine_xx2en and acc_cosine_en2xx (the XTREME-style Tatoeba accuracy is the "
                  "en→xx value, acc_cosine_en2xx: XTREME's code indexes the xx sentences and searches them "
                  "with the English ones; LASER's xSIM scores xx→en)",
    "acc_margin_xx2en": "top-1 accuracy xx → English with ratio margin over k nearest neighbours both ways "
                        "(Artetxe & Schwenk 2019), correct iff aligned line",
    "acc_margin_en2xx": "top-1 accuracy English → xx with ratio margin, correct iff aligned line",
    "xsim_error": "xSIM-style error rate (LASER xsim): fraction of xx sentences whose ratio-margin (k) "
                  "nearest English sentence is not the gold one, a retrieved sentence with the same text "
                  "as the gold counting as correct",
    "acc_dedup_xx2en": "duplicate-aware top-1 accuracy xx → English, cosine: a hit whose text equals the "
                       "gold English text counts as correct",
    "acc_dedup_en2xx": "duplicate-aware top-1 accuracy English → xx, cosine",
    "f1_weighted_xx2en": "MTEB BitextMining-style score: scikit-learn F1 with average='weighted', each English "
                         "line index a class, cosine nearest neighbour xx → English",
    "precision_weighted_xx2en": "MTEB BitextMining-style precision: scikit-learn precision with average='weighted' "
                                "(zero_division=0), same classes and predictions as f1_weighted_xx2en (its weighted "
                                "recall is acc_cosine_xx2en: every class has support 1)",
    "n": "number of aligned pairs",
    "chance": "accuracy of a random guess, 1/n",
}


def _hits(pred: np.ndarray, gold_texts: Sequence[str] | None) -> np.ndarray:
    n = len(pred)
    exact = pred == np.arange(n)
    if gold_texts is None:
        return exact
    texts = list(gold_texts)
    return exact | np.array([texts[p] == texts[i] for i, p in enumerate(pred.tolist())], bool)


def compute_tatoeba(x: np.ndarray, y: np.ndarray, *, k: int = 4, x_texts: Sequence[str] | None = None,
                    y_texts: Sequence[str] | None = None, gpu: int | None = None) -> dict:
    """Every Tatoeba convention for line-aligned ``x`` (xx) and ``y`` (English) embeddings.

    See :data:`TATOEBA_CONVENTIONS` for what each key means. Without texts the duplicate-aware
    numbers equal the exact ones.
    """
    n = len(x)
    if n == 0 or len(y) != n:
        raise ValueError(f"need the same positive number of xx and en embeddings, got {len(x)} and {len(y)}")
    x, y = l2_normalize(x), l2_normalize(y)
    c = compute_margin_candidates(x, y, k=k, margin="ratio", normalized=True, gpu=gpu)
    cos_xx2en, cos_en2xx = c.fwd_ids[:, 0], c.bwd_ids[:, 0]  # candidates are sorted by cosine
    m_xx2en, m_en2xx = c.fwd_best, c.bwd_best
    arange = np.arange(n)
    acc_x, acc_e = float((cos_xx2en == arange).mean()), float((cos_en2xx == arange).mean())
    res = {
        "acc_cosine_xx2en": acc_x,
        "acc_cosine_en2xx": acc_e,
        "acc_cosine": (acc_x + acc_e) / 2,
        "acc_margin_xx2en": float((m_xx2en == arange).mean()),
        "acc_margin_en2xx": float((m_en2xx == arange).mean()),
        "xsim_error": float(1.0 - _hits(m_xx2en, y_texts).mean()),
        "acc_dedup_xx2en": float(_hits(cos_xx2en, y_texts).mean()),
        "acc_dedup_en2xx": float(_hits(cos_en2xx, x_texts).mean()),
        "f1_weighted_xx2en": weighted_f1(cos_xx2en),
        "precision_weighted_xx2en": weighted_precision(cos_xx2en),
        "n": n,
        "chance": 1.0 / n,
    }
    return res


def weighted_f1(pred: np.ndarray) -> float:
    """sklearn ``f1_score(gold, pred, average="weighted")`` with gold = line index (each class support 1).

    Per gold line i: F1_i = 2·hit_i / (1 + number of queries that predicted i); the weighted mean over
    the (equally supported) gold classes is their plain mean.
    """
    n = len(pred)
    predicted = np.bincount(pred, minlength=n)[:n]
    hit = (pred == np.arange(n)).astype(np.float64)
    return float(np.mean(2 * hit / (1 + predicted)))


def weighted_precision(pred: np.ndarray) -> float:
    """sklearn ``precision_score(gold, pred, average="weighted", zero_division=0)`` with gold = line index:
    per gold line i, hit_i / (number of queries that predicted i), averaged over the lines."""
    n = len(pred)
    predicted = np.bincount(pred, minlength=n)[:n]
    hit = (pred == np.arange(n)).astype(np.float64)
    return float(np.mean(np.divide(hit, predicted, out=np.zeros(n), where=predicted > 0)))


def compute_accuracy_cosine(x: np.ndarray, y: np.ndarray, gpu: int | None = None) -> float:
    """Mean of xx→en and en→xx cosine top-1 accuracy (the number swept over layers)."""
    if gpu is not None:
        _, x2y = knn(x, y, 1, gpu=gpu)
        _, y2x = knn(y, x, 1, gpu=gpu)
    else:
        _, x2y, _, y2x = knn_both(x, y, 1, 1)
    a = np.arange(len(x))
    return float(((x2y[:, 0] == a).mean() + (y2x[:, 0] == a).mean()) / 2)
