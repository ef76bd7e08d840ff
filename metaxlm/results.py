"""Typed result files: one pydantic model per ``kind`` of ``RUN/results/<name>.json`` (docs/results.md).

Writers and readers share these schemas:

- :meth:`metaxlm.rundir.RunDir.write_result` validates every payload before writing it, so a writer
  that drifts from its schema fails (in the tests) instead of writing a file reports cannot read;
- :func:`load_result` reads a file, checks its ``schema_version`` (older versions are upgraded by
  :data:`MIGRATIONS`, newer ones refused with :class:`SchemaVersionError`) and returns the typed
  result; :func:`validate_result` does the same for a payload already in memory.

A payload that does not fit its schema is a :class:`metaxlm.errors.UserError` of one line naming the
file and the field path, e.g. ``runs/x/results/topic.json: scores.de.accuracy.mean: not a number (got
"high"); ...``. Fields the report and users rely on are typed precisely (numbers are numbers: a
string or a boolean is refused, never converted); every model also keeps fields it does not know
(``extra="allow"``), so a writer may add a field before its schema names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metaxlm.errors import UserError
from metaxlm.rundir import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION", "MIGRATIONS", "KINDS", "Result", "SchemaVersionError", "upgrade", "validate_result",
    "load_result",
    "Summary", "ModelInfo", "Headline", "PretrainResult", "TransferResult", "TatoebaResult", "BuccResult",
    "AlignResult", "AlignPairResult", "MtebExportResult",
]

FIX = "fix the file, or write it again with the metaxlm command that made it"


class _Model(BaseModel):
    """Strict types (no string → number, no bool → int), unknown fields kept, read-only."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, protected_namespaces=())


Num = float  # a JSON number (an integer is accepted); strict: never a string or a boolean
Interval = Annotated[list[Num], Field(min_length=2, max_length=2)]  # [lo, hi]


# -- shared pieces ---------------------------------------------------------------------------------

class Summary(_Model):
    """An aggregate over seeds (:func:`metaxlm.stats.summarize`): ``mean``/``std``/``ci95`` are null
    when there is no value (``n`` 0)."""

    mean: Num | None
    std: Num | None
    ci95: Interval | None
    n: int
    values: list[Num]

    @model_validator(mode="after")
    def _count(self) -> "Summary":
        if self.n != len(self.values):
            raise ValueError(f"n is {self.n} but values has {len(self.values)} entries")
        return self


class ModelInfo(_Model):
    """``ModelRef.describe()`` (controls: source ``control``; ``encode()`` objects: source ``object``)."""

    spec: str
    path: str | None = None
    source: Literal["run", "local", "hub", "control", "object"]
    phase: str | None = None
    run_dir: str | None = None
    revision: str | None = None
    label: str | None = None


class Timing(_Model):
    seconds: Num


class DataInfo(_Model):
    source: str | None = None
    data_dir: str | None = None
    data_hash: str | None = None


class Headline(_Model):
    """The (layer, pooling) a retrieval result reports, and how it was chosen."""

    layer: int
    pooling: str
    selected_on: Literal["dev", "fixed"]
    layer_choice: Literal["dev", "user", "fixed: no dev split"] | None = None  # absent in older files
    layer_rule: str | None = None
    dev_score: Num | None = None

    @property
    def choice(self) -> str:
        """``layer_choice``; for files written before it existed, ``"fixed"`` meant ``--layer``."""
        if self.layer_choice is not None:
            return self.layer_choice
        return "user" if self.selected_on == "fixed" else "dev"


