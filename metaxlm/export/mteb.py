"""metaxlm results → MTEB's result format: pure functions on result dicts (no I/O).

The schema is MTEB's (mteb 2.x, ``mteb.results.TaskResult`` and ``ModelMeta.to_dict``): one JSON file
per task, ``results/<org>__<model>/<revision>/<TaskName>.json``::

    {"dataset_revision": ..., "task_name": ..., "mteb_version": ..., "evaluation_time": seconds,
     "kg_co2_emissions": null, "date": unix time, "evaluation_phases": null,
     "scores": {"<split>": [{"hf_subset": "deu-eng", "languages": ["deu-Latn", "eng-Latn"],
                             "main_score": ..., <scores MTEB names>, ...}]}}

and a ``model_meta.json`` beside it. What we write honestly differs from a run of MTEB:
``mteb_version`` is ``null`` (MTEB did not run: metaxlm computed the numbers; MTEB's loader accepts a
null version), ``dataset_revision`` is metaxlm's SHA256 of the data files (``sha256:...``), and each
file carries a ``metaxlm`` block (ignored by MTEB's loader): the source run, the model, the headline
layer and pooling, and whether the numbers are comparable with MTEB's leaderboard.

Mapping (:func:`task_result`):

- ``tatoeba`` on LASER's Tatoeba files (``data.source == "tatoeba"``, every pair, a weighted F1
  recorded) → MTEB's ``Tatoeba`` (BitextMining), subsets ``<iso3>-eng``, split ``test``: ``f1``
  (main score: scikit-learn weighted F1 of the cosine nearest English sentence of each xx
  sentence), ``accuracy``, ``precision`` (weighted), ``recall`` (weighted, = accuracy: every line is
  its own class). **Comparable** with the leaderboard's Tatoeba numbers (same sentences, same
  metric), for the headline layer/pooling of the encoder.
- ``tatoeba`` on other data (the benchmark's Debian parallel sets, ``--src/--tgt`` files) → a custom
  BitextMining task (``MetaxlmDebianParallelBitextMining``, ``MetaxlmPairBitextMining``), same scores;
  not comparable.
- ``bucc`` → a custom task (``MetaxlmBUCC2018Mining`` or ``MetaxlmDebianMining``), subsets
  ``<xx>-en``: ``precision``, ``recall``, ``f1`` (main score) at the dev-tuned margin threshold,
  ``average_precision``, ``oracle_f1``. Not comparable with MTEB's ``BUCC``: MTEB scores top-1
  retrieval of each gold source sentence's translation (weighted F1), metaxlm mines with a
  threshold as the BUCC shared task and XTREME do: different numbers.
- ``transfer`` with an accuracy metric (``topic``, ``xnli``, ``pawsx``) → a custom Classification
  task (``MetaxlmTopicZeroShotTransfer``, ``MetaxlmXNLIZeroShotTransfer``, ...; the ``probe``
  protocol, a linear classifier on frozen embeddings: ``Metaxlm<Task>LinearProbeTransfer``), one subset per
  language: ``accuracy`` (main score), ``f1`` (macro), ``scores_per_experiment`` (one per
  fine-tuning seed). Not comparable: MTEB's XNLI and PAWS-X are PairClassification tasks scored on
  embedding similarity, not fine-tuned zero-shot transfer.
- token tasks (``ner``, ``pos``), controls (``majority``, ``lexical``) and probes (``align``) have no
  MTEB counterpart: :func:`task_result` returns ``None`` and a reason.
"""

from __future__ import annotations

import datetime as _dt
import re

