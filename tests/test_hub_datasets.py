"""Hub datasets (``--data hf:…``) offline: tiny ``save_to_disk`` copies in the hub schemas (google/xtreme,
facebook/xnli, paws-x, wikiann, universal_dependencies), the configs and splits asked of a hub name (with
``datasets.load_dataset`` replaced by a local reader), and every bad input as one UserError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metaxlm.errors import UserError
from metaxlm.eval.bitext_formats import load_bucc_hf, load_tatoeba_hf
from metaxlm.eval.formats import load_task
from metaxlm.eval.tasks import PANX_TAGS, TASKS, UPOS

datasets = pytest.importorskip("datasets")
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value  # noqa: E402

NLI = ["entailment", "neutral", "contradiction"]
UD_UPOS = ["NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN", "PRON", "X", "_",
           "ADV", "INTJ", "VERB", "AUX"]  # universal_dependencies' ClassLabel order, "_" for multi-word tokens


def save(root: Path, config: str, features: Features, **splits: dict) -> None:
    DatasetDict({k: Dataset.from_dict(v, features=features) for k, v in splits.items()}).save_to_disk(
        str(root / config))


def xnli_rows(lang: str, n: int) -> dict:
    return {"premise": [f"{lang} premise {i}" for i in range(n)], "hypothesis": [f"{lang} hyp {i}" for i in range(n)],
            "label": [i % 3 for i in range(n)]}


XNLI_FEATS = Features({"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=NLI)})
PAWSX_XTREME = Features({"sentence1": Value("string"), "sentence2": Value("string"), "label": Value("string")})
PAWSX_STANDALONE = Features({"id": Value("int32"), "sentence1": Value("string"), "sentence2": Value("string"),
                             "label": ClassLabel(names=["0", "1"])})
PANX_FEATS = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=list(PANX_TAGS))),
                       "langs": Sequence(Value("string"))})
UDPOS_FEATS = Features({"tokens": Sequence(Value("string")), "pos_tags": Sequence(ClassLabel(names=list(UPOS)))})
UD_FEATS = Features({"idx": Value("string"), "tokens": Sequence(Value("string")),
                     "upos": Sequence(ClassLabel(names=UD_UPOS)), "head": Sequence(Value("string"))})
BITEXT_FEATS = Features({k: Value("string") for k in ("source_sentence", "target_sentence", "source_lang",
                                                      "target_lang")})


def panx(lang: str, n: int) -> dict:
    return {"tokens": [[f"{lang}{i}", "Berlin", "."] for i in range(n)], "ner_tags": [[1, 5, 0]] * n,
            "langs": [[lang] * 3] * n}


def udpos(n: int) -> dict:
    return {"tokens": [["The", "cat", "sleeps"]] * n, "pos_tags": [[UPOS.index("DET"), UPOS.index("NOUN"),
                                                                   UPOS.index("VERB")]] * n}


@pytest.fixture(scope="module")
def xtreme(tmp_path_factory) -> Path:
    """A local stand-in for google/xtreme: one save_to_disk directory per config."""
    root = tmp_path_factory.mktemp("xtreme")
    rows = {"sentence1": ["a", "b", "c"], "sentence2": ["a'", "x", "c'"], "label": ["1", "0", "1"]}
    save(root, "PAWS-X.en", PAWSX_XTREME, train=rows, validation=rows, test=rows)
    save(root, "PAWS-X.de", PAWSX_XTREME, test={k: v[:2] for k, v in rows.items()})  # one row fewer (like ko)
    save(root, "PAN-X.en", PANX_FEATS, train=panx("en", 4), validation=panx("en", 2), test=panx("en", 2))
    save(root, "PAN-X.de", PANX_FEATS, train=panx("de", 9), validation=panx("de", 1), test=panx("de", 3))
    save(root, "udpos.English", UDPOS_FEATS, train=udpos(3), validation=udpos(2), test=udpos(2))
    save(root, "udpos.German", UDPOS_FEATS, test=udpos(4))
    save(root, "tatoeba.deu", BITEXT_FEATS, validation={
        "source_sentence": ["Ich bin hier.\n", "Danke.\n", "Guten Tag.\n"],
        "target_sentence": ["I am here.\n", "Thanks.\n", "Good day.\n"],
        "source_lang": ["deu"] * 3, "target_lang": ["eng"] * 3})
    gold = {"source_sentence": ["Hallo Welt", "Ein Satz", "Noch einer"],
            "target_sentence": ["Hello world", "A sentence", "Another one"],
            "source_lang": ["de-000003", "de-000007", "de-000011"], "target_lang": ["en-000100", "en-000042",
                                                                                   "en-000005"]}
    save(root, "bucc18.de", BITEXT_FEATS, validation={k: v[:2] for k, v in gold.items()}, test=gold)
    return root


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> Path:
    """facebook/xnli, paws-x, wikiann and universal_dependencies configs side by side."""
    root = tmp_path_factory.mktemp("standalone")
    save(root / "xnli", "en", XNLI_FEATS, train=xnli_rows("en", 6), validation=xnli_rows("en", 3),
         test=xnli_rows("en", 4))
    save(root / "xnli", "de", XNLI_FEATS, train=xnli_rows("de", 50), test=xnli_rows("de", 4))
    save(root / "xnli", "fr", XNLI_FEATS, test=xnli_rows("fr", 4))
    p = {"id": [1, 2, 3], "sentence1": ["a", "b", "c"], "sentence2": ["a", "b", "c"], "label": [1, -1, 0]}
    save(root / "paws-x", "en", PAWSX_STANDALONE, train=p, validation=p, test=p)
    save(root / "paws-x", "ja", PAWSX_STANDALONE, test={"id": [3, 1], "sentence1": ["c", "a"],
                                                        "sentence2": ["c", "a"], "label": [0, 1]})
    wiki = Features({**PANX_FEATS, "spans": Sequence(Value("string"))})
    w = {**panx("en", 2), "spans": [["PER: en0", "LOC: Berlin"]] * 2}
    save(root / "wikiann", "en", wiki, train=w, validation=w, test=w)
    save(root / "wikiann", "fr", wiki, test={**panx("fr", 1), "spans": [[]]})
    # "vámonos" is a multi-word token (upos "_", head None) split into "vamos" + "nos"
    ud = {"idx": ["s1"], "tokens": [["vámonos", "vamos", "nos", "!"]],
          "upos": [[UD_UPOS.index(t) for t in ("_", "VERB", "PRON", "PUNCT")]], "head": [["None", "0", "2", "2"]]}
    for cfg in ("en_ewt", "es_gsd", "es_ancora"):
        save(root / "ud", cfg, UD_FEATS, train=ud, validation=ud, test=ud)
    return root


# ------------------------------------------------------------------------------------------------- tasks
def test_xnli_from_saved_configs(standalone):
    td = load_task(TASKS["xnli"], f"hf:{standalone / 'xnli'}", ["de", "fr"])
    assert td.languages == ["en", "de", "fr"]
    assert (len(td.train), len(td.dev)) == (6, 3)  # English train: de's 50 machine-translated rows are not read
    assert [e.label for e in td.train[:3]] == NLI
    assert td.test["de"][1].a == "de premise 1" and td.test["de"][1].b == "de hyp 1"
    assert [e.id for e in td.test["fr"]] == [e.id for e in td.test["en"]]  # same rows: paired gap on row ids
    again = load_task(TASKS["xnli"], f"hf:{standalone / 'xnli'}", ["de", "fr"])
    assert td.data_hash() == again.data_hash() and len(td.data_hash()) == 64
    assert td.data_dir == f"hf:{standalone / 'xnli'}"


def test_pawsx_xtreme_string_labels_and_unpaired_rows(xtreme):
    td = load_task(TASKS["pawsx"], f"hf:{xtreme}", ["de"])
    assert [e.label for e in td.train] == ["1", "0", "1"]
    # no id column and a different number of rows: row numbers would pair the wrong items
    assert [e.id for e in td.test["de"]] == ["de-0", "de-1"] and [e.id for e in td.test["en"]] == ["0", "1", "2"]


def test_pawsx_standalone_ids_and_missing_labels(standalone):
    td = load_task(TASKS["pawsx"], f"hf:{standalone / 'paws-x'}", ["ja"])
    assert [(e.id, e.label) for e in td.train] == [("1", "1"), ("3", "0")]  # label -1: not an item
    assert [e.id for e in td.test["ja"]] == ["3", "1"]  # the id column pairs them with English


def test_ner_panx_and_wikiann(xtreme, standalone):
    td = load_task(TASKS["ner"], f"hf:{xtreme}", ["de"])
    assert len(td.train) == 4 and td.train[0].words == ["en0", "Berlin", "."]
    assert td.train[0].tags == ["B-PER", "B-LOC", "O"] and len(td.test["de"]) == 3
    wk = load_task(TASKS["ner"], f"hf:{standalone / 'wikiann'}")
    assert wk.languages == ["en", "fr"] and wk.test["fr"][0].tags == ["B-PER", "B-LOC", "O"]


def test_pos_xtreme_udpos_and_ud_treebanks(xtreme, standalone):
    td = load_task(TASKS["pos"], f"hf:{xtreme}")
    assert td.languages == ["en", "de"] and td.train[0].tags == ["DET", "NOUN", "VERB"]
    ud = load_task(TASKS["pos"], f"hf:{standalone / 'ud'}", ["es"])
    ex = ud.test["es"][0]
    assert ex.id == "s1" and ex.words == ["vamos", "nos", "!"] and ex.tags == ["VERB", "PRON", "PUNCT"]
    # two treebanks for Spanish: the default one (es_gsd) unless CONFIG names another
    assert ud.test["es"][0].id == "s1" and ud.data_hash() == load_task(
        TASKS["pos"], f"hf:{standalone / 'ud'}:es_gsd", ["es"]).data_hash()
    assert load_task(TASKS["pos"], f"hf:{standalone / 'ud'}:es_ancora").languages == ["en", "es"]
    assert load_task(TASKS["pos"], f"hf:{standalone / 'ud'}:es=es_ancora").languages == ["en", "es"]


class FakeHub:
    """``datasets.load_dataset`` served from local save_to_disk configs, recording what was asked."""

    def __init__(self, roots: dict[str, Path]):
        self.roots, self.calls = roots, []

    def __call__(self, name, config=None, split=None, **kw):
        self.calls.append((name, config, split))
        d = datasets.load_from_disk(str(self.roots[name] / config))
        if split not in d:
            raise ValueError(f'Unknown split "{split}". Should be one of {list(d)}.')
        return d[split]


@pytest.fixture
def hub(monkeypatch, xtreme, standalone):
    fake = FakeHub({"google/xtreme": xtreme, "facebook/xnli": standalone / "xnli",
                    "google-research-datasets/paws-x": standalone / "paws-x",
                    "unimelb-nlp/wikiann": standalone / "wikiann",
                    "universal-dependencies/universal_dependencies": standalone / "ud"})
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return fake


@pytest.mark.parametrize("task,data,langs,expected", [
    ("pos", "hf:google/xtreme", ["de"], [("udpos.English", "train"), ("udpos.English", "validation"),
                                        ("udpos.English", "test"), ("udpos.German", "test")]),
    ("ner", "hf:", ["de"], [("PAN-X.en", "train"), ("PAN-X.en", "validation"), ("PAN-X.en", "test"),
                            ("PAN-X.de", "test")]),
    ("pawsx", "hf:xtreme", ["de"], [("PAWS-X.en", "train"), ("PAWS-X.en", "validation"), ("PAWS-X.en", "test"),
                                    ("PAWS-X.de", "test")]),
    ("xnli", "hf:xnli", ["de"], [("en", "train"), ("en", "validation"), ("en", "test"), ("de", "test")]),
    ("pawsx", "hf:paws-x", ["ja"], [("en", "train"), ("en", "validation"), ("en", "test"), ("ja", "test")]),
    ("ner", "hf:wikiann", ["fr"], [("en", "train"), ("en", "validation"), ("en", "test"), ("fr", "test")]),
    ("pos", "hf:universal_dependencies", ["es"], [("en_ewt", "train"), ("en_ewt", "validation"),
                                                  ("en_ewt", "test"), ("es_gsd", "test")]),
])
def test_hub_names_ask_for_the_right_configs_and_splits_only(hub, task, data, langs, expected):
    td = load_task(TASKS[task], data, langs)
    assert td.languages == ["en", *langs]
    assert [c[1:] for c in hub.calls] == expected
    assert len({c[0] for c in hub.calls}) == 1 and "/" in hub.calls[0][0]  # aliases resolve to the hub id


def test_tatoeba_and_bucc_through_the_hub_route(hub):
    sets = load_tatoeba_hf("hf:google/xtreme", ["de"])
    assert hub.calls == [("google/xtreme", "tatoeba.deu", "validation")]
    ps = sets["de"]["test"]
    assert ps.xx == ["Ich bin hier.", "Danke.", "Guten Tag."] and ps.en[0] == "I am here."  # newlines stripped
    hub.calls.clear()
    mining = load_bucc_hf("hf:google/xtreme", ["de"])
    assert hub.calls == [("google/xtreme", "bucc18.de", "test"), ("google/xtreme", "bucc18.de", "validation")]
    test = mining["de"]["test"]
    assert test.xx_ids == ["de-000003", "de-000007", "de-000011"] and test.en_ids[0] == "en-000100"
    assert test.gold == [("de-000003", "en-000100"), ("de-000007", "en-000042"), ("de-000011", "en-000005")]
    assert len(mining["de"]["dev"].gold) == 2


def test_tatoeba_and_bucc_from_a_local_copy(xtreme):
    by_iso3 = load_tatoeba_hf(f"hf:{xtreme}")
    assert list(by_iso3) == ["deu"] and by_iso3["deu"]["test"].files  # arrow files, hashed by files_hash
    assert load_tatoeba_hf(f"hf:{xtreme}", ["de"])["de"]["test"].xx[1] == "Danke."
    m = load_bucc_hf(f"hf:{xtreme}", dev_split="sample", test_split="training")  # BUCC's own split names
    assert set(m["de"]) == {"dev", "test"} and m["de"]["dev"].split == "sample"


def test_cli_eval_with_a_local_hub_copy(cli, xtreme, tmp_path):
    out = tmp_path / "pos"
    res = cli("eval", "pos", "--model", "majority", "--data", f"hf:{xtreme}", "--seeds", "0", "--out", out)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results" / "pos.json").read_text(encoding="utf-8"))
    assert r["languages"] == ["en", "de"]
    meta = json.dumps(r)
    assert f"hf:{xtreme}" in meta


def test_cli_tatoeba_and_bucc_with_a_local_hub_copy(cli, xtreme, tmp_path, monkeypatch):
    from _models import make_tiny_xlmr

    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    model = make_tiny_xlmr(tmp_path / "xlmr")
    res = cli("eval", "tatoeba", "--model", model, "--data", f"hf:{xtreme}", "--languages", "de", "--out", tmp_path / "t")
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "t" / "results" / "tatoeba.json").read_text())
    assert r["languages"] == ["de"] and r["data"]["source"] == "hf"
    assert r["headline"]["layer_choice"] == "fixed: no dev split"  # LASER's test set, no dev split
    res = cli("eval", "bucc", "--model", model, "--data", f"hf:{xtreme}", "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    b = json.loads((tmp_path / "b" / "results" / "bucc.json").read_text())
    assert b["languages"] == ["de"] and b["data"]["data_hash"].startswith("sha256:")


# ------------------------------------------------------------------------------------------------ errors
def test_missing_datasets_names_the_pip_command(monkeypatch, xtreme):
    import builtins

    real = builtins.__import__

    def no_datasets(name, *a, **k):
        if name == "datasets" or name.startswith("datasets."):
            raise ImportError("no datasets")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(UserError, match=r"pip install 'metaxlm\[hub\]'"):
        load_task(TASKS["ner"], f"hf:{xtreme}")
    with pytest.raises(UserError, match=r"pip install 'metaxlm\[hub\]'"):
        load_tatoeba_hf(f"hf:{xtreme}")


@pytest.mark.parametrize("data,langs,needle", [
    ("hf:google/xtreme", ["xx"], "has no config for language 'xx'"),
    ("hf:{x}", ["fr"], "has no config directory for language 'fr'"),
    ("hf:{x}:PAN-X.fr", [], "unknown config"),
    ("hf:{x}:PAN-X.en:test", [], "write hf:NAME[:CONFIG]"),
    ("hf:{x}#tokens", [], "write hf:NAME[:CONFIG]"),
    ("hf:{x}:weird.config.name", [], "cannot tell the language of config 'weird.config.name'"),
    ("hf:./no/such/dir", [], "is not a directory"),
    ("hf:wikiann", [], "does not list its languages; give them with --languages"),
])
def test_bad_source_or_config(hub, xtreme, data, langs, needle):
    with pytest.raises(UserError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_task(TASKS["ner"], data.format(x=xtreme), langs)


def test_xtreme_xnli_has_no_training_split(hub):
    with pytest.raises(UserError, match="no English training split; use hf:facebook/xnli"):
        load_task(TASKS["xnli"], "hf:google/xtreme")


def test_offline_hub_is_one_line(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'google/xtreme' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"hf:google/xtreme:PAN-X.en cannot be loaded \(ConnectionError") as e:
        load_task(TASKS["ner"], "hf:google/xtreme", ["de"])
    assert "\n" not in str(e.value)


def test_missing_column_and_foreign_labels(tmp_path):
    no_hyp = Features({"premise": Value("string"), "label": ClassLabel(names=NLI)})
    rows = {"premise": ["p"], "label": [0]}
    save(tmp_path / "a", "en", no_hyp, train=rows, validation=rows, test=rows)
    with pytest.raises(UserError, match="no hypothesis / sentence2 column"):
        load_task(TASKS["xnli"], f"hf:{tmp_path / 'a'}")
    conll = Features({"tokens": Sequence(Value("string")),
                      "ner_tags": Sequence(ClassLabel(names=["O", "B-PER", "I-PER", "B-MISC", "I-MISC"]))})
    r = {"tokens": [["a"]], "ner_tags": [[0]]}
    save(tmp_path / "b", "en", conll, train=r, validation=r, test=r)
    with pytest.raises(UserError, match=r"labels \(B-MISC, I-MISC\) that are not in task ner's label set"):
        load_task(TASKS["ner"], f"hf:{tmp_path / 'b'}")
    bad = {"sentence1": ["a"], "sentence2": ["b"], "label": ["yes"]}
    save(tmp_path / "c", "en", PAWSX_XTREME, train=bad, validation=bad, test=bad)
    with pytest.raises(UserError, match=r"train row 0: label 'yes' is not in the task's label set"):
        load_task(TASKS["pawsx"], f"hf:{tmp_path / 'c'}")


def test_missing_split_and_a_bare_save(tmp_path):
    save(tmp_path / "d", "PAN-X.en", PANX_FEATS, train=panx("en", 2), test=panx("en", 2))
    with pytest.raises(UserError, match=r"no 'validation' split \(splits: train, test\)"):
        load_task(TASKS["ner"], f"hf:{tmp_path / 'd'}")
    with pytest.raises(UserError, match="is one saved dataset"):
        load_task(TASKS["ner"], f"hf:{tmp_path / 'd' / 'PAN-X.en'}")
