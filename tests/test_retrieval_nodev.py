"""Retrieval on data with no dev split: LASER's Tatoeba files are a test set only. `eval tatoeba`
then fixes the headline layer at round(2L/3) (XTREME: layer 8 of 12), labels it
``layer_choice: "fixed: no dev split"``, still reports every layer, and the report shows the label
next to the Tatoeba headline. Also: BUCC without dev gold is still refused (the F1 threshold needs
it), with the splits that do have gold named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _models import make_tiny_xlmr

PAIRS = {  # a few real-looking Tatoeba pairs: (German, English), (French, English)
    "deu": [("Ich habe Hunger.", "I am hungry."), ("Wo ist der Bahnhof?", "Where is the station?"),
            ("Das Buch ist neu.", "The book is new."), ("Er liest gern.", "He likes to read."),
            ("Wir gehen nach Hause.", "We are going home."), ("Es regnet heute.", "It is raining today.")],
    "fra": [("J'ai faim.", "I am hungry."), ("Où est la gare ?", "Where is the station?"),
            ("Le livre est neuf.", "The book is new."), ("Il aime lire.", "He likes to read."),
            ("Nous rentrons.", "We are going home.")],
}


def laser_dir(root: Path) -> Path:
    """``tatoeba.<iso3>-eng.<iso3>`` + ``tatoeba.<iso3>-eng.eng``, line-aligned, as LASER ships them."""
    root.mkdir(parents=True, exist_ok=True)
    for lang, pairs in PAIRS.items():
        (root / f"tatoeba.{lang}-eng.{lang}").write_text("".join(f"{x}\n" for x, _ in pairs), encoding="utf-8")
        (root / f"tatoeba.{lang}-eng.eng").write_text("".join(f"{e}\n" for _, e in pairs), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def model12(tmp_path_factory):
    """A 12-layer (base-model depth), 32-wide random encoder: the depth XTREME's layer 8 refers to."""
    texts = [s for pairs in PAIRS.values() for pair in pairs for s in pair]
    return make_tiny_xlmr(tmp_path_factory.mktemp("m12") / "xlmr", texts, layers=12, vocab=120)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")


def _result(run: Path, name: str) -> dict:
    return json.loads((run / "results" / f"{name}.json").read_text())


def test_no_dev_layer_rule():
    from metaxlm.eval.tatoeba import no_dev_layer

    assert no_dev_layer(12) == 8  # XTREME's Tatoeba / BUCC layer for mBERT and XLM-R base
    assert [no_dev_layer(n) for n in (1, 2, 3, 4, 6, 24)] == [1, 1, 2, 3, 4, 16]


def test_choose_headline_labels_the_choice():
    from metaxlm.eval.tatoeba import choose_headline

    assert choose_headline({"mean": []}, ("mean",), None, 12)["layer_choice"] == "fixed: no dev split"
    assert choose_headline({"mean": []}, ("mean",), 3, 12) == {"layer": 3, "pooling": "mean", "selected_on": "fixed",
                                                              "layer_choice": "user"}
    h = choose_headline({"mean": [[0.1, 0.5, 0.2]]}, ("mean",), None, 2)
    assert h["layer"] == 1 and h["layer_choice"] == "dev" and h["selected_on"] == "dev"


def test_laser_files_run_with_the_fixed_layer_and_report_every_layer(cli, model12, tmp_path):
    """The README's `metaxlm eval tatoeba --model M --data DIR` on LASER files, through the real CLI."""
    data = laser_dir(tmp_path / "tatoeba")
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "--model", model12, "--data", data, "--out", out)
    assert r.exit_code == 0, r.output
    assert "layer 8 (fixed: no dev split), pooling mean" in r.output  # the CLI's one-line summary
    res = _result(out, "tatoeba")
    h = res["headline"]
    assert h["layer"] == 8 and h["pooling"] == "mean" and h["layer_choice"] == "fixed: no dev split"
    assert "round(2L/3)" in h["layer_rule"] and "dev_score" not in h
    assert res["languages"] == ["deu", "fra"] and res["data"]["source"] == "tatoeba"
    assert res["scores"]["deu"]["n"] == 6 and res["scores"]["fra"]["n"] == 5
    for p in ("mean", "cls"):  # every layer of both poolings, on test (the only split)
        for lang in ("deu", "fra"):
            assert set(res["sweep"][p][lang]) == {"test"} and len(res["sweep"][p][lang]["test"]) == 13
    for lang in ("deu", "fra"):  # the headline numbers are the sweep's at layer 8
        assert res["scores"][lang]["acc_cosine"] == pytest.approx(res["sweep"]["mean"][lang]["test"][8])
    assert (out / "plots" / "tatoeba-layers.png").stat().st_size > 1000
    assert "en→xx" in res["conventions"]["acc_cosine"]  # XTREME scores English queries against xx

    # --layer: the user's layer, labelled as such
    out2 = tmp_path / "run2"
    r = cli("eval", "tatoeba", "--model", model12, "--data", data, "--layer", "5", "--pooling", "cls", "--out", out2)
    assert r.exit_code == 0, r.output
    assert _result(out2, "tatoeba")["headline"] == {"layer": 5, "pooling": "cls", "selected_on": "fixed",
                                                    "layer_choice": "user"}

    # the report shows the choice next to the Tatoeba headline
    report = tmp_path / "report.html"
    r = cli("report", out, "--out", report)
    assert r.exit_code == 0, r.output
    md = report.with_suffix(".md").read_text(encoding="utf-8")
    row = next(ln for ln in md.splitlines() if ln.startswith("| Alignment of representations | Tatoeba accuracy"))
    assert "layer choice: fixed: no dev split (layer 8)" in row
    assert "layer choice: fixed: no dev split (layer 8)" in report.read_text(encoding="utf-8")


