"""Surface overlap (metaxlm.eval.overlap) on hand-made pairs, and overlap bands in Tatoeba/BUCC results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _models import make_tiny_xlmr
from metaxlm.eval import overlap as O
from metaxlm.eval.bitext_formats import ParallelSet
from metaxlm.eval.tatoeba import overlap_results

FIX = Path(__file__).parent / "fixtures"


def test_overlap_on_hand_made_pairs():
    assert O.compute_overlap("Open the file", "Open the file") == 1.0
    assert O.compute_overlap("Open the file", "OPEN  the\tfile!") == 1.0  # case, spaces, punctuation
    assert O.compute_overlap("Ouvrez le fichier", "Open the file") == 0.0  # no common 4-gram or short word
    assert O.compute_overlap("", "") == 1.0 and O.compute_overlap("", "text") == 0.0
    # grams: "/usr/bin/python3" -> usr, bin, pyth ytho thon hon3 (6) on each side; "Starten"/"Run" 4 + 1
    a, b = "Starten /usr/bin/python3", "Run /usr/bin/python3"
    assert O.compute_overlap(a, b) == pytest.approx(2 * 6 / (10 + 7))
    # Japanese and English share only the command name
    ja, en = "コマンド grep を実行します", "Run the grep command"
    assert 0 < O.compute_overlap(ja, en) < 0.3
    assert O.compute_overlap(a, b) == O.compute_overlap(b, a)  # symmetric
    np.testing.assert_allclose(O.compute_overlaps(["x y", "abc"], ["x y", "def"]), [1.0, 0.0])
    with pytest.raises(ValueError):
        O.compute_overlaps(["a"], [])


def test_bands_and_band_means():
    assert [O.band_of(s) for s in (0.0, 0.099, 0.1, 0.29, 0.3, 1.0)] == ["low", "low", "mid", "mid", "high", "high"]
    with pytest.raises(ValueError):
        O.band_of(-0.1)
    bands = ["low", "low", "high", "mid"]
    m = O.compute_band_means({"acc": [1, 0, 1, 1]}, bands)
    assert m["low"] == {"acc": 0.5, "n": 2} and m["mid"] == {"acc": 1.0, "n": 1} and m["high"]["n"] == 1
    assert O.compute_band_means({"acc": [1]}, ["high"])["low"] == {"acc": None, "n": 0}
    s = O.compute_overlap_summary([0.0, 0.5, 0.2, 0.05])
    assert s["share"] == {"low": 0.5, "mid": 0.25, "high": 0.25} and s["median"] == pytest.approx(0.125)


def test_overlap_results_split_the_overall_accuracy_by_band():
    rng = np.random.default_rng(0)
    xx = [f"Satz {w} über etwas" for w in ("eins", "zwei", "drei", "vier")] + ["grep -r foo /etc", "ls -la /tmp/x"]
    en = [f"Sentence {w} about something" for w in ("one", "two", "three", "four")] + ["grep -r foo /etc",
                                                                                      "ls -la /tmp/x"]
    x = rng.normal(size=(6, 8)).astype(np.float32)
    y = x + 0.01 * rng.normal(size=(6, 8)).astype(np.float32)
    y[1] = -x[1]  # one low-overlap query fails
    res = overlap_results({"de": ParallelSet("de", "test", xx, en)}, {"de": (x, y)}, k=2)
    b = res["bands"]
    assert b["low"]["scores"]["de"]["n"] == 4 and b["high"]["scores"]["de"]["n"] == 2
    assert b["mid"]["scores"]["de"] == {"acc_cosine_xx2en": None, "acc_cosine_en2xx": None, "acc_cosine": None,
                                        "n": 0}
    assert b["low"]["scores"]["de"]["acc_cosine_xx2en"] == 0.75 and b["high"]["scores"]["de"]["acc_cosine"] == 1.0
    assert b["mid"]["mean"]["acc_cosine"] is None and b["low"]["mean"]["n"] == 4
    low = res["subsets"]["low-overlap"]
    assert low["languages"] == ["de"] and low["scores"]["de"]["n"] == 4 and low["scores"]["de"]["chance"] == 0.25
    assert set(low["mean"]) == set(low["scores"]["de"])
    assert res["overlap"]["scores"]["de"]["share"]["high"] == pytest.approx(2 / 6)


# -- end to end, tiny random-init encoder -----------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "xlmr")


def test_tatoeba_result_has_bands_and_low_overlap_subset(cli, model, tmp_path, monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    r = cli("eval", "tatoeba", "--model", model, "--data", FIX / "retrieval" / "tatoeba", "--out", tmp_path / "t")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "t/results/tatoeba.json").read_text())
    for lang in res["languages"]:
        n = res["scores"][lang]["n"]
        per = [res["bands"][b]["scores"][lang] for b in ("low", "mid", "high")]
        assert sum(p["n"] for p in per) == n
        # the bands partition the queries: their weighted accuracy is the overall one
        overall = sum(p["acc_cosine_xx2en"] * p["n"] for p in per if p["n"]) / n
        assert overall == pytest.approx(res["scores"][lang]["acc_cosine_xx2en"])
    low = res["subsets"]["low-overlap"]
    for lang in low["languages"]:
        assert set(low["scores"][lang]) == set(res["scores"][lang])
    assert "Dice" in res["overlap"]["definition"]


def test_bucc_result_has_bands_and_low_overlap_subset(cli, model, tmp_path, monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    r = cli("eval", "bucc", "--model", model, "--data", FIX / "bench", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b/results/bucc.json").read_text())
    for lang in res["languages"]:
        per = [res["bands"][b]["scores"][lang] for b in ("low", "mid", "high")]
        assert sum(p["n_gold"] for p in per) == res["scores"][lang]["n_gold"]
        assert sum(p["n_extracted"] for p in per) == res["scores"][lang]["n_extracted"]
    low = res["subsets"]["low-overlap"]
    assert set(low["languages"]) | set(low["too_few"]) == set(res["languages"])
    for lang in low["languages"]:
        assert set(low["scores"][lang]) == set(res["scores"][lang])
