"""`metaxlm report` end to end through the CLI, on full and partial handmade result trees."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from markupsafe import escape  # the HTML is autoescaped by jinja2 (' → &#39;)

RESULTS = Path(__file__).parent / "fixtures" / "results"


def _no_external_refs(html: str) -> None:
    for attr, value in re.findall(r'\b(src|href)\s*=\s*["\']([^"\']*)["\']', html, flags=re.I):
        assert attr.lower() == "src" and value.startswith("data:image/png;base64,"), (attr, value[:80])
    assert "<link" not in html.lower() and "<script" not in html.lower() and "@import" not in html
    assert "url(" not in html


def test_report_full_through_cli(cli, tmp_path):
    out = tmp_path / "rep" / "report.html"
    res = cli("report", RESULTS / "full", "--out", out)
    assert res.exit_code == 0, res.output
    assert f"report: {out}" in res.output
    html = out.read_text(encoding="utf-8")
    _no_external_refs(html)
    assert html.count("data:image/png;base64,") == 8  # losses, gap, probe, retrieval, CKA, heatmap, curves
    for needle in ["English generalization", "Cross-lingual transfer", "Alignment of representations",
                   "better", "worse", "no significant difference", "below control",
                   "Per-language transfer: topic (fine-tuned)", "Per-language transfer: topic (frozen-encoder probe)",
                   "Metrics over pretraining", "Provenance", "0123456789ab", "Welch", "Comparison steps",
                   "How the intervals are computed", "Every model minus every control",
                   "Frozen-encoder probe by layer"]:
        assert needle in html, needle
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    # the claims table: a row per protocol; intervals from the paired bootstrap over the recorded items
    assert "| English generalization | topic (fine-tuned) accuracy, English (en_score) | 0.710 ± 0.025 (n=3) | " \
           "0.790 ± 0.025 (n=3) | +0.080 [+0.034, +0.128] | better |" in md
    assert "| English generalization | topic (probe) accuracy, English (en_score) | 0.610 ± 0.025 (n=3) | " \
           "0.700 ± 0.025 (n=3) | +0.090 [+0.032, +0.150] | better |" in md
    assert "| topic (fine-tuned) accuracy, mean over target languages | +0.007 [-0.058, +0.067]: no significant " \
           "difference | +0.157 [+0.111, +0.202]: better |" in md  # regime contrasts: the multilingual phase helps
    assert "| topic (fine-tuned) accuracy, English (en_score) | single | 0.7000, 0.7100, 0.7200 | pretraining " \
           "seeds | 1, 2, 3 |" in md
    # the method is named under every table with intervals, in both formats
    method = ("topic (fine-tuned): hierarchical paired bootstrap over 200 test items per language × 2 fine-tuning "
              "seeds × 3 pretraining seeds, 2,000 resamples, 95% percentile interval; topic (probe): hierarchical "
              "paired bootstrap over 200 test items per language × 3 pretraining seeds, 2,000 resamples, 95% "
              "percentile interval; Tatoeba, CKA, BUCC: Welch's t-interval over 3 pretraining seeds (no per-item "
              "records; 95%, Welch–Satterthwaite degrees of freedom rounded down)")
    assert md.count(method) == 3 and html.count(str(escape(method))) == 3  # headline, contrasts, controls
    assert md.count("Intervals") >= 4 and html.count("Intervals") >= 4  # and every model minus every control
    assert "preset `fixture`" in md and "Comparison `" in md
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(pngs) == 8
    for p in pngs:
        assert (out.parent / p).is_file() and (out.parent / p).read_bytes()[:4] == b"\x89PNG"


def test_report_partial_says_not_run(cli, tmp_path):
    out = tmp_path / "partial.html"
    res = cli("report", RESULTS / "partial", "--out", out)
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    _no_external_refs(html)
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| Alignment of representations | Tatoeba accuracy (cosine, both directions, headline layer) | " \
           "not run | not run | not run | not run |" in md
    assert "## Retrieval by layer\n\nnot run" in md
    assert "the `none` control was not run" in md
    # results written before per-item records: Welch's interval, labelled
    assert "_Intervals: Welch's t-interval over 2 fine-tuning seeds (no per-item records; 95%" in md


def test_report_default_out_and_several_dirs(cli, tmp_path, monkeypatch):
    tree = tmp_path / "cmp"
    shutil.copytree(RESULTS / "partial", tree)
    res = cli("report", tree)
    assert res.exit_code == 0, res.output
    assert (tree / "report.html").is_file() and (tree / "report.md").is_file()
    # two run directories (e.g. the single and meta evaluations given one by one) → ./report.html
    monkeypatch.chdir(tmp_path)
    res = cli("report", tree / "eval" / "topic-single-s1", tree / "eval" / "topic-meta-s1", tree / "train")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "0.700 ± 0.127 (n=2)" in md and "0.750 ± 0.127 (n=2)" in md


def test_report_only_eval_runs_without_training_runs(cli, tmp_path):
    """Models whose training run is not given (or moved away) are shown under their labels."""
    res = cli("report", RESULTS / "partial" / "eval" / "topic-single-s1", "--out", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "single-s1" in md and "training run" in md  # listed under "Problems while reading"


@pytest.mark.parametrize("args, needle", [
    (["/nonexistent/dir"], "not a directory"),
    ([str(RESULTS / "full"), "--out", "/tmp/x.txt"], "ending in .html"),
    ([str(RESULTS / "partial"), "--out", "/tmp/x.html", "--resamples", "5"], "--resamples 5: give a whole number"),
])
def test_report_user_errors(args, needle):
    from typer.testing import CliRunner

    from metaxlm.cli import app

    res = CliRunner().invoke(app, ["report", *args])
    assert res.exit_code == 2 and needle in res.output


def test_report_with_undefined_values(cli, tmp_path):
    """CKA can be undefined at a layer (cls pooling at the embeddings): recorded as null, drawn as gaps."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("report_fixtures", RESULTS / "make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    root = make.write_comparison(tmp_path / "cmp", {"single": [{"cka": .5}, {"cka": .52}],
                                                     "meta": [{"cka": .6}, {"cka": .61}]}, controls=False)
    for p in root.rglob("align*.json"):
        data = json.loads(p.read_text(encoding="utf-8"))
        if data["kind"] == "align":
            for lang in data["cka"]:
                data["cka"][lang]["values"][0] = None
            data["mean_cka"][0] = None
            data["notes"] = ["de layer 0: CKA undefined (constant representation)"]
        else:
            data["matrix"][0] = [None] * len(data["matrix"][0])
        p.write_text(json.dumps(data), encoding="utf-8")
    res = cli("report", root, "--out", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "CKA undefined" in md and "cka-pairs.png" in md
    assert "| Alignment of representations | mean CKA en↔xx (at the model's Tatoeba headline layer, else the " \
           "last layer) |" in md


def test_report_lists_result_files_that_do_not_fit_their_schema(tmp_path, capsys):
    """Result files with missing or mistyped fields (older or interrupted producers) are skipped, each with one
    line naming the file and the field (in the report and on stderr); the valid results are still reported."""
    import json

    from metaxlm.errors import UserError
    from metaxlm.report import build_report

    tree = tmp_path / "runs"
    shutil.copytree(RESULTS / "partial", tree)
    model = {"spec": "x", "path": "x", "source": "local", "phase": None, "run_dir": None, "label": "x"}
    payloads = {
        "topic": {"kind": "transfer", "model": model, "task": {"name": "topic"}},
        "tatoeba": {"kind": "tatoeba", "model": model, "sweep": {"mean": {"de": {"dev": [0.1, None]}}}},
        "bucc": {"kind": "bucc", "model": model, "mean": {}},
        "align-pair": {"kind": "align_pair", "models": [model, model], "matrix": []},
        "odd": {"kind": "something-else"},
        "list": [1, 2],
    }
    for name, payload in payloads.items():
        d = tree / "sparse" / name / "results"
        d.mkdir(parents=True)
        (d / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")
    html, md = build_report([tree], tmp_path / "r.html")
    text = md.read_text(encoding="utf-8")
    assert "0.700 ± 0.127 (n=2)" in text  # the valid results
    for line in (f"{tree}/sparse/topic/results/topic.json: task.metric: missing (and 7 more problems); skipped "
                 "(fix the file, or write it again with the metaxlm command that made it)",
                 f"{tree}/sparse/odd/results/odd.json: kind: unknown kind 'something-else'",
                 f"{tree}/sparse/list/results/list.json: not a JSON object"):
        assert line in text and line in capsys.readouterr().err + text, line
    _no_external_refs(html.read_text(encoding="utf-8"))
    # nothing valid at all: one line naming the first file that does not fit
    with pytest.raises(UserError, match=r"no usable results under .*sparse: .*align-pair.json: languages: missing"):
        build_report([tree / "sparse"], tmp_path / "s.html")
