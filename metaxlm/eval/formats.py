"""Loaders for the transfer tasks' on-disk formats. Every problem is a one-line UserError.

Layouts read (``DIR`` is ``--data``):

- ``topic``: the default benchmark (``DIR/topic/`` or ``DIR`` itself): ``labels.json``, ``train.tsv``,
  ``dev.tsv``, ``test-<xx>.tsv`` with header ``id  label  text`` (docs/benchmark.md).
- ``xnli``: the official XNLI-1.0 files (``xnli.dev.tsv``, ``xnli.test.tsv``: header with ``language``,
  ``gold_label``, ``sentence1``, ``sentence2``, ``pairID``, …; also under ``DIR/XNLI-1.0/``) plus an
  English MultiNLI-style training TSV (``multinli_1.0_train.txt``, ``multinli.train.en.tsv`` or
  ``train.tsv``, with a header naming ``sentence1``/``premise``, ``sentence2``/``hypo``,
  ``gold_label``/``label``); or the XTREME layout (``train-en.tsv``, ``dev-<xx>.tsv``,
  ``test-<xx>.tsv``: ``sentence1 \\t sentence2 \\t label``, header optional).
- ``pawsx``: the PAWS-X layout (``<lang>/train.tsv``, ``<lang>/dev_2k.tsv``, ``<lang>/test_2k.tsv``:
  header ``id sentence1 sentence2 label``; also under ``DIR/x-final/``) or the XTREME layout.
- ``conll`` (ner): ``<split>-<lang>.tsv`` or ``<lang>/<split>`` files of ``token \\t tag`` lines, a blank
  line between sentences, tokens optionally prefixed ``<lang>:`` (PAN-X/WikiANN as XTREME ships it).
- ``conllu`` (pos): Universal Dependencies ``.conllu`` files anywhere under ``DIR`` named
  ``<lang>_<treebank>-ud-<split>.conllu`` (or ``<split>-<lang>.conllu``, ``<lang>/<split>.conllu``); the
  UPOS column; multi-word-token (``1-2``) and empty-node (``1.1``) lines are skipped. Without any
  ``.conllu`` file the ``conll`` token/tag layout is read instead.
- ``hf:NAME[:CONFIG]`` as ``--data``: a Hugging Face dataset (hub id or a directory of ``save_to_disk``
  configs; :mod:`metaxlm.eval.hub` knows the configs of XNLI, PAWS-X, PAN-X/WikiANN and UD POS).

Languages come from the files present; English train, English dev and English test are required.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from metaxlm.errors import UserError
from metaxlm.eval.tasks import TaskSpec

SPLITS = ("train", "dev", "test")
LABEL_ALIASES = {"contradictory": "contradiction"}  # XNLI-MT / XTREME training files


@dataclass
class SeqExample:
    id: str
    a: str
    b: str | None
    label: str


@dataclass
class TokExample:
    id: str
    words: list[str]
    tags: list[str]


@dataclass
class TaskData:
    task: TaskSpec
    labels: tuple[str, ...]
    train: list
    dev: list
    test: dict[str, list]  # language → examples; "en" first
    data_dir: str
    files: list[Path] = field(default_factory=list)
    digest: str | None = None  # content hash of data read from a dataset library (no files to hash)

    @property
    def languages(self) -> list[str]:
        return list(self.test)

    def data_hash(self) -> str:
        """sha256 over the files read (relative names and bytes, in sorted order), or ``digest``."""
        if self.digest is not None:
            return self.digest
        h = hashlib.sha256()
        root = Path(self.data_dir)
        for p in sorted(set(self.files)):
            try:
                name = str(p.relative_to(root))
            except ValueError:
                name = str(p)
            h.update(name.encode("utf-8") + b"\0")
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()


# --------------------------------------------------------------------------------------------
# small readers


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for i, line in enumerate(f, 1):
                yield i, line.rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); convert it to UTF-8") from None


def _check_label(label: str, labels: Sequence[str], path: Path, lineno: int) -> str:
    label = LABEL_ALIASES.get(label, label)
    if label not in labels:
        shown = ", ".join(labels) if len(labels) <= 20 else ", ".join(labels[:20]) + ", …"
        raise UserError(f"{path}:{lineno}: label {label!r} is not in the task's label set ({shown})")
    return label


def _header_tsv(path: Path, need: dict[str, tuple[str, ...]]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a TSV with a header line, as {canonical name: value}; ``need`` maps each canonical
    name to the header names that may hold it."""
    it = _lines(path)
    try:
        _, head = next(it)
    except StopIteration:
        raise UserError(f"{path}: empty file (expected a header line)") from None
    cols = head.split("\t")
    index = {}
    for canon, names in need.items():
        found = [cols.index(n) for n in names if n in cols]
        if not found:
            raise UserError(f"{path}:1: header has no {' / '.join(names)} column (found: {', '.join(cols)})")
        index[canon] = found[0]
    n = len(cols)
    for lineno, line in it:
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != n:
            raise UserError(f"{path}:{lineno}: expected {n} tab-separated columns, found {len(parts)}")
        yield lineno, {k: parts[i] for k, i in index.items()}


