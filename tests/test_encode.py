"""The sentence-embedding interface: shapes, padding invariance, special-token handling, the cache."""

from __future__ import annotations


import numpy as np
import pytest

from metaxlm.errors import UserError
from metaxlm.models import resolve_model

from _models import make_tiny_xlmr


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "xlmr")


SENTS = ["the package is a tool", "der Server ist mit dem Netzwerk",
         "le programme est un éditeur de texte pour les fichiers avec une interface graphique et du son",
         "a", "run"]


def test_shapes_and_layer_count(tiny_model):
    from metaxlm.encode import encode_layers, num_layers

    ref = resolve_model(str(tiny_model))
    assert num_layers(ref) == 2
    out = encode_layers(ref, SENTS, batch_size=2)
    assert set(out) == {"mean", "cls"}
    for arr in out.values():
        assert arr.shape == (3, len(SENTS), 32) and arr.dtype == np.float32
        assert np.isfinite(arr).all()
    assert not np.allclose(out["mean"], out["cls"])


def test_padding_invariance_and_order(tiny_model):
    from metaxlm.encode import encode_layers

    ref = resolve_model(str(tiny_model))
    together = encode_layers(ref, SENTS, batch_size=8, use_cache=False)
    for i, s in enumerate(SENTS):
        alone = encode_layers(ref, [s], use_cache=False)
        for p in ("mean", "cls"):
            np.testing.assert_allclose(together[p][:, i], alone[p][:, 0], rtol=1e-4, atol=1e-5)


def test_mean_pooling_matches_manual(tiny_model):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from metaxlm.encode import encode_layers

    ref = resolve_model(str(tiny_model))
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModel.from_pretrained(tiny_model).eval()
    s = SENTS[1]
    with torch.no_grad():
        hs = model(**tok([s], return_tensors="pt"), output_hidden_states=True).hidden_states
    manual_mean = np.stack([h[0].mean(0).numpy() for h in hs])
    manual_nospecial = np.stack([h[0, 1:-1].mean(0).numpy() for h in hs])
    out = encode_layers(ref, [s], use_cache=False)
    np.testing.assert_allclose(out["mean"][:, 0], manual_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["cls"][:, 0], np.stack([h[0, 0].numpy() for h in hs]), rtol=1e-4, atol=1e-5)
    ex = encode_layers(ref, [s], ("mean",), exclude_special=True, use_cache=False)
    np.testing.assert_allclose(ex["mean"][:, 0], manual_nospecial, rtol=1e-4, atol=1e-5)


def test_cache_hit(tiny_model, monkeypatch):
    from metaxlm import encode
    from metaxlm.paths import cache_dir

    ref = resolve_model(str(tiny_model))
    first = encode.encode_layers(ref, SENTS)
    assert len(list((cache_dir() / "embeddings").glob("*/mean-L*.npy"))) == 3

    def boom(*a, **k):
        raise AssertionError("re-encoded despite a cached result")

    monkeypatch.setattr(encode, "_encode", boom)
    again = encode.encode_layers(ref, SENTS, ("cls",))
    np.testing.assert_array_equal(again["cls"], first["cls"])
    some = encode.encode_layers(ref, SENTS, ("mean",), layers=[2, 0])  # per-layer cache entries
    np.testing.assert_array_equal(some["mean"], first["mean"][[2, 0]])
    with pytest.raises(AssertionError, match="re-encoded"):  # different data → miss
        encode.encode_layers(ref, SENTS[:2])
    with pytest.raises(AssertionError, match="re-encoded"):  # different options → miss
        encode.encode_layers(ref, SENTS, max_length=16)


def test_layer_subset(tiny_model):
    from metaxlm.encode import encode_layers

    ref = resolve_model(str(tiny_model))
    full = encode_layers(ref, SENTS, use_cache=False)
    part = encode_layers(ref, SENTS, ("cls",), layers=[1], use_cache=False)
    assert part["cls"].shape == (1, len(SENTS), 32)
    np.testing.assert_allclose(part["cls"][0], full["cls"][1], rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="beyond the model's depth"):
        encode_layers(ref, SENTS, layers=[3])


def test_bad_layer_and_pooling(tiny_model):
    from metaxlm.encode import check_layer, encode_layers

    ref = resolve_model(str(tiny_model))
    check_layer(ref, 2)
    with pytest.raises(UserError, match="beyond the model's depth"):
        check_layer(ref, 3)
    with pytest.raises(UserError, match="unknown pooling"):
        encode_layers(ref, SENTS, ("max",))
