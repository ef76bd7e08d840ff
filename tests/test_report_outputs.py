"""`metaxlm report` replaces only its own reports (recognised by their marker) and refuses bad --out paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from metaxlm.errors import UserError
from metaxlm.report import MARKER, build_report, is_report

RESULTS = Path(__file__).parent / "fixtures" / "results"
PARTIAL = RESULTS / "partial"


def _error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_every_report_carries_the_marker(tmp_path):
    html, md = build_report([PARTIAL], tmp_path / "r.html")
    assert html.read_text(encoding="utf-8").splitlines()[:2] == ["<!DOCTYPE html>", MARKER]
    assert md.read_text(encoding="utf-8").splitlines()[0] == MARKER
    assert is_report(html) and is_report(md)


@pytest.mark.parametrize("existing", ["notes.md", "notes.html"])
def test_refuses_to_overwrite_a_foreign_file(cli, tmp_path, existing):
    d = tmp_path / "d"
    d.mkdir()
    (d / existing).write_text("# my notes\n\nnot a report\n", encoding="utf-8")
    before = _tree(d)
    msg = _error_line(cli("report", PARTIAL, "--out", d / "notes.html"))
    assert str(d / existing) in msg and "not a metaxlm report" in msg
    assert "choose another --out or move the file away" in msg
    assert _tree(d) == before  # nothing written: no html, no md, no figures
    assert not (d / "notes_files").exists()


def test_rerendering_its_own_report_works(cli, tmp_path):
    """What `metaxlm compare` does on every run: report.html and report.md are replaced."""
    out = tmp_path / "cmp" / "report.html"
    assert cli("report", PARTIAL, "--out", out).exit_code == 0
    first = out.read_text(encoding="utf-8")
    out.with_suffix(".md").write_text(out.with_suffix(".md").read_text(encoding="utf-8") + "\nold tail\n",
                                      encoding="utf-8")
    res = cli("report", PARTIAL, "--out", out)
    assert res.exit_code == 0, res.output
    assert "old tail" not in out.with_suffix(".md").read_text(encoding="utf-8")
    assert MARKER in out.read_text(encoding="utf-8") and len(out.read_text(encoding="utf-8")) > 0.5 * len(first)


def test_compare_rerenders_its_report(tmp_path):
    """compare's report step (build_report on CMP/report.html) succeeds twice in a row."""
    cmp = tmp_path / "cmp"
    shutil.copytree(PARTIAL, cmp)
    for _ in range(2):
        html, md = build_report([cmp / "train", cmp / "eval"], cmp / "report.html")
        assert is_report(html) and is_report(md)


def test_reports_written_before_the_marker_are_recognised(tmp_path):
    html, md = build_report([PARTIAL], tmp_path / "old.html")
    # strip the marker: what earlier versions wrote
    html.write_text(html.read_text(encoding="utf-8").replace(MARKER + "\n", "", 1), encoding="utf-8")
    md.write_text(md.read_text(encoding="utf-8").replace(MARKER + "\n", "", 1), encoding="utf-8")
    assert MARKER not in html.read_text(encoding="utf-8")[:2000] and is_report(html) and is_report(md)
    build_report([PARTIAL], tmp_path / "old.html")  # replaced without complaint
    assert md.read_text(encoding="utf-8").startswith(MARKER)


def test_a_file_mentioning_the_marker_later_is_not_a_report(tmp_path):
    p = tmp_path / "notes.md"
    p.write_text("# notes\n\n" + "x" * 2000 + "\n" + MARKER + "\n", encoding="utf-8")
    assert not is_report(p)
    with pytest.raises(UserError, match="notes.md exists and is not a metaxlm report"):
        build_report([PARTIAL], tmp_path / "notes.html")


def test_half_ours_half_foreign_writes_nothing(tmp_path):
    html, md = build_report([PARTIAL], tmp_path / "r.html")
    md.write_text("my own notes\n", encoding="utf-8")
    before = _tree(tmp_path)
    with pytest.raises(UserError, match="r.md exists and is not a metaxlm report"):
        build_report([PARTIAL], html)
    assert _tree(tmp_path) == before


def test_foreign_figure_is_not_overwritten(tmp_path):
    html, md = build_report([PARTIAL], tmp_path / "r.html")
    pngs = sorted((tmp_path / "r_files").glob("*.png"))
    assert pngs, "the partial fixture draws at least one figure"
    # someone else's figures directory next to a new report name
    (tmp_path / "s_files").mkdir()
    (tmp_path / "s_files" / pngs[0].name).write_bytes(b"my own picture")
    with pytest.raises(UserError, match=f"{pngs[0].name} exists and does not belong to a metaxlm report"):
        build_report([PARTIAL], tmp_path / "s.html")
    assert (tmp_path / "s_files" / pngs[0].name).read_bytes() == b"my own picture"
    assert not (tmp_path / "s.html").exists() and not (tmp_path / "s.md").exists()


def test_out_is_a_directory(cli, tmp_path):
    (tmp_path / "x.html").mkdir()
    msg = _error_line(cli("report", PARTIAL, "--out", tmp_path / "x.html"))
    assert "directory" in msg and ("report.html" in msg or "x.html" in msg)


def test_markdown_path_is_a_directory(cli, tmp_path):
    (tmp_path / "x.md").mkdir()
    msg = _error_line(cli("report", PARTIAL, "--out", tmp_path / "x.html"))
    assert str(tmp_path / "x.md") in msg and "is a directory" in msg
    assert not (tmp_path / "x.html").exists()


def test_parent_is_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    msg = _error_line(cli("report", PARTIAL, "--out", tmp_path / "f" / "sub" / "r.html"))
    assert "not a directory" in msg and "choose another --out" in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_parent_not_writable(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        msg = _error_line(cli("report", PARTIAL, "--out", ro / "r.html"))
        assert "not writable" in msg
    finally:
        ro.chmod(0o700)


def test_parent_not_writable_by_access_check(cli, tmp_path, monkeypatch):
    """Same as above for any user (root included): the directory reports it cannot be written."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == tmp_path else real(p, mode))
    msg = _error_line(cli("report", PARTIAL, "--out", tmp_path / "r.html"))
    assert str(tmp_path) in msg and ("not writable" in msg or "permission denied" in msg) and "choose another --out" in msg
    assert not (tmp_path / "r.html").exists()
