"""``metaxlm probe align`` end to end on the handmade benchmark with a tiny random-init XLM-R."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metaxlm.probe import cka

from _models import make_tiny_xlmr

BENCH = Path(__file__).parent / "fixtures" / "bench"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return make_tiny_xlmr(root / "tiny-a"), make_tiny_xlmr(root / "tiny-b", layers=3, seed=1)


def _align(cli, *args):
    return cli("probe", "align", "--bootstrap", "50", *args)


def test_single_model_end_to_end(cli, tiny, tmp_path):
    out = tmp_path / "run"
    r = _align(cli, "--model", tiny[0], "--data", BENCH, "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results" / "align.json").read_text())
    assert res["kind"] == "align" and res["schema_version"] == 1
    assert res["config"] == {"pooling": "mean", "debiased": False, "n_sentences": 20, "bootstrap": 50, "seed": 0}
    assert res["languages"] == ["de", "fr"] and res["layers"] == [0, 1, 2]
    assert res["model"]["label"] == "tiny-a" and res["data"]["source"] == "benchmark/parallel/nway.tsv"
    for key in ("cka", "retrieval"):
        for lang in ("de", "fr"):
            vals, ci = res[key][lang]["values"], res[key][lang]["ci95"]
            assert len(vals) == len(ci) == 3
            assert all(0.0 <= v <= 1.0 and lo <= hi for v, (lo, hi) in zip(vals, ci))
    assert res["mean_cka"] == pytest.approx([(a + b) / 2 for a, b in zip(res["cka"]["de"]["values"],
                                                                        res["cka"]["fr"]["values"])])
    for f in ("align.png", "align.svg"):
        assert (out / "plots" / f).stat().st_size > 1000
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "probe" and meta["status"] == "done"


def test_numbers_match_the_library(tiny, tmp_path):
    """The JSON holds exactly linear_cka / top-1 accuracy of encode_layers' embeddings."""
    from metaxlm.encode import encode_layers
    from metaxlm.models import resolve_model
    from metaxlm.probe.align import AlignConfig, run_align

    out = run_align(AlignConfig(models=(str(tiny[0]),), data=(str(BENCH),), layers=(2, 0), debiased=True,
                                bootstrap=20, max_sentences=12, languages=("de",)), tmp_path / "run")
    res = json.loads((out / "results" / "align.json").read_text())
    assert res["layers"] == [0, 2] and res["config"]["n_sentences"] == 12 and "notes" not in res
    rows = [ln.split("\t") for ln in (BENCH / "parallel" / "nway.tsv").read_text().splitlines()[1:13]]
    emb = encode_layers(resolve_model(str(tiny[0])), [r[0] for r in rows] + [r[1] for r in rows],
                        poolings=("mean",))["mean"]
    en, de = emb[:, :12], emb[:, 12:]
    for k, layer in enumerate([0, 2]):
        assert res["cka"]["de"]["values"][k] == pytest.approx(cka.linear_cka(en[layer], de[layer], debiased=True))
        lo, hi = res["cka"]["de"]["ci95"][k]
        assert lo <= hi
        unit = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in (de[layer], en[layer])]
        acc = float(np.mean((unit[0] @ unit[1].T).argmax(1) == np.arange(12)))
        assert res["retrieval"]["de"]["values"][k] == pytest.approx(acc)


def test_cls_layer_0_is_undefined_not_an_error(tiny, tmp_path):
    """cls at layer 0 is the embedding of <s> at position 0, the same for every sentence."""
    from metaxlm.probe.align import AlignConfig, run_align

    out = run_align(AlignConfig(models=(str(tiny[0]),), data=(str(BENCH),), pooling="cls", bootstrap=20),
                    tmp_path / "run")
    res = json.loads((out / "results" / "align.json").read_text())
    assert res["cka"]["de"]["values"][0] is None and res["cka"]["de"]["ci95"][0] is None
    assert res["mean_cka"][0] is None and res["mean_cka"][1] is not None
    assert any(n.startswith("de layer 0: CKA undefined") for n in res["notes"])
    out = run_align(AlignConfig(models=(str(tiny[0]), str(tiny[1])), data=(str(BENCH),), pooling="cls"),
                    tmp_path / "pair")
    res = json.loads((out / "results" / "align-pair.json").read_text())
    assert res["matrix"][0] == [None] * 4 and res["matrix"][1][0] is None and res["matrix"][1][1] is not None


def test_pair_files(cli, tiny, tmp_path):
    rows = [ln.split("\t") for ln in (BENCH / "parallel" / "nway.tsv").read_text().splitlines()[1:]]
    (tmp_path / "x.en").write_text("".join(r[0] + "\n" for r in rows))
    (tmp_path / "x.de").write_text("".join(r[1] + "\n" for r in rows))
    out = tmp_path / "run"
    r = _align(cli, "--model", tiny[0], "--pair", f"de={tmp_path / 'x.en'},{tmp_path / 'x.de'}", "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results" / "align.json").read_text())
    assert res["languages"] == ["de"] and res["data"]["source"] == "pairs"
    ref = json.loads((_run_default(cli, tiny, tmp_path) / "results" / "align.json").read_text())
    # same sentences, same numbers as through nway.tsv (up to float rounding: batches pad differently)
    for key in ("values", "ci95"):
        assert np.allclose(res["cka"]["de"][key], ref["cka"]["de"][key], rtol=1e-6, atol=1e-7)