def _plain_tsv(path: Path, ncols: int, header: tuple[str, ...] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a TSV with exactly ``ncols`` columns; a first line equal to ``header`` is skipped."""
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if lineno == 1 and header is not None and tuple(p.strip().lower() for p in parts) == header:
            continue
        if len(parts) != ncols:
            raise UserError(f"{path}:{lineno}: expected {ncols} tab-separated columns, found {len(parts)}")
        yield lineno, parts


def _missing(what: str, where: Path, hint: str = "") -> UserError:
    return UserError(f"missing {what} in {where}{': ' + hint if hint else ''}")


# --------------------------------------------------------------------------------------------
# topic (the default benchmark)


def load_topic(spec: TaskSpec, data_dir: Path) -> TaskData:
    d = data_dir / "topic" if (data_dir / "topic").is_dir() else data_dir
    lab = d / "labels.json"
    if not lab.is_file():
        raise _missing("topic/labels.json", data_dir, "build the benchmark with `metaxlm data build` or pass --data")
    try:
        labels = json.loads(lab.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{lab}:{e.lineno}: not valid JSON") from None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{lab}: expected a non-empty JSON list of label names")
    labels = tuple(labels)
    files = [lab]

    def read(path: Path) -> list[SeqExample]:
        files.append(path)
        out = []
        for lineno, row in _header_tsv(path, {"id": ("id",), "label": ("label",), "text": ("text",)}):
            out.append(SeqExample(row["id"], row["text"], None, _check_label(row["label"], labels, path, lineno)))
        return out

    split = {}
    for name in ("train", "dev", "test-en"):
        p = d / f"{name}.tsv"
        if not p.is_file():
            raise _missing(f"split file {name}.tsv", d)
        split[name] = read(p)
    test = {"en": split["test-en"]}
    for p in sorted(d.glob("test-*.tsv")):
        lang = p.stem[len("test-"):]
        if lang != "en":
            test[lang] = read(p)
    return TaskData(spec, labels, split["train"], split["dev"], test, str(data_dir), files)


# --------------------------------------------------------------------------------------------
# sentence pairs: XTREME layout, XNLI-1.0, PAWS-X


def _xtreme_pairs(spec: TaskSpec, d: Path) -> TaskData:
    labels = spec.labels
    files: list[Path] = []

    def read(path: Path) -> list[SeqExample]:
        files.append(path)
        out = []
        for lineno, (a, b, lab) in _plain_tsv(path, 3, header=("sentence1", "sentence2", "label")):
            out.append(SeqExample(str(len(out)), a, b, _check_label(lab.strip(), labels, path, lineno)))
        return out

    for name in ("train-en", "dev-en", "test-en"):
        if not (d / f"{name}.tsv").is_file():
            raise _missing(f"split file {name}.tsv", d, "the XTREME layout has train-en.tsv, dev-<xx>.tsv, test-<xx>.tsv")
    train, dev = read(d / "train-en.tsv"), read(d / "dev-en.tsv")
    test = {"en": read(d / "test-en.tsv")}
    for p in sorted(d.glob("test-*.tsv")):
        lang = p.stem[len("test-"):]
        if lang != "en":
            test[lang] = read(p)
    return TaskData(spec, labels, train, dev, test, str(d), files)


_MNLI_TRAIN = ("multinli_1.0_train.txt", "multinli_1.0/multinli_1.0_train.txt", "multinli.train.en.tsv",
               "XNLI-MT-1.0/multinli/multinli.train.en.tsv", "train.tsv")
_NLI_COLS = {"a": ("sentence1", "premise"), "b": ("sentence2", "hypo", "hypothesis"), "label": ("gold_label", "label")}


def load_xnli(spec: TaskSpec, data_dir: Path) -> TaskData:
    if (data_dir / "train-en.tsv").is_file() or (data_dir / "test-en.tsv").is_file():
        return _xtreme_pairs(spec, data_dir)
    root = data_dir / "XNLI-1.0" if (data_dir / "XNLI-1.0" / "xnli.test.tsv").is_file() else data_dir
    if not (root / "xnli.test.tsv").is_file():
        raise _missing("split file xnli.test.tsv", data_dir,
                       "give the XNLI-1.0 directory (+ a MultiNLI train TSV) or the XTREME layout (train-en.tsv, …)")
    if not (root / "xnli.dev.tsv").is_file():
        raise _missing("split file xnli.dev.tsv", root)
    labels = spec.labels
    files: list[Path] = []
    train_path = next((p for c in _MNLI_TRAIN for p in (data_dir / c, root / c) if p.is_file()), None)
    if train_path is None:
        raise _missing("split train (a MultiNLI-style English training TSV)", data_dir,
                       f"put one of {', '.join(_MNLI_TRAIN)} there")
    files.append(train_path)
    train = []
    for lineno, row in _header_tsv(train_path, _NLI_COLS):
        if row["label"] == "-":  # no annotator consensus (MultiNLI): not a training item
            continue
        train.append(SeqExample(str(lineno), row["a"], row["b"], _check_label(row["label"], labels, train_path, lineno)))

    def read_xnli(path: Path) -> dict[str, list[SeqExample]]:
        files.append(path)
        by_lang: dict[str, list[SeqExample]] = {}
        cols = {"lang": ("language",), "label": ("gold_label",), "a": ("sentence1",), "b": ("sentence2",),
                "id": ("pairID",)}
        for lineno, row in _header_tsv(path, cols):
            ex = SeqExample(row["id"], row["a"], row["b"], _check_label(row["label"], labels, path, lineno))
            by_lang.setdefault(row["lang"], []).append(ex)
        return by_lang

    dev = read_xnli(root / "xnli.dev.tsv").get("en", [])
    test_all = read_xnli(root / "xnli.test.tsv")
    test = {"en": test_all.pop("en", [])}
    test.update(sorted(test_all.items()))
    return TaskData(spec, labels, train, dev, test, str(data_dir), files)


def load_pawsx(spec: TaskSpec, data_dir: Path) -> TaskData:
    if (data_dir / "train-en.tsv").is_file() or (data_dir / "test-en.tsv").is_file():
        return _xtreme_pairs(spec, data_dir)
    root = data_dir / "x-final" if (data_dir / "x-final" / "en").is_dir() else data_dir
    if not (root / "en").is_dir():
        raise _missing("language directory en/", data_dir,
                       "give the PAWS-X layout (<lang>/train.tsv, dev_2k.tsv, test_2k.tsv) or the XTREME layout")
    labels = spec.labels
    files: list[Path] = []
    cols = {"id": ("id",), "a": ("sentence1",), "b": ("sentence2",), "label": ("label",)}

    def read(path: Path) -> list[SeqExample]:
        files.append(path)
        return [SeqExample(r["id"], r["a"], r["b"], _check_label(r["label"].strip(), labels, path, n))
                for n, r in _header_tsv(path, cols)]

    for name in ("train.tsv", "dev_2k.tsv", "test_2k.tsv"):
        if not (root / "en" / name).is_file():
            raise _missing(f"split file en/{name}", root)
    train, dev = read(root / "en" / "train.tsv"), read(root / "en" / "dev_2k.tsv")
    test = {"en": read(root / "en" / "test_2k.tsv")}
    for p in sorted(root.glob("*/test_2k.tsv")):
        if p.parent.name != "en":
            test[p.parent.name] = read(p)
    return TaskData(spec, labels, train, dev, test, str(data_dir), files)


# --------------------------------------------------------------------------------------------
# token classification: CoNLL-style token \t tag, UD .conllu


def read_conll(path: Path, lang: str, labels: Sequence[str]) -> list[TokExample]:
    """``token \\t tag`` lines, blank line between sentences, optional ``<lang>:`` token prefix."""
    prefix = f"{lang}:"
    out: list[TokExample] = []
    words: list[str] = []
    tags: list[str] = []

    def flush():
        if words:
            out.append(TokExample(f"{path.name}:{len(out)}", list(words), list(tags)))
            words.clear()
            tags.clear()

    for lineno, line in _lines(path):
        if not line.strip():
            flush()
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise UserError(f"{path}:{lineno}: expected 2 tab-separated columns (token, tag), found {len(parts)}")
        tok, tag = parts
        if tok.startswith(prefix):
            tok = tok[len(prefix):]
        words.append(tok)
        tags.append(_check_label(tag.strip(), labels, path, lineno))
    flush()
    return out


def read_conllu(path: Path, labels: Sequence[str]) -> list[TokExample]:
    """UPOS of each syntactic word; comments, multi-word tokens and empty nodes are skipped."""
    out: list[TokExample] = []
    words: list[str] = []
    tags: list[str] = []
    sent_id = None

    def flush():
        nonlocal sent_id
        if words:
            out.append(TokExample(sent_id or f"{path.name}:{len(out)}", list(words), list(tags)))
            words.clear()
            tags.clear()
        sent_id = None

    for lineno, line in _lines(path):
        if not line.strip():
            flush()
            continue
        if line.startswith("#"):
            if line.startswith("# sent_id") and "=" in line:
                sent_id = line.split("=", 1)[1].strip()
            continue
        parts = line.split("\t")
        if len(parts) != 10:
            raise UserError(f"{path}:{lineno}: expected 10 tab-separated CoNLL-U columns, found {len(parts)}")
        tid = parts[0]
        if "-" in tid or "." in tid:
            continue
        words.append(parts[1])
        tags.append(_check_label(parts[3], labels, path, lineno))
    flush()
    return out


_UD_NAME = re.compile(r"^([a-z]{2,3})(?:_[A-Za-z0-9]+)?-ud-(train|dev|test)\.conllu$")
_SPLIT_LANG = re.compile(r"^(train|dev|test)-([A-Za-z_]{2,8})(?:\.tsv|\.conllu)?$")


def _token_files(data_dir: Path, conllu: bool) -> dict[tuple[str, str], list[Path]]:
    """{(split, lang): [files]} found under ``data_dir``."""
    found: dict[tuple[str, str], list[Path]] = {}
    cands = sorted(data_dir.rglob("*.conllu")) if conllu else sorted(
        [p for p in data_dir.glob("*.tsv")] + [p for p in data_dir.glob("*/*") if p.name in SPLITS])
    for p in cands:
        m = _UD_NAME.match(p.name) if conllu else None
        if m:
            found.setdefault((m.group(2), m.group(1)), []).append(p)
            continue
        m = _SPLIT_LANG.match(p.name)
        if m:
            found.setdefault((m.group(1), m.group(2)), []).append(p)
            continue
        if p.stem in SPLITS and p.parent != data_dir:
            found.setdefault((p.stem, p.parent.name), []).append(p)
    return found


def load_tokens(spec: TaskSpec, data_dir: Path) -> TaskData:
    labels = spec.labels
    conllu = spec.format == "conllu" and any(data_dir.rglob("*.conllu"))
    found = _token_files(data_dir, conllu)
    layout = ("<lang>_<treebank>-ud-<split>.conllu files" if conllu else
              "<split>-<lang>.tsv or <lang>/<split> files of token \\t tag lines")
    for split in SPLITS:
        if (split, "en") not in found:
            raise _missing(f"split {split} for language en", data_dir, f"expected {layout}")
    files: list[Path] = []

    def read(split: str, lang: str) -> list[TokExample]:
        out = []
        for p in found[(split, lang)]:
            files.append(p)
            out.extend(read_conllu(p, labels) if conllu else read_conll(p, lang, labels))
        return out

    train, dev = read("train", "en"), read("dev", "en")
    test = {"en": read("test", "en")}
    for split, lang in sorted(found):
        if split == "test" and lang != "en":
            test[lang] = read("test", lang)
    return TaskData(spec, labels, train, dev, test, str(data_dir), files)


# --------------------------------------------------------------------------------------------
# Hugging Face datasets (metaxlm.eval.hub: names, configs, splits)

_PAIR_COLS = {"a": ("premise", "sentence1"), "b": ("hypothesis", "sentence2"), "label": ("label", "gold_label"),
              "id": ("id", "pairID")}
_TAG_COLS = {"ner": ("ner_tags", "ner", "tags"), "pos": ("upos", "pos_tags", "pos", "tags")}
_NO_LABEL = {"-", "", "-1"}  # MultiNLI's "no consensus", PAWS-X's missing label: not an item


def _label_set_check(spec: TaskSpec, where: str, col: str, names: Sequence[str] | None, skip=()) -> None:
    if names is None:
        return
    bad = [n for n in names if LABEL_ALIASES.get(n, n) not in spec.labels and n not in skip]
    if bad:
        raise UserError(f"{where}: column {col!r} has labels ({', '.join(bad[:8])}) that are not in task "
                        f"{spec.name}'s label set ({', '.join(spec.labels)}): this dataset does not fit the task")


def _hf_pairs(spec: TaskSpec, ds, where: str) -> tuple[list[SeqExample], bool]:
    """Sentence pairs of one split; (examples, whether the ids come from an id column)."""
    from metaxlm.eval import hub

    cols = hub.columns(ds, where, _PAIR_COLS, optional=("id",))
    names = hub.class_names(ds, cols["label"])
    _label_set_check(spec, where, cols["label"], names)
    rows = ds.select_columns(list(cols.values())).to_dict()
    out = []
    for i, lab in enumerate(rows[cols["label"]]):
        if names is not None:
            if lab is None or lab < 0:
                continue
            lab = names[lab]
        elif lab is None or str(lab).strip() in _NO_LABEL:
            continue
        lab = LABEL_ALIASES.get(str(lab).strip(), str(lab).strip())
        if lab not in spec.labels:
            raise UserError(f"{where} row {i}: label {lab!r} is not in the task's label set ({', '.join(spec.labels)})")
        ex_id = str(rows[cols["id"]][i]) if "id" in cols else str(i)
        out.append(SeqExample(ex_id, rows[cols["a"]][i], rows[cols["b"]][i], lab))
    return out, "id" in cols


def _hf_tokens(spec: TaskSpec, ds, where: str) -> list[TokExample]:
    """Tagged sentences of one split; UD's multi-word tokens (upos ``_``) and empty nodes are dropped."""
    from metaxlm.eval import hub

    cols = hub.columns(ds, where, {"tokens": ("tokens", "words"), "tags": _TAG_COLS.get(spec.name, ("tags",)),
                                   "head": ("head",), "id": ("idx", "id")}, optional=("head", "id"))
    names = hub.class_names(ds, cols["tags"])
    _label_set_check(spec, where, cols["tags"], names, skip=("_",))
    rows = ds.select_columns(list(cols.values())).to_dict()
    out = []
    for i, (toks, tags) in enumerate(zip(rows[cols["tokens"]], rows[cols["tags"]])):
        if len(toks) != len(tags):
            raise UserError(f"{where} row {i}: {len(toks)} tokens but {len(tags)} tags")
        heads = rows[cols["head"]][i] if "head" in cols else [None] * len(toks)
        words, labels = [], []
        for tok, tag, head in zip(toks, tags, heads):
            tag = names[tag] if names is not None else str(tag).strip()
            if tag == "_" or head == "None":  # a multi-word token's surface form, or an empty node
                continue
            if tag not in spec.labels:
                raise UserError(f"{where} row {i}: tag {tag!r} is not in the task's label set "
                                f"({', '.join(spec.labels)})")
            words.append(tok)
            labels.append(tag)
        if words:
            out.append(TokExample(str(rows[cols["id"]][i]) if "id" in cols else f"{where}:{i}", words, labels))
    return out


def load_hf(spec: TaskSpec, text: str, languages: Sequence[str]) -> TaskData:
    """``hf:NAME[:CONFIG]`` (see :mod:`metaxlm.eval.hub`): English train + validation + test, target test."""
    from metaxlm.eval import hub

    if spec.labels is None:
        raise UserError(f"--data {text}: task {spec.name} has no hub dataset; give its data directory")
    src = hub.parse(text, spec.name)
    langs = hub.languages(src, languages, spec.languages)
    langs = ["en", *[x for x in langs if x != "en"]]
    configs = {lang: hub.config_for(src, lang) for lang in langs}

    def read(lang: str, split: str):
        where = f"hf:{src.name}:{configs[lang]}:{split}"
        ds = hub.load_split(src, configs[lang], split)
        if spec.kind == "token":
            return _hf_tokens(spec, ds, where), True
        return _hf_pairs(spec, ds, where)

    (train, _), (dev, _) = read("en", "train"), read("en", "validation")
    test, keyed = {}, {}
    for lang in langs:
        test[lang], keyed[lang] = read(lang, "test")
    for lang, exs in test.items():  # row numbers pair items only when both sides have the same rows
        if lang != "en" and spec.kind != "token" and not (keyed[lang] and keyed["en"]) and len(exs) != len(test["en"]):
            test[lang] = [SeqExample(f"{lang}-{i}", e.a, e.b, e.label) for i, e in enumerate(exs)]
    parts = [(k, [vars(e) for e in v]) for k, v in [("train", train), ("dev", dev), *test.items()]]
    return TaskData(spec, spec.labels, train, dev, test, f"hf:{src.name}", [], digest=hub.digest(parts))


# --------------------------------------------------------------------------------------------

LOADERS: dict[str, Callable[[TaskSpec, Path], TaskData]] = {
    "topic": load_topic,
    "xnli": load_xnli,
    "pawsx": load_pawsx,
    "conll": load_tokens,
    "conllu": load_tokens,
}


def default_data_dir(spec: TaskSpec) -> Path:
    if spec.default_data == "benchmark":
        from metaxlm.paths import default_benchmark_dir

        return default_benchmark_dir()
    raise UserError(f"eval {spec.name} needs --data DIR (its files are not part of the default benchmark)")


def load_task(spec: TaskSpec, data: str | Path | None = None, languages: Sequence[str] = ()) -> TaskData:
    """Load ``spec`` from ``data`` (a directory, ``hf:NAME``, or None for the task's default) and keep
    English plus ``languages`` (all found when empty). Checks that no split is empty."""
    if isinstance(data, str) and data.startswith("hf:"):
        td = load_hf(spec, data, languages)
    else:
        d = Path(data).expanduser() if data is not None else default_data_dir(spec)
        if not d.is_dir():
            hint = " (run `metaxlm data build` first)" if data is None and spec.default_data else ""
            raise UserError(f"data directory {d} does not exist{hint}")
        td = LOADERS[spec.format](spec, d)
    if languages:
        missing = [lang for lang in languages if lang not in td.test]
        if missing:
            raise UserError(f"missing test file for language {missing[0]!r} in {td.data_dir} "
                            f"(found: {', '.join(td.test)})")
        td.test = {lang: td.test[lang] for lang in ["en", *[x for x in languages if x != "en"]]}
    for what, items in [("train", td.train), ("dev", td.dev)] + [(f"test ({k})", v) for k, v in td.test.items()]:
        if not items:
            raise UserError(f"empty {what} set for task {spec.name} in {td.data_dir}: it has no items")
    return td
