"""TrainConfig validation, phase lists of the regimes, learning-rate schedules."""

from __future__ import annotations

import pytest

from metaxlm.errors import UserError
from metaxlm.train import PhaseConfig, TrainConfig, load_train_config
from metaxlm.train.regimes import lr_at, resolve_phases

LANGS = ["de", "en", "fr"]


def test_load_from_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("regime: meta\nmeta_split: 0.25\nphases: null\nmodel_args: {hidden_size: 64}\n"
                 "checkpoint_points: [0.5]\n")
    c = load_train_config(p, seed=3, lr=None)
    assert c.regime == "meta" and c.meta_split == 0.25 and c.seed == 3 and c.checkpoint_points == (0.5,)
    assert c.model_args == {"hidden_size": 64}
    # the resolved config round-trips
    from metaxlm.config import to_dict
    assert load_train_config(to_dict(c)) == c


@pytest.mark.parametrize("data, needle", [
    ({"regmie": "meta"}, "unknown key 'regmie'"),
    ({"lr": "fast"}, "expected a number"),
    ({"meta_split": 1.5}, "meta_split must be in"),
    ({"phases": [{"languages": ["en"]}]}, "missing required key 'name'"),
    ({"phases": [{"name": "a", "languages": ["en"], "colour": 1}]}, "unknown key 'colour'"),
    ({"mask_replace": 0.9, "mask_random": 0.2}, "sum to at most 1"),
    ({"checkpoint_points": [1.5]}, "checkpoint_points"),
    ({"tokenizer_type": "wordpiece"}, "not allowed"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
])
def test_bad_config(data, needle):
    with pytest.raises(UserError, match=needle):
        load_train_config(data)


def test_builtin_regimes_share_the_budget():
    tps = 100
    single = resolve_phases(TrainConfig(regime="single"), LANGS, 10_000, tps, 1e-3)
    meta = resolve_phases(TrainConfig(regime="meta", meta_split=0.3), LANGS, 10_000, tps, 1e-3)
    en_only = resolve_phases(TrainConfig(regime="en-only"), LANGS, 10_000, tps, 1e-3)
    none = resolve_phases(TrainConfig(regime="none"), LANGS, 10_000, tps, 1e-3)
    assert [(p.name, p.languages, p.steps) for p in single] == [("multilingual", ("de", "en", "fr"), 100)]
    assert [(p.name, p.languages, p.steps, p.start) for p in meta] == [
        ("english", ("en",), 30, 0), ("multilingual", ("de", "en", "fr"), 70, 30)]
    assert [(p.name, p.languages, p.steps) for p in en_only] == [("english", ("en",), 100)]
    assert none == []


def test_custom_phases():
    c = TrainConfig(regime="mine", phases=(
        PhaseConfig("warm", ("en", "de"), tokens=2000, schedule="constant", reset_optimizer=True),
        PhaseConfig("rest", ("all",), lr=5e-4)))
    ph = resolve_phases(c, LANGS, 10_000, 100, 1e-3)
    assert [(p.name, p.languages, p.steps, p.lr) for p in ph] == [
        ("warm", ("en", "de"), 20, 1e-3), ("rest", ("de", "en", "fr"), 80, 5e-4)]
    assert ph[0].reset_optimizer and not ph[1].reset_optimizer


@pytest.mark.parametrize("phases, needle", [
    ((PhaseConfig("x", ("xx",)),), "names language 'xx', which has no corpus"),
    ((PhaseConfig("a", ("en",)), PhaseConfig("a", ("de",))), "used twice"),
    ((PhaseConfig("final", ("en",)),), "reserved"),
    ((PhaseConfig("a", ("en",), tokens=10, steps=2),), "at most one of"),
    ((PhaseConfig("a", ("en",), steps=100), PhaseConfig("b", ("de",))), "leave nothing"),
    # budgets beyond total_tokens: the equal-budget premise would be broken
    ((PhaseConfig("a", ("en",), fraction=0.7), PhaseConfig("b", ("de",), fraction=0.7)),
     r"fractions add up to 1.4 \(a 0.7, b 0.7\): 14,000 tokens against total_tokens = 10,000"),
    ((PhaseConfig("a", ("en",), steps=200), PhaseConfig("b", ("de",))),
     r"budgets add up to 20,000 tokens \(a: 200 steps = 20,000\), more than total_tokens = 10,000"),
    ((PhaseConfig("a", ("en",), tokens=6000), PhaseConfig("b", ("de",), tokens=6000)),
     r"budgets add up to 12,000 tokens \(a: 6,000, b: 6,000\)"),
    ((PhaseConfig("a", ("en",), fraction=0.5), PhaseConfig("b", ("de",), tokens=6000)),
     r"a: fraction 0.5 = 5,000, b: 6,000"),
])
def test_bad_phases(phases, needle):
    with pytest.raises(UserError, match=needle):
        resolve_phases(TrainConfig(regime="x", phases=phases), LANGS, 10_000, 100, 1e-3)


def test_unknown_regime():
    with pytest.raises(UserError, match="regime 'metta' is unknown"):
        resolve_phases(TrainConfig(regime="metta"), LANGS, 10_000, 100, 1e-3)


def test_global_schedule_spans_phases():
    ph = resolve_phases(TrainConfig(regime="meta"), LANGS, 10_000, 100, 1e-3)
    lrs = [lr_at(ph, s, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert max(lrs) == pytest.approx(1e-3) and lrs[-1] < 2e-5
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # no restart at the phase boundary
    single = resolve_phases(TrainConfig(regime="single"), LANGS, 10_000, 100, 1e-3)
    assert lrs == [lr_at(single, s, 0.1) for s in range(100)]  # regimes differ only in data


def test_phase_schedules():
    c = TrainConfig(regime="x", phases=(PhaseConfig("a", ("en",), steps=10, schedule="cosine", warmup=0.0),
                                        PhaseConfig("b", ("en",), steps=10, schedule="constant", warmup=2)))
    ph = resolve_phases(c, LANGS, 2000, 100, 1e-3)
    assert lr_at(ph, 0, 0.1) == pytest.approx(1e-3)
    assert lr_at(ph, 9, 0.1) < lr_at(ph, 5, 0.1) < lr_at(ph, 1, 0.1)
    assert lr_at(ph, 10, 0.1) == pytest.approx(5e-4) and lr_at(ph, 19, 0.1) == pytest.approx(1e-3)


def test_phase_budgets_that_fit_pass():
    """Budgets that use the whole budget, or exceed it only by rounding to whole steps, are accepted."""
    third = tuple(PhaseConfig(n, ("en",), fraction=1 / 3) for n in ("a", "b", "c"))
    assert [p.steps for p in resolve_phases(TrainConfig(regime="x", phases=third), LANGS, 10_100, 100, 1e-3)] == [34] * 3
    exact = (PhaseConfig("a", ("en",), tokens=4_000), PhaseConfig("b", ("de",), steps=60))
    assert [p.steps for p in resolve_phases(TrainConfig(regime="x", phases=exact), LANGS, 10_000, 100, 1e-3)] == [40, 60]
    # 8 steps of 256 = 2,048 tokens for a 2,000-token budget: the budget is 8 steps as well
    one = (PhaseConfig("a", ("en",), steps=8),)
    assert [p.steps for p in resolve_phases(TrainConfig(regime="x", phases=one), LANGS, 2_000, 256, 1e-3)] == [8]