def test_default_benchmark(cli, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("METAXLM_BENCHMARK", str(tmp_path / "none"))
    r = _align(cli, "--model", tiny[0], "--out", tmp_path / "r0")
    assert r.exit_code == 2 and "no benchmark at" in r.output and "metaxlm data build" in r.output
    monkeypatch.setenv("METAXLM_BENCHMARK", str(BENCH))
    r = _align(cli, "--model", tiny[0], "--languages", "fr", "--layer", "1", "--out", tmp_path / "r1")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "r1" / "results" / "align.json").read_text())
    assert res["languages"] == ["fr"] and res["layers"] == [1] and res["data"]["data_dir"] == str(BENCH)


def _run_default(cli, tiny, tmp_path):
    out = tmp_path / "run-nway"
    assert _align(cli, "--model", tiny[0], "--data", BENCH, "--out", out).exit_code == 0
    return out


def test_two_models_end_to_end(cli, tiny, tmp_path):
    out = tmp_path / "pair"
    r = cli("probe", "align", "--model", tiny[0], "--model", tiny[1], "--data", BENCH, "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results" / "align-pair.json").read_text())
    assert res["kind"] == "align_pair" and [m["label"] for m in res["models"]] == ["tiny-a", "tiny-b"]
    assert res["layers"] == [[0, 1, 2], [0, 1, 2, 3]] and res["languages"] == ["de", "fr"]
    m = np.array(res["matrix"])
    assert m.shape == (3, 4) and np.all((m >= 0) & (m <= 1 + 1e-9))
    assert set(res["per_model"]) == {"tiny-a", "tiny-b"}
    assert len(res["per_model"]["tiny-b"]["fr"]) == 4
    for stem in ("align-pair-matrix", "align-pair-curves"):
        for ext in ("png", "svg"):
            assert (out / "plots" / f"{stem}.{ext}").stat().st_size > 1000
    # a model against itself: the diagonal is 1
    r = cli("probe", "align", "--model", tiny[0], "--model", tiny[0], "--data", BENCH, "--out", tmp_path / "self")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "self" / "results" / "align-pair.json").read_text())
    assert np.diag(res["matrix"]) == pytest.approx(1.0) and set(res["per_model"]) == {"A:tiny-a", "B:tiny-a"}


def _bench_copy(tmp_path, name, header, rows):
    d = tmp_path / name
    (d / "parallel").mkdir(parents=True)
    (d / "parallel" / "nway.tsv").write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n")
    return d


def _nway_rows():
    return [ln.split("\t") for ln in (BENCH / "parallel" / "nway.tsv").read_text().splitlines()[1:]]


@pytest.mark.parametrize("case, needle", [
    ("layer", "--layer 3 is beyond the model's depth"),
    ("debiased", "too few for debiased CKA"),
    ("languages", "mismatched languages between the two models' inputs"),
    ("unequal", "has 20 lines but"),
    ("empty", "empty input"),
    ("empty_nway", "empty input"),
    ("three", "one or two models"),
    ("lang", "language 'ja' is not in the inputs"),
])
def test_bad_input_one_line_exit_2(cli, tiny, tmp_path, case, needle):
    a = tiny[0]
    rows = _nway_rows()
    en = tmp_path / "x.en"
    en.write_text("".join(r[0] + "\n" for r in rows))
    if case == "layer":
        args = ["--model", a, "--data", BENCH, "--layer", "3"]
    elif case == "debiased":
        args = ["--model", a, "--data", BENCH, "--debiased", "--max-sentences", "3"]
    elif case == "languages":
        other = _bench_copy(tmp_path, "b2", ["en", "de"], [r[:2] for r in rows])
        args = ["--model", a, "--model", tiny[1], "--data", BENCH, "--data", other]
    elif case == "unequal":
        (tmp_path / "x.de").write_text("".join(r[1] + "\n" for r in rows[:-1]))
        args = ["--model", a, "--pair", f"de={en},{tmp_path / 'x.de'}"]
    elif case == "empty":
        (tmp_path / "e.en").write_text("")
        (tmp_path / "e.de").write_text("")
        args = ["--model", a, "--pair", f"de={tmp_path / 'e.en'},{tmp_path / 'e.de'}"]
    elif case == "empty_nway":
        args = ["--model", a, "--data", _bench_copy(tmp_path, "b0", ["en", "de"], [])]
    elif case == "three":
        args = ["--model", a, "--model", a, "--model", a, "--data", BENCH]
    else:
        args = ["--model", a, "--data", BENCH, "--languages", "de,ja"]
    r = cli("probe", "align", *args, "--out", tmp_path / "run")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert not (tmp_path / "run").exists()  # bad input is refused before a run directory is made

