"""``metaxlm data fetch | build | info``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from metaxlm.data.build import BuildConfig as _D  # option defaults come from the build config

data_app = typer.Typer(help="Fetch the Debian archive sources and build the default benchmark.",
                       no_args_is_help=True)

_LANGS = typer.Option(None, "--languages", "-l",
                      help="Target languages, comma-separated (default: de,fr,it,pt,ru,ja,es; pt = pt_BR).")
_RELEASE = typer.Option("bookworm", "--release", help="Debian release (suite) to read.")
_MIRROR = typer.Option(None, "--mirror", help="Archive URL (default: $METAXLM_MIRROR, else the apt sources).")
_CACHE = typer.Option(None, "--cache", help="Download cache (default: $METAXLM_CACHE/archive or "
                                            "$XDG_CACHE_HOME/metaxlm/archive).")
_UNSIGNED = typer.Option(False, "--allow-unsigned",
                         help="Go on when the release index's OpenPGP signature cannot be checked (no gpgv, "
                              "no keyring, or no signed InRelease); the SHA256 sums are then unauthenticated. "
                              "Default: refuse.")
_SIZE = typer.Option("default", "--size", help="Which sources and caps: default (descriptions + two "
                     "documentation packages) or large (+ LibreOffice help, man pages, English documentation; "
                     "docs/benchmark.md).")
_KEYRING = typer.Option(None, "--keyring", help="OpenPGP keyring for the release index "
                                                "(default: /usr/share/keyrings/debian-archive-keyring.gpg).")


def _signature_line(m: dict) -> str:
    verified = m.get("signature_verified") is True
    line = f"signature verified: {str(verified).lower()}"
    return line if verified else line + ", allowed by --allow-unsigned"


@data_app.command("fetch")
def fetch_cmd(languages: Optional[str] = _LANGS, release: str = _RELEASE, mirror: Optional[str] = _MIRROR,
              cache: Optional[Path] = _CACHE,
              refresh: bool = typer.Option(False, "--refresh", help="Download the release index again and "
                                           "re-verify every cached file."),
              allow_unsigned: bool = _UNSIGNED, keyring: Optional[Path] = _KEYRING, size: str = _SIZE) -> None:
    """Download (or reuse) and verify the indices and documentation packages."""
    from metaxlm.config import build as build_config
    from metaxlm.data.fetch import FetchConfig, fetch, manifest_path
    from metaxlm.data.languages import parse_list
    from metaxlm.data.sizes import get_size
    from metaxlm.rundir import read_json

    langs = parse_list(languages)
    options = {"languages": list(langs), "release": release, "mirror": mirror, "cache": cache,
               "refresh": refresh, "allow_unsigned": allow_unsigned,
               "stream_packages": list(get_size(size).stream_packages(langs))}
    if keyring is not None:
        options["keyring"] = keyring
    root = fetch(build_config(FetchConfig, options, where="data fetch"))
    m = read_json(manifest_path(root, release))
    typer.echo(f"fetched {len(m['files'])} files for {release} from {m['mirror']} into {root} "
               f"({_signature_line(m)})")


@data_app.command("build")
def build_cmd(out: Optional[Path] = typer.Option(None, "--out", help="Benchmark directory "
                                                 "(default: $METAXLM_BENCHMARK or the cache's benchmark/)."),
              seed: int = typer.Option(0, "--seed", help="Seed of every split decision."),
              languages: Optional[str] = _LANGS, release: str = _RELEASE, mirror: Optional[str] = _MIRROR,
              cache: Optional[Path] = _CACHE,
              max_corpus_lines: Optional[int] = typer.Option(
                  None, help=f"Cap on corpus lines per language (0 = none; default: the size's, "
                             f"{_D.max_corpus_lines} for default)."),
              max_parallel_test: Optional[int] = typer.Option(
                  None, help=f"Cap on parallel test pairs per language (0 = none; default: the size's, "
                             f"{_D.max_parallel_test} for default)."),
              max_mining_pool: Optional[int] = typer.Option(
                  None, help=f"Cap on each mining pool (0 = none; default: the size's, {_D.max_mining_pool} "
                             "for default)."),
              allow_unsigned: bool = _UNSIGNED, keyring: Optional[Path] = _KEYRING, size: str = _SIZE) -> None:
    """Build the benchmark (fetching what is missing) and print its counts."""
    from metaxlm import paths
    from metaxlm.data.build import build_benchmark

    paths.check_output(out or paths.default_benchmark_dir(), "benchmark directory")
    if cache is not None:
        paths.check_output(cache, "download cache", option="--cache")

    caps = {k: v or None for k, v in (("max_corpus_lines", max_corpus_lines), ("max_parallel_test", max_parallel_test),
                                      ("max_mining_pool", max_mining_pool)) if v is not None}
    path = build_benchmark(out=out, languages=languages, release=release, mirror=mirror, cache=cache, seed=seed,
                           allow_unsigned=allow_unsigned, keyring=keyring, size=size, **caps)
    _print_info(path)


@data_app.command("info")
def info_cmd(bench: Optional[Path] = typer.Argument(None, help="Benchmark directory (default: the default one).")
             ) -> None:
    """Print a table of counts per language and split."""
    from metaxlm import paths

    _print_info(bench or paths.default_benchmark_dir())


def _print_info(path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from metaxlm.data.datacard import COLUMNS
    from metaxlm.data.info import benchmark_info

    info = benchmark_info(path)
    table = Table(title=f"{info['path']}  (seed {info.get('seed')}, release {info.get('release')})")
    table.add_column("lang")
    for c in COLUMNS:
        table.add_column(c, justify="right")
    for lang in info["languages"]:
        c = info["counts"].get(lang, {})
        table.add_row(lang, *(f"{c[k]:,}" if k in c else "" for k in COLUMNS))
    console = Console(width=max(150, Console().width))
    console.print(table)
    from metaxlm.data.info import corpus_sources

    rows = corpus_sources(path)
    counted = any(r["tokens"] is not None for r in rows)
    src = Table(title="corpus by source: " + ("tokens from the token cache (the tokenizer that prepared the file; "
                                              "per source shared out by characters), words where none"
                                              if counted else "words (no tokenizer has prepared these corpus files; "
                                              "`metaxlm corpus prepare` adds tokens)"))
    for c in ("lang", "source", "lines", "words", "chars", "tokens"):
        src.add_column(c, justify="left" if c in ("lang", "source") else "right")
    for r in rows:
        src.add_row(r["lang"], r["source"], f"{r['lines']:,}", f"{r['words']:,}", f"{r['chars']:,}",
                    f"{r['tokens']:,}" if r["tokens"] is not None else "-")
    console.print(src)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
