"""The Python API (``import metaxlm``): lazy exports, runners returning ``Run(path, result)``, and
encoders as objects (anything with ``encode(sentences) -> array``) for Tatoeba, BUCC and CKA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _models import CharGrams
import yaml

import metaxlm
from metaxlm.errors import UserError

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")


def test_import_does_not_load_torch():
    code = ("import sys, metaxlm; assert metaxlm.__version__; "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_exports_resolve():
    import metaxlm.compare  # noqa: F401  (a subpackage import must not shadow an API name)
    import metaxlm.train  # noqa: F401

    for name in metaxlm.__all__[1:]:
        assert getattr(metaxlm, name) is not None, name
    assert callable(metaxlm.run_train) and callable(metaxlm.run_compare) and callable(metaxlm.build_report)
    x = np.random.default_rng(0).normal(size=(20, 5))
    assert metaxlm.linear_cka(x, x) == pytest.approx(1.0)
    with pytest.raises(AttributeError):
        metaxlm.no_such_thing  # noqa: B018


def test_tatoeba_with_an_encode_object(tmp_path):
    enc = CharGrams()
    run = metaxlm.run_tatoeba(model=enc, data=BENCH, out=tmp_path / "t", prefix="query: ")
    assert isinstance(run, metaxlm.Run) and run.path == tmp_path / "t"
    res = run.result
    assert res == json.loads((run / "results" / "tatoeba.json").read_text())  # the record, as written
    assert res["headline"]["layer"] == 0 and res["headline"]["pooling"] == "encoder"
    assert res["model"]["source"] == "object" and res["model"]["class"].endswith("CharGrams")
    assert res["model"]["repr"] == "CharGrams(dim=64)" and res["config"]["num_layers"] == 0
    assert list(res["sweep"]) == ["encoder"]
    mean = res["mean"]
    assert mean["acc_cosine"] > 2 * mean["chance"]  # trigrams carry names and numbers across languages
    assert 0 <= mean["precision_weighted_xx2en"] <= 1 and 0 <= mean["f1_weighted_xx2en"] <= 1
    cfg = yaml.safe_load((run.path / "config.yaml").read_text())
    assert cfg["model"] == {"name": None, "class_name": f"{CharGrams.__module__}.CharGrams",
                            "repr": "CharGrams(dim=64)"}  # a description, not the object
    assert cfg["prefix"] == "query: " and cfg["poolings"] == ["encoder"]
    assert enc.seen and all(s.startswith("query: ") for s in enc.seen)


def test_unnamed_object_is_not_cached_named_one_is(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("METAXLM_CACHE", str(cache))
    enc = CharGrams()
    metaxlm.run_tatoeba(model=enc, data=BENCH, out=tmp_path / "a")
    assert not (cache / "embeddings").exists() or not any((cache / "embeddings").iterdir())
    n = len(enc.seen)
    named = metaxlm.Encoder.wrap(enc, name="chargrams-64")
    a = metaxlm.run_tatoeba(model=named, data=BENCH, out=tmp_path / "b")
    seen = len(enc.seen)
    assert n < seen < 2 * n and any((cache / "embeddings").iterdir())  # shared English sets: encoded once
    b = metaxlm.run_tatoeba(model=named, data=BENCH, out=tmp_path / "c")
    assert len(enc.seen) == seen  # the second named run reads the cache
    assert a.result["scores"] == b.result["scores"] and b.result["model"]["name"] == "chargrams-64"


def test_bucc_with_an_encode_object(tmp_path):
    run = metaxlm.run_bucc({"model": CharGrams(), "data": str(BENCH)}, tmp_path / "b")
    res = run.result
    assert res["kind"] == "bucc" and res["headline"]["pooling"] == "encoder" and res["headline"]["layer"] == 0
    for lang in res["languages"]:
        s = res["scores"][lang]
        assert 0 <= s["f1"] <= 1 and s["n_gold"] > 0
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["repr"] == "CharGrams(dim=64)"


def test_cka_with_an_encode_object_and_a_model(tmp_path):
    from _models import make_tiny_xlmr

    one = metaxlm.run_align(models=[CharGrams()], data=[str(BENCH)], bootstrap=20, out=tmp_path / "one")
    res = one.result
    assert res["kind"] == "align" and res["layers"] == [0] and res["config"]["pooling"] == "encoder"
    for lang in res["languages"]:
        v, (lo, hi) = res["cka"][lang]["values"][0], res["cka"][lang]["ci95"][0]
        assert 0 < v <= 1 and 0 <= lo <= hi <= 1
    tiny = make_tiny_xlmr(tmp_path / "tiny")
    pair = metaxlm.run_align(models=(CharGrams(), str(tiny)), data=(str(BENCH),), out=tmp_path / "pair")
    m = pair.result["matrix"]
    assert len(m) == 1 and len(m[0]) == 3 and all(0 <= x <= 1 for x in m[0])  # 1 encoder layer × 3 model layers


def test_bad_encoder_objects(tmp_path):
    from metaxlm.eval.tatoeba import TatoebaConfig

    with pytest.raises(UserError, match="encode"):
        TatoebaConfig(model=object())

    class Wrong:
        def encode(self, sentences):
            return np.zeros((len(sentences) + 1, 4))

    with pytest.raises(UserError, match=r"returned shape"):
        metaxlm.run_tatoeba(model=Wrong(), data=BENCH, out=tmp_path / "w")
    with pytest.raises(UserError, match="model path"):
        metaxlm.run_transfer(model=CharGrams(), task="topic", out=tmp_path / "x")


def test_cli_prefix_option(cli, tmp_path):
    from _models import make_tiny_xlmr

    tiny = make_tiny_xlmr(tmp_path / "tiny")
    out = tmp_path / "t"
    r = cli("eval", "tatoeba", "--model", tiny, "--data", BENCH, "--prefix", "query: ", "--pooling", "mean",
            "--out", out)
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((out / "config.yaml").read_text())["prefix"] == "query: "
    r = cli("probe", "align", "--model", tiny, "--data", BENCH, "--prefix", "query: ", "--bootstrap", "10",
            "--out", tmp_path / "a")
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["prefix"] == "query: "
