"""Report verdict logic on handmade result files (tests/fixtures/results, docs/results.md)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from metaxlm.errors import UserError
from metaxlm.report import verdict as V
from metaxlm.report.collect import collect
from metaxlm.report.summary import build_summary

RESULTS = Path(__file__).parent / "fixtures" / "results"


def _make():
    spec = importlib.util.spec_from_file_location("report_fixtures", RESULTS / "make.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


make = _make()


def _rows(path) -> dict:
    return {r.metric.key: r for r in build_summary(collect([path])).rows}


# -- pure statistics ------------------------------------------------------------------------------
def test_welch_interval_matches_hand_computation():
    # means 2 and 5.5; variances 1 and 5/3; se² = 1/3 + 5/12 = 0.75; Welch dof = 4.96 → 4 → t = 2.7764451
    d = V.welch_delta([1, 2, 3], [4, 5, 6, 7])
    assert d.delta == pytest.approx(3.5)
    assert d.dof == pytest.approx(4.959, abs=1e-3)
    half = 2.7764451052 * math.sqrt(0.75)
    assert d.ci == pytest.approx((3.5 - half, 3.5 + half))
    assert d.verdict == V.BETTER


@pytest.mark.parametrize("a, b, hib, verdict", [
    ([0.70, 0.71, 0.72], [0.78, 0.79, 0.80], True, V.BETTER),
    ([0.70, 0.71, 0.72], [0.78, 0.79, 0.80], False, V.WORSE),  # e.g. a transfer gap: lower is better
    ([0.40, 0.41, 0.42], [0.30, 0.31, 0.32], True, V.WORSE),
    ([0.50, 0.55, 0.45], [0.52, 0.47, 0.53], True, V.NO_DIFF),
    ([0.5], [0.6, 0.7], True, V.NOT_ENOUGH),
    ([], [0.6, 0.7], True, V.NOT_RUN),
    ([0.5, 0.5], [0.6, 0.6], True, V.BETTER),  # no spread on either side: the difference is exact
])
def test_welch_verdicts(a, b, hib, verdict):
    assert V.welch_delta(a, b, hib).verdict == verdict


def test_row_verdict_below_control_only_when_both_fail():
    s = lambda *v: V.Sample(tuple(v), "pretraining seeds")  # noqa: E731
    none = s(0.80, 0.81, 0.82)
    r = V.row_verdict({"single": s(0.50, 0.52, 0.54), "meta": s(0.55, 0.60, 0.50), "none": none})
    assert r.verdict == V.BELOW_CONTROL
    assert r.controls["single"][0] == r.controls["meta"][0] == V.BELOW_CONTROL
    r = V.row_verdict({"single": s(0.50, 0.52, 0.54), "meta": s(0.90, 0.91, 0.92), "none": none})
    assert r.verdict == V.BETTER and r.controls["meta"][0] == V.BEATS_CONTROL
    r = V.row_verdict({"single": s(0.5, 0.52, 0.54), "meta": s(0.55, 0.6, 0.5)})  # no control run
    assert r.verdict == V.NO_DIFF and r.controls["single"][0] == V.NO_CONTROL
    r = V.row_verdict({"single": s(0.5, 0.52), "meta": s(0.55, 0.6), "none": none}, control_check=False)
    assert r.verdict == V.NO_DIFF and r.controls == {}


def test_sample_units():
    assert V.make_sample([(1, 0.5, [0.4, 0.6]), (2, 0.7, [0.7])]).unit == "pretraining seeds"
    one = V.make_sample([(1, 0.5, [0.4, 0.6])])
    assert one.unit == "fine-tuning seeds" and one.values == (0.4, 0.6)
    assert V.make_sample([(1, 0.5, [0.5])]).unit == "run"
    assert V.make_sample([(1, None, [])]) is None


def test_bootstrap_delta_verdict_needs_the_interval_to_exclude_zero():
    base = np.zeros(1000)
    shift = np.linspace(-0.01, 0.05, 1000)  # percentile interval ≈ [-0.0085, +0.0485]: contains 0
    assert V.bootstrap_delta(base, shift, 0.02).verdict == V.NO_DIFF
    d = V.bootstrap_delta(base, shift + 0.02, 0.04)
    assert d.verdict == V.BETTER and d.ci[0] > 0 and d.dof is None
    assert V.bootstrap_delta(base, shift + 0.02, 0.04, higher_is_better=False).verdict == V.WORSE
    assert V.bootstrap_delta(base, -shift - 0.02, -0.04).verdict == V.WORSE


# -- on the handmade full comparison ------------------------------------------------------------
PAIRED_FT = ("hierarchical paired bootstrap over 200 test items per language × 2 fine-tuning seeds × 3 pretraining "
             "seeds, 2,000 resamples, 95% percentile interval")
PAIRED_PROBE = ("hierarchical paired bootstrap over 200 test items per language × 3 pretraining seeds, 2,000 "
                "resamples, 95% percentile interval")


def test_full_fixture_verdicts():
    rows = _rows(RESULTS / "full")
    assert rows["topic.en_score"].verdict.verdict == V.BETTER
    assert rows["topic.en_score"].verdict.comparison.delta == pytest.approx(0.08)
    assert rows["topic.target_mean"].verdict.verdict == V.NO_DIFF
    assert rows["topic-probe.en_score"].verdict.verdict == V.BETTER
    assert rows["topic-probe.en_score"].verdict.comparison.delta == pytest.approx(0.09)
    assert rows["topic-probe.target_mean"].verdict.verdict == V.NO_DIFF
    for key in ("topic.en_score", "topic.target_mean", "topic.transfer_gap_mean"):
        assert rows[key].verdict.comparison.method == PAIRED_FT, key
    for key in ("topic-probe.en_score", "topic-probe.target_mean"):
        assert rows[key].verdict.comparison.method == PAIRED_PROBE, key
    assert rows["tatoeba.acc"].verdict.comparison.method.startswith("Welch's t-interval over 3 pretraining seeds "
                                                                    "(no per-item records")
    assert rows["tatoeba.acc"].verdict.verdict == V.WORSE
    assert rows["tatoeba.acc"].verdict.comparison.delta == pytest.approx(-0.10)
    assert rows["align.mean_cka"].verdict.verdict == V.BELOW_CONTROL
    assert rows["topic.transfer_gap_mean"].metric.higher_is_better is False
    # every model is placed next to the controls
    en = rows["topic.en_score"].samples
    assert en["none"].mean == pytest.approx(0.61) and en["en-only"].mean == pytest.approx(0.74)
    assert en["majority"].mean == pytest.approx(0.30) and en["lexical"].mean == pytest.approx(0.66)
    assert rows["topic.en_score"].chance == pytest.approx(1 / 7)
    assert rows["tatoeba.acc"].chance == pytest.approx(0.005)
    assert en["single"].unit == "pretraining seeds" and en["single"].n == 3
    # controls predict without an encoder: the probe rows show (and pair with) their topic results
    probe = rows["topic-probe.en_score"]
    assert probe.samples["lexical"].mean == pytest.approx(0.66) and probe.samples["majority"].mean == pytest.approx(0.3)
    d = probe.delta("majority", "meta")
    assert d.method == ("hierarchical paired bootstrap over 200 test items per language × 1–3 pretraining seeds, "
                        "2,000 resamples, 95% percentile interval")
    assert d.verdict == V.BETTER and d.delta == pytest.approx(0.40)


def test_paired_intervals_are_seeded_and_computed_from_the_items():
    a = _rows(RESULTS / "full")["topic.en_score"].verdict.comparison
    b = _rows(RESULTS / "full")["topic.en_score"].verdict.comparison
    assert a.ci == b.ci
    s = build_summary(collect([RESULTS / "full"]), seed=1)
    c = {r.metric.key: r for r in s.rows}["topic.en_score"].verdict.comparison
    assert c.ci != a.ci and c.ci == pytest.approx(a.ci, abs=0.02)
    assert any("paired bootstrap over the recorded per-item outcomes (2,000 resamples, seed 1)" in x
               for x in s.statistics)


def test_results_without_items_fall_back_to_welch_labelled():
    rows = _rows(RESULTS / "partial")
    d = rows["topic.en_score"].verdict.comparison
    assert d.method.startswith("Welch's t-interval over 2 fine-tuning seeds (no per-item records;")
    assert d.dof is not None


def _edit_result(path, fn):
    data = json.loads(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_different_test_items_are_not_paired(tmp_path):
    spec = {"single": [{"en": .70, "target": .5}], "meta": [{"en": .80, "target": .5}],
            "none": [{"en": .60, "target": .4}]}
    root = make.write_comparison(tmp_path / "cmp", spec, controls=False, pair=False)
    rows = _rows(root)
    assert rows["topic.en_score"].verdict.comparison.method.startswith("paired bootstrap over 200 test items per "
                                                                       "language × 2 fine-tuning seeds")

    def other_ids(d):
        d["item_ids"] = {lg: [f"x{i}" for i in range(len(ids))] for lg, ids in d["item_ids"].items()}
    _edit_result(root / "eval" / "topic-meta-s1" / "results" / "topic.json", other_ids)

    def stale(d):
        d["per_seed"][0]["scores"]["en"]["accuracy"] += 0.1  # items no longer give the recorded score
    _edit_result(root / "eval" / "topic-none-s1" / "results" / "topic.json", stale)
    rows = _rows(root)
    comp = rows["topic.en_score"].verdict.comparison
    assert "(different test items;" in comp.method and comp.method.startswith("Welch's t-interval")
    _, vs_none = rows["topic.en_score"].verdict.controls["single"]
    assert "(per-item records do not reproduce the recorded scores;" in vs_none.method
    s = build_summary(collect([root]))
    assert any("none (topic)" in x and "falls back to Welch" in x for x in s.statistics)


def test_full_fixture_statements_and_curves():
    col = collect([RESULTS / "full"])
    s = build_summary(col)
    assert any("`single`, `meta` and `en-only` beat the `none` control" in x for x in s.claim_statements["english"])
    assert any("do NOT beat the `none` control" in x for x in s.claim_statements["alignment"])
    assert any("shows the pipeline, not the effect" in x for x in s.what_this_shows)
    assert sorted({e.tokens for e in col.curves}) == [10000, 20000, 30000]
    assert not col.problems  # a metrics.jsonl line cut by a kill is skipped silently


@pytest.mark.parametrize("scenario, key, verdict", [
    ({"single": [{"en": .70, "target": .5}, {"en": .71, "target": .5}, {"en": .72, "target": .5}],
      "meta": [{"en": .78, "target": .5}, {"en": .79, "target": .5}, {"en": .80, "target": .5}],
      "none": [{"en": .80, "target": .5}, {"en": .81, "target": .5}, {"en": .82, "target": .5}]},
     "topic.en_score", V.BELOW_CONTROL),
    ({"single": [{"tatoeba": .3}, {"tatoeba": .32}], "meta": [{"tatoeba": .5}, {"tatoeba": .52}],
      "none": [{"tatoeba": .01}, {"tatoeba": .02}]}, "tatoeba.acc", V.BETTER),
    ({"single": [{"tatoeba": .3}], "meta": [{"tatoeba": .5}]}, "tatoeba.acc", V.NOT_ENOUGH),
    ({"single": [{"cka": .3}, {"cka": .32}]}, "align.mean_cka", V.NOT_RUN),
])
def test_scenarios_from_result_files(tmp_path, scenario, key, verdict):
    make.write_comparison(tmp_path / "cmp", scenario, controls=False, pair=False)
    assert _rows(tmp_path / "cmp")[key].verdict.verdict == verdict


def test_one_pretraining_seed_uses_fine_tuning_seeds():
    rows = _rows(RESULTS / "partial")
    en = rows["topic.en_score"]
    assert en.samples["single"].unit == "fine-tuning seeds" and en.samples["single"].n == 2
    assert en.samples.get("none") is None
    assert rows["tatoeba.acc"].verdict.verdict == V.NOT_RUN
    # no majority control run: the majority numbers recorded in every transfer result are shown
    assert en.samples["majority"].mean == pytest.approx(0.3)


def test_collect_groups_by_training_run_and_survives_bad_files(tmp_path):
    root = make.write_comparison(tmp_path / "cmp", {"single": [{"en": .7, "target": .5}],
                                                     "meta": [{"en": .8, "target": .6}]}, controls=False, pair=False)
    (root / "eval" / "topic-single-s1" / "results" / "broken.json").write_text("{not json", encoding="utf-8")
    # a result whose training run is elsewhere and unknown: shown under its label
    extra = root / "eval" / "topic-xlmr" / "results"
    extra.mkdir(parents=True)
    payload = make.topic_payload({"spec": "xlm-roberta-base", "path": "xlm-roberta-base", "source": "hub",
                                  "phase": None, "run_dir": None, "revision": None, "label": "xlm-roberta-base"},
                                 make._ft(0.9, 0.85))
    (extra / "topic.json").write_text(json.dumps(payload), encoding="utf-8")
    col = collect([root])
    assert any("broken.json" in p for p in col.problems)
    assert col.variants() == ["single", "meta", "xlm-roberta-base"]
    assert [e.seed for e in col.find("single", "topic")] == [1]


def test_collect_errors(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        collect([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results"):
        collect([tmp_path / "empty"])


def test_retrieval_sweep_uses_one_split(tmp_path):
    """A shared dev pair (sweep["mean"]["dev-pair"] with only "dev") must not be averaged into test curves."""
    from metaxlm.report import plots

    root = make.write_comparison(tmp_path / "cmp", {"single": [{"tatoeba": .4}], "meta": [{"tatoeba": .3}]},
                                 controls=False, pair=False)
    p = root / "eval" / "tatoeba-single-s1" / "results" / "tatoeba.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    data["sweep"]["mean"]["dev-pair"] = {"dev": [9.0] * 5}
    p.write_text(json.dumps(data), encoding="utf-8")
    lines, split = plots._sweep_lines(collect([root]), "tatoeba", ("test", "dev"))
    assert split == "test"
    assert lines["single"] == pytest.approx(make._layers(0.4))


def test_results_from_a_newer_schema_are_refused_older_ones_load(tmp_path, capsys, cli):
    root = make.write_comparison(tmp_path / "cmp", {"single": [{"en": .7, "target": .5}],
                                                     "meta": [{"en": .8, "target": .6}]}, controls=False, pair=False)
    newer = root / "eval" / "topic-meta-s1" / "results" / "topic.json"
    data = json.loads(newer.read_text(encoding="utf-8"))
    newer.write_text(json.dumps({**data, "schema_version": 99}), encoding="utf-8")
    older = root / "eval" / "topic-single-s1" / "results" / "topic.json"
    data = json.loads(older.read_text(encoding="utf-8"))
    data.pop("schema_version", None)  # written before results carried a version: still read
    older.write_text(json.dumps(data), encoding="utf-8")
    col = collect([root])
    [line] = [p for p in col.problems if "schema_version" in p]
    assert str(newer) in line and "schema_version 99 is newer than this metaxlm reads (1); skipped" in line
    assert not col.find("meta", "topic") and [e.seed for e in col.find("single", "topic")] == [1]
    assert f"warning: {line}" in capsys.readouterr().err
    # through the CLI: one warning line, the report is written and lists the skipped file
    r = cli("report", root, "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert sum("schema_version 99" in ln for ln in r.output.splitlines()) == 1
    assert "schema_version 99" in (tmp_path / "r.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("stat, metric, encode", [
    ("correct_total", "token_accuracy", lambda c: [2 * c, 2]),  # two tokens per sentence, both right or wrong
    ("tp_fp_fn", "span_f1", lambda c: [1, 0, 0] if c else [0, 1, 1]),  # one entity per sentence: F1 = accuracy
])
def test_every_item_stat_is_bootstrapped(tmp_path, stat, metric, encode):
    """POS-like (Σcorrect/Σn) and NER-like (micro F1) records of the same outcomes give the same interval."""
    spec = {"single": [{"en": .70, "target": .5}, {"en": .72, "target": .5}],
            "meta": [{"en": .78, "target": .52}, {"en": .80, "target": .5}]}
    root = make.write_comparison(tmp_path / "cmp", spec, controls=False, pair=False)
    want = _rows(root)["topic.en_score"].verdict.comparison

    def recode(d):
        d["task"].update(item_stat=stat, metric=metric)
        for s in d["per_seed"]:
            s["items"] = {lg: [encode(c) for c in rows] for lg, rows in s["items"].items()}
            for sc in s["scores"].values():
                sc[metric] = sc["accuracy"]
        for sc in d["scores"].values():  # the summary over seeds names the primary metric too (its schema)
            sc[metric] = sc["accuracy"]
    for p in root.rglob("topic.json"):
        _edit_result(p, recode)
    got = {r.metric.key: r for r in build_summary(collect([root])).rows}["topic.en_score"].verdict.comparison
    assert got.method == want.method and got.method.startswith("hierarchical paired bootstrap")
    assert got.ci == pytest.approx(want.ci) and got.verdict == want.verdict


def test_low_overlap_subset_is_a_claim_row(tmp_path):
    import shutil

    root = tmp_path / "full"
    shutil.copytree(RESULTS / "full", root)
    assert "tatoeba.acc_low" not in _rows(root)  # results without the subset: no row

    def low(d):
        mean = {k: (v - 0.1 if k == "acc_cosine" else v) for k, v in d["mean"].items()}
        d["subsets"] = {"low-overlap": {"languages": d["languages"], "scores": d["scores"], "mean": mean}}
    for p in root.glob("eval/tatoeba-*/results/tatoeba.json"):
        _edit_result(p, low)
    rows = _rows(root)
    full, sub = rows["tatoeba.acc"], rows["tatoeba.acc_low"]
    assert "low-overlap" in sub.metric.label
    assert sub.samples["single"].mean == pytest.approx(full.samples["single"].mean - 0.1)
    assert sub.verdict.comparison.delta == pytest.approx(full.verdict.comparison.delta)