class _Result(_Model):
    schema_version: int
    kind: str
    timing: Timing | None = None
    versions: dict[str, str] | None = None

    def payload(self) -> dict[str, Any]:
        """The result as the plain dict it was read from (the fields present in the file, unknown ones
        included): what dict-based code (the report) reads."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# -- pretrain --------------------------------------------------------------------------------------

class Phase(_Model):
    name: str
    languages: list[str]
    tokens: int
    steps: int
    epochs: dict[str, Num] | None = None  # expected passes over each language's training tokens


class CheckpointInfo(_Model):
    name: str
    tokens_seen: int
    step: int


class CorpusInfo(_Model):
    path: str | None = None
    sha256: str | None = None
    cache: str | None = None
    train_tokens: int | None = None
    val_tokens: int | None = None
    lines: int | None = None
    tokenizer_sha256: str | None = None


class PretrainResult(_Result):
    kind: Literal["pretrain"]
    regime: str
    seed: int
    phases: list[Phase]
    tokens_seen: dict[str, int]
    final_val_loss: dict[str, Num | None]
    checkpoints: list[CheckpointInfo]
    wall_seconds: Num
    warnings: list[str] = []
    data: dict[str, CorpusInfo] | None = None
    config: dict[str, Any] | None = None
    model_args: dict[str, Any] | None = Field(None, alias="model_config")  # the encoder's sizes


# -- transfer --------------------------------------------------------------------------------------

ItemStat = Literal["correct", "correct_total", "tp_fp_fn"]
_ITEM_WIDTH = {"correct_total": 2, "tp_fp_fn": 3}


class TaskInfo(_Model):
    name: str
    metric: str  # the primary metric
    metrics: list[str]
    labels: list[str] | None = None
    item_stat: ItemStat | None = None  # how per_seed[k].items records one test item
    data_dir: str | None = None
    data_hash: str | None = None


class TransferConfig(_Model):
    seeds: list[int]
    train_size: int | None = None
    lr: Num | None = None
    epochs: Num | None = None
    batch_size: int | None = None
    max_length: int | None = None
    warmup_ratio: Num | None = None


class ProbeCurve(_Model):
    layers: list[int]
    dev: list[Num]  # English dev score per layer
    test: dict[str, list[Num]]  # lang -> test score per layer


class ProbeChoice(_Model):
    """What the frozen-encoder probe chose on English dev (one fit), and every pooling's curves."""

    layer: int
    pooling: str
    C: Num
    dev_score: Num | None = None
    curves: dict[str, ProbeCurve] | None = None  # pooling -> curves by layer


class Probe(_Model):
    """Top-level ``probe`` of a ``protocol: probe`` result: the most frequent choice over seeds and that
    pooling's curves by layer, averaged over seeds."""

    layer: int
    pooling: str
    C: Num
    curve: ProbeCurve
    choices: list[dict[str, Any]] | None = None


class SeedRun(_Model):
    seed: int
    best_epoch: int | None = None
    scores: dict[str, dict[str, Num]]  # lang -> metric -> value
    en_train: dict[str, Num] | None = None
    collapsed: list[str] = []
    train_size: int | None = None
    items: dict[str, list[int | list[int]]] | None = None  # lang -> one row per test item
    probe: ProbeChoice | None = None


class Gaps(_Model):
    en_score: Summary
    train_minus_test: Summary | None = None
    target_mean: Summary
    transfer_gap_mean: Summary
    transfer_gap: dict[str, Summary]
    paired_gap: dict[str, Summary] = {}


class Sizes(_Model):
    train: int
    dev: int
    test: dict[str, int]


class TransferResult(_Result):
    kind: Literal["transfer"]
    protocol: Literal["finetune", "probe"] = "finetune"  # absent in older files: fine-tuning
    task: TaskInfo
    model: ModelInfo
    config: TransferConfig
    languages: list[str]
    sizes: Sizes | None = None
    per_seed: list[SeedRun]
    scores: dict[str, dict[str, Summary]]  # lang -> metric -> summary over seeds
    majority: dict[str, Num]
    collapsed: dict[str, list[int]] = {}
    gaps: Gaps
    item_ids: dict[str, list[str]] | None = None  # lang -> test item ids, in the order of items
    probe: Probe | None = None
    predictions: dict[str, dict[str, str]] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "TransferResult":
        metric = self.task.metric
        for lang in self.languages:
            if metric not in self.scores.get(lang, {}):
                raise ValueError(f"scores.{lang}.{metric}: missing (the primary metric of every language)")
        stat = self.task.item_stat
        for k, run in enumerate(self.per_seed):
            for lang, rows in (run.items or {}).items():
                where = f"per_seed.{k}.items.{lang}"
                if stat is None:
                    raise ValueError(f"{where}: per-item rows without task.item_stat")
                if self.item_ids is not None and len(rows) != len(self.item_ids.get(lang, ())):
                    raise ValueError(f"{where}: {len(rows)} rows but item_ids.{lang} has "
                                     f"{len(self.item_ids.get(lang, ()))}")
                for i, row in enumerate(rows):
                    if not _row_ok(stat, row):
                        want = "0 or 1" if stat == "correct" else f"a list of {_ITEM_WIDTH[stat]} counts"
                        raise ValueError(f"{where}.{i}: not {want} (item_stat {stat})")
        return self

    @property
    def result_name(self) -> str:
        """The name reports use: the task, ``TASK-probe`` for the frozen-encoder probe protocol."""
        return self.task.name + ("-probe" if self.protocol == "probe" else "")

    @property
    def targets(self) -> list[str]:
        return [lang for lang in self.languages if lang != "en"]

    def primary(self, lang: str) -> Summary | None:
        """The summary of the primary metric in ``lang`` (None: not evaluated there)."""
        return self.scores.get(lang, {}).get(self.task.metric)

    @property
    def has_items(self) -> bool:
        """Every run recorded per-item outcomes with their ids (what the paired bootstrap needs)."""
        return (self.task.item_stat is not None and self.item_ids is not None and bool(self.per_seed)
                and all(run.items is not None for run in self.per_seed))


