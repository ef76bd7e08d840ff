"""The fine-tuning recipe on a tiny learnable task: it fits, early stopping restores the best dev
checkpoint, the lr grid picks the best dev score, and the budget options hold."""

from __future__ import annotations

import random

import pytest

from metaxlm.eval import scores as S
from metaxlm.eval.finetune import FineTuner, FinetuneParams, budget_steps, lr_grid_around
from metaxlm.eval.formats import SeqExample
from metaxlm.eval.tasks import TASKS
from metaxlm.models import resolve_model

from _models import make_tiny_xlmr

WORDS = {"games": "chess puzzle board dice arcade card".split(),
         "graphics": "pixel image photo paint vector icon".split()}


def _items(n: int, seed: int, flip: bool = False) -> list[SeqExample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = ("games", "graphics")[i % 2]
        text = " ".join(rng.choice(WORDS[label]) for _ in range(rng.randint(3, 6)))
        gold = {"games": "graphics", "graphics": "games"}[label] if flip else label
        out.append(SeqExample(f"x{seed}-{i}", text, None, gold))
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    texts = [" ".join(ws) for ws in WORDS.values()] * 20
    return make_tiny_xlmr(tmp_path_factory.mktemp("recipe") / "m", texts, vocab=60, hidden=32, layers=2)


def _acc(examples, pred) -> float:
    return S.compute_accuracy([e.label for e in examples], pred)


def _tuner(model_dir, **kw) -> FineTuner:
    params = FinetuneParams(**{"batch_size": 8, "max_length": 16, "warmup_ratio": 0.0, **kw})
    return FineTuner(resolve_model(str(model_dir)), TASKS["topic"], ["games", "graphics"], params)


def test_recipe_fits_a_learnable_task(model_dir):
    train, dev = _items(48, 0), _items(16, 1)
    ft = _tuner(model_dir, lr=3e-3, epochs=12, patience=4)
    ft.fit(train, dev, 0, _acc)
    assert _acc(train, ft.predict(train)) >= 0.95
    rec = ft.fit_record
    assert rec["lr"] == 3e-3 and rec["lr_search"] == [{"lr": 3e-3, "best_dev": rec["best_dev"],
                                                        "best_step": rec["best_step"], "stop_step": rec["stop_step"]}]
    assert rec["steps_per_epoch"] == 6 and rec["max_steps"] == 72
    assert [h["step"] for h in ft.dev_history] == list(range(6, rec["stop_step"] + 1, 6))  # one per epoch
    assert rec["best_dev"] == max(h["dev"] for h in ft.dev_history) >= 0.95


def test_early_stopping_restores_the_best_dev_checkpoint(model_dir):
    # dev labels are the opposite of train's: the better the fit, the worse dev gets, so the best dev
    # score comes early and training stops after `patience` worse evaluations
    train, dev = _items(48, 0), _items(16, 1, flip=True)
    ft = _tuner(model_dir, lr=3e-3, epochs=12, patience=2, eval_every=3)
    ft.fit(train, dev, 0, _acc)
    rec, hist = ft.fit_record, ft.dev_history
    assert rec["best_step"] < rec["stop_step"] < rec["max_steps"]  # stopped early, best is not the last
    assert [h["step"] for h in hist][-1] == rec["stop_step"] and len(hist) == rec["stop_step"] // 3
    best = max(h["dev"] for h in hist)
    assert rec["best_dev"] == best and hist[[h["dev"] for h in hist].index(best)]["step"] == rec["best_step"]
    assert len([h for h in hist if h["step"] > rec["best_step"]]) == 2  # `patience` evaluations, no better
    assert _acc(dev, ft.predict(dev)) == pytest.approx(best)  # the restored weights give the best dev score
    assert ft.best_epoch == -(-rec["best_step"] // 6)


def test_min_steps_and_max_steps(model_dir):
    train, dev = _items(48, 0), _items(16, 1, flip=True)
    ft = _tuner(model_dir, lr=3e-3, epochs=12, patience=1, eval_every=3, min_steps=21)
    ft.fit(train, dev, 0, _acc)
    assert ft.fit_record["stop_step"] >= 21
    ft = _tuner(model_dir, lr=3e-3, epochs=12, patience=0, max_steps=10)
    ft.fit(train, dev, 0, _acc)
    assert ft.fit_record["stop_step"] == ft.fit_record["max_steps"] == 10
    assert [h["step"] for h in ft.dev_history] == [6, 10]  # every epoch, and the last step
    assert budget_steps(48, FinetuneParams(batch_size=8, epochs=3)) == 18


def test_lr_grid_keeps_the_best_dev_run(model_dir):
    train, dev = _items(48, 0), _items(16, 1)
    ft = _tuner(model_dir, lr_grid=(1e-5, 3e-3), epochs=4, patience=0)
    ft.fit(train, dev, 0, _acc)
    search = ft.fit_record["lr_search"]
    assert [r["lr"] for r in search] == [1e-5, 3e-3]
    best = max(search, key=lambda r: r["best_dev"])
    assert ft.fit_record["lr"] == ft.lr == best["lr"] == 3e-3  # 1e-5 barely moves in 24 steps
    assert _acc(dev, ft.predict(dev)) == pytest.approx(best["best_dev"])
    assert ft.steps(48) == 24  # lr_search "first": later seeds reuse the first seed's lr
    ft.fit(train, dev, 1, _acc)
    rec = ft.fit_record
    assert rec["lr"] == 3e-3 and rec["lr_search"] == search and rec["lr_search_seed"] == 0
    every = _tuner(model_dir, lr_grid=(1e-5, 3e-3), epochs=1, patience=0, lr_search="every")
    assert every.steps(48) == 2 * 6
    every.fit(train, dev, 0, _acc)
    every.fit(train, dev, 1, _acc)
    assert len(every.fit_record["lr_search"]) == 2 and every.fit_record["lr_search_seed"] == 1
    # the default grid is three values around the width default, and one lr is no search
    assert lr_grid_around(5e-4) == (2e-4, 5e-4, 1.3e-3)
    assert _tuner(model_dir).lr_grid == lr_grid_around(1e-3) == (4e-4, 1e-3, 2.5e-3)
    assert _tuner(model_dir, lr=1e-3).lr_grid == (1e-3,)
