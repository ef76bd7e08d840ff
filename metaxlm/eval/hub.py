"""Task and bitext data from Hugging Face ``datasets`` (``pip install 'metaxlm[hub]'``).

A source is written ``hf:NAME[:CONFIG]`` (the grammar of ``--corpus hf:…``, without ``:SPLIT`` and
``#COLUMN``: the task chooses those). NAME is a hub id, or a local directory holding one
``save_to_disk`` dataset per config, named as on the hub (``DIR/PAN-X.en/``, ``DIR/PAN-X.de/``, …).
Without CONFIG the configs come from :data:`SOURCES` (one per language) or, for a local directory,
from its subdirectories. CONFIG overrides them: a comma list of ``LANG=CONFIG`` items, of configs whose
language can be read off (``PAN-X.de``, ``de_hdt``, ``tatoeba.deu``) or one template with ``{lang}``.

Only the splits a task needs are requested: English train + validation + test, target test only
(Tatoeba: the one split; BUCC: validation as dev, test as test). Columns are found by schema
(premise/sentence1, hypothesis/sentence2, label/gold_label, tokens, ner_tags/upos/pos_tags,
source_sentence/target_sentence) and ClassLabel names are checked against the task's label set.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from metaxlm.errors import UserError

XNLI = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX = ("en", "de", "es", "fr", "ja", "ko", "zh")
PANX = ("en", "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it",
        "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr",
        "ur", "vi", "yo", "zh")
BUCC = ("de", "fr", "ru", "zh")
UDPOS = {"en": "English", "af": "Afrikaans", "ar": "Arabic", "eu": "Basque", "bg": "Bulgarian", "nl": "Dutch",
         "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German", "el": "Greek", "he": "Hebrew",
         "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh",
         "ko": "Korean", "zh": "Chinese", "mr": "Marathi", "fa": "Persian", "pt": "Portuguese", "ru": "Russian",
         "es": "Spanish", "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish",
         "ur": "Urdu", "vi": "Vietnamese", "yo": "Yoruba"}
TATOEBA = {"af": "afr", "ar": "ara", "bn": "ben", "bg": "bul", "de": "deu", "zh": "cmn", "el": "ell", "et": "est",
           "eu": "eus", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita",
           "jv": "jav", "ja": "jpn", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld",
           "fa": "pes", "pt": "por", "ru": "rus", "es": "spa", "sw": "swh", "ta": "tam", "te": "tel", "tl": "tgl",
           "th": "tha", "tr": "tur", "ur": "urd", "vi": "vie"}
UD_TREEBANKS = {"en": "en_ewt", "de": "de_gsd", "fr": "fr_gsd", "es": "es_gsd", "it": "it_isdt", "pt": "pt_bosque",
                "ru": "ru_syntagrus", "ja": "ja_gsd", "zh": "zh_gsd", "ar": "ar_padt", "hi": "hi_hdtb",
                "ko": "ko_gsd", "tr": "tr_imst", "nl": "nl_alpino", "fi": "fi_tdt", "el": "el_gdt", "he": "he_htb",
                "hu": "hu_szeged", "id": "id_gsd", "fa": "fa_seraji", "vi": "vi_vtb", "bg": "bg_btb", "et": "et_edt",
                "eu": "eu_bdt", "af": "af_afribooms", "ur": "ur_udtb", "ta": "ta_ttb", "te": "te_mtg",
                "mr": "mr_ufal"}


@dataclass(frozen=True)
class Route:
    """How one dataset holds one task: a config per language (``table`` first, else ``template``)."""

    template: str | None = None  # "PAN-X.{lang}"
    table: dict = field(default_factory=dict)  # lang -> config (also extra spellings: tatoeba "de" and "deu")
    languages: tuple[str, ...] = ()  # what the dataset offers (empty: not listed, the hub decides)
    splits: dict = field(default_factory=dict)  # our split name -> the dataset's ("dev" -> "validation")

    def config(self, lang: str) -> str | None:
        if lang in self.table:
            return self.table[lang]
        if self.template and (not self.languages or lang in self.languages):
            return self.template.format(lang=lang)
        return None

    def language(self, config: str) -> str | None:
        for lang, c in self.table.items():
            if c == config:
                return lang
        if self.template:
            pre, _, post = self.template.partition("{lang}")
            m = re.fullmatch(re.escape(pre) + r"([A-Za-z_-]+?)" + re.escape(post), config)
            if m and (not self.languages or m.group(1) in self.languages):
                return m.group(1)
        return None


_TATOEBA_ROUTE = Route(table={**{v: f"tatoeba.{v}" for v in TATOEBA.values()},
                              **{k: f"tatoeba.{v}" for k, v in TATOEBA.items()}},
                       languages=tuple(TATOEBA.values()), splits={"test": "validation"})
SOURCES: dict[str, dict[str, Route]] = {
    "google/xtreme": {
        "pawsx": Route("PAWS-X.{lang}", languages=PAWSX),
        "ner": Route("PAN-X.{lang}", languages=PANX),
        "pos": Route(table={k: f"udpos.{v}" for k, v in UDPOS.items()}, languages=tuple(UDPOS)),
        "tatoeba": _TATOEBA_ROUTE,
        "bucc": Route("bucc18.{lang}", languages=BUCC),
    },
    "facebook/xnli": {"xnli": Route("{lang}", languages=XNLI)},
    "google-research-datasets/paws-x": {"pawsx": Route("{lang}", languages=PAWSX)},
    "unimelb-nlp/wikiann": {"ner": Route("{lang}")},
    "universal-dependencies/universal_dependencies": {"pos": Route(table=UD_TREEBANKS, languages=tuple(UD_TREEBANKS))},
}
ALIASES = {"xtreme": "google/xtreme", "xnli": "facebook/xnli", "paws-x": "google-research-datasets/paws-x",
           "wikiann": "unimelb-nlp/wikiann", "universal_dependencies": "universal-dependencies/universal_dependencies"}
DEFAULT_SOURCE = {"xnli": "facebook/xnli", "pawsx": "google/xtreme", "ner": "google/xtreme", "pos": "google/xtreme",
                  "tatoeba": "google/xtreme", "bucc": "google/xtreme"}
NOT_HERE = {("google/xtreme", "xnli"): "google/xtreme's XNLI config has no English training split; "
                                       "use hf:facebook/xnli (MultiNLI-based English train)"}


@dataclass(frozen=True)
class HubSource:
    text: str  # as given, for messages
    name: str  # hub id (aliases resolved) or absolute local directory
    local: bool
    route: Route
    explicit: dict  # lang -> config named in CONFIG


def parse(text: str, task: str) -> HubSource:
    """``hf:NAME[:CONFIG]`` for ``task`` (a TaskSpec name, ``tatoeba`` or ``bucc``)."""
    body = str(text)[3:]
    if "#" in body or body.count(":") > 1 or body.endswith(":"):
        raise UserError(f"{text}: write hf:NAME[:CONFIG] (e.g. hf:google/xtreme:PAN-X.{{lang}}); {task} chooses "
                        "its own splits (English train/validation/test, target test) and columns")
    name, _, configs = body.partition(":")
    name = name or DEFAULT_SOURCE.get(task, "")
    if not name:
        raise UserError(f"{text}: {task} has no default hub dataset; write hf:NAME[:CONFIG]")
    local_dir = Path(name).expanduser()
    local = local_dir.is_dir()
    if local:
        name = str(local_dir.absolute())
        route = _local_route(local_dir, task, text)
    else:
        if name.startswith(("/", ".", "~")):
            raise UserError(f"{text}: {local_dir} is not a directory (a local dataset is a directory of "
                            "save_to_disk configs)")
        name = ALIASES.get(name, name)
        if (name, task) in NOT_HERE:
            raise UserError(f"{text}: {NOT_HERE[name, task]}")
        route = SOURCES.get(name, {}).get(task) or Route("{lang}")
    explicit: dict = {}
    template = None
    for item in filter(None, (c.strip() for c in configs.split(","))):
        lang, eq, cfg = item.partition("=")
        if eq:
            explicit[lang.strip()] = cfg.strip()
        elif "{lang}" in item:
            template = item
        else:
            lang = route.language(item) or _guess_language(item)
            if lang is None:
                raise UserError(f"{text}: cannot tell the language of config {item!r}; write LANG={item}")
            explicit[lang] = item
    if template:
        route = Route(template, splits=route.splits)
    return HubSource(text, name, local, route, explicit)


def _guess_language(config: str) -> str | None:
    """``de`` → de, ``de_hdt`` → de (UD treebanks), ``PAN-X.de`` / ``bucc18.de`` → de."""
    m = re.fullmatch(r"(?:[\w-]+\.)?([a-z]{2,3})(?:_[a-z0-9]+)?", config)
    return m.group(1) if m else None


def _is_saved(d: Path) -> bool:
    return (d / "dataset_dict.json").is_file() or (d / "dataset_info.json").is_file()


def _local_route(d: Path, task: str, text: str) -> Route:
    """The configs of a local directory: its ``save_to_disk`` subdirectories, by language."""
    if _is_saved(d):
        raise UserError(f"{text}: {d} is one saved dataset; a local source is a directory of configs saved as "
                        f"{d}/<config> (e.g. ds.save_to_disk('{d}/PAN-X.de')); name it hf:{d.parent}:{d.name}")
    routes = [r[task] for r in SOURCES.values() if task in r]
    others = [r for rs in SOURCES.values() for t, r in rs.items() if t != task and r.template != "{lang}"]
    table: dict = {}
    guessed: dict = {}
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and _is_saved(p)):
        lang = next((x for r in routes if (x := r.language(sub.name))), None)
        if lang is not None:
            table.setdefault(TATOEBA.get(lang, lang) if task == "tatoeba" else lang, sub.name)
        elif not any(r.language(sub.name) for r in others) and (lang := _guess_language(sub.name)):
            guessed.setdefault(lang, sub.name)  # another treebank (de_hdt): used when no known config is there
    table = {**guessed, **table}
    langs = tuple(sorted(table))
    if task == "tatoeba":  # also reachable by ISO 639-1 code, as on the hub
        table.update({k: table[v] for k, v in TATOEBA.items() if v in table})
    return Route(table=table, languages=langs, splits=_TATOEBA_ROUTE.splits if task == "tatoeba" else {})


def languages(src: HubSource, wanted: Sequence[str], fallback: Sequence[str] = ()) -> list[str]:
    """The languages to load: ``wanted``, else the configs named in CONFIG, else all the source offers."""
    langs = list(wanted) or list(src.explicit) or list(src.route.languages) or list(fallback)
    if not langs:
        raise UserError(f"{src.text}: the dataset does not list its languages; give them with --languages/--lang")
    return list(dict.fromkeys(langs))


def config_for(src: HubSource, lang: str) -> str:
    cfg = src.explicit.get(lang) or src.route.config(lang)
    if cfg is None:
        have = ", ".join(sorted(set(src.route.languages))) or "none"
        where = "has no config directory" if src.local else "has no config"
        raise UserError(f"{src.text}: {where} for language {lang!r} (languages: {have}); name one with "
                        f"hf:NAME:{lang}=CONFIG")
    return cfg


# ---------------------------------------------------------------------------------------------- loading
def _datasets(text: str):
    from metaxlm.train.corpus import import_datasets

    return import_datasets(f"--data {text} (or a local save_to_disk copy)")


def load_split(src: HubSource, config: str, split: str, *, required: bool = True):
    """One split of one config as a ``datasets.Dataset`` (``None`` when absent and not ``required``)."""
    datasets = _datasets(src.text)
    name = src.route.splits.get(split, split)
    candidates = [name, "dev"] if name == "validation" else [name]
    where = f"hf:{src.name}:{config}"
    if src.local:
        d = Path(src.name) / config
        if not _is_saved(d):
            have = ", ".join(sorted(p.name for p in Path(src.name).iterdir() if _is_saved(p))) or "nothing"
            raise UserError(f"{where}: unknown config: {d} is not a save_to_disk directory ({src.name} has: {have})")
        try:
            ds = datasets.load_from_disk(str(d))
        except Exception as e:  # noqa: BLE001 - a damaged save is the user's data
            raise UserError(f"{where}: cannot be read ({type(e).__name__}: {_first(e)}); save it again") from None
        if not isinstance(ds, datasets.DatasetDict):
            raise UserError(f"{where}: holds one split without a name; save a DatasetDict "
                            f"(DatasetDict({{'test': ds}}).save_to_disk(...))")
        found = next((c for c in candidates if c in ds), None)
        if found is None and required:
            raise UserError(f"{where}: no {name!r} split (splits: {', '.join(ds)})")
        return ds[found] if found else None
    first = None
    for i, cand in enumerate(candidates):
        try:
            return datasets.load_dataset(src.name, config, split=cand)
        except ValueError as e:
            first = first or _first(e)
            if "split" in str(e).lower() and i + 1 < len(candidates):
                continue
            if "split" in str(e).lower() and not required:
                return None
            raise UserError(f"{where}: {first}; check the config and the splits it has") from None
        except Exception as e:  # noqa: BLE001 - offline hub, unknown name or config: one clear line
            raise UserError(f"{where} cannot be loaded ({type(e).__name__}: {_first(e)}); check the name and "
                            "config (unknown config?) and that the hub is reachable, or give a directory of "
                            "save_to_disk configs") from None
    return None


def _first(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def columns(ds, where: str, wanted: dict[str, tuple[str, ...]], optional: tuple[str, ...] = ()) -> dict:
    """{role: column name} for the first present candidate of each role (roles in ``optional`` may miss)."""
    out = {}
    for role, names in wanted.items():
        col = next((n for n in names if n in ds.column_names), None)
        if col is None and role not in optional:
            raise UserError(f"{where}: no {' / '.join(names)} column (columns: {', '.join(ds.column_names)})")
        if col is not None:
            out[role] = col
    return out


def class_names(ds, col: str) -> list[str] | None:
    feat = ds.features[col]
    return getattr(getattr(feat, "feature", feat), "names", None)


def arrow_files(ds) -> list[Path]:
    return [Path(f["filename"]) for f in getattr(ds, "cache_files", []) if f.get("filename")]


def digest(parts: Sequence) -> str:
    """sha256 over a JSON rendering of what was read (content, not storage)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)