# ISO 639-1 (metaxlm's codes) → MTEB's language-script code (ISO 639-3 + ISO 15924)
LANGUAGES = {
    "af": "afr-Latn", "am": "amh-Ethi", "ar": "ara-Arab", "az": "aze-Latn", "be": "bel-Cyrl",
    "bg": "bul-Cyrl", "bn": "ben-Beng", "ca": "cat-Latn", "cs": "ces-Latn", "cy": "cym-Latn",
    "da": "dan-Latn", "de": "deu-Latn", "el": "ell-Grek", "en": "eng-Latn", "eo": "epo-Latn",
    "es": "spa-Latn", "et": "est-Latn", "eu": "eus-Latn", "fa": "pes-Arab", "fi": "fin-Latn",
    "fr": "fra-Latn", "ga": "gle-Latn", "gl": "glg-Latn", "he": "heb-Hebr", "hi": "hin-Deva",
    "hr": "hrv-Latn", "hu": "hun-Latn", "hy": "hye-Armn", "id": "ind-Latn", "is": "isl-Latn",
    "it": "ita-Latn", "ja": "jpn-Jpan", "ka": "kat-Geor", "kk": "kaz-Cyrl", "km": "khm-Khmr",
    "ko": "kor-Hang", "la": "lat-Latn", "lt": "lit-Latn", "lv": "lvs-Latn", "mk": "mkd-Cyrl",
    "ml": "mal-Mlym", "mr": "mar-Deva", "ms": "zsm-Latn", "my": "mya-Mymr", "nb": "nob-Latn",
    "nl": "nld-Latn", "pl": "pol-Latn", "pt": "por-Latn", "ro": "ron-Latn", "ru": "rus-Cyrl",
    "sk": "slk-Latn", "sl": "slv-Latn", "sq": "sqi-Latn", "sr": "srp-Cyrl", "sv": "swe-Latn",
    "sw": "swa-Latn", "ta": "tam-Taml", "te": "tel-Telu", "th": "tha-Thai", "tl": "tgl-Latn",
    "tr": "tur-Latn", "uk": "ukr-Cyrl", "ur": "urd-Arab", "uz": "uzb-Latn", "vi": "vie-Latn",
    "zh": "cmn-Hans",
}
_BY_ISO3 = {v.split("-")[0]: v for v in LANGUAGES.values()}
UNKNOWN_SCRIPT = "Zzzz"  # ISO 15924 "unknown"

MTEB_TATOEBA = "Tatoeba"
CUSTOM_TATOEBA = {"benchmark/parallel": "MetaxlmDebianParallelBitextMining", "pair": "MetaxlmPairBitextMining"}
CUSTOM_BUCC = {"bucc2018": "MetaxlmBUCC2018Mining", "benchmark/mining": "MetaxlmDebianMining"}
NO_REVISION = "no_revision_available"  # what MTEB writes for a model without a revision

BUCC_NOT_COMPARABLE = ("MTEB's BUCC task scores top-1 retrieval of each gold source sentence's translation "
                       "(weighted F1); metaxlm mines pairs with a margin threshold tuned on dev gold, as the BUCC "
                       "shared task and XTREME do: a different number")
TRANSFER_NOT_COMPARABLE = ("zero-shot transfer of a model fine-tuned on English; MTEB's classification and "
                           "pair-classification tasks (XNLI, PAWS-X) score frozen embeddings: a different number")
PROBE_NOT_COMPARABLE = ("a linear classifier on frozen embeddings as in MTEB's Classification, but trained on English "
                        "and tested on every language, on metaxlm's data and splits: not a leaderboard task")


def mteb_language(code: str) -> str:
    """``de`` / ``deu`` → ``deu-Latn``; a code not in :data:`LANGUAGES` keeps its letters with script
    ``Zzzz`` (unknown)."""
    c = str(code).lower()
    if c in LANGUAGES:
        return LANGUAGES[c]
    if c in _BY_ISO3:
        return _BY_ISO3[c]
    return f"{c}-{UNKNOWN_SCRIPT}"


def _iso3(code: str) -> str:
    return mteb_language(code).split("-")[0]


def model_name(model: dict) -> str:
    """MTEB's ``organization/name`` for a result's ``model`` block: ``metaxlm/<run label>`` for a
    metaxlm run, ``local/<dir>`` for a model directory, the hub id (``hub/<id>`` without an
    organization), ``object/<name>`` for an encode() object."""
    source = model.get("source")
    label = str(model.get("label") or model.get("spec") or "model")
    if source == "hub":
        spec = str(model.get("spec") or label)
        return spec if "/" in spec else f"hub/{spec}"
    org = {"run": "metaxlm", "local": "local", "object": "object"}.get(str(source), "metaxlm")
    return f"{org}/{label}"


def model_revision(model: dict) -> str:
    """The hub revision when there is one, else MTEB's ``no_revision_available`` (a metaxlm run's
    ``revision`` is the git sha of the training code, not a model revision: it goes in ``metaxlm``)."""
    rev = model.get("revision") if model.get("source") == "hub" else None
    return str(rev) if rev else NO_REVISION


