"""Report verdict logic on handmade result files (tests/fixtures/results, docs/results.md)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

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
    # means 2 and 5.5; variances 1 and 5/3; se² = 1/3 + 5/12 = 0.75; Welch dof = 4.96 → 4 → t = 2.776
    d = V.welch_delta([1, 2, 3], [4, 5, 6, 7])
    assert d.delta == pytest.approx(3.5)
    assert d.dof == pytest.approx(4.959, abs=1e-3)
    half = 2.776 * math.sqrt(0.75)
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


# -- on the handmade full comparison ------------------------------------------------------------
def test_full_fixture_verdicts():
    rows = _rows(RESULTS / "full")
    assert rows["topic.en_score"].verdict.verdict == V.BETTER
    assert rows["topic.en_score"].verdict.comparison.delta == pytest.approx(0.08)
    assert rows["topic.target_mean"].verdict.verdict == V.NO_DIFF
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
