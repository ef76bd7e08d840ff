"""Transfer tasks as small declarations: a new task is one :class:`TaskSpec` plus a loader.

A task says what kind of prediction it needs (``sequence`` or ``token`` classification), which
loader reads it, its metrics (the first is the primary one, used for model selection on English
dev and for gaps), its label set, and whether target test items are translations of English test
items (then a *paired* gap is computed on exactly the shared ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxlm.errors import UserError

XNLI_LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X")
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["sequence", "token"]
    format: str  # key of metaxlm.eval.formats.LOADERS
    metrics: tuple[str, ...]  # first = primary (selection on English dev, gaps)
    labels: tuple[str, ...] | None  # None: read from the data (topic: labels.json)
    languages: tuple[str, ...] = ()  # the languages the public benchmark has (documentation; data decides)
    pair: bool = False  # sentence-pair input
    translated: bool = False  # target test items share ids with English test items → paired gap
    default_data: str | None = None  # "benchmark": metaxlm.paths.default_benchmark_dir()
    description: str = ""
    # task-specific defaults for options left unset (None: the global FinetuneParams default); epochs is
    # the fine-tuning budget (the most epochs; early stopping may end sooner)
    max_length: int | None = None
    epochs: int | None = None

    @property
    def metric(self) -> str:
        return self.metrics[0]


TASKS: dict[str, TaskSpec] = {
    "xnli": TaskSpec(
        name="xnli", kind="sequence", format="xnli", metrics=("accuracy", "macro_f1"),
        labels=("entailment", "neutral", "contradiction"), languages=XNLI_LANGUAGES, pair=True,
        translated=True,
        description="natural language inference: XNLI-1.0 files + MultiNLI train, or the XTREME layout"),
    "pawsx": TaskSpec(
        name="pawsx", kind="sequence", format="pawsx", metrics=("accuracy", "macro_f1"),
        labels=("0", "1"), languages=PAWSX_LANGUAGES, pair=True, translated=True,
        description="paraphrase identification: PAWS-X layout (<lang>/train.tsv, dev_2k.tsv, test_2k.tsv) "
                    "or the XTREME layout"),
    "topic": TaskSpec(
        name="topic", kind="sequence", format="topic", metrics=("accuracy", "macro_f1"), labels=None,
        translated=True, default_data="benchmark", max_length=64, epochs=8,
        description="topic of a Debian package description: the default benchmark's topic/ task"),
    "ner": TaskSpec(
        name="ner", kind="token", format="conll", metrics=("span_f1", "token_accuracy"), labels=PANX_TAGS,
        description="named entities: PAN-X/WikiANN (token \\t tag, optional lang: prefix), span F1 (seqeval)"),
    "pos": TaskSpec(
        name="pos", kind="token", format="conllu", metrics=("token_accuracy",), labels=UPOS,
        description="part of speech: Universal Dependencies .conllu files (UPOS), token accuracy"),
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