def _row_ok(stat: str, row: Any) -> bool:
    if stat == "correct":
        return isinstance(row, int) and row in (0, 1)
    return isinstance(row, list) and len(row) == _ITEM_WIDTH[stat] and all(v >= 0 for v in row)


# -- retrieval: tatoeba and bucc -------------------------------------------------------------------

class TatoebaScores(_Model):
    acc_cosine_xx2en: Num
    acc_cosine_en2xx: Num
    acc_cosine: Num
    acc_margin_xx2en: Num
    acc_margin_en2xx: Num
    xsim_error: Num
    acc_dedup_xx2en: Num
    acc_dedup_en2xx: Num | None = None
    f1_weighted_xx2en: Num | None = None
    precision_weighted_xx2en: Num | None = None
    n: int
    chance: Num


class TatoebaMean(_Model):
    """``TatoebaScores`` averaged over languages (so ``n`` is a mean too); null: no language has it."""

    acc_cosine: Num | None
    acc_cosine_xx2en: Num | None = None
    acc_cosine_en2xx: Num | None = None
    acc_margin_xx2en: Num | None = None
    acc_margin_en2xx: Num | None = None
    xsim_error: Num | None = None
    acc_dedup_xx2en: Num | None = None
    acc_dedup_en2xx: Num | None = None
    f1_weighted_xx2en: Num | None = None
    n: Num | None = None
    chance: Num | None = None


class OverlapSummary(_Model):
    mean: Num | None
    median: Num | None
    share: dict[str, Num | None]


class Overlap(_Model):
    definition: str
    bands: dict[str, list[Num | None]]  # band -> [lo, hi] (hi null: no upper bound)
    scores: dict[str, OverlapSummary] | None = None  # lang -> summary (tatoeba)


class TatoebaBandScores(_Model):
    acc_cosine_xx2en: Num | None
    acc_cosine_en2xx: Num | None
    acc_cosine: Num | None
    n: int


class TatoebaBand(_Model):
    scores: dict[str, TatoebaBandScores]
    mean: TatoebaBandScores


class TatoebaSubset(_Model):
    languages: list[str]
    scores: dict[str, TatoebaScores]
    mean: dict[str, Num | None]
    too_few: list[str] = []


class TatoebaConfig(_Model):
    poolings: list[str]
    layer: int | None = None
    margin_k: int | None = None
    num_layers: int | None = None


Sweep = dict[str, dict[str, dict[str, list[Num]]]]  # pooling -> lang (or "dev-pair") -> split -> per layer


class TatoebaResult(_Result):
    kind: Literal["tatoeba"]
    model: ModelInfo
    data: DataInfo
    config: TatoebaConfig
    headline: Headline
    languages: list[str]
    scores: dict[str, TatoebaScores]
    mean: TatoebaMean
    sweep: Sweep
    overlap: Overlap | None = None
    bands: dict[str, TatoebaBand] | None = None
    subsets: dict[str, TatoebaSubset] | None = None
    conventions: dict[str, str] | None = None
    search_backend: str | None = None


class BuccScores(_Model):
    threshold: Num | None  # null: no correct dev candidate
    precision: Num
    recall: Num
    f1: Num
    average_precision: Num
    oracle_f1: Num  # tuned on test: an upper bound, never the result
    oracle_threshold: Num | None
    n_gold: int
    n_candidates: int | None = None
    n_extracted: int | None = None
    dev_f1: Num | None = None
    dev_n_gold: int | None = None


class BuccMean(_Model):
    f1: Num | None
    precision: Num | None = None
    recall: Num | None = None
    average_precision: Num | None = None
    oracle_f1: Num | None = None


class BuccBandScores(_Model):
    precision: Num | None
    recall: Num | None
    f1: Num | None
    n_gold: int
    n_extracted: int | None = None


