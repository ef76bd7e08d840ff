"""Typed result files (metaxlm.results): every kind written by a real tiny run and every handmade fixture
validates and round-trips; old schema versions load or are refused; a bad field is one line naming it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from _models import CharGrams

from metaxlm import results as R
from metaxlm.errors import UserError
from metaxlm.rundir import SCHEMA_VERSION, RunDir

from _train_support import FIXTURE_CORPUS, tiny

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"
TREES = FIX / "results"
OLD = FIX / "results_old"
FULL = TREES / "full"


@pytest.fixture(scope="module")
def written(tmp_path_factory, monkeypatch_module):
    """One result file of every kind, written by the real writers (tiny runs: ~40 s on 2 cores)."""
    import metaxlm
    from metaxlm.train import train, train_tokenizer

    root = tmp_path_factory.mktemp("written")
    monkeypatch_module.setenv("METAXLM_PROGRESS", "0")
    monkeypatch_module.setenv("METAXLM_CACHE", str(root / "cache"))
    tok = train_tokenizer(FIXTURE_CORPUS, root / "tok", vocab_size=300)
    trained = train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok), root / "train")
    files = {"pretrain": trained / "results" / "pretrain.json"}
    files["transfer-probe"] = metaxlm.run_transfer(model=str(trained), task="topic", data=str(BENCH),
                                                   protocol="probe", seeds=1, out=root / "probe").path
    files["transfer-majority"] = metaxlm.run_transfer(model="majority", task="topic", data=str(BENCH), seeds=2,
                                                      out=root / "majority").path
    tat = metaxlm.run_tatoeba(model=CharGrams(), data=BENCH, out=root / "tatoeba").path
    bucc = metaxlm.run_bucc(model=CharGrams(), data=str(BENCH), out=root / "bucc").path
    files["tatoeba"], files["bucc"] = tat, bucc
    files["align"] = metaxlm.run_align(models=[CharGrams()], data=[str(BENCH)], bootstrap=20, out=root / "align").path
    files["align_pair"] = metaxlm.run_align(models=[CharGrams(), CharGrams(16)], data=[str(BENCH)], out=root / "pair").path
    files["mteb_export"] = metaxlm.export_mteb([tat, bucc], root / "mteb").path
    out = {}
    for key, p in files.items():
        p = Path(p)
        if p.is_dir():
            (p,) = sorted((p / "results").glob("*.json"))
        out[key] = p
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


EXPECTED = {"pretrain": R.PretrainResult, "transfer-probe": R.TransferResult, "transfer-majority": R.TransferResult,
            "tatoeba": R.TatoebaResult, "bucc": R.BuccResult, "align": R.AlignResult,
            "align_pair": R.AlignPairResult, "mteb_export": R.MtebExportResult}


# -- what the writers write -------------------------------------------------------------------------
def test_every_written_kind_round_trips(written):
    assert set(written) == set(EXPECTED)
    assert {R.load_result(p).kind for p in written.values()} == set(R.KINDS)  # every kind is written
    for key, path in written.items():
        raw = json.loads(path.read_text())
        res = R.load_result(path)
        assert isinstance(res, EXPECTED[key]) and res.schema_version == SCHEMA_VERSION
        assert res.payload() == raw, key  # nothing lost, nothing added (unknown fields kept)
        assert R.validate_result(res.payload(), "again") == res


def test_written_fields_are_typed(written):
    probe = R.load_result(written["transfer-probe"])
    assert probe.protocol == "probe" and probe.result_name == "topic-probe" and probe.has_items
    assert probe.probe is not None and probe.probe.curve.layers == list(range(len(probe.probe.curve.dev)))
    assert probe.per_seed[0].probe is not None and probe.task.item_stat == "correct"
    assert set(probe.primary("en").model_fields_set) >= {"mean", "std", "ci95", "n", "values"}
    maj = R.load_result(written["transfer-majority"])
    assert maj.model.source == "control" and maj.result_name == "topic" and maj.targets == ["de", "fr"]
    assert maj.primary("de").n == 2 and maj.primary("xx") is None
    tat = R.load_result(written["tatoeba"])
    assert tat.headline.choice == "fixed: no dev split" or tat.headline.choice in ("dev", "user")
    assert tat.bands is not None and set(tat.bands) == {"low", "mid", "high"} and "low-overlap" in tat.subsets
    assert 0 <= tat.mean.acc_cosine <= 1
    bucc = R.load_result(written["bucc"])
    assert bucc.bands is not None and all(isinstance(s.n_gold, int) for s in bucc.scores.values())
    pre = R.load_result(written["pretrain"])
    assert pre.regime == "single" and pre.model_args["num_hidden_layers"] >= 1  # "model_config" in the file
    assert pre.checkpoints[-1].name == "final"


# -- the handmade trees the report tests read -------------------------------------------------------
def _fixture_files():
    return sorted(p for tree in ("full", "partial") for p in (TREES / tree).rglob("results/*.json"))


def test_every_fixture_file_validates_and_round_trips():
    files = _fixture_files()
    kinds = set()
    for p in files:
        res = R.load_result(p)
        kinds.add(res.kind)
        assert res.payload() == json.loads(p.read_text()), p
    assert len(files) > 100
    assert kinds == {"transfer", "tatoeba", "bucc", "align", "align_pair", "pretrain"}


def test_typed_accessors_on_the_fixtures():
    ft = R.load_result(FULL / "eval" / "topic-meta-s1" / "results" / "topic.json")
    pr = R.load_result(FULL / "eval" / "topic-probe-meta-s1" / "results" / "topic.json")
    old = R.load_result(TREES / "partial" / "eval" / "topic-meta-s1" / "results" / "topic.json")
    assert (ft.result_name, pr.result_name, old.result_name) == ("topic", "topic-probe", "topic")
    assert ft.has_items and pr.has_items and not old.has_items
    assert ft.protocol == "finetune" and "protocol" not in ft.payload()  # a default is not written back
    assert ft.primary("de").mean == ft.scores["de"]["accuracy"].mean
    tat = R.load_result(FULL / "eval" / "tatoeba-meta-s1" / "results" / "tatoeba.json")
    assert tat.headline.layer_choice is None and tat.headline.choice == "dev"


# -- schema versions -------------------------------------------------------------------------------
def test_files_without_a_version_or_version_0_are_upgraded():
    res = R.load_result(OLD / "no-version" / "results" / "topic.json")
    assert isinstance(res, R.TransferResult) and res.schema_version == SCHEMA_VERSION == 1
    old = R.load_result(OLD / "v0" / "results" / "tatoeba.json")
    assert old.schema_version == 1 and old.headline.choice == "user"  # "fixed" meant --layer back then


@pytest.mark.parametrize("case, needle", [
    ("newer/results/bucc.json", "schema_version 2 is newer than this metaxlm reads (1); upgrade metaxlm"),
    ("no-migration/results/align.json", "schema_version -1 is older than this metaxlm reads (1) and has no "
                                        "known migration"),
    ("not-a-version/results/align.json", "schema_version '1' is not a version number"),
])
def test_unreadable_versions_are_refused_with_both_versions(case, needle):
    path = OLD / case
    with pytest.raises(R.SchemaVersionError) as e:
        R.load_result(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and needle in msg and "\n" not in msg
    assert e.value.supported == SCHEMA_VERSION and isinstance(e.value, UserError)
    assert e.value.where == str(path) and msg.startswith(f"{path}: {e.value.reason}; ")


def test_a_null_version_is_version_0_and_the_reason_reads_as_today():
    data = json.loads(TOPIC.read_text())
    assert R.upgrade({**data, "schema_version": None}, "w")["schema_version"] == 1
    with pytest.raises(R.SchemaVersionError) as e:
        R.upgrade({**data, "schema_version": 99}, "w")
    # what metaxlm.report.collect prints today before "; skipped"
    assert e.value.reason == "schema_version 99 is newer than this metaxlm reads (1)" and e.value.found == 99


# -- bad files: one line naming the file and the field path ----------------------------------------
TOPIC = FULL / "eval" / "topic-meta-s1" / "results" / "topic.json"
TATOEBA = FULL / "eval" / "tatoeba-meta-s1" / "results" / "tatoeba.json"
BUCC = FULL / "eval" / "bucc-meta-s1" / "results" / "bucc.json"
ALIGN = FULL / "probe" / "align-meta-s1" / "results" / "align.json"
PAIR = FULL / "probe" / "align-pair" / "results" / "align-pair.json"
PRETRAIN = FULL / "train" / "meta-s1" / "results" / "pretrain.json"


def _set(d, path, value):
    *head, last = path
    for k in head:
        d = d[k]
    if value is _DEL:
        del d[last]
    else:
        d[last] = value


_DEL = object()

BAD = [
    (TOPIC, ("scores", "de", "accuracy", "mean"), "high", 'scores.de.accuracy.mean: not a number (got "high")'),
    (TOPIC, ("scores", "de", "accuracy", "mean"), "0.5", 'scores.de.accuracy.mean: not a number (got "0.5")'),
    (TOPIC, ("per_seed", 1, "seed"), True, "per_seed.1.seed: not an integer (got true)"),
    (TOPIC, ("task", "metric"), _DEL, "task.metric: missing"),
    (TOPIC, ("gaps", "transfer_gap", "fr", "ci95"), [0.1, 0.2, 0.3], "gaps.transfer_gap.fr.ci95: list should have "
                                                                      "at most 2 items"),
    (TOPIC, ("scores", "ja", "accuracy", "n"), 5, "scores.ja.accuracy: n is 5 but values has 2 entries"),
    (TOPIC, ("per_seed", 0, "items", "de", 3), 2, "per_seed.0.items.de.3: not 0 or 1 (item_stat correct)"),
    (TOPIC, ("per_seed", 0, "items", "fr"), [1, 0], "per_seed.0.items.fr: 2 rows but item_ids.fr has 200"),
    (TOPIC, ("protocol",), "frozen", "protocol: input should be 'finetune' or 'probe' (got \"frozen\")"),
    (TOPIC, ("model", "source"), "elsewhere", "model.source: input should be"),
    (TOPIC, ("majority",), ["en"], 'majority: not an object (got ["en"])'),
    (TATOEBA, ("headline", "layer"), 2.5, "headline.layer: not an integer (got 2.5)"),
    (TATOEBA, ("sweep", "mean", "de", "dev", 1), None, "sweep.mean.de.dev.1: not a number (got null)"),
    (BUCC, ("scores", "fr", "f1"), _DEL, "scores.fr.f1: missing"),
    (BUCC, ("scores", "fr", "threshold"), "none", 'scores.fr.threshold: not a number (got "none")'),
    (ALIGN, ("config", "n_sentences"), {"de": "many"}, 'config.n_sentences.de: not an integer (got "many")'),
    (ALIGN, ("cka", "de", "values"), [0.1], "cka.de.values: 1 entries for 5 layers"),
    (PAIR, ("matrix", 0), [0.5], "matrix: not 5 × 5 (layers of A × layers of B)"),
    (PRETRAIN, ("tokens_seen", "en"), 1.5, "tokens_seen.en: not an integer (got 1.5)"),
    (PRETRAIN, ("kind",), "pretraining", "kind: unknown kind 'pretraining' (known: pretrain, transfer, "),
]


BAD_IDS = [".".join(map(str, b[1])) + ("-deleted" if b[2] is _DEL else "") for b in BAD]


@pytest.mark.parametrize("src, field, value, needle", BAD, ids=BAD_IDS)
def test_a_bad_field_is_one_line_naming_file_and_path(tmp_path, src, field, value, needle):
    data = json.loads(src.read_text())
    _set(data, field, value if value is _DEL else copy.deepcopy(value))
    path = tmp_path / "runs" / "x" / "results" / src.name
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as e:
        R.load_result(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: {needle}"), msg
    assert msg.endswith("fix the file, or write it again with the metaxlm command that made it")


def test_several_problems_are_counted_in_the_one_line(tmp_path):
    data = json.loads(TOPIC.read_text())
    data["scores"]["de"]["accuracy"]["mean"] = "x"
    data["languages"] = "en"
    with pytest.raises(UserError, match=r'^where: languages: not a list \(got "en"\) \(and 1 more problem\); '):
        R.validate_result(data, "where")


def test_not_json_or_not_an_object(tmp_path):
    bad = tmp_path / "cut.json"
    bad.write_text('{"kind": "transfer", ')
    with pytest.raises(UserError, match=r"cut\.json: not valid JSON \(line 1\)"):
        R.load_result(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match=r"cut\.json: not a JSON object"):
        R.load_result(bad)
    with pytest.raises(UserError, match=r"missing\.json does not exist"):
        R.load_result(tmp_path / "missing.json")
    with pytest.raises(UserError, match=r"^w: kind: missing \(known: pretrain,"):
        R.validate_result({"schema_version": 1}, "w")


def test_unknown_fields_are_kept_at_every_level():
    data = json.loads(TATOEBA.read_text())
    data["new_top"] = {"a": 1}
    data["scores"]["de"]["new_metric"] = 0.5
    res = R.validate_result(data, "w")
    assert res.payload() == data and res.new_top == {"a": 1}


# -- the write side -------------------------------------------------------------------------------
def test_write_result_validates_before_writing(tmp_path):
    run = RunDir(tmp_path / "run")
    good = json.loads(BUCC.read_text())
    del good["schema_version"]
    path = run.write_result("bucc", good)
    assert R.load_result(path).payload() == {"schema_version": SCHEMA_VERSION, **good}
    bad = copy.deepcopy(good)
    bad["scores"]["de"]["n_gold"] = np.int64(3)  # would be written as the string "3" (json default=str)
    with pytest.raises(RuntimeError, match=r"metaxlm bug: .*bucc2\.json: scores\.de\.n_gold: not an integer "
                                           r"\(got \"3\"\)"):
        run.write_result("bucc2", bad)
    assert not (run.path / "results" / "bucc2.json").exists()
    tup = copy.deepcopy(good)
    tup["languages"] = tuple(tup["languages"])  # written as a list: fine
    run.write_result("bucc3", tup)