def folder_name(name: str) -> str:
    """MTEB's directory name for a model name (``/`` → ``__``, spaces → ``_``)."""
    return name.replace("/", "__").replace(" ", "_")


def _timestamp(meta: dict | None) -> float | None:
    when = (meta or {}).get("finished_at") or (meta or {}).get("created_at")
    try:
        return _dt.datetime.fromisoformat(str(when)).timestamp() if when else None
    except ValueError:
        return None


def _envelope(task_name: str, payload: dict, meta: dict | None, split: str, subsets: list[dict],
              info: dict) -> dict:
    return {
        "dataset_revision": str((payload.get("data") or payload.get("task") or {}).get("data_hash") or "unknown"),
        "task_name": task_name,
        "mteb_version": None,  # MTEB did not run; metaxlm computed these numbers (see "metaxlm")
        "scores": {split: subsets},
        "evaluation_time": (payload.get("timing") or {}).get("seconds"),
        "kg_co2_emissions": None,
        "date": _timestamp(meta),
        "evaluation_phases": None,
        "metaxlm": info,
    }


def _info(payload: dict, comparable: bool, why: str, **extra) -> dict:
    return {"kind": payload.get("kind"), "model": payload.get("model"), "headline": payload.get("headline"),
            "comparable_with_leaderboard": comparable, "comparability": why,
            "metaxlm_version": (payload.get("versions") or {}).get("metaxlm"), **extra}


