"""``metaxlm export mteb``: metaxlm results → MTEB's result files (TaskResult JSON + model_meta.json).

The schema is checked field by field as MTEB's ``TaskResult`` validates it (mteb 2.x); when ``mteb``
is importable the files are also loaded with MTEB's own ``TaskResult.from_disk`` and ``ModelMeta``
(it is not a dependency of metaxlm, so that test is skipped otherwise)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import metaxlm
from metaxlm.errors import UserError
from metaxlm.export import mteb as M

FIX = Path(__file__).parent / "fixtures"
TREE = FIX / "results" / "full"
LASER = FIX / "retrieval" / "tatoeba"

MODEL_META_KEYS = {  # the keys of mteb's ModelMeta.to_dict() (mteb 2.x)
    "loader_kwargs", "name", "revision", "release_date", "languages", "n_parameters",
    "n_active_parameters_override", "n_embedding_parameters", "memory_usage_mb", "max_tokens", "embed_dim",
    "license", "open_weights", "public_training_code", "public_training_data", "framework", "reference",
    "similarity_fn_name", "use_instructions", "training_datasets", "adapted_from", "superseded_by", "modalities",
    "model_type", "citation", "contacts", "experiment_kwargs", "output_dtypes", "extra_requirements_groups",
    "loader", "is_cross_encoder"}
LANG = re.compile(r"^[a-z]{2,3}-[A-Z][a-z]{3}$")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")


def check_task_result(d: dict) -> None:
    """What MTEB's TaskResult requires of a result file (types, and per subset main_score, hf_subset,
    languages), plus JSON round-tripping."""
    assert isinstance(d["dataset_revision"], str) and d["dataset_revision"]
    assert isinstance(d["task_name"], str) and d["task_name"]
    assert d["mteb_version"] is None or isinstance(d["mteb_version"], str)
    assert d["evaluation_time"] is None or isinstance(d["evaluation_time"], (int, float))
    assert d["date"] is None or isinstance(d["date"], (int, float))
    assert d["kg_co2_emissions"] is None and d["evaluation_phases"] is None
    assert isinstance(d["scores"], dict) and d["scores"]
    for split, subsets in d["scores"].items():
        assert isinstance(split, str) and isinstance(subsets, list) and subsets
        for s in subsets:
            assert isinstance(s["main_score"], (int, float)) and 0 <= s["main_score"] <= 1
            assert isinstance(s["hf_subset"], str)
            assert isinstance(s["languages"], list) and all(LANG.match(x) for x in s["languages"]), s["languages"]
    assert json.loads(json.dumps(d)) == d


def _files(out: Path):
    return sorted(p for p in (out / "results").glob("*/*/*.json"))


def test_pure_mapping_of_fixture_results():
    tat = json.loads((TREE / "eval" / "tatoeba-meta-s1" / "results" / "tatoeba.json").read_text())
    meta = json.loads((TREE / "eval" / "tatoeba-meta-s1" / "meta.json").read_text())
    d, why = M.task_result(tat, meta)
    assert why == "" and d["task_name"] == "MetaxlmDebianParallelBitextMining"
    check_task_result(d)
    assert d["metaxlm"]["comparable_with_leaderboard"] is False and "not LASER" in d["metaxlm"]["comparability"]
    de = next(s for s in d["scores"]["test"] if s["hf_subset"] == "deu-eng")
    assert de["languages"] == ["deu-Latn", "eng-Latn"] and de["accuracy"] == tat["scores"]["de"]["acc_cosine_xx2en"]
    assert d["dataset_revision"] == tat["data"]["data_hash"] and d["evaluation_time"] == tat["timing"]["seconds"]
    assert d["date"] == pytest.approx(1795586400.0)  # meta.json finished_at 2026-11-25T06:10:00+00:00

    bucc = json.loads((TREE / "eval" / "bucc-meta-s1" / "results" / "bucc.json").read_text())
    d, _ = M.task_result(bucc)
    check_task_result(d)
    assert d["task_name"] == "MetaxlmDebianMining" and not d["metaxlm"]["comparable_with_leaderboard"]
    de = next(s for s in d["scores"]["test"] if s["hf_subset"] == "de-en")
    assert {k: de[k] for k in ("precision", "recall", "f1")} == {k: bucc["scores"]["de"][k] for k in
                                                                 ("precision", "recall", "f1")}
    assert de["main_score"] == de["f1"]

    topic = json.loads((TREE / "eval" / "topic-meta-s1" / "results" / "topic.json").read_text())
    d, _ = M.task_result(topic)
    check_task_result(d)
    assert d["task_name"] == "MetaxlmTopicZeroShotTransfer"
    en = next(s for s in d["scores"]["test"] if s["hf_subset"] == "en")
    assert en["main_score"] == topic["scores"]["en"]["accuracy"]["mean"] and en["languages"] == ["eng-Latn"]
    assert [r["accuracy"] for r in en["scores_per_experiment"]] == topic["scores"]["en"]["accuracy"]["values"]

    assert M.task_result({"kind": "align"})[0] is None
    assert M.task_result({"kind": "transfer", "task": {"name": "ner", "metric": "span_f1"}})[0] is None
    assert M.mteb_language("ja") == "jpn-Jpan" and M.mteb_language("deu") == "deu-Latn"
    assert M.mteb_language("xq") == "xq-Zzzz"
    assert M.model_name({"source": "hub", "spec": "xlm-roberta-base"}) == "hub/xlm-roberta-base"
    assert M.model_name({"source": "run", "label": "meta-s1"}) == "metaxlm/meta-s1"


def test_export_fixture_tree(cli, tmp_path):
    out = tmp_path / "mteb"
    r = cli("export", "mteb", TREE, "--out", out)
    assert r.exit_code == 0, r.output
    files = _files(out)
    metas = [p for p in files if p.name == "model_meta.json"]
    tasks = [p for p in files if p.name != "model_meta.json"]
    assert metas and tasks and {p.parent for p in tasks} == {p.parent for p in metas}
    for p in metas:
        meta = json.loads(p.read_text())
        assert set(meta) == MODEL_META_KEYS and "/" in meta["name"]
        assert p.parent.name == meta["revision"] and p.parent.parent.name == meta["name"].replace("/", "__")
    for p in tasks:
        d = json.loads(p.read_text())
        check_task_result(d)
        assert p.stem == d["task_name"]
    manifest = json.loads((out / "results" / "mteb_export.json").read_text())
    assert manifest["comparable"] == []  # the fixture's sets are metaxlm's own: nothing is a leaderboard task
    assert "MetaxlmDebianParallelBitextMining" in manifest["not_comparable"]
    assert len(manifest["exported"]) == len(tasks)
    assert any("probe" in s["why"] or "no MTEB counterpart" in s["why"] for s in manifest["skipped"])
    assert json.loads((out / "meta.json").read_text())["status"] == "done"
    r = cli("export", "mteb", TREE, "--out", out)  # a finished export is never overwritten
    assert r.exit_code == 2 and "finished" in r.output


class CharGrams:
    def encode(self, sentences):
        out = np.zeros((len(sentences), 32), np.float32)
        for i, s in enumerate(sentences):
            for ch in s.lower():
                out[i, ord(ch) % 32] += 1.0
        return out


def test_laser_tatoeba_exports_as_mteb_tatoeba(tmp_path):
    from sklearn.metrics import accuracy_score, f1_score, precision_score

    run = metaxlm.run_tatoeba(model=CharGrams(), data=LASER, out=tmp_path / "t")
    exp = metaxlm.export_mteb([run.path], tmp_path / "mteb")
    assert exp.result["comparable"] == ["Tatoeba"]
    path = exp.path / "results" / "object__CharGrams" / "no_revision_available" / "Tatoeba.json"
    d = json.loads(path.read_text())
    check_task_result(d)
    assert d["metaxlm"]["comparable_with_leaderboard"] is True and d["mteb_version"] is None
    subsets = {s["hf_subset"]: s for s in d["scores"]["test"]}
    assert set(subsets) == {"deu-eng", "fra-eng"}
    # the scores MTEB's BitextMining computes: sklearn weighted metrics of the xx → en nearest neighbour
    for iso3 in ("deu", "fra"):
        xx = (LASER / f"tatoeba.{iso3}-eng.{iso3}").read_text(encoding="utf-8").splitlines()
        en = (LASER / f"tatoeba.{iso3}-eng.eng").read_text(encoding="utf-8").splitlines()
        a, b = (CharGrams().encode(t) for t in (xx, en))
        a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (a, b))
        pred, gold = (a @ b.T).argmax(1), np.arange(len(xx))
        s = subsets[f"{iso3}-eng"]
        assert s["f1"] == pytest.approx(f1_score(gold, pred, average="weighted", zero_division=0))
        assert s["precision"] == pytest.approx(precision_score(gold, pred, average="weighted", zero_division=0))
        assert s["accuracy"] == s["recall"] == pytest.approx(accuracy_score(gold, pred))
        assert s["main_score"] == s["f1"]


def test_capped_tatoeba_is_not_comparable(tmp_path):
    run = metaxlm.run_tatoeba(model=CharGrams(), data=LASER, max_pairs=5, out=tmp_path / "t")
    exp = metaxlm.export_mteb(run.path, tmp_path / "mteb")
    assert exp.result["comparable"] == [] and exp.result["not_comparable"] == ["MetaxlmBitextMining"]
    assert "capped at 5" in exp.result["exported"][0]["comparability"]


def test_conflicts_and_empty_input_are_refused_before_writing(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(TREE / "eval" / "tatoeba-meta-s1", a / "x")
    shutil.copytree(TREE / "eval" / "tatoeba-meta-s1", b / "x")
    res = json.loads((b / "x" / "results" / "tatoeba.json").read_text())
    res["model"]["path"] = "/elsewhere/meta-s1/checkpoints/final"
    (b / "x" / "results" / "tatoeba.json").write_text(json.dumps(res))
    r = cli("export", "mteb", a, b, "--out", tmp_path / "o1")
    assert r.exit_code == 2 and "both be exported as metaxlm/meta-s1" in r.output
    assert not (tmp_path / "o1").exists()
    metaxlm.export_mteb([a, a / "x"], tmp_path / "o2")  # the same run given twice is read once
    shutil.copytree(TREE / "eval" / "tatoeba-meta-s1", a / "y")  # the same model evaluated twice
    with pytest.raises(UserError, match="two results for the MTEB task MetaxlmDebianParallelBitextMining"):
        metaxlm.export_mteb([a], tmp_path / "o4")
    assert not (tmp_path / "o4").exists()
    (tmp_path / "empty" / "results").mkdir(parents=True)
    r = cli("export", "mteb", tmp_path / "empty", "--out", tmp_path / "o3")
    assert r.exit_code == 2 and "nothing to export" in r.output and not (tmp_path / "o3").exists()


def test_mteb_loads_the_export(tmp_path):
    mteb = pytest.importorskip("mteb")
    from mteb.models.model_meta import ModelMeta
    from mteb.results import TaskResult

    metaxlm.run_tatoeba(model=CharGrams(), data=LASER, out=tmp_path / "runs" / "t")
    out = metaxlm.export_mteb([TREE, tmp_path / "runs"], tmp_path / "mteb").path
    loaded = 0
    for p in _files(out):
        if p.name == "model_meta.json":
            meta = json.loads(p.read_text())
            meta.pop("is_cross_encoder")
            ModelMeta.model_validate(meta)
            continue
        r = TaskResult.from_disk(p)
        assert r.task_name == p.stem and 0 <= r.get_score() <= 1
        loaded += 1
    assert loaded == len([p for p in _files(out) if p.name != "model_meta.json"])
    tat = TaskResult.from_disk(out / "results" / "object__CharGrams" / "no_revision_available" / "Tatoeba.json")
    assert sorted(tat.hf_subsets) == ["deu-eng", "fra-eng"] and tat.eval_splits == ["test"]
    assert len(mteb.ResultCache(cache_path=out).get_cache_paths(include_remote=False)) == loaded