class BuccBand(_Model):
    scores: dict[str, BuccBandScores]
    mean: BuccBandScores


class BuccSubset(_Model):
    languages: list[str]
    scores: dict[str, BuccScores]
    mean: BuccMean
    too_few: list[str] = []


class BuccConfig(_Model):
    layer: int | None = None
    pooling: str | None = None
    margin: str | None = None
    k: int | None = None


class BuccResult(_Result):
    kind: Literal["bucc"]
    model: ModelInfo
    data: DataInfo
    config: BuccConfig
    headline: Headline
    languages: list[str]
    scores: dict[str, BuccScores]
    mean: BuccMean
    sweep: Sweep = {}
    overlap: Overlap | None = None
    bands: dict[str, BuccBand] | None = None
    subsets: dict[str, BuccSubset] | None = None
    conventions: dict[str, str] | None = None
    search_backend: str | None = None


# -- alignment probes ------------------------------------------------------------------------------

class LayerCurve(_Model):
    values: list[Num | None]  # per probed layer (null: undefined there, see notes)
    ci95: list[Interval | None]


class AlignConfig(_Model):
    pooling: str
    debiased: bool
    n_sentences: int | dict[str, int]
    bootstrap: int | None = None
    seed: int | None = None


class AlignResult(_Result):
    kind: Literal["align"]
    model: ModelInfo
    data: dict[str, Any] | None = None
    config: AlignConfig
    languages: list[str]
    layers: list[int]
    cka: dict[str, LayerCurve]
    retrieval: dict[str, LayerCurve]
    mean_cka: list[Num | None]
    notes: list[str] = []
    search_backend: str | None = None

    @model_validator(mode="after")
    def _per_layer(self) -> "AlignResult":
        n = len(self.layers)
        if len(self.mean_cka) != n:
            raise ValueError(f"mean_cka: {len(self.mean_cka)} values for {n} layers")
        for name, curves in (("cka", self.cka), ("retrieval", self.retrieval)):
            for lang, c in curves.items():
                for part in ("values", "ci95"):
                    if len(getattr(c, part)) != n:
                        raise ValueError(f"{name}.{lang}.{part}: {len(getattr(c, part))} entries for {n} layers")
        return self


class AlignPairConfig(_Model):
    pooling: str
    debiased: bool
    n_sentences: int | dict[str, int] | None = None
    n_english: int | None = None


class AlignPairResult(_Result):
    kind: Literal["align_pair"]
    models: Annotated[list[ModelInfo], Field(min_length=2, max_length=2)]
    languages: list[str]
    data: dict[str, Any] | None = None
    config: AlignPairConfig | None = None
    layers: Annotated[list[list[int]], Field(min_length=2, max_length=2)]
    matrix: list[list[Num | None]]  # CKA(A layer i, B layer j)
    per_model: dict[str, dict[str, list[Num | None]]]  # label -> lang -> CKA per layer
    notes: list[str] = []

    @model_validator(mode="after")
    def _shape(self) -> "AlignPairResult":
        rows, cols = len(self.layers[0]), len(self.layers[1])
        if len(self.matrix) != rows or any(len(r) != cols for r in self.matrix):
            raise ValueError(f"matrix: not {rows} × {cols} (layers of A × layers of B)")
        return self


# -- exports ---------------------------------------------------------------------------------------

class MtebExported(_Model):
    model: str
    task_name: str
    source: str
    file: str
    comparable_with_leaderboard: bool
    comparability: Any = None


class MtebExportResult(_Result):
    kind: Literal["mteb_export"]
    format: str
    exported: list[MtebExported]
    skipped: list[dict[str, Any]]
    comparable: list[str]
    not_comparable: list[str]


# -- validation and loading ------------------------------------------------------------------------

Result = Union[PretrainResult, TransferResult, TatoebaResult, BuccResult, AlignResult, AlignPairResult,
               MtebExportResult]
KINDS: dict[str, type[_Result]] = {
    "pretrain": PretrainResult, "transfer": TransferResult, "tatoeba": TatoebaResult, "bucc": BuccResult,
    "align": AlignResult, "align_pair": AlignPairResult, "mteb_export": MtebExportResult,
}


def _from_v0(data: dict) -> dict:
    """Files without ``schema_version`` (or 0): the fields of version 1, only the number was missing."""
    return {**data, "schema_version": 1}


