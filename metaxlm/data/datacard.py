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
    if stats.get("size", "default") != "default":
        text += size_section(stats, cfg)
    atomic_write_text(path, text)


LICENCES = {
    "libreoffice-help": "MPL-2.0 (LibreOffice help)",
    "manpages": "man-pages project licences (mostly verbatim-copying and GPL-2+); translations "
                "(manpages-l10n) GPL-3+",
    "perl-doc": "GPL-1+ or Artistic", "python3.11-doc": "PSF-2.0", "rust-doc": "MIT or Apache-2.0",
    "openjdk-17-doc": "GPL-2 with Classpath exception", "linux-doc-6.1": "GPL-2",
    "sqlite3-doc": "public domain", "postgresql-doc-15": "PostgreSQL licence", "python-django-doc": "BSD-3-clause",
    "git-doc": "GPL-2",
    "qtbase5-doc-html": "GFDL-1.3 (no invariant sections)", "qtdeclarative5-doc-html": "GFDL-1.3 (no invariant sections)",
    "qt5-doc-html": "GFDL-1.3 (no invariant sections)", "racket-doc": "MIT or Apache-2.0", "erlang-doc": "Apache-2.0",
    "rust-web-doc": "MIT or Apache-2.0", "derby-doc": "Apache-2.0", "ghc-doc": "BSD-3-clause",
    "dpdk-doc": "BSD-3-clause", "python-sqlalchemy-doc": "MIT", "db5.3-doc": "Sleepycat",
    "fp-docs-3.2.2": "GPL-2+ / LGPL-2.1+", "cppreference-doc-en-html": "CC-BY-SA-3.0 or GFDL-1.2",
    "llvm-15-doc": "Apache-2.0 with LLVM exception", "libboost1.74-doc": "BSL-1.0", "ffmpeg-doc": "LGPL-2.1+",
    "python-sklearn-doc": "BSD-3-clause", "twisted-doc": "MIT",
    "python-sympy-doc": "BSD-3-clause", "python-astropy-doc": "BSD-3-clause", "cmake-doc": "BSD-3-clause",
    "python-statsmodels-doc": "BSD-3-clause", "octave-doc": "GPL-3+", "libgtk-4-doc": "LGPL-2.1+",
    "nodejs-doc": "MIT", "maxima-doc": "GPL-2", "python-dask-doc": "BSD-3-clause",
}


def _licence(pkg: str) -> str:
    for k, v in LICENCES.items():
        if pkg == k or (k in ("libreoffice-help", "manpages") and pkg.startswith(k)):
            return v
    return "see /usr/share/doc/<package>/copyright"


def size_section(stats: dict, cfg) -> str:
    """The data card's part on what a non-default size adds: sources, alignment, corpora per source."""
    from metaxlm.data.sizes import get_size
    from metaxlm.eval.overlap import DEFINITION

    size = get_size(stats["size"])
    pkgs = sorted({role[4:] for role in stats["sources"]["files"] if role.startswith("deb-")})
    src_rows = "\n".join(f"| `{p}` | {_licence(p)} |" for p in pkgs)
    lo = stats.get("libreoffice", {})
    lo_rows = "\n".join(f"| {lang} | {v.get('dev', 0):,} | {v.get('test', 0):,} | "
                         f"{lo.get('pages_missing_in_translation', {}).get(lang, 0)} |"
                         for lang, v in lo.get("aligned_pairs", {}).items())
    corp = stats.get("corpus_sources", {})
    corp_rows = "\n".join(f"| {lang} | {name} | {c['lines']:,} | {c['words']:,} | {c['chars']:,} |"
                           for lang, by in corp.items() for name, c in by.items())
    totals = "\n".join(f"| {lang} | {sum(c['words'] for c in by.values()):,} | "
                        f"{sum(c['chars'] for c in by.values()):,} |" for lang, by in corp.items())
    measured = "\n".join(f"- {line}" for line in size.measured) or "- (not measured)"
    return f"""
## Size `{size.name}`: added sources

| package | licence |
|---|---|
{src_rows}

- **LibreOffice help** (`libreoffice-help-<loc>`): every page of every language carries the .xhp ids of
  its paragraphs; pairs are aligned by page and id, untranslated paragraphs (empty or identical to
  English) are dropped, then the filters of the other parallel pairs apply. Pages are split by a seeded
  hash: parallel dev {size.lo_dev}, parallel test {size.lo_test} of pages, the rest is the training
  pool, whose translated paragraphs feed the target-language corpora (never `corpus/en.txt`). The
  parallel files hold these pairs next to the handbook/GNOME-help ones (shuffled, capped).
- **Man pages**: translations (`manpages-<loc>`, `manpages-<loc>-dev`) feed the target corpora; an
  English man page (`manpages`, `manpages-dev`, `perl-doc`) feeds `corpus/en.txt` only when no fetched
  translation of that page exists.
- **English documentation** (HTML, English only): block text without code (`pre`, `code`).
- Corpus lines: at least {12} characters, half of them letters, 4 words (not for Japanese), de-duplicated;
  every held-out sentence removed. Descriptions are not capped.

Aligned LibreOffice pairs per language (before the caps and the merge with the other pairs):

| lang | dev | test | pages missing in the translation |
|---|---|---|---|
{lo_rows}

Corpus lines per source:

| lang | source | lines | words | characters |
|---|---|---|---|---|
{corp_rows}

Totals:

| lang | words | characters |
|---|---|---|
{totals}

Surface overlap of parallel pairs (computed at evaluation time): {DEFINITION}.

Measured (how: docs/benchmark.md):
{measured}
"""
