"""Transfer task loaders on handmade fixtures (tests/fixtures/tasks), including malformed variants."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metaxlm.errors import UserError
from metaxlm.eval.formats import load_task, read_conll, read_conllu
from metaxlm.eval.tasks import TASKS, get_task

TASKS_DIR = Path(__file__).parent / "fixtures" / "tasks"
BENCH = Path(__file__).parent / "fixtures" / "bench"


def test_every_task_is_a_declaration():
    assert set(TASKS) == {"xnli", "pawsx", "topic", "ner", "pos"}
    for spec in TASKS.values():
        assert spec.metric == spec.metrics[0]
    with pytest.raises(UserError, match="unknown task"):
        get_task("sst2")


def test_xnli_official_files_and_multinli_train():
    td = load_task(TASKS["xnli"], TASKS_DIR / "xnli")
    assert len(td.train) == 9  # the "-" (no consensus) row is skipped
    assert [e.label for e in td.train[:3]] == ["entailment", "contradiction", "neutral"]
    assert len(td.dev) == 6  # English rows of xnli.dev.tsv only
    assert td.languages == ["en", "de", "fr"]
    assert [e.id for e in td.test["de"]] == [e.id for e in td.test["en"]] == ["200", "201", "202", "203"]
    assert td.test["fr"][0].a == "La femme prépare le dîner."
    assert len(td.data_hash()) == 64


def test_xnli_xtreme_layout_maps_contradictory():
    td = load_task(TASKS["xnli"], TASKS_DIR / "xnli-xtreme")
    assert td.train[1].label == "contradiction"
    assert len(td.dev) == 6  # header line skipped
    assert td.languages == ["en", "de", "fr"]
    assert td.test["de"][2].b == "Das Abendessen ist Pasta."


def test_pawsx_layout():
    td = load_task(TASKS["pawsx"], TASKS_DIR / "pawsx")
    assert (len(td.train), len(td.dev)) == (6, 4)
    assert td.languages == ["en", "de", "fr"]
    assert [e.id for e in td.test["fr"]] == ["3", "4", "5"]
    assert td.labels == ("0", "1")


def test_topic_from_the_fixture_benchmark():
    td = load_task(TASKS["topic"], BENCH)
    assert td.labels[0] == "games"
    assert td.languages[0] == "en" and set(td.languages) >= {"de", "fr"}
    assert {e.id for e in td.test["de"]} <= {e.id for e in td.test["en"]}


def test_topic_defaults_to_the_default_benchmark(monkeypatch, tmp_path):
    monkeypatch.setenv("METAXLM_BENCHMARK", str(BENCH))
    assert load_task(TASKS["topic"]).test["en"]
    monkeypatch.setenv("METAXLM_BENCHMARK", str(tmp_path / "none"))
    with pytest.raises(UserError, match="metaxlm data build"):
        load_task(TASKS["topic"])


def test_ner_prefix_and_sentences():
    td = load_task(TASKS["ner"], TASKS_DIR / "ner")
    assert td.train[0].words == ["John", "Smith", "lives", "in", "London", "."]
    assert td.train[0].tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert td.test["de"][1].words[2] == "Züge"  # "de:" prefix stripped
    assert td.test["fr"][0].words[0] == "Marie"  # no prefix at all is fine
    assert td.languages == ["en", "de", "fr"]


def test_ner_prefix_only_of_the_file_language(tmp_path):
    p = tmp_path / "test-de.tsv"
    p.write_text("de:http://x\tO\nen:Paris\tB-LOC\n", encoding="utf-8")
    ex = read_conll(p, "de", TASKS["ner"].labels)
    assert ex[0].words == ["http://x", "en:Paris"]


def test_pos_conllu_skips_multiword_and_empty_nodes():
    td = load_task(TASKS["pos"], TASKS_DIR / "pos")
    assert td.languages == ["en", "de", "fr"]
    de2 = td.test["de"][1]
    assert de2.id == "de-2"
    assert de2.words == ["zu", "dem", "Haus"] and de2.tags == ["ADP", "DET", "NOUN"]
    en4 = td.train[3]
    assert en4.words == ["I", "do", "n't", "know"] and en4.tags == ["PRON", "AUX", "PART", "VERB"]


def test_pos_falls_back_to_token_tag_files(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}-en.tsv").write_text("The\tDET\ncat\tNOUN\n\n", encoding="utf-8")
    td = load_task(TASKS["pos"], tmp_path)
    assert td.train[0].tags == ["DET", "NOUN"]


def test_language_selection():
    td = load_task(TASKS["xnli"], TASKS_DIR / "xnli-xtreme", ["fr"])
    assert td.languages == ["en", "fr"]
    with pytest.raises(UserError, match="missing test file for language 'sw'"):
        load_task(TASKS["xnli"], TASKS_DIR / "xnli-xtreme", ["de", "sw"])


@pytest.mark.parametrize("task, sub, needle", [
    ("xnli", "malformed/xnli-columns", r"test-en.tsv:3: expected 3 tab-separated columns, found 1"),
    ("pawsx", "malformed/pawsx-label", r"train.tsv:4: label '2' is not in the task's label set \(0, 1\)"),
    ("ner", "malformed/ner-label", r"test-en.tsv:1: label 'B-COMPANY' is not in the task's label set"),
    ("pos", "malformed/pos-columns", r"en_bad-ud-train.conllu:4: expected 10 tab-separated CoNLL-U columns"),
    ("xnli", "malformed/xnli-empty-test", r"empty test \(en\) set"),
    ("xnli", "malformed", r"missing split file train-en.tsv|missing split file xnli.test.tsv"),
    ("pawsx", "xnli-xtreme/..", r"missing language directory en/"),
])
def test_malformed_inputs(task, sub, needle):
    with pytest.raises(UserError, match=needle):
        load_task(TASKS[task], TASKS_DIR / sub)


def test_missing_split_files(tmp_path):
    d = tmp_path / "x"
    shutil.copytree(TASKS_DIR / "xnli-xtreme", d)
    (d / "dev-en.tsv").unlink()
    with pytest.raises(UserError, match="missing split file dev-en.tsv"):
        load_task(TASKS["xnli"], d)
    b = tmp_path / "bench"
    shutil.copytree(BENCH / "topic", b / "topic")
    (b / "topic" / "train.tsv").unlink()
    with pytest.raises(UserError, match="missing split file train.tsv"):
        load_task(TASKS["topic"], b)
    shutil.copytree(TASKS_DIR / "xnli", tmp_path / "official")
    (tmp_path / "official" / "multinli_1.0_train.txt").unlink()
    with pytest.raises(UserError, match="missing split train"):
        load_task(TASKS["xnli"], tmp_path / "official")
    with pytest.raises(UserError, match="does not exist"):
        load_task(TASKS["ner"], tmp_path / "nowhere")
    with pytest.raises(UserError, match="needs --data"):
        load_task(TASKS["ner"])


def test_header_column_errors(tmp_path):
    b = tmp_path / "bench"
    shutil.copytree(BENCH / "topic", b / "topic")
    p = b / "topic" / "test-de.tsv"
    lines = p.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2] + "\textra"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test-de.tsv:3: expected 3 tab-separated columns, found 4"):
        load_task(TASKS["topic"], b)
    p.write_text("id\ttext\nx\ty\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test-de.tsv:1: header has no label column"):
        load_task(TASKS["topic"], b)


def test_conllu_reader_reports_bad_upos(tmp_path):
    p = tmp_path / "en_x-ud-test.conllu"
    p.write_text("1\tHi\thi\tGREETING\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"conllu:1: label 'GREETING'"):
        read_conllu(p, TASKS["pos"].labels)


def test_not_utf8(tmp_path):
    p = tmp_path / "test-en.tsv"
    p.write_bytes(b"caf\xe9\tO\n")
    with pytest.raises(UserError, match="not UTF-8"):
        read_conll(p, "en", TASKS["ner"].labels)
