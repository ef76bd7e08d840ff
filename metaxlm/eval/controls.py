"""Controls for transfer: they produce *predictions* that go through the same scoring, aggregation
and result-writing code as fine-tuned models (model source ``"control"``).

- ``majority``: always the most frequent English-train label (per token for token tasks).
- ``lexical``: TF-IDF over words (unigrams + bigrams) + logistic regression trained on English,
  the regularisation chosen on English dev, applied unchanged to every language. What it gets right
  outside English comes from shared surface strings (names, numbers, technical terms), not from any
  cross-lingual representation. Sequence (classification) tasks only.
"""

from __future__ import annotations

from typing import Callable, Sequence

from metaxlm.errors import UserError
from metaxlm.eval.scores import constant_predictions, majority_label
from metaxlm.eval.tasks import TaskSpec
from metaxlm.models import ModelRef

CONTROLS = ("majority", "lexical")
LEXICAL_C = (0.1, 1.0, 10.0, 100.0)  # chosen on English dev; ties go to the stronger regularisation


def control_ref(name: str) -> ModelRef:
    return ModelRef(spec=name, path="", source="control", label=name)


class MajorityControl:
    def __init__(self, spec: TaskSpec, labels: Sequence[str]):
        self.spec, self.labels = spec, list(labels)
        self.best_epoch = None
        self.label = None

    def fit(self, train, dev, seed: int, dev_score: Callable, progress=None) -> None:
        gold = [ex.tags for ex in train] if self.spec.kind == "token" else [ex.label for ex in train]
        self.label = majority_label(gold)

    def predict(self, examples) -> list:
        gold = [ex.tags for ex in examples] if self.spec.kind == "token" else [ex.label for ex in examples]
        return constant_predictions(gold, self.label)

    def steps(self, n_train: int) -> int:
        return 0

    def release(self) -> None:
        pass


def _text(ex) -> str:
    return ex.a if ex.b is None else f"{ex.a} {ex.b}"


class LexicalControl:
    def __init__(self, spec: TaskSpec, labels: Sequence[str]):
        if spec.kind != "sequence":
            raise UserError(f"--model lexical is a control for classification tasks; {spec.name} is a token "
                            "task (use --model majority)")
        self.spec, self.labels = spec, list(labels)
        self.best_epoch = None
        self.C = None
        self.pipe = None

    def _make(self, C: float):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True),
                             LogisticRegression(C=C, max_iter=2000))

    def fit(self, train, dev, seed: int, dev_score: Callable, progress=None) -> None:
        x, y = [_text(e) for e in train], [e.label for e in train]
        if len(set(y)) < 2:
            self.pipe, self.C = None, None
            self._only = y[0]
            return
        best = None
        for C in LEXICAL_C:
            pipe = self._make(C).fit(x, y)
            self.pipe = pipe
            s = dev_score(dev, self.predict(dev))
            if best is None or s > best[0]:
                best = (s, C, pipe)
        _, self.C, self.pipe = best

    def predict(self, examples) -> list:
        if self.pipe is None:
            return [self._only] * len(examples)
        return [str(p) for p in self.pipe.predict([_text(e) for e in examples])]

    def steps(self, n_train: int) -> int:
        return 0

    def release(self) -> None:
        pass


def make_control(name: str, spec: TaskSpec, labels: Sequence[str]):
    if name == "majority":
        return MajorityControl(spec, labels)
    if name == "lexical":
        return LexicalControl(spec, labels)
    raise UserError(f"unknown control {name!r}; choose one of {', '.join(CONTROLS)}")