# version v -> the function that turns a version-v payload into a version v+1 one
MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _from_v0}


class SchemaVersionError(UserError):
    """A result file this metaxlm cannot read at its ``schema_version`` (newer, or older with no
    migration): ``where``, ``reason`` (the problem without the fix, for a caller's own line), ``found``
    and ``supported`` (:data:`SCHEMA_VERSION`)."""

    def __init__(self, where: str, reason: str, fix: str, found: Any):
        super().__init__(f"{where}: {reason}; {fix}")
        self.where, self.reason, self.found, self.supported = where, reason, found, SCHEMA_VERSION


def upgrade(payload: dict, where: str) -> dict:
    """``payload`` at :data:`SCHEMA_VERSION`, through :data:`MIGRATIONS` (a missing version is 0)."""
    version = payload.get("schema_version")
    version = 0 if version is None else version
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaVersionError(where, f"schema_version {version!r} is not a version number", FIX, version)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(where, f"schema_version {version} is newer than this metaxlm reads "
                                 f"({SCHEMA_VERSION})", "upgrade metaxlm to read it", version)
    found = version
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SchemaVersionError(where, f"schema_version {found} is older than this metaxlm reads "
                                     f"({SCHEMA_VERSION}) and has no known migration",
                                     "write it again with the metaxlm command that made it", found)
        payload = step(payload)
        version = payload["schema_version"]
    return payload


def validate_result(payload: dict, where: str) -> Result:
    """The typed result of ``payload`` (already at :data:`SCHEMA_VERSION`); a one-line UserError
    ``WHERE: FIELD.PATH: problem (got VALUE); how to fix`` when it does not fit its kind's schema."""
    if not isinstance(payload, dict):
        raise UserError(f"{where}: not a JSON object (a result file holds one); {FIX}")
    kind = payload.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        got = "missing" if "kind" not in payload else f"unknown kind {kind!r}"
        raise UserError(f"{where}: kind: {got} (known: {', '.join(KINDS)}); {FIX}")
    try:
        return model.model_validate(payload)
    except ValidationError as e:
        raise UserError(f"{where}: {_describe(e)}; {FIX}") from None


def load_result(path: str | Path) -> Result:
    """Read, upgrade (:func:`upgrade`) and validate one result file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: unreadable ({type(e).__name__}: {e}); {FIX}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON (line {e.lineno}): it may be from an interrupted run; {FIX}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: not a JSON object (a result file holds one); {FIX}")
    return validate_result(upgrade(data, str(p)), str(p))


# -- one-line messages -----------------------------------------------------------------------------

_PHRASES = {
    "float_type": "not a number", "int_type": "not an integer", "string_type": "not a string",
    "bool_type": "not true or false", "list_type": "not a list", "dict_type": "not an object",
    "model_type": "not an object", "model_attributes_type": "not an object", "missing": "missing",
    "none_required": "must be null",
}
_TYPE_TAGS = ("int", "float", "str", "bool", "none")  # union members pydantic puts in error locations


def _is_tag(x: Any) -> bool:
    return isinstance(x, str) and (x in _TYPE_TAGS or "[" in x or x in _CLASS_NAMES)


def _parts(loc: tuple) -> tuple[str, ...]:
    return tuple(str(x) for x in loc if not _is_tag(x))


def _describe(e: ValidationError) -> str:
    errors = e.errors(include_url=False)
    # a union reports one error per member at the same place: the deepest one says the most
    head = _parts(errors[0]["loc"])
    same = [er for er in errors if _parts(er["loc"])[:len(head)] == head]
    first = max(same, key=lambda er: len(_parts(er["loc"])))
    path, kind = ".".join(_parts(first["loc"])), first["type"]
    if kind in _PHRASES:
        what = _PHRASES[kind]
    elif kind == "value_error":  # a model check: its message may name the field path itself
        what = str(first["msg"]).removeprefix("Value error, ")
    else:
        what = str(first["msg"])[:1].lower() + str(first["msg"])[1:]
    if kind not in ("missing", "value_error"):
        got = json.dumps(first.get("input"), ensure_ascii=False, default=str)
        what += f" (got {got[:60] + '…' if len(got) > 60 else got})"
    line = f"{path}: {what}" if path else what
    more = len({_parts(er["loc"]) for er in errors if _parts(er["loc"])[:len(head)] != head})
    if more:
        line += f" (and {more} more problem{'s' if more > 1 else ''})"
    return line


_CLASS_NAMES = {name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, BaseModel)}