def _numbers(d: dict, skip=()) -> dict:
    return {k: v for k, v in d.items() if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def tatoeba_result(payload: dict, meta: dict | None = None) -> dict:
    """A ``kind: tatoeba`` result as an MTEB BitextMining TaskResult dict (see the module doc)."""
    data = payload.get("data") or {}
    source = str(data.get("source") or "")
    config = payload.get("config") or {}
    scores = payload.get("scores") or {}
    has_f1 = all("f1_weighted_xx2en" in s for s in scores.values())
    reasons = []
    if source != "tatoeba":
        reasons.append(f"the data is {source or 'unknown'} (metaxlm's own sets), not LASER's Tatoeba files")
    if config.get("max_pairs") is not None:
        reasons.append(f"capped at {config['max_pairs']} pairs per language")
    if not has_f1:
        reasons.append("no weighted F1 recorded (the result predates it; rerun eval tatoeba): main_score is accuracy")
    comparable = not reasons
    name = MTEB_TATOEBA if comparable else CUSTOM_TATOEBA.get(source, "MetaxlmBitextMining")
    subsets = []
    for lang, s in scores.items():
        acc = s.get("acc_cosine_xx2en")
        entry = {"accuracy": acc, "recall": acc}  # weighted recall = accuracy: each line is a class of support 1
        if has_f1:
            entry["f1"] = s["f1_weighted_xx2en"]
        if "precision_weighted_xx2en" in s:
            entry["precision"] = s["precision_weighted_xx2en"]
        entry.update(_numbers(s, skip=("f1_weighted_xx2en", "precision_weighted_xx2en")))
        entry.update(main_score=entry["f1"] if has_f1 else acc, hf_subset=f"{_iso3(lang)}-eng",
                     languages=[mteb_language(lang), "eng-Latn"])
        subsets.append(entry)
    why = ("same sentences as MTEB's Tatoeba (LASER's Tatoeba files; dataset_revision is metaxlm's hash of "
           "them) and the same metric (weighted F1 of the cosine nearest English sentence of each xx "
           "sentence), for the headline layer and pooling" if comparable else "; ".join(reasons))
    return _envelope(name, payload, meta, "test", subsets, _info(payload, comparable, why, mteb_task=MTEB_TATOEBA))


def bucc_result(payload: dict, meta: dict | None = None) -> dict:
    """A ``kind: bucc`` result as a custom BitextMining TaskResult dict (never comparable: see the module doc)."""
    data = payload.get("data") or {}
    source = str(data.get("source") or "")
    subsets = []
    for lang, s in (payload.get("scores") or {}).items():
        entry = {k: s.get(k) for k in ("precision", "recall", "f1")}
        entry.update(_numbers(s, skip=("precision", "recall", "f1")))
        entry.update(main_score=s.get("f1"), hf_subset=f"{lang}-en", languages=[mteb_language(lang), "eng-Latn"])
        subsets.append(entry)
    name = CUSTOM_BUCC.get(source, "MetaxlmMining")
    return _envelope(name, payload, meta, str(data.get("test_split") or "test"), subsets,
                     _info(payload, False, BUCC_NOT_COMPARABLE, mteb_task="BUCC"))


def _task_title(name: str) -> str:
    special = {"xnli": "XNLI", "pawsx": "PAWSX"}
    return special.get(name, re.sub(r"[^0-9A-Za-z]+", " ", name).title().replace(" ", ""))


def transfer_result(payload: dict, meta: dict | None = None) -> dict:
    """A ``kind: transfer`` result with an accuracy metric as a custom Classification TaskResult dict."""
    task = payload.get("task") or {}
    per_seed = payload.get("per_seed") or []
    subsets = []
    for lang, s in (payload.get("scores") or {}).items():
        acc = (s.get("accuracy") or {}).get("mean")
        entry = {"accuracy": acc}
        if "macro_f1" in s:
            entry["f1"] = s["macro_f1"].get("mean")
        entry["accuracy_ci95"] = (s.get("accuracy") or {}).get("ci95")
        runs = [{"accuracy": r["scores"][lang].get("accuracy"),
                 **({"f1": r["scores"][lang]["macro_f1"]} if "macro_f1" in r["scores"][lang] else {})}
                for r in per_seed if lang in (r.get("scores") or {})]
        entry.update(scores_per_experiment=runs, main_score=acc, hf_subset=lang, languages=[mteb_language(lang)])
        subsets.append(entry)
    probe = payload.get("protocol") == "probe"
    name = f"Metaxlm{_task_title(str(task.get('name') or 'transfer'))}{'LinearProbe' if probe else 'ZeroShot'}Transfer"
    why = PROBE_NOT_COMPARABLE if probe else TRANSFER_NOT_COMPARABLE
    return _envelope(name, payload, meta, "test", subsets,
                     _info(payload, False, why, protocol=payload.get("protocol") or "finetune", train_language="en",
                           seeds=[r.get("seed") for r in per_seed]))


def task_result(payload: dict, meta: dict | None = None) -> tuple[dict | None, str]:
    """``(MTEB TaskResult dict, "")`` for a result that maps, else ``(None, why not)``."""
    kind = payload.get("kind")
    model = payload.get("model") or {}
    if model.get("source") == "control":
        return None, f"{model.get('label')} is a control, not an encoder"
    if kind == "tatoeba":
        return tatoeba_result(payload, meta), ""
    if kind == "bucc":
        return bucc_result(payload, meta), ""
    if kind == "transfer":
        task = payload.get("task") or {}
        if task.get("metric") != "accuracy":
            return None, f"{task.get('name')} is scored by {task.get('metric')} (token classification): no MTEB task type"
        return transfer_result(payload, meta), ""
    return None, f"kind {kind!r} (a probe or a training record) has no MTEB counterpart"


def model_meta(model: dict, max_tokens: int | None = None) -> dict:
    """``model_meta.json`` as MTEB's ``ModelMeta.to_dict()`` writes it; what metaxlm does not know is null."""
    source = model.get("source")
    framework = ["PyTorch", "Transformers"] if source in ("run", "local", "hub") else []
    reference = f"https://huggingface.co/{model.get('spec')}" if source == "hub" else None
    return {
        "loader_kwargs": {}, "name": model_name(model), "revision": model_revision(model), "release_date": None,
        "languages": None, "n_parameters": None, "n_active_parameters_override": None,
        "n_embedding_parameters": None, "memory_usage_mb": None,
        "max_tokens": float(max_tokens) if max_tokens else None, "embed_dim": None,
        "license": None, "open_weights": True if source in ("run", "local") else None,
        "public_training_code": None, "public_training_data": None, "framework": framework,
        "reference": reference, "similarity_fn_name": "cosine", "use_instructions": False,
        "training_datasets": None, "adapted_from": None, "superseded_by": None, "modalities": ["text"],
        "model_type": ["dense"], "citation": None, "contacts": None, "experiment_kwargs": None,
        "output_dtypes": None, "extra_requirements_groups": None, "loader": None, "is_cross_encoder": False,
    }
