"""The benchmark's ``datacard.md``: sources, licences, counts, and how the splits were made."""

from __future__ import annotations

from pathlib import Path

from metaxlm.data.descriptions import MIN_TOPIC_WORDS
from metaxlm.rundir import atomic_write_text

COLUMNS = ["corpus", "topic-train", "topic-dev", "topic-test", "parallel-dev", "parallel-test", "nway",
           "mining-dev-gold", "mining-test-gold"]


def counts_table(stats: dict) -> str:
    rows = ["| lang | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for lang in stats["languages"]:
        c = stats["counts"].get(lang, {})
        rows.append(f"| {lang} | " + " | ".join(str(c.get(k, "")) for k in COLUMNS) + " |")
    return "\n".join(rows)


def _unsigned_note(src: dict) -> str:
    if src.get("signature_verified") is True:
        return ""
    return ("; the signature was not checked (`--allow-unsigned`), so the SHA256 sums themselves are "
            "unauthenticated")


def write_datacard(path: Path, stats: dict, cfg) -> None:
    src = stats["sources"]
    files = "\n".join(f"- `{f['path']}` (SHA256 `{f['sha256'][:16]}…`, {f['size']:,} bytes)"
                      for f in src["files"].values())
    labels = stats["topic_label_counts"]
    label_rows = "\n".join(f"| {lab} | " + " | ".join(str(labels[s][lab]) for s in ("train", "dev", "test")) + " |"
                           for lab in stats["labels"])
    caps = ", ".join(f"{k}={v}" for k, v in stats["config"].items() if k.startswith("max_"))
    verified = str(src.get("signature_verified") is True).lower()
    allowed = str(bool(src.get("allow_unsigned"))).lower()
    text = f"""# Data card: Debian {stats['release']} multilingual benchmark

Built by `metaxlm data build` (format {stats['format']}, seed {stats['seed']}) from the Debian archive,
release `{stats['release']}` (version {src.get('release_version')}, {src.get('release_date')}), component `main`.
Release index: `{src.get('release_file')}`, OpenPGP signature verified: **{verified}**
(`signature_verified: {verified}`, `allow_unsigned: {allowed}`{_unsigned_note(src)}).
Before this build every input file was checked against the SHA256 sums of the release index
(indices) or of the Packages index (documentation packages), hashed again unless unchanged since its
last check; the sums listed below are the ones verified. Languages: {', '.join(stats['languages'])} (`pt` is Debian's `pt_BR`).

## Sources and licences
{files}

- **Package descriptions** (`Translation-*`, Debian Description Translation Project) and topic labels
  (the `Section` of each package in `Packages`). Descriptions are written by package maintainers and
  translated by DDTP volunteers; they are distributed with the archive under the licence of each package.
- **debian-handbook** (*The Debian Administrator's Handbook*, HTML): GPL-2+ or CC-BY-SA-3.0.
- **gnome-user-docs** (GNOME help, Mallard XML): CC-BY-SA-3.0.

## How the splits were made
- Descriptions are grouped by **source package**: source packages that share a description form one
  component, and every split decision is a seeded hash of the component, so no source package is on
  two sides of any split. Shares of components: topic test {cfg.topic_test}, topic dev {cfg.topic_dev},
  mining {cfg.mining} (half dev, half test); the rest is the training pool.
- **corpus/en.txt**: English paragraphs (short description and long paragraphs) of the training-pool
  components on the English side. **corpus/<xx>.txt**: translated paragraphs of the *disjoint*
  multilingual side ({cfg.multilingual_share} of the training pool), only from translations whose
  paragraphs align with the English original and whose English paragraph is not in `en.txt` (no hidden
  parallel data). Lines are de-duplicated; every sentence of `parallel/`, `mining/` and the topic dev/test
  descriptions is removed from all corpora.
- **topic/**: label = coarse topic of the package Section (games; graphics; multimedia = sound, video;
  network = net, web, mail, comm, httpd, news; science = science, math, electronics, hamradio;
  system = admin, utils, shells, kernel, otherosfs; text = text, editors, tex). Other sections (libs,
  doc, python, …) are dropped, as are descriptions under {MIN_TOPIC_WORDS} words. Train = English
  descriptions of the training pool; dev and test = English descriptions of their own components; test items need a
  translation in at least one target language, and `test-<xx>.tsv` holds the translations with the
  English item's `id` (the binary package name). Near-duplicate descriptions (same first paragraph, e.g.
  `foo`, `foo-data`) are kept once, in the first of train, dev, test. Classes are imbalanced: report
  macro-F1 alongside accuracy.
- **parallel/**: handbook and GNOME-help paragraphs aligned page by page (pages whose block counts match
  the English page), without untranslated paragraphs (identical to English), mostly non-letter blocks
  (commands, paths), duplicates or English blocks under 3 words. Dev = pages hashed into
  {cfg.parallel_dev} of pages, test = the rest. `nway.tsv`: test paragraphs translated into every language.
- **mining/** (BUCC 2018 format): paragraphs of the mining components; per language, {cfg.mining_gold} of
  the aligned translated descriptions are gold (both sides), the others only give the non-English side,
  untranslated descriptions fill the English side. Sentences are unique on each side.
- Caps: {caps}.

## Counts (items per file; TSV headers not counted)
{counts_table(stats)}

Topic labels per split:

| label | train | dev | test-en |
|---|---|---|---|
{label_rows}
"""
    atomic_write_text(path, text)
