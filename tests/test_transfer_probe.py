"""The frozen-encoder probe: the sweep on hand-made features, per-word features against the model's
own hidden states, and `--protocol probe` through the CLI for sequence, pair and token tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metaxlm.eval import scores as S
from metaxlm.eval.formats import TokExample
from metaxlm.eval.linprobe import aggregate_probe, compute_probe_sweep, pair_features, word_features
from metaxlm.models import resolve_model

from _models import make_tiny_xlmr

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"
TASKS_DIR = FIX / "tasks"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    texts = [line for p in sorted(FIX.rglob("*")) if p.is_file() and p.suffix in (".tsv", ".txt", ".conllu")
             for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return make_tiny_xlmr(tmp_path_factory.mktemp("probe") / "model", texts, max_positions=130)


def _acc(gold):
    return lambda pred: S.compute_accuracy(list(gold), pred)


def _features(n: int, seed: int, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Layer 0: noise; layer 1: the label's direction plus noise (linearly separable)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(2, n, 8))
    signal = np.where(labels[:, None] == "b", 3.0, -3.0) * np.eye(8)[0]
    return {"mean": np.stack([noise[0], noise[1] * 0.3 + signal]), "cls": noise.copy()}


def test_probe_is_perfect_on_separable_features_and_picks_that_layer():
    rng = np.random.default_rng(0)
    ytr, ydev, yte = (rng.choice(["a", "b"], size=n) for n in (200, 100, 100))
    sweep = compute_probe_sweep(_features(200, 1, ytr), ytr, _features(100, 2, ydev), _acc(ydev),
                                layers=[0, 1], seed=0)
    assert (sweep.layer, sweep.pooling, sweep.best_dev) == (1, "mean", 1.0)
    assert sweep.dev["mean"][1] == 1.0 and sweep.dev["mean"][0] < 0.7 and max(sweep.dev["cls"]) < 0.7
    assert sweep.best_C == sweep.C["mean"][1] == 0.01  # every C is perfect: ties go to the strongest regularisation
    test = _features(100, 3, yte)["mean"][1]
    assert (sweep.model().predict(test) == yte).all()


def test_probe_on_shuffled_labels_is_at_chance():
    rng = np.random.default_rng(1)
    ytr, ydev = (rng.choice(["a", "b", "c", "d"], size=n) for n in (400, 400))
    x = _features(400, 4, rng.choice(["a", "b"], size=400))  # structure unrelated to the labels
    xd = _features(400, 5, rng.choice(["a", "b"], size=400))
    sweep = compute_probe_sweep(x, ytr, xd, _acc(ydev), layers=[0, 1], seed=0)
    assert all(0.1 < s < 0.4 for p in sweep.dev for s in sweep.dev[p])  # chance is 0.25
    # deterministic: the same data gives the same choice and scores
    again = compute_probe_sweep(x, ytr, xd, _acc(ydev), layers=[0, 1], seed=0)
    assert (again.dev, again.C, again.layer, again.pooling) == (sweep.dev, sweep.C, sweep.layer, sweep.pooling)


def test_single_class_training_set_and_pair_features():
    x = {"mean": np.zeros((1, 3, 2))}
    sweep = compute_probe_sweep(x, ["a"] * 3, x, lambda pred: float(pred == ["a"] * 3))
    assert list(sweep.model().predict(x["mean"][0])) == ["a"] * 3 and sweep.best_dev == 1.0
    u, v = np.array([[1.0, -2.0]]), np.array([[3.0, 1.0]])
    assert pair_features(u, v).tolist() == [[1.0, -2.0, 3.0, 1.0, 2.0, 3.0, 3.0, -2.0]]


def test_aggregate_probe_takes_the_common_choice_and_averages_curves():
    def rec(layer, dev):
        return {"layer": layer, "pooling": "mean", "C": 0.1,
                "curves": {"mean": {"layers": [0, 1], "dev": dev, "C": [0.1, 0.1], "test": {"en": dev}}}}

    agg = aggregate_probe([rec(1, [0.2, 0.6]), rec(0, [0.5, 0.4]), rec(1, [0.3, 0.8])])
    assert (agg["layer"], agg["pooling"], agg["C"]) == (1, "mean", 0.1)
    assert agg["curve"] == {"layers": [0, 1], "dev": [pytest.approx(1 / 3), pytest.approx(0.6)],
                            "test": {"en": [pytest.approx(1 / 3), pytest.approx(0.6)]}}
    assert [c["layer"] for c in agg["choices"]] == [1, 0, 1]


def test_word_features_are_the_models_hidden_states(tiny_model_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    exs = [TokExample("a", ["Berlin", "Internationalization", "x"], ["O"] * 3),
           TokExample("b", ["chess"] * 30, ["O"] * 30)]  # the second is split into chunks at max_length 16
    f = word_features(resolve_model(str(tiny_model_dir)), exs, max_length=16, device="cpu")
    assert f["first"].shape == f["mean"].shape == (3, 33, 32)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    pieces = [tok(w, add_special_tokens=False)["input_ids"] for w in exs[0].words]
    ids = [tok.cls_token_id] + [i for p in pieces for i in p] + [tok.sep_token_id]
    with torch.inference_mode():
        hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    pos = 1
    for w, p in enumerate(pieces):
        for layer in range(3):
            h = hs[layer][0]
            np.testing.assert_allclose(f["first"][layer, w], h[pos].numpy(), atol=1e-5)
            np.testing.assert_allclose(f["mean"][layer, w], h[pos:pos + len(p)].mean(0).numpy(), atol=1e-5)
        pos += len(p)
    assert np.abs(f["first"][:, 3:]).sum(-1).min() > 0  # every word of the chunked sentence got a feature


def _result(out: Path, task: str) -> dict:
    return json.loads((out / "results" / f"{task}.json").read_text(encoding="utf-8"))


def _check_probe_result(r: dict, n_layers: int, poolings: tuple[str, ...]) -> None:
    assert r["kind"] == "transfer" and r["protocol"] == "probe"
    pr = r["probe"]
    assert set(pr) >= {"layer", "pooling", "C", "curve"} and pr["pooling"] in poolings
    assert 0 <= pr["layer"] < n_layers and pr["C"] in r["config"]["Cs"]
    curve = pr["curve"]
    assert curve["layers"] == list(range(n_layers)) and len(curve["dev"]) == n_layers
    assert set(curve["test"]) == set(r["languages"]) and all(len(v) == n_layers for v in curve["test"].values())
    metric = r["task"]["metric"]
    s = r["per_seed"][0]
    assert s["probe"]["dev_score"] == pytest.approx(curve["dev"][pr["layer"]])
    for lang in r["languages"]:  # the headline is the chosen layer's point of the curve
        assert s["scores"][lang][metric] == pytest.approx(curve["test"][lang][pr["layer"]])
    assert set(r["scores"]) == set(r["languages"]) and "gaps" in r and "majority" in r


def test_probe_through_the_cli_topic(cli, tiny_model_dir, tmp_path):
    out = tmp_path / "probe"
    res = cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, "--protocol", "probe", "--out", out)
    assert res.exit_code == 0, res.output
    assert "probe: layer" in res.output
    r = _result(out, "topic")
    _check_probe_result(r, 3, ("mean", "cls"))
    assert len(r["per_seed"]) == 1 and r["config"]["seeds"] == [0]  # whole train set: one deterministic fit
    assert r["task"]["item_stat"] == "correct"
    for lang in r["languages"]:
        rows = r["per_seed"][0]["items"][lang]
        assert len(rows) == len(r["item_ids"][lang]) == r["sizes"]["test"][lang]
        assert S.metric_from_items("correct", rows) == pytest.approx(r["per_seed"][0]["scores"][lang]["accuracy"])
    # again: the same numbers (encodings come from the cache the first run wrote)
    again = _result(Path(cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, "--protocol", "probe",
                             "--out", tmp_path / "again").output.strip().splitlines()[-1].split(": ", 1)[1]).parents[1],
                    "topic")
    assert again["probe"] == r["probe"] and again["per_seed"][0]["items"] == r["per_seed"][0]["items"]
    # a train subsample: one fit per seed, each on its own sample
    out = tmp_path / "sub"
    assert cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, "--protocol", "probe", "--seeds", "0,1",
               "--train-size", "20", "--out", out).exit_code == 0
    r = _result(out, "topic")
    assert [s["seed"] for s in r["per_seed"]] == [0, 1] and len(r["probe"]["choices"]) == 2


@pytest.mark.parametrize("task,data,poolings,stat", [
    ("xnli", "xnli-xtreme", ("mean", "cls"), "correct"),
    ("ner", "ner", ("first", "mean"), "tp_fp_fn"),
    ("pos", "pos", ("first", "mean"), "correct_total"),
])
def test_probe_through_the_cli_pairs_and_tokens(cli, tiny_model_dir, tmp_path, task, data, poolings, stat):
    out = tmp_path / task
    res = cli("eval", task, "--model", tiny_model_dir, "--data", TASKS_DIR / data, "--protocol", "probe",
              "--out", out)
    assert res.exit_code == 0, res.output
    r = _result(out, task)
    _check_probe_result(r, 3, poolings)
    assert r["task"]["item_stat"] == stat
    metric = r["task"]["metric"]
    for lang in r["languages"]:
        rows = r["per_seed"][0]["items"][lang]
        assert len(rows) == len(r["item_ids"][lang]) == r["sizes"]["test"][lang]
        assert S.metric_from_items(stat, rows) == pytest.approx(r["per_seed"][0]["scores"][lang][metric])


def test_bad_protocol_is_refused_before_anything_is_written(cli, tiny_model_dir, tmp_path):
    res = cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, "--protocol", "linear",
              "--out", tmp_path / "x")
    assert res.exit_code == 2 and "'linear' is not one of 'finetune', 'probe'" in res.output
    res = cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, "--lr-grid", "1e-4,fast",
              "--out", tmp_path / "x")
    assert res.exit_code == 2 and "--lr-grid" in res.output
    res = cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, "--lr-grid", "1e-4", "--lr", "1e-3",
              "--out", tmp_path / "x")
    assert res.exit_code == 2 and "not both" in res.output
    assert not (tmp_path / "x").exists()
