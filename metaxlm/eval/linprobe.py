"""Frozen-encoder linear probe: features from every layer, a linear classifier trained on English.

The encoder is never trained. For every layer (0 = embeddings) and pooling, a scikit-learn
``StandardScaler`` + ``LogisticRegression`` is fitted on English train features, its ``C`` chosen on
English dev from :data:`PROBE_C`; the (layer, pooling) with the best English dev score (the task's
primary metric) is the headline, applied zero-shot to every language. Per-layer curves record the
dev score and every language's test score of each layer's dev-chosen classifier.

Features:

- single-sentence tasks (topic): :func:`metaxlm.encode.encode_layers` (``mean`` / ``cls`` pooling,
  cached on disk);
- sentence pairs (xnli, pawsx): each side encoded alone (the same cache), the pair's feature is
  ``[u, v, |u − v|, u * v]`` (InferSent/SentEval style) — it probes what each sentence's
  representation holds, with no cross-attention between the sides;
- token tasks (ner, pos): one feature per word, the ``first`` subword's hidden state or the ``mean``
  of its subwords, at every layer (chunked as the fine-tuner does; kept in memory, not on disk).

Deterministic: same data, same numbers (``lbfgs`` is deterministic; the seed only reaches
``random_state``). Ties go to the stronger regularisation (smaller C), then the lower layer, then
the first pooling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from metaxlm.devices import autocast, pick_precision, resolve_device
from metaxlm.eval.tasks import TaskSpec
from metaxlm.models import ModelRef

PROBE_C = (0.01, 0.1, 1.0, 10.0)  # inverse regularisation, chosen on English dev per layer and pooling
SEQ_POOLINGS = ("mean", "cls")
WORD_POOLINGS = ("first", "mean")


# --------------------------------------------------------------------------------------------
# the sweep (pure: features in, fitted classifiers and scores out)


@dataclass
class ProbeSweep:
    """Per pooling: the dev score and chosen C of every layer; the fitted classifier of each
    (pooling, layer index); the headline choice."""

    layers: list[int]
    dev: dict[str, list[float]]
    C: dict[str, list[float]]
    models: dict[tuple[str, int], object] = field(repr=False)
    pooling: str = ""
    layer: int = 0  # the layer itself (not its index)
    best_C: float = 0.0
    best_dev: float = 0.0

    def model(self, pooling: str | None = None, layer: int | None = None):
        pooling = pooling or self.pooling
        return self.models[(pooling, self.layers.index(self.layer if layer is None else layer))]


def _classifier(C: float, seed: int, n_classes: int):
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if n_classes < 2:
        return DummyClassifier(strategy="most_frequent")
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed))


def compute_probe_sweep(train_x: Mapping[str, np.ndarray], train_y: Sequence[str],
                        dev_x: Mapping[str, np.ndarray], dev_score: Callable[[list], float], *,
                        Cs: Sequence[float] = PROBE_C, seed: int = 0,
                        layers: Sequence[int] | None = None) -> ProbeSweep:
    """Fit a probe per pooling × layer × C; ``train_x[pooling]`` is ``(n_layers, n, dim)`` (``layers``
    names them, default 0..n_layers-1), ``dev_score(predicted labels of dev_x's rows) -> float``."""
    from sklearn.exceptions import ConvergenceWarning

    poolings = list(train_x)
    n_layers = train_x[poolings[0]].shape[0]
    layers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    y = np.asarray(list(train_y), dtype=object).astype(str)
    n_classes = len(set(y.tolist()))
    Cs = sorted(float(c) for c in Cs)
    dev: dict[str, list[float]] = {p: [] for p in poolings}
    chosen: dict[str, list[float]] = {p: [] for p in poolings}
    models: dict[tuple[str, int], object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for p in poolings:
            for li in range(n_layers):
                best = None
                for C in Cs if n_classes >= 2 else Cs[:1]:
                    clf = _classifier(C, seed, n_classes).fit(train_x[p][li], y)
                    s = float(dev_score([str(v) for v in clf.predict(dev_x[p][li])]))
                    if best is None or s > best[0]:
                        best = (s, C, clf)
                dev[p].append(best[0])
                chosen[p].append(best[1])
                models[(p, li)] = best[2]
    sweep = ProbeSweep(layers=layers, dev=dev, C=chosen, models=models)
    top = max(((dev[p][li], -li, -pi) for pi, p in enumerate(poolings) for li in range(n_layers)))
    sweep.pooling, li = poolings[-top[2]], -top[1]
    sweep.layer, sweep.best_C, sweep.best_dev = layers[li], chosen[sweep.pooling][li], top[0]
    return sweep


def pair_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``[u, v, |u − v|, u * v]`` along the last axis."""
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=-1)


# --------------------------------------------------------------------------------------------
# features


def word_features(ref: ModelRef, examples: Sequence, *, max_length: int, batch_size: int = 64,
                  device=None, poolings: Sequence[str] = WORD_POOLINGS) -> dict[str, np.ndarray]:
    """Per-word hidden states of every layer: ``{pooling: (num_layers + 1, n_words, hidden)}``, words
    of all sentences in order; ``first`` = the word's first subword, ``mean`` = mean of its subwords."""
    import torch

    from metaxlm.encode import _load, num_layers
    from metaxlm.eval.finetune import collate, encode_tokens, length_batches

    device = resolve_device(device)
    tok, model = _load(ref, device)
    depth = num_layers(ref)
    hidden = int(getattr(model.config, "hidden_size", 0) or getattr(model.config, "dim", 0))
    feats = encode_tokens(tok, examples, max_length)
    base = np.cumsum([0] + [len(ex.words) for ex in examples])
    n_words = int(base[-1])
    out = {p: np.zeros((depth + 1, n_words, hidden), dtype=np.float32) for p in poolings}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    precision = pick_precision(device)
    with torch.inference_mode():
        for b in length_batches([len(f["input_ids"]) for f in feats], batch_size):
            batch = collate([{"input_ids": feats[i]["input_ids"]} for i in b], pad)
            with autocast(device, precision):
                hs = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                           output_hidden_states=True).hidden_states
            h = torch.stack([x.float() for x in hs], 0).cpu()  # (layers, batch, tokens, hidden)
            for j, i in enumerate(b):
                f = feats[i]
                if not f["word_pos"]:
                    continue
                at = base[f["sent"]] + f["start"]
                rows = slice(at, at + len(f["word_pos"]))
                if "first" in out:
                    out["first"][:, rows] = h[:, j, f["word_pos"]].numpy()
                if "mean" in out:
                    w = torch.zeros(len(f["word_pos"]), h.shape[2])
                    for k, (pos, n) in enumerate(zip(f["word_pos"], f["word_len"])):
                        w[k, pos:pos + n] = 1.0 / n
                    out["mean"][:, rows] = torch.einsum("wt,lth->lwh", w, h[:, j]).numpy()
    return out


# --------------------------------------------------------------------------------------------
# the predictor (same interface as FineTuner and the controls)


class LinearProbe:
    """``fit(train, dev, seed, dev_score)`` sweeps layers × poolings × C on frozen features;
    ``predict`` uses the dev-chosen (layer, pooling, C); ``layer_curves`` scores every layer."""

    def __init__(self, ref: ModelRef, spec: TaskSpec, labels: Sequence[str], *, max_length: int,
                 batch_size: int = 64, device=None, Cs: Sequence[float] = PROBE_C):
        from metaxlm.encode import _load, num_layers

        self.ref, self.spec, self.labels = ref, spec, list(labels)
        self.max_length, self.batch_size, self.Cs = max_length, batch_size, tuple(Cs)
        self.device = resolve_device(device)
        _load(ref, self.device)  # loads and checks the tokenizer against the model now
        self.layers = list(range(num_layers(ref) + 1))
        self.poolings = WORD_POOLINGS if spec.kind == "token" else SEQ_POOLINGS
        self.best_epoch = None
        self.sweep: ProbeSweep | None = None
        self.fit_record: dict = {}
        self._memo: dict[int, tuple] = {}

    def features(self, examples: Sequence, remember: bool = True) -> dict[str, np.ndarray]:
        """``{pooling: (layers, rows, dim)}``; remembered per list object (dev and test: every seed)."""
        hit = self._memo.get(id(examples))
        if hit is not None and hit[0] is examples:
            return hit[1]
        if self.spec.kind == "token":
            x = word_features(self.ref, examples, max_length=self.max_length, batch_size=self.batch_size,
                              device=self.device, poolings=self.poolings)
        else:
            from metaxlm.encode import encode_layers

            def enc(texts):
                return encode_layers(self.ref, texts, self.poolings, batch_size=self.batch_size,
                                     max_length=self.max_length, device=self.device)

            x = enc([e.a for e in examples])
            if any(e.b is not None for e in examples):
                v = enc([e.b or "" for e in examples])
                x = {p: pair_features(x[p], v[p]) for p in self.poolings}
        if remember:
            self._memo[id(examples)] = (examples, x)
        return x

    def _gold(self, examples) -> list[str]:
        return [t for e in examples for t in e.tags] if self.spec.kind == "token" else [e.label for e in examples]

    def _regroup(self, examples, flat: list) -> list:
        if self.spec.kind != "token":
            return list(flat)
        out, i = [], 0
        for e in examples:
            out.append(list(flat[i:i + len(e.words)]))
            i += len(e.words)
        return out

    def fit(self, train, dev, seed: int, dev_score: Callable, progress=None) -> None:
        tx, dx = self.features(train, remember=False), self.features(dev)
        self.sweep = compute_probe_sweep(tx, self._gold(train), dx,
                                         lambda pred: dev_score(dev, self._regroup(dev, pred)),
                                         Cs=self.Cs, seed=seed, layers=self.layers)
        sw = self.sweep
        self.fit_record = {"probe": {"layer": sw.layer, "pooling": sw.pooling, "C": sw.best_C,
                                     "dev_score": sw.best_dev}}

    def _predict_at(self, examples, pooling: str, layer: int) -> list:
        x = self.features(examples)[pooling][self.layers.index(layer)]
        return self._regroup(examples, [str(v) for v in self.sweep.model(pooling, layer).predict(x)])

    def predict(self, examples) -> list:
        return self._predict_at(examples, self.sweep.pooling, self.sweep.layer)

    def layer_curves(self, test: Mapping[str, Sequence], score: Callable[[str, list], float]) -> dict:
        """``{pooling: {"layers", "dev", "C", "test": {lang: [score per layer]}}}``; ``score(lang, pred)``."""
        sw = self.sweep
        return {p: {"layers": list(sw.layers), "dev": list(sw.dev[p]), "C": list(sw.C[p]),
                    "test": {lang: [score(lang, self._predict_at(exs, p, layer)) for layer in sw.layers]
                             for lang, exs in test.items()}}
                for p in self.poolings}

    def steps(self, n_train: int) -> int:
        return 0

    def release(self) -> None:
        self.sweep = None


def aggregate_probe(records: Sequence[dict]) -> dict:
    """The result's top-level ``probe`` object from the per-seed ``probe`` records (each with its
    ``curves``): the most frequent (layer, pooling, C) over seeds (ties: the first seed's), and that
    pooling's curves averaged over seeds."""
    from collections import Counter

    keys = [(r["layer"], r["pooling"], r["C"]) for r in records]
    counts = Counter(keys)
    layer, pooling, C = max(keys, key=lambda k: (counts[k], -keys.index(k)))
    curves = [r["curves"][pooling] for r in records]
    mean = lambda rows: [float(np.mean(col)) for col in zip(*rows)]  # noqa: E731
    return {"layer": layer, "pooling": pooling, "C": C,
            "curve": {"layers": curves[0]["layers"], "dev": mean([c["dev"] for c in curves]),
                      "test": {lang: mean([c["test"][lang] for c in curves]) for lang in curves[0]["test"]}},
            "choices": [{"layer": k[0], "pooling": k[1], "C": k[2]} for k in keys]}