def test_pair_files_without_dev_run_too(cli, tmp_path):
    """--src/--tgt with no dev pair: the same rule (a 2-layer model: round(4/3) = layer 1)."""
    model = make_tiny_xlmr(tmp_path / "m2")
    src, tgt = tmp_path / "x.de", tmp_path / "x.en"
    src.write_text("".join(f"{x}\n" for x, _ in PAIRS["deu"]), encoding="utf-8")
    tgt.write_text("".join(f"{e}\n" for _, e in PAIRS["deu"]), encoding="utf-8")
    out = tmp_path / "run"
    r = cli("eval", "tatoeba", "-m", model, "--src", src, "--tgt", tgt, "--languages", "de", "--out", out)
    assert r.exit_code == 0, r.output
    h = _result(out, "tatoeba")["headline"]
    assert h["layer"] == 1 and h["layer_choice"] == "fixed: no dev split"


def test_report_label_reads_old_and_new_results():
    from metaxlm.report.summary import layer_choice

    assert layer_choice({"headline": {"selected_on": "dev"}}) == "dev"
    assert layer_choice({"headline": {"selected_on": "fixed"}}) == "user"  # before layer_choice: only --layer
    assert layer_choice({"headline": {"selected_on": "fixed", "layer_choice": "fixed: no dev split"}}) == \
        "fixed: no dev split"
    assert layer_choice({}) is None


def test_bucc_without_dev_gold_names_the_splits_with_gold(cli, tmp_path):
    d = tmp_path / "bucc"
    d.mkdir()
    en = ["run the server", "help for the user", "install a package", "sound editor"]
    for split in ("sample", "training"):
        (d / f"de-en.{split}.en").write_text("".join(f"en{i}\t{s}\n" for i, s in enumerate(en)))
        (d / f"de-en.{split}.de").write_text("".join(f"de{i}\t{s}\n" for i, s in enumerate(en)))
        (d / f"de-en.{split}.gold").write_text("".join(f"de{i}\ten{i}\n" for i in range(len(en))))
    model = make_tiny_xlmr(tmp_path / "m")
    r = cli("eval", "bucc", "-m", model, "--data", d, "--test-split", "training")
    assert r.exit_code == 2, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and "(sample) with --dev-split" in line and "threshold" in line
    for p in d.glob("de-en.sample.*"):
        p.unlink()
    r = cli("eval", "bucc", "-m", model, "--data", d, "--test-split", "training")
    assert r.exit_code == 2 and "split its gold into a dev and a test part" in r.output, r.output
    # with a dev split, the headline says how its layer was chosen
    for split in ("dev",):
        (d / f"de-en.{split}.en").write_text("".join(f"en{i}\t{s}\n" for i, s in enumerate(en)))
        (d / f"de-en.{split}.de").write_text("".join(f"de{i}\t{s}\n" for i, s in enumerate(reversed(en))))
        (d / f"de-en.{split}.gold").write_text("".join(f"de{len(en) - 1 - i}\ten{i}\n" for i in range(len(en))))
    out = tmp_path / "run"
    r = cli("eval", "bucc", "-m", model, "--data", d, "--test-split", "training", "--pooling", "mean", "--out", out)
    assert r.exit_code == 0, r.output
    assert _result(out, "bucc")["headline"]["layer_choice"] == "dev"
    assert np.isfinite(_result(out, "bucc")["mean"]["f1"])
