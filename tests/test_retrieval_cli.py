"""`metaxlm eval tatoeba` / `metaxlm eval bucc` end to end through the CLI, on the fixture benchmark and
on the standard file formats (tests/fixtures/retrieval/), with a tiny random-init XLM-R."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _models import make_tiny_xlmr

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"
RET = FIX / "retrieval"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "xlmr")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")


def _result(run: Path, name: str) -> dict:
    return json.loads((run / "results" / f"{name}.json").read_text())


def _bad(result, needle: str):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output


# -- tatoeba ----------------------------------------------------------------------------------------
def test_tatoeba_on_benchmark(cli, model, tmp_path):
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "--model", model, "--data", BENCH, "--out", out)
    assert r.exit_code == 0, r.output
    res = _result(out, "tatoeba")
    assert res["kind"] == "tatoeba" and res["schema_version"] == 1
    assert res["languages"] == ["de", "fr"]
    assert res["headline"]["selected_on"] == "dev" and res["headline"]["pooling"] in ("mean", "cls")
    assert res["headline"]["layer_choice"] == "dev"
    assert res["data"]["source"] == "benchmark/parallel" and res["data"]["data_hash"].startswith("sha256:")
    keys = {"acc_cosine_xx2en", "acc_cosine_en2xx", "acc_cosine", "acc_margin_xx2en", "acc_margin_en2xx",
            "xsim_error", "acc_dedup_xx2en", "n", "chance"}
    for lang in ("de", "fr"):
        s = res["scores"][lang]
        assert keys <= set(s) and s["n"] == 20 and s["chance"] == pytest.approx(1 / 20)
        assert all(0 <= s[k] <= 1 for k in keys - {"n"})
        assert s["acc_dedup_xx2en"] >= s["acc_cosine_xx2en"]
    assert set(res["mean"]) >= keys and set(res["conventions"]) >= keys
    for p in ("mean", "cls"):
        for lang in ("de", "fr"):
            assert set(res["sweep"][p][lang]) == {"dev", "test"}
            assert len(res["sweep"][p][lang]["test"]) == 3  # 2 layers + embeddings
    # the headline is the dev argmax, and test numbers at the headline match the sweep
    h = res["headline"]
    dev_mean = {(p, li): np.mean([res["sweep"][p][lang]["dev"][li] for lang in ("de", "fr")])
                for p in ("mean", "cls") for li in range(3)}
    assert dev_mean[h["pooling"], h["layer"]] == max(dev_mean.values())
    for lang in ("de", "fr"):
        assert res["scores"][lang]["acc_cosine"] == pytest.approx(res["sweep"][h["pooling"]][lang]["test"][h["layer"]])
    assert (out / "plots" / "tatoeba-layers.png").stat().st_size > 1000
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "eval" and meta["status"] == "done"
    assert "tatoeba-layers.png" not in r.output and str(out) in r.output


def test_tatoeba_fixed_layer_and_pooling(cli, model, tmp_path):
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "-m", model, "--data", BENCH, "--languages", "fr", "--layer", "1",
            "--pooling", "cls", "--out", out)
    assert r.exit_code == 0, r.output
    res = _result(out, "tatoeba")
    assert res["headline"] == {"layer": 1, "pooling": "cls", "selected_on": "fixed", "layer_choice": "user"}
    assert res["languages"] == ["fr"] and list(res["sweep"]) == ["cls"]


def test_tatoeba_identical_sides_score_one(cli, model, tmp_path):
    """The same file on both sides: every convention must be perfect (alignment survives batching)."""
    src = tmp_path / "a.txt"
    src.write_text("".join(f"{w} {i} package tool\n" for i, w in enumerate(["run", "the data", "help me", "a file",
                                                                            "server", "sound text", "network"])))
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "-m", model, "--src", src, "--tgt", src, "--layer", "2", "--languages", "de",
            "--out", out, "--batch-size", "3")
    assert r.exit_code == 0, r.output
    s = _result(out, "tatoeba")["scores"]["de"]
    assert s["acc_cosine"] == 1.0 and s["acc_margin_xx2en"] == 1.0 and s["xsim_error"] == 0.0


def test_tatoeba_laser_files(cli, model, tmp_path):
    """LASER files have no dev split: the headline layer is fixed at round(2L/3) (tests/test_retrieval_nodev.py)."""
    r = cli("eval", "tatoeba", "-m", model, "--data", RET / "tatoeba", "--out", tmp_path / "x")
    assert r.exit_code == 0, r.output
    h = _result(tmp_path / "x", "tatoeba")["headline"]
    assert h["layer"] == 1 and h["layer_choice"] == "fixed: no dev split"  # 2 layers: round(4/3)
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "-m", model, "--data", RET / "tatoeba", "--layer", "2", "--out", out)
    assert r.exit_code == 0, r.output
    res = _result(out, "tatoeba")
    assert res["languages"] == ["deu", "fra"] and res["data"]["source"] == "tatoeba"
    assert res["scores"]["deu"]["n"] == 10 and res["headline"]["layer_choice"] == "user"
    assert set(res["sweep"]["mean"]["deu"]) == {"test"}


def test_tatoeba_pair_with_dev_pair(cli, model, tmp_path):
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "-m", model, "--src", RET / "pair/test.de", "--tgt", RET / "pair/test.en",
            "--dev-src", RET / "pair/dev.de", "--dev-tgt", RET / "pair/dev.en", "--languages", "de", "--out", out)
    assert r.exit_code == 0, r.output
    res = _result(out, "tatoeba")
    assert res["headline"]["selected_on"] == "dev" and res["data"]["source"] == "pair"
    assert set(res["sweep"]["mean"]["de"]) == {"dev", "test"}


def test_tatoeba_bad_inputs(cli, model, tmp_path):
    _bad(cli("eval", "tatoeba", "-m", model, "--src", RET / "pair/test.de", "--tgt", RET / "pair/short.en",
             "--layer", "1"), "same number of lines")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _bad(cli("eval", "tatoeba", "-m", model, "--src", empty, "--tgt", RET / "pair/test.en", "--layer", "1"), "empty")
    _bad(cli("eval", "tatoeba", "-m", model, "--data", BENCH, "--layer", "7"), "beyond the model's depth")
    _bad(cli("eval", "tatoeba", "-m", model, "--data", BENCH, "--languages", "xx"), "no data for language 'xx'")
    _bad(cli("eval", "tatoeba", "-m", model, "--data", BENCH, "--pooling", "max"), "unknown pooling")
    _bad(cli("eval", "tatoeba", "-m", model, "--data", tmp_path), "neither a benchmark")
    bench = tmp_path / "bench"
    shutil.copytree(BENCH / "parallel", bench / "parallel")
    (bench / "parallel" / "de.test.tsv").write_text("en\tde\n")
    _bad(cli("eval", "tatoeba", "-m", model, "--data", bench, "--languages", "de"), "no sentence pairs")


# -- bucc -------------------------------------------------------------------------------------------
def test_bucc_on_benchmark(cli, model, tmp_path):
    out = tmp_path / "run"
    r = cli("eval", "bucc", "-m", model, "--data", BENCH, "--out", out)
    assert r.exit_code == 0, r.output
    assert "oracle F1" in r.output and "test-tuned" in r.output
    res = _result(out, "bucc")
    assert res["kind"] == "bucc" and res["languages"] == ["de", "fr"]
    assert res["headline"]["selected_on"] == "dev"
    assert {"margin", "k", "retrieval", "layer", "pooling", "dedup"} <= set(res["config"])
    for lang in ("de", "fr"):
        s = res["scores"][lang]
        assert {"threshold", "precision", "recall", "f1", "average_precision", "oracle_f1", "oracle_threshold",
                "n_gold"} <= set(s)
        assert s["n_gold"] == 10 and s["oracle_f1"] >= s["f1"]
        assert len(res["sweep"]["mean"][lang]["dev"]) == 3
    assert set(res["mean"]) == {"f1", "precision", "recall", "average_precision", "oracle_f1"}
    assert "ORACLE" in res["conventions"]["oracle_f1"]
    assert (out / "plots" / "bucc-layers.png").is_file()


def test_bucc_threshold_comes_from_dev_only(model, tmp_path):
    """Changing the test gold changes test scores, never the threshold (tuned on dev)."""
    from metaxlm.eval.bucc import BuccConfig, run_bucc

    data = tmp_path / "d"
    shutil.copytree(BENCH / "mining", data / "mining")
    cfg = BuccConfig(model=str(model), data=data, languages=("de",), layer=2, poolings=("mean",))
    a = _result(run_bucc(cfg, tmp_path / "a"), "bucc")["scores"]["de"]
    gold = (data / "mining" / "de-en.test.gold").read_text().splitlines()
    (data / "mining" / "de-en.test.gold").write_text("\n".join(gold[:3]) + "\n")
    b = _result(run_bucc(cfg, tmp_path / "b"), "bucc")["scores"]["de"]
    assert a["threshold"] == b["threshold"] and b["n_gold"] == 3


def test_bucc_finds_copies(cli, model, tmp_path):
    """xx sentences that are copies of English ones are mined with F1 1 (ids mapped back correctly)."""
    d = tmp_path / "copies"
    d.mkdir()
    en = [f"{w} {i}" for i, w in enumerate(["run the server", "help for the user", "install a package",
                                            "sound editor", "network data", "graphics game", "text file tool",
                                            "library system"])]
    for split in ("dev", "test"):
        (d / f"de-en.{split}.en").write_text("".join(f"en{split}{i}\t{s}\n" for i, s in enumerate(en)))
        (d / f"de-en.{split}.de").write_text("".join(f"de{split}{i}\t{s}\n" for i, s in enumerate(reversed(en))))
        n = len(en)
        (d / f"de-en.{split}.gold").write_text("".join(f"de{split}{n - 1 - i}\ten{split}{i}\n" for i in range(n)))
    out = tmp_path / "run"
    r = cli("eval", "bucc", "-m", model, "--data", d, "--out", out)
    assert r.exit_code == 0, r.output
    s = _result(out, "bucc")["scores"]["de"]
    assert s["f1"] == 1.0 and s["average_precision"] == 1.0 and s["oracle_f1"] == 1.0


def test_bucc_official_layout(cli, model, tmp_path):
    out = tmp_path / "run"
    r = cli("eval", "bucc", "-m", model, "--data", RET / "bucc2018", "--dev-split", "sample",
            "--test-split", "training", "--retrieval", "intersect", "--margin", "distance", "--no-dedup",
            "--layer", "1", "--no-sweep", "--out", out)
    assert r.exit_code == 0, r.output
    res = _result(out, "bucc")
    assert res["sweep"] == {} and not (out / "plots" / "bucc-layers.png").exists()
    assert res["data"]["source"] == "bucc2018" and res["scores"]["de"]["n_gold"] == 7
    assert res["headline"] == {"layer": 1, "pooling": "mean", "selected_on": "fixed", "layer_choice": "user"}
    assert res["config"]["retrieval"] == "intersect" and res["config"]["dedup"] is False


def test_bucc_bad_inputs(cli, model, tmp_path):
    _bad(cli("eval", "bucc", "-m", model, "--data", RET / "bucc2018"), "--test-split")  # no test gold
    _bad(cli("eval", "bucc", "-m", model, "--data", RET / "bucc2018", "--test-split", "training"), "--dev-split")
    _bad(cli("eval", "bucc", "-m", model, "--data", BENCH, "--layer", "3"), "beyond the model's depth")
    _bad(cli("eval", "bucc", "-m", model, "--data", BENCH, "--retrieval", "best"), "'best' is not one of")
    _bad(cli("eval", "bucc", "-m", model, "--data", BENCH, "--dev-split", "test"), "tuned on other data")
    data = tmp_path / "d"
    shutil.copytree(BENCH / "mining", data / "mining")
    gold = data / "mining" / "de-en.test.gold"
    gold.write_text(gold.read_text() + "de-test-999999\ten-test-000001\n")
    _bad(cli("eval", "bucc", "-m", model, "--data", data, "--languages", "de"), "'de-test-999999' is not in")
    shutil.copy(BENCH / "mining" / "de-en.test.gold", gold)
    (data / "mining" / "de-en.dev.en").write_text("")
    _bad(cli("eval", "bucc", "-m", model, "--data", data, "--languages", "de"), "empty")


def test_default_benchmark_is_used_without_data(cli, model, tmp_path, monkeypatch):
    monkeypatch.setenv("METAXLM_BENCHMARK", str(BENCH))
    r = cli("eval", "tatoeba", "-m", model, "--layer", "0", "--pooling", "mean", "--out", tmp_path / "t")
    assert r.exit_code == 0, r.output
    assert _result(tmp_path / "t", "tatoeba")["data"]["data_dir"] == str(BENCH / "parallel")
    r = cli("eval", "bucc", "-m", model, "--layer", "0", "--pooling", "mean", "--no-sweep", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert _result(tmp_path / "b", "bucc")["data"]["source"] == "benchmark/mining"
    monkeypatch.setenv("METAXLM_BENCHMARK", str(tmp_path / "missing"))
    _bad(cli("eval", "tatoeba", "-m", model), "metaxlm data build")



def test_tatoeba_max_pairs_caps_every_split(cli, model, tmp_path):
    """--max-pairs keeps at most N evenly spaced pairs per language and split, and is recorded."""
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "--model", model, "--data", BENCH, "--max-pairs", "7", "--out", out)
    assert r.exit_code == 0, r.output
    res = _result(out, "tatoeba")
    assert all(v["n"] == 7 for v in res["scores"].values())
    assert (out / "config.yaml").read_text().count("max_pairs: 7") == 1
