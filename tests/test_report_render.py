"""`metaxlm report` end to end through the CLI, on full and partial handmade result trees."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

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
    assert html.count("data:image/png;base64,") == 7  # losses, gap, retrieval, CKA, heatmap, curves
    for needle in ["English generalization", "Cross-lingual transfer", "Alignment of representations",
                   "better", "worse", "no significant difference", "below control", "Per-language transfer: topic",
                   "Metrics over pretraining", "Provenance", "0123456789ab", "Welch", "Comparison steps"]:
        assert needle in html, needle
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| English generalization | topic accuracy, English (en_score) | 0.710 ± 0.025 (n=3) | " \
           "0.790 ± 0.025 (n=3) | +0.080 [+0.057, +0.103] | better |" in md
    assert "| topic accuracy, mean over target languages | +0.007 [-0.103, +0.116]: no significant difference | " \
           "+0.157 [+0.073, +0.240]: better |" in md  # regime contrasts: the multilingual phase helps transfer
    assert "| topic accuracy, English (en_score) | single | 0.7000, 0.7100, 0.7200 | pretraining seeds | " \
           "1, 2, 3 |" in md
    assert "preset `fixture`" in md and "Comparison `" in md
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(pngs) == 7
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


def test_report_survives_sparse_result_files(tmp_path):
    """Result files with missing keys (older or interrupted producers) give "not run" cells, not a crash."""
    import json

    from metaxlm.report import build_report

    model = {"spec": "x", "path": "x", "source": "local", "phase": None, "run_dir": None, "label": "x"}
    payloads = {
        "topic": {"kind": "transfer", "model": model, "task": {"name": "topic"}},
        "tatoeba": {"kind": "tatoeba", "model": model, "sweep": {"mean": {"de": {"dev": [0.1, None]}}}},
        "bucc": {"kind": "bucc", "model": model, "mean": {}},
        "align": {"kind": "align", "model": model, "mean_cka": [], "cka": {"de": {}}},
        "align-pair": {"kind": "align_pair", "models": [model, model], "matrix": []},
        "odd": {"kind": "something-else"},
        "list": [1, 2],
    }
    for name, payload in payloads.items():
        d = tmp_path / "runs" / name / "results"
        d.mkdir(parents=True)
        (d / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")
    html, md = build_report([tmp_path / "runs"], tmp_path / "r.html")
    text = md.read_text(encoding="utf-8")
    assert "not run" in text and "unknown kind 'something-else'" in text and "not a JSON object" in text
    _no_external_refs(html.read_text(encoding="utf-8"))
